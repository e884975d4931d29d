package psd2_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bankedge/bankedge/internal/certprofile/qcstatements"
	"github.com/bankedge/bankedge/internal/certprofile/tppcert"
	"github.com/bankedge/bankedge/internal/testpki"
	"github.com/bankedge/bankedge/modules/psd2"
	"github.com/bankedge/bankedge/modules/psd2/httpsig"
)

const paymentPath = "/v1/payments/sepa-credit-transfers"

var paymentBody = []byte(`{
    "instructedAmount": {"currency": "EUR", "amount": "123.50"},
    "debtorAccount": {"iban": "GR1601101250000000012300695"},
    "creditorName": "Τράπεζα Πειραιώς",
    "creditorAccount": {"iban": "GR9608100010000001234567890"}
}`)

// TestGateway runs every scenario against one running Caddy with real TLS.
func TestGateway(t *testing.T) {
	f := newFixture(t)
	pir, bg := httpsig.Piraeus, httpsig.BerlinGroup
	pay := func(base string) string { return base + paymentPath }

	t.Run("piraeus/valid request reaches upstream with the verified identity", func(t *testing.T) {
		r := f.do(t, request{profile: pir, tls: f.qwac, qseal: f.qseal, url: pay(f.piraeusURL), body: paymentBody,
			header: http.Header{"X-Tpp-Org-Id": {"PSDXX-EVIL-1"}, "X-Tpp-Roles": {"PSP_AS"}}})
		expectOK(t, r)
		tpp, _ := r.echo["tpp"].(map[string]any)
		if tpp["orgId"] != orgID || tpp["roles"] != "PSP_PI,PSP_AI,PSP_IC" || tpp["ncaId"] != "GR-BOG" ||
			tpp["ncaName"] != "Bank of Greece" || tpp["name"] != "Example TPP S.A." {
			t.Fatalf("upstream saw identity %v in %s", tpp, r.body)
		}
		if len(fmt.Sprint(tpp["certSha256"])) != 64 {
			t.Errorf("cert_sha256 = %v", tpp["certSha256"])
		}
		var compact bytes.Buffer
		_ = jsonCompact(&compact, paymentBody)
		if r.echo["body"] != compact.String() {
			t.Errorf("upstream body = %q, want the minified body %q", r.echo["body"], compact.String())
		}
	})

	t.Run("piraeus/body buffer is reused once the proxy has closed it", func(t *testing.T) {
		var reused, kept atomic.Int32
		hook := func(r bool) {
			if r {
				reused.Add(1)
			} else {
				kept.Add(1)
			}
		}
		psd2.BodyReleased.Store(&hook)
		defer psd2.BodyReleased.Store(nil)
		for range 3 {
			expectOK(t, f.do(t, request{profile: pir, tls: f.qwac, qseal: f.qseal, url: pay(f.piraeusURL), body: paymentBody}))
		}
		// reverse_proxy's transport closes the body when it has sent it,
		// before the response comes back, so the pool still serves.
		if reused.Load() != 3 || kept.Load() != 0 {
			t.Errorf("buffers reused %d, kept out of the pool %d; want 3 and 0", reused.Load(), kept.Load())
		}
	})

	t.Run("piraeus/rsa-sha512", func(t *testing.T) {
		expectOK(t, f.do(t, request{profile: pir, alg: httpsig.RSASHA512, tls: f.qwac, qseal: f.qseal, url: pay(f.piraeusURL), body: paymentBody}))
	})

	t.Run("piraeus/digest of the raw pretty body is accepted too", func(t *testing.T) {
		// Sign with a profile that does not minify: the body goes out
		// pretty-printed, with its digest over those exact bytes.
		raw := pir
		raw.CompactJSON = false
		r := f.do(t, request{profile: raw, tls: f.qwac, qseal: f.qseal, url: pay(f.piraeusURL), body: paymentBody})
		expectOK(t, r)
		if r.echo["body"] != string(paymentBody) {
			t.Errorf("body was changed on the way: %q", r.echo["body"])
		}
	})

	t.Run("piraeus/keyId as openssl prints the serial", func(t *testing.T) {
		expectOK(t, f.do(t, request{profile: pir, tls: f.qwac, qseal: f.qseal, url: pay(f.piraeusURL), body: paymentBody,
			mutate: replaceSignatureParam("keyId", "6a:a3:28:60:ff:20:99:9c:9d:12:a7:8a:db:db:19:03")}))
	})

	t.Run("piraeus/the seed's header layout with typographic quotes", func(t *testing.T) {
		expectOK(t, f.do(t, request{profile: pir, tls: f.qwac, qseal: f.qseal, url: pay(f.piraeusURL), body: paymentBody,
			mutate: func(h http.Header, _ *[]byte) {
				sig, _ := httpsig.ParseSignature(h.Get("Signature"))
				h.Set("Signature", fmt.Sprintf("keyId=\u201d %s\u201d, algorithm=\u201d%s\u201d, headers=\u201d%s\u201d, signature=\u201d %s\u201d",
					sig.KeyID, sig.Algorithm, strings.Join(sig.Headers, " "), sig.Signature))
			}}))
	})

	t.Run("berlingroup/valid with Date, PSU-ID and a GET", func(t *testing.T) {
		h := http.Header{"Date": {time.Now().UTC().Format(http.TimeFormat)}, "Psu-Id": {"PSU-1234"}}
		expectOK(t, f.do(t, request{profile: bg, tls: f.qwac, qseal: f.qseal, url: pay(f.bgURL), body: paymentBody, header: h}))
		expectOK(t, f.do(t, request{profile: bg, tls: f.qwac, qseal: f.qseal, method: http.MethodGet, url: f.bgURL + "/v1/accounts?withBalance=true"}))
	})

	t.Run("berlingroup/keyId issuer in any rendering", func(t *testing.T) {
		serial := strings.ToUpper(f.qseal.Cert.SerialNumber.Text(16))
		for _, ca := range []string{
			"CN=Test%20QTSP%20Qualified%20CA,O=Test%20QTSP%20S.A.,organizationIdentifier=VATGR-999999999,C=GR",
			"C=GR, organizationIdentifier=VATGR-999999999, O=Test QTSP S.A., CN=Test QTSP Qualified CA",
			f.qseal.Cert.Issuer.String(),
			"cn=test qtsp qualified ca,o=test qtsp s.a.,2.5.4.97=VATGR-999999999,c=gr",
		} {
			expectOK(t, f.do(t, request{profile: bg, tls: f.qwac, qseal: f.qseal, url: pay(f.bgURL), body: paymentBody,
				mutate: replaceSignatureParam("keyId", "SN="+serial+",CA="+ca)}))
		}
	})

	t.Run("qwac/serverAuth-only and critical qcStatements are accepted", func(t *testing.T) {
		for _, q := range []*testpki.Leaf{f.qwacServerAuthOnly, f.qwacCritical} {
			expectOK(t, f.do(t, request{profile: bg, tls: q, qseal: f.qseal, url: pay(f.bgURL), body: paymentBody}))
		}
	})

	t.Run("qwac/header forms", func(t *testing.T) {
		der := f.qwac.Cert.Raw
		b64 := base64.StdEncoding.EncodeToString(der)
		pemText := string(testpki.CertPEM(f.qwac.Cert))
		forms := map[string]string{
			"pem folded":        strings.ReplaceAll(strings.TrimSpace(pemText), "\n", " "),
			"pem tab-continued": strings.ReplaceAll(strings.TrimSpace(pemText), "\n", "\t"),
			"pem body":          strings.Join(strings.Split(strings.TrimSpace(pemText), "\n")[1:len(strings.Split(strings.TrimSpace(pemText), "\n"))-1], " "),
			"url-encoded pem":   url.PathEscape(pemText),
			"rfc 9440":          ":" + b64 + ":",
		}
		for name, v := range forms {
			t.Run(name, func(t *testing.T) {
				expectOK(t, f.do(t, request{profile: bg, tls: f.qwac, qseal: f.qseal, url: pay(f.bgURL), body: paymentBody,
					header: http.Header{"X-Client-Certificate": {v}}}))
			})
		}
	})

	t.Run("CERTIFICATE_MISSING", func(t *testing.T) {
		r := f.do(t, request{profile: bg, tls: f.qwac, qseal: f.qseal, url: pay(f.bgURL), body: paymentBody,
			mutate: func(h http.Header, _ *[]byte) { h.Del("X-Client-Certificate") }})
		expectError(t, r, 401, "CERTIFICATE_MISSING", "X-Client-Certificate")
		if r.path != "X-Client-Certificate" {
			t.Errorf("path = %q", r.path)
		}
		r = f.do(t, request{profile: bg, tls: f.qwac, qseal: f.qseal, url: pay(f.bgURL), body: paymentBody,
			mutate: func(h http.Header, _ *[]byte) { h.Del("TPP-Signature-Certificate") }})
		expectError(t, r, 401, "CERTIFICATE_MISSING", "TPP-Signature-Certificate")
		// No TLS at all: the handler cannot see a client certificate.
		resp, err := http.Post(f.plainURL+paymentPath, "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		if resp.StatusCode != 401 || !strings.Contains(buf.String(), `"code":"CERTIFICATE_MISSING"`) {
			t.Fatalf("plain HTTP got %d %s", resp.StatusCode, buf.String())
		}
	})

	t.Run("CERTIFICATE_INVALID", func(t *testing.T) {
		cases := map[string]request{
			"header differs from TLS certificate": {tls: f.qwac, qwac: f.qwacOther},
			"header is garbage":                   {tls: f.qwac, header: http.Header{"X-Client-Certificate": {"MIIGEzCPu....MeTnWxq=="}}},
			"QWAC from an untrusted QTSP":         {tls: f.qwacUntrusted},
			"QWAC without PSD2 statement":         {tls: f.qwacNoPSD2},
			"QSEAL of another organisation":       {tls: f.qwac, qseal: f.qsealOtherOrg},
			"QSEAL from an untrusted QTSP":        {tls: f.qwac, qseal: f.qsealUntrusted},
			"QSEAL header is garbage": {tls: f.qwac, qseal: f.qseal, mutate: func(h http.Header, _ *[]byte) {
				h.Set("TPP-Signature-Certificate", "not a certificate")
			}},
			"QWAC used as QSEAL": {tls: f.qwac, qseal: f.qwacOtherAsSigner(t)},
		}
		for name, rq := range cases {
			t.Run(name, func(t *testing.T) {
				rq.profile, rq.url, rq.body = bg, pay(f.bgURL), paymentBody
				if rq.qseal == nil {
					rq.qseal = f.qseal
				}
				expectError(t, f.do(t, rq), 401, "CERTIFICATE_INVALID", "")
			})
		}
	})

	t.Run("CERTIFICATE_EXPIRED", func(t *testing.T) {
		expectError(t, f.do(t, request{profile: bg, tls: f.qwacExpired, qseal: f.qseal, url: pay(f.bgURL), body: paymentBody}), 401, "CERTIFICATE_EXPIRED", "QWAC")
		expectError(t, f.do(t, request{profile: bg, tls: f.qwac, qseal: f.qsealExpired, url: pay(f.bgURL), body: paymentBody}), 401, "CERTIFICATE_EXPIRED", "QSEAL")
	})

	t.Run("ROLE_INVALID", func(t *testing.T) {
		expectError(t, f.do(t, request{profile: bg, tls: f.qwacAIOnly, qseal: f.qseal, url: pay(f.bgURL), body: paymentBody}), 401, "ROLE_INVALID", "PSP_PI")
		// The same TPP may read accounts.
		expectOK(t, f.do(t, request{profile: bg, tls: f.qwacAIOnly, qseal: f.qseal, method: http.MethodGet, url: f.bgURL + "/v1/accounts"}))
		// Path tricks do not dodge the map: TestHostilePaths.
		// require_roles overrides the map: /special needs PSP_AS or PSP_IC.
		expectError(t, f.do(t, request{tls: f.qwacAIOnly, method: http.MethodGet, url: f.specialURL}), 401, "ROLE_INVALID", "")
		r := f.do(t, request{tls: f.qwac, method: http.MethodGet, url: f.specialURL})
		if r.status != 200 || string(r.body) != "special PSP_PI,PSP_AI,PSP_IC" {
			t.Fatalf("special route: %d %s", r.status, r.body)
		}
	})

	t.Run("SIGNATURE_MISSING", func(t *testing.T) {
		expectError(t, f.do(t, request{tls: f.qwac, url: pay(f.bgURL), body: paymentBody}), 401, "SIGNATURE_MISSING", "")
		expectError(t, f.do(t, request{tls: f.qwac, url: pay(f.piraeusURL), body: paymentBody}), 401, "SIGNATURE_MISSING", "")
		expectError(t, f.do(t, request{profile: pir, tls: f.qwac, qseal: f.qseal, url: pay(f.piraeusURL), body: paymentBody,
			mutate: func(h http.Header, _ *[]byte) { h.Del("Signature") }}), 401, "SIGNATURE_MISSING", "without a Signature")
	})

	t.Run("SIGNATURE_INVALID", func(t *testing.T) {
		cases := map[string]struct {
			profile httpsig.Profile
			base    string
			mutate  func(h http.Header, body *[]byte)
			text    string
		}{
			"tampered body":   {pir, f.piraeusURL, func(_ http.Header, b *[]byte) { *b = bytes.Replace(*b, []byte("123.50"), []byte("923.50"), 1) }, "Digest does not match"},
			"tampered header": {bg, f.bgURL, func(h http.Header, _ *[]byte) { h.Set("X-Request-ID", uuid.NewString()) }, "does not verify"},
			"tampered signature": {pir, f.piraeusURL, func(h http.Header, _ *[]byte) {
				sig, _ := httpsig.ParseSignature(h.Get("Signature"))
				raw, _ := base64.StdEncoding.DecodeString(sig.Signature)
				raw[10] ^= 0x40
				replaceSignatureParam("signature", base64.StdEncoding.EncodeToString(raw))(h, nil)
			}, "does not verify"},
			"keyId names another serial": {pir, f.piraeusURL, replaceSignatureParam("keyId", "6AA32860FF20999C9D12A78ADBDB1904"), "keyId"},
			"keyId names another issuer": {bg, f.bgURL, replaceKeyIDIssuer("CN=D-TRUST%20CA%202-1%202015,O=D-Trust%20GmbH,C=DE"), "keyId"},
			"berlingroup keyId without CA": {bg, f.bgURL, func(h http.Header, _ *[]byte) {
				replaceSignatureParam("keyId", "6AA32860FF20999C9D12A78ADBDB1903")(h, nil)
			}, "SN="},
			"piraeus extra signed header":      {pir, f.piraeusURL, replaceSignatureParam("headers", "digest x-request-id date"), "exactly"},
			"berlingroup without x-request-id": {bg, f.bgURL, replaceSignatureParam("headers", "digest"), "x-request-id"},
			"unsupported algorithm":            {pir, f.piraeusURL, replaceSignatureParam("algorithm", "hmac-sha256"), "algorithm"},
			"present PSU-ID not signed":        {bg, f.bgURL, func(h http.Header, _ *[]byte) { h.Set("PSU-ID", "PSU-1") }, "psu-id"},
			"digest missing":                   {bg, f.bgURL, func(h http.Header, _ *[]byte) { h.Del("Digest") }, "Digest"},
			"berlingroup digest in piraeus form": {bg, f.bgURL, func(h http.Header, b *[]byte) {
				h.Set("Digest", httpsig.FormatDigest(httpsig.SHA256, httpsig.Sum(httpsig.SHA256, *b), httpsig.DigestHex))
			}, "Digest"},
		}
		for name, c := range cases {
			t.Run(name, func(t *testing.T) {
				qseal := f.qseal
				r := f.do(t, request{profile: c.profile, tls: f.qwac, qseal: qseal, url: pay(c.base), body: paymentBody, mutate: c.mutate})
				expectError(t, r, 401, "SIGNATURE_INVALID", c.text)
			})
		}
	})

	t.Run("FORMAT_ERROR", func(t *testing.T) {
		cases := map[string]struct {
			mutate func(h http.Header, body *[]byte)
			path   string
			text   string
		}{
			"unparsable Signature":    {func(h http.Header, _ *[]byte) { h.Set("Signature", `keyId="1",signature="x`) }, "Signature", "unterminated"},
			"duplicate parameter":     {func(h http.Header, _ *[]byte) { h.Set("Signature", h.Get("Signature")+`,keyId="1"`) }, "Signature", "twice"},
			"unparsable Digest":       {func(h http.Header, _ *[]byte) { h.Set("Digest", "SHA-256") }, "Digest", ""},
			"Digest not base64":       {func(h http.Header, _ *[]byte) { h.Set("Digest", "SHA-256=***") }, "Digest", ""},
			"X-Request-ID not a UUID": {func(h http.Header, _ *[]byte) { h.Set("X-Request-ID", "1f58df29-d312-4a1a-a006-4068ae99407") }, "X-Request-ID", "UUID"},
			"X-Request-ID missing":    {func(h http.Header, _ *[]byte) { h.Del("X-Request-ID") }, "X-Request-ID", "missing"},
			"Date not a date":         {func(h http.Header, _ *[]byte) { h.Set("Date", "yesterday") }, "Date", ""},
		}
		for name, c := range cases {
			t.Run(name, func(t *testing.T) {
				r := f.do(t, request{profile: bg, tls: f.qwac, qseal: f.qseal, url: pay(f.bgURL), body: paymentBody, mutate: c.mutate})
				expectError(t, r, 400, "FORMAT_ERROR", c.text)
				if r.path != c.path {
					t.Errorf("path = %q, want %q", r.path, c.path)
				}
			})
		}
	})

	t.Run("replay", func(t *testing.T) {
		id := uuid.NewString()
		first := f.do(t, request{profile: pir, tls: f.qwac, qseal: f.qseal, url: pay(f.piraeusURL), body: paymentBody, header: http.Header{"X-Request-Id": {id}}})
		expectOK(t, first)
		again := f.do(t, request{profile: pir, tls: f.qwac, qseal: f.qseal, url: pay(f.piraeusURL), body: paymentBody, header: http.Header{"X-Request-Id": {id}}})
		expectError(t, again, 400, "FORMAT_ERROR", "already used")
		// The replay cache is shared by routes: the same id on the other
		// listener is a replay too.
		expectError(t, f.do(t, request{profile: bg, tls: f.qwac, qseal: f.qseal, url: pay(f.bgURL), body: paymentBody, header: http.Header{"X-Request-Id": {id}}}), 400, "FORMAT_ERROR", "already used")
		// Another organisation may use the same id.
		expectOK(t, f.do(t, request{profile: pir, tls: f.qwacOther, qseal: f.qsealOther, url: pay(f.piraeusURL), body: paymentBody, header: http.Header{"X-Request-Id": {id}}}))
		// A refused request does not burn its id.
		id2 := uuid.NewString()
		expectError(t, f.do(t, request{profile: pir, tls: f.qwac, qseal: f.qseal, url: pay(f.piraeusURL), body: paymentBody, header: http.Header{"X-Request-Id": {id2}},
			mutate: func(_ http.Header, b *[]byte) { *b = bytes.Replace(*b, []byte("123.50"), []byte("923.50"), 1) }}), 401, "SIGNATURE_INVALID", "")
		expectOK(t, f.do(t, request{profile: pir, tls: f.qwac, qseal: f.qseal, url: pay(f.piraeusURL), body: paymentBody, header: http.Header{"X-Request-Id": {id2}}}))
	})

	t.Run("TIMESTAMP_INVALID", func(t *testing.T) {
		h := http.Header{"Date": {time.Now().Add(-10 * time.Minute).UTC().Format(http.TimeFormat)}}
		r := f.do(t, request{profile: bg, tls: f.qwac, qseal: f.qseal, url: pay(f.bgURL), body: paymentBody, header: h})
		expectError(t, r, 400, "TIMESTAMP_INVALID", "Date")
	})

	t.Run("body larger than max_body_size", func(t *testing.T) {
		big := []byte(`{"pad":"` + strings.Repeat("x", 70<<10) + `"}`)
		r := f.do(t, request{profile: pir, tls: f.qwac, qseal: f.qseal, url: pay(f.piraeusURL), body: big})
		if r.status != http.StatusRequestEntityTooLarge || r.code != "FORMAT_ERROR" {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})

	t.Run("openssl dgst as an independent signer", func(t *testing.T) {
		opensslSigned(t, f)
	})
}

// qwacOtherAsSigner returns a QWAC (QcType web) with an RSA key, which must
// not be accepted as a QSEAL.
func (f *fixture) qwacOtherAsSigner(t *testing.T) *testpki.Leaf {
	return f.qtsp.TPP(t, tppcert.QWAC, subject(orgID, qcstatements.RolePI), testpki.RSAKey(t, 2048, 2))
}

// replaceSignatureParam rewrites one parameter of the Signature header
// after signing.
func replaceSignatureParam(name, value string) func(h http.Header, _ *[]byte) {
	return func(h http.Header, _ *[]byte) {
		sig, err := httpsig.ParseSignature(h.Get("Signature"))
		if err != nil {
			panic(err)
		}
		switch name {
		case "keyId":
			sig.KeyID = value
		case "algorithm":
			sig.Algorithm = value
		case "headers":
			sig.Headers = strings.Fields(value)
		case "signature":
			sig.Signature = value
		}
		h.Set("Signature", sig.String())
	}
}

func replaceKeyIDIssuer(ca string) func(h http.Header, _ *[]byte) {
	return func(h http.Header, b *[]byte) {
		sig, _ := httpsig.ParseSignature(h.Get("Signature"))
		sn, _, _ := strings.Cut(sig.KeyID, ",CA=")
		replaceSignatureParam("keyId", sn+",CA="+ca)(h, b)
	}
}

// opensslSigned builds a Piraeus request whose signature comes from
// `openssl dgst -sign`, so the gateway is checked against a signer that does
// not share its code.
func opensslSigned(t *testing.T, f *fixture) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	dir := t.TempDir()
	keyFile := testpki.WriteFile(t, dir, "qseal-key.pem", testpki.KeyPEM(t, f.qseal.Key))
	body := []byte(`{"payload":"some string"}`)
	// Digest and signing string as the Piraeus page spells them out.
	digest := "SHA-256=MDkyOGYzY2ZiN2U3YmNlODI4Y2E4NmEzZjdkOGNjNzcxNzg2YTViYTk5MzQzOTMwZjBmMDU3MTdmNTRiOGQxMg=="
	id := uuid.NewString()
	signing := "digest: " + digest + "\nx-request-id: " + id
	msgFile := testpki.WriteFile(t, dir, "signing.b64", []byte(base64.StdEncoding.EncodeToString([]byte(signing))))
	sigFile := filepath.Join(dir, "sig.bin")
	out, err := exec.Command(openssl, "dgst", "-sha256", "-sign", keyFile, "-out", sigFile, msgFile).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl dgst: %v\n%s", err, out)
	}
	sig, err := os.ReadFile(sigFile)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{
		"X-Request-Id":              {id},
		"Digest":                    {digest},
		"Signature":                 {fmt.Sprintf(`keyId="%X",algorithm="rsa-sha256",headers="digest x-request-id",signature="%s"`, f.qseal.Cert.SerialNumber, base64.StdEncoding.EncodeToString(sig))},
		"Tpp-Signature-Certificate": {base64.StdEncoding.EncodeToString(f.qseal.Cert.Raw)},
	}
	r := f.do(t, request{tls: f.qwac, url: f.piraeusURL + paymentPath, body: body, header: h})
	expectOK(t, r)
	if r.echo["body"] != string(body) {
		t.Errorf("upstream body = %v", r.echo["body"])
	}
}

package psd2

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/bankedge/bankedge/internal/certprofile/qcstatements"
	"github.com/bankedge/bankedge/internal/certprofile/tppcert"
	"github.com/bankedge/bankedge/internal/testpki"
	"github.com/bankedge/bankedge/modules/psd2/httpsig"
	"github.com/bankedge/bankedge/modules/psd2/tppclient"
)

// serveBoth runs psd2_qwac then psd2_qseal on a request as Caddy's server
// prepares it (replacer and variables in the context), with the QWAC in
// the TLS state, and returns the refusal code ("" when the request reached
// the next handler, which then read the whole body).
func serveBoth(t testing.TB, hq *QWAC, hs *QSEAL, qwac *x509.Certificate, header http.Header, body []byte) (code string, forwarded []byte) {
	t.Helper()
	r := caddyRequest(http.MethodPost, "https://localhost"+paymentPath, header, body, &tls.ConnectionState{PeerCertificates: []*x509.Certificate{qwac}})
	rec := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		var err error
		forwarded, err = io.ReadAll(r.Body)
		return err
	})
	err := hq.ServeHTTP(rec, r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return hs.ServeHTTP(w, r, next)
	}))
	if err != nil {
		t.Fatalf("handler error: %v", err)
	}
	if rec.Code == http.StatusOK && forwarded != nil {
		return "", forwarded
	}
	var answer struct {
		TPPMessages []tppMessage `json:"tppMessages"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil || len(answer.TPPMessages) != 1 {
		t.Fatalf("status %d, body %q: not a Berlin Group error", rec.Code, rec.Body.String())
	}
	return string(answer.TPPMessages[0].Code), nil
}

const paymentPath = "/v1/payments/sepa-credit-transfers"

// TestQSEALKeySizes checks, for QSEALs of every size the gateway meets,
// that a signed request passes and that a tampered signature, body or
// digest is refused, and that the QSEALs of 2048 to 4096 bits are verified
// on the fast path (rsaverify, with the key's constants kept in the cache
// entry, no allocation) while a 1024-bit one goes to crypto/rsa.
func TestQSEALKeySizes(t *testing.T) {
	body := []byte(`{"instructedAmount":{"currency":"EUR","amount":"123.50"}}`)
	forEachQSEAL(t, []int{1024, 2048, 3072, 4096}, func(t *testing.T, bits int, c *qsealCase) {
		hq, hs, qwac, qseal, profile, signer := c.hq, c.hs, c.qwac, c.qseal, c.profile, c.signer
		sign := func() (http.Header, []byte) {
			h := http.Header{}
			b, err := signer.Sign(http.MethodPost, paymentPath, h, body)
			if err != nil {
				t.Fatal(err)
			}
			return h, b
		}
		h, b := sign()
		if code, fwd := serveBoth(t, hq, hs, qwac.Cert, h, b); code != "" || !bytes.Equal(fwd, b) {
			t.Fatalf("signed request: refused with %s (or body changed: %q)", code, fwd)
		}
		vc := hs.verifier.lookup(sha256Sum(qseal.Cert.Raw), hs.verifier.now())
		if vc == nil || vc.sigKey == nil {
			t.Fatal("the QSEAL's verification is not cached with its key verifier")
		}
		if want := bits >= 2048; vc.sigKey.Fast() != want {
			t.Errorf("fast path = %v, want %v", vc.sigKey.Fast(), want)
		}

		tamper := map[string]func(h http.Header, b []byte) []byte{
			"signature": func(h http.Header, b []byte) []byte {
				sig, _ := httpsig.ParseSignature(h.Get("Signature"))
				raw, _ := base64.StdEncoding.DecodeString(sig.Signature)
				raw[len(raw)/2] ^= 0x10
				sig.Signature = base64.StdEncoding.EncodeToString(raw)
				h.Set("Signature", sig.String())
				return b
			},
			"body": func(h http.Header, b []byte) []byte {
				return bytes.Replace(b, []byte("123.50"), []byte("923.50"), 1)
			},
			// The digest of the tampered body, so that the digest
			// check passes and only the signature can catch it.
			"body and digest": func(h http.Header, b []byte) []byte {
				b = bytes.Replace(b, []byte("123.50"), []byte("923.50"), 1)
				h.Set("Digest", httpsig.FormatDigest(httpsig.SHA256, httpsig.Sum(httpsig.SHA256, b), profile.DigestEncoding))
				return b
			},
			"digest": func(h http.Header, b []byte) []byte {
				d := []byte(h.Get("Digest"))
				i := bytes.IndexByte(d, '=') + 3
				d[i] ^= 0x01
				h.Set("Digest", string(d))
				return b
			},
		}
		for name, f := range tamper {
			h, b := sign()
			b = f(h, bytes.Clone(b))
			if code, _ := serveBoth(t, hq, hs, qwac.Cert, h, b); code != string(SignatureInvalid) {
				t.Errorf("tampered %s: %q, want %s", name, code, SignatureInvalid)
			}
		}

		// The signature check of the handler itself, on the fast
		// path, allocates nothing; crypto/rsa would.
		if bits < 2048 || raceEnabled {
			return
		}
		h, b = sign()
		r := httptest.NewRequest(http.MethodPost, "https://localhost"+paymentPath, bytes.NewReader(b))
		r.Header = h
		sig, err := httpsig.ParseSignature(h.Get("Signature"))
		if err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(10, func() {
			if rej := hs.verifySignature(r, &sig, httpsig.RSASHA256, vc); rej != nil {
				t.Fatal(rej)
			}
		})
		if allocs != 0 {
			t.Errorf("verifySignature: %.1f allocations, want 0", allocs)
		}
	})
}

// qsealCase is one QSEAL size and profile: the handlers provisioned with
// the profile, trusting the QTSP of the QWAC and the QSEAL, and a signer.
type qsealCase struct {
	hq          *QWAC
	hs          *QSEAL
	qwac, qseal *testpki.Leaf
	profile     httpsig.Profile
	signer      tppclient.Signer
}

// forEachQSEAL runs f for QSEALs of each size in both profiles, as
// subtests.
func forEachQSEAL(t *testing.T, sizes []int, f func(t *testing.T, bits int, c *qsealCase)) {
	ca := testpki.NewCA(t, "Key Size QTSP")
	subject := tppcert.Subject{OrgID: "PSDGR-BOG-123456", Roles: []qcstatements.Role{qcstatements.RolePI}}
	qwac := ca.TPP(t, tppcert.QWAC, subject, testpki.ECKey(t))
	for _, bits := range sizes {
		qseal := ca.TPP(t, tppcert.QSEAL, subject, testpki.RSAKey(t, bits, 0))
		for _, profileName := range []string{"piraeus", "berlingroup"} {
			t.Run(fmt.Sprintf("rsa%d/%s", bits, profileName), func(t *testing.T) {
				c := &qsealCase{qwac: qwac, qseal: qseal}
				c.hq, c.hs = newBenchHandlers(t, ca, profileName, nil)
				c.profile, _ = httpsig.ProfileByName(profileName)
				c.signer = tppclient.Signer{Profile: c.profile, QSEAL: qseal.Cert, QSEALKey: qseal.Key, QWAC: qwac.Cert}
				f(t, bits, c)
			})
		}
	}
}

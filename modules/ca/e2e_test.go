package ca_test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.step.sm/crypto/pemutil"
	"golang.org/x/crypto/bcrypt"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/bankedge/bankedge/internal/certprofile/qcstatements"
	"github.com/bankedge/bankedge/internal/testcaddy"
	_ "github.com/bankedge/bankedge/modules/ca"
)

const adminPassword = "S3cret-admin-pass!"

// gateway is a running Caddy with the bankedge app, its API site and an
// mTLS site that trusts the CA.
type gateway struct {
	dir, api, mtls, auditLog string
	caddyfile                string
}

func startGateway(t *testing.T, dir string) *gateway {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(adminPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{dir: dir, auditLog: filepath.Join(dir, "audit.log")}
	apiPort, mtlsPort := testcaddy.FreePort(t), testcaddy.FreePort(t)
	g.api = fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	g.mtls = fmt.Sprintf("https://localhost:%d", mtlsPort)
	g.caddyfile = testcaddy.Globals(filepath.Join(dir, "storage"), fmt.Sprintf(`
	log audit {
		output file %s
		include bankedge.audit
		format json
	}
	bankedge {
		ca {
			key_passphrase test-ca-passphrase
			common_name "bankedge Test CA"
			crl_url %s/api/v1/certificates/ca/crl
		}
		password_policy {
			history 2
		}
	}`, g.auditLog, g.api)) + fmt.Sprintf(`
http://127.0.0.1:%d {
	bind 127.0.0.1
	@private not path /api/v1/certificates/ca/crl
	basic_auth @private {
		admin %s
	}
	bankedge_api
}

https://localhost:%d {
	tls {
		issuer bankedge
		client_auth {
			trust_pool bankedge
			verifier bankedge
		}
	}
	respond "hello {http.request.tls.client.subject}"
}
`, apiPort, hash, mtlsPort)
	testcaddy.Load(t, g.caddyfile)
	g.waitForServerCertificate(t)
	return g
}

// waitForServerCertificate waits until the mTLS site serves the certificate
// the bankedge issuer obtains in the background, so that no storage write
// of Caddy's outlives the test (and its temporary directory).
func (g *gateway) waitForServerCertificate(t *testing.T) {
	t.Helper()
	addr := strings.TrimPrefix(g.mtls, "https://")
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var issuer string
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, VerifyConnection: func(cs tls.ConnectionState) error {
			issuer = cs.PeerCertificates[0].Issuer.CommonName
			return nil
		}})
		if err == nil {
			conn.Close()
		}
		if issuer == "bankedge Test CA" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the mTLS site has no certificate from the bankedge issuer after 30s")
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer is not a JSON object: %v\n%s", err, a.body)
	}
	return m
}

// call sends a request to the API with admin credentials unless noAuth.
func (g *gateway) call(t *testing.T, method, path string, form url.Values, jsonBody any, noAuth ...bool) answer {
	t.Helper()
	var body io.Reader
	ctype := ""
	switch {
	case form != nil:
		body, ctype = strings.NewReader(form.Encode()), "application/x-www-form-urlencoded"
	case jsonBody != nil:
		b, _ := json.Marshal(jsonBody)
		body, ctype = bytes.NewReader(b), "application/json"
	}
	req, err := http.NewRequest(method, g.api+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if len(noAuth) == 0 {
		req.SetBasicAuth("admin", adminPassword)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}
}

func expectStatus(t *testing.T, a answer, status int, contains string) {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d: %s", a.status, status, a.body)
	}
	if status >= 400 {
		if ct := a.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("error Content-Type %q, want application/json", ct)
		}
		var m map[string]any
		if err := json.Unmarshal(a.body, &m); err != nil || m["error"] == nil {
			t.Errorf(`error body is not {"error":…}: %s`, a.body)
		}
	}
	if contains != "" && !strings.Contains(string(a.body), contains) {
		t.Errorf("answer does not mention %q: %s", contains, a.body)
	}
}

func parsePEMCert(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("not a PEM certificate: %s", b)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func lookTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed", name)
	}
	return p
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestAPI(t *testing.T) {
	dir := t.TempDir()
	g := startGateway(t, dir)

	caPEM := g.call(t, "GET", "/api/v1/certificates/ca/certificate", nil, nil)
	expectStatus(t, caPEM, 200, "BEGIN CERTIFICATE")
	caCert := parsePEMCert(t, caPEM.body)
	if !caCert.IsCA || caCert.Subject.CommonName != "bankedge Test CA" {
		t.Fatalf("CA certificate %v", caCert.Subject)
	}
	if pub, ok := caCert.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("CA key is %T, want ECDSA P-256 by default", caCert.PublicKey)
	}
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, caPEM.body, 0o644)

	t.Run("authentication required", func(t *testing.T) {
		a := g.call(t, "GET", "/api/v1/certificates/ca/issued", nil, nil, true)
		if a.status != 401 {
			t.Fatalf("without credentials: %d", a.status)
		}
		req, _ := http.NewRequest("GET", g.api+"/api/v1/config/partners", nil)
		req.SetBasicAuth("admin", "admin")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("admin:admin is not a default: got %d", resp.StatusCode)
		}
		// The CRL is public, for relying parties.
		if a := g.call(t, "GET", "/api/v1/certificates/ca/crl", nil, nil, true); a.status != 200 {
			t.Fatalf("public CRL: %d %s", a.status, a.body)
		}
	})

	t.Run("initialize is idempotent", func(t *testing.T) {
		a := g.call(t, "POST", "/api/v1/certificates/ca/initialize", nil, nil)
		expectStatus(t, a, 409, "already exists")
		if !strings.Contains(a.json(t)["certificate"].(string), strings.TrimSpace(string(caPEM.body))) {
			t.Error("409 answer does not carry the existing CA certificate")
		}
	})

	t.Run("unknown endpoint, method, oversized body", func(t *testing.T) {
		expectStatus(t, g.call(t, "GET", "/api/v1/certificates/ca/nothing", nil, nil), 404, "")
		a := g.call(t, "DELETE", "/api/v1/certificates/ca/certificate", nil, nil)
		expectStatus(t, a, 405, "")
		if a.header.Get("Allow") != "GET, HEAD" {
			t.Errorf("Allow = %q", a.header.Get("Allow"))
		}
		expectStatus(t, g.call(t, "POST", "/api/v1/certificates/ca/verify", url.Values{"certificatePem": {strings.Repeat("A", 2<<20)}}, nil), 413, "larger than")
		expectStatus(t, g.call(t, "POST", "/api/v1/config/partners", nil, "not an object"), 400, "")
	})

	t.Run("partners", func(t *testing.T) {
		// The seed's example, as written.
		seed := map[string]any{"partnerId": "BANK_XYZ", "password": "ComplexPassword123!", "enabled": true}
		a := g.call(t, "POST", "/api/v1/config/partners", nil, seed)
		expectStatus(t, a, 201, `"partnerId":"BANK_XYZ"`)
		if strings.Contains(string(a.body), "ComplexPassword123!") || strings.Contains(strings.ToLower(string(a.body)), "hash") {
			t.Fatalf("partner answer leaks the password: %s", a.body)
		}
		expectStatus(t, g.call(t, "POST", "/api/v1/config/partners", nil, seed), 409, "")
		expectStatus(t, g.call(t, "POST", "/api/v1/config/partners", nil, map[string]any{"partnerId": "WEAK", "password": "short1!A"}), 400, "12")
		expectStatus(t, g.call(t, "POST", "/api/v1/config/partners", nil, map[string]any{"partnerId": "WEAK", "password": "alllowercase-long-1"}), 400, "upper")
		expectStatus(t, g.call(t, "POST", "/api/v1/config/partners", nil,
			map[string]any{"partnerId": "CXCLIENT", "password": "test123", "pesitLegacyPassword": true}), 400, "certificateBinding")
		expectStatus(t, g.call(t, "POST", "/api/v1/config/partners", nil,
			map[string]any{"partnerId": "CXCLIENT", "password": "test123", "pesitLegacyPassword": true, "allowedIps": []string{"10.1.2.0/24"},
				"accessType": "write", "maxConnections": 2, "allowedFiles": []string{"PAY*.XML"}, "description": "Connect:Express"}), 201, `"accessType":"write"`)
		expectStatus(t, g.call(t, "POST", "/api/v1/config/partners", nil, map[string]any{"partnerId": "X", "password": "ComplexPassword123!", "colour": "red"}), 400, "colour")
		a = g.call(t, "PUT", "/api/v1/config/partners/BANK_XYZ", nil, map[string]any{"description": "Bank XYZ SA", "allowedIps": []string{"203.0.113.0/24"}})
		expectStatus(t, a, 200, `"description":"Bank XYZ SA"`)
		expectStatus(t, g.call(t, "PUT", "/api/v1/config/partners/BANK_XYZ", nil, map[string]any{"password": "ComplexPassword123!"}), 400, "")
		expectStatus(t, g.call(t, "PUT", "/api/v1/config/partners/BANK_XYZ", nil, map[string]any{"password": "AnotherPassword456?"}), 200, "")
		list := g.call(t, "GET", "/api/v1/config/partners", nil, nil)
		expectStatus(t, list, 200, "CXCLIENT")
		expectStatus(t, g.call(t, "GET", "/api/v1/config/partners/NOPE", nil, nil), 404, "")
		expectStatus(t, g.call(t, "DELETE", "/api/v1/config/partners/CXCLIENT", nil, nil), 204, "")
		expectStatus(t, g.call(t, "GET", "/api/v1/config/partners/CXCLIENT", nil, nil), 404, "")
		expectStatus(t, g.call(t, "GET", "/api/v1/config/partners/..%2Fetc", nil, nil), 404, "")
	})

	t.Run("csr", func(t *testing.T) {
		a := g.call(t, "POST", "/api/v1/certificates/ca/csr", url.Values{"commonName": {"bank-xyz.example.com"}, "organization": {"Bank XYZ"}, "country": {"FR"}, "password": {"keypass-12345"}}, nil)
		expectStatus(t, a, 200, "")
		m := a.json(t)
		if !strings.Contains(m["privateKeyPem"].(string), "ENCRYPTED PRIVATE KEY") {
			t.Errorf("key not encrypted although a password was given")
		}
		block, _ := pem.Decode([]byte(m["csrPem"].(string)))
		csr, err := x509.ParseCertificateRequest(block.Bytes)
		if err != nil || csr.CheckSignature() != nil || csr.Subject.CommonName != "bank-xyz.example.com" || csr.Subject.Organization[0] != "Bank XYZ" {
			t.Fatalf("CSR: %v %v", err, csr.Subject)
		}
		a = g.call(t, "POST", "/api/v1/certificates/ca/csr", url.Values{"commonName": {"x"}, "keyType": {"ecdsa-p384"}}, nil)
		expectStatus(t, a, 200, "-----BEGIN PRIVATE KEY-----")
		expectStatus(t, g.call(t, "POST", "/api/v1/certificates/ca/csr", url.Values{"organization": {"x"}}, nil), 400, "commonName")
		expectStatus(t, g.call(t, "POST", "/api/v1/certificates/ca/csr", url.Values{"commonName": {"x"}, "keyType": {"dsa"}}, nil), 400, "keyType")
	})

	var clientCert *x509.Certificate
	t.Run("sign", func(t *testing.T) {
		key, _ := rsa.GenerateKey(rand.Reader, 2048)
		csrPEM := makeCSR(t, key, "bank-xyz.example.com", nil)
		a := g.call(t, "POST", "/api/v1/certificates/ca/sign", url.Values{"csrPem": {string(csrPEM)}, "purpose": {"CLIENT"}, "validityDays": {"365"}, "partnerId": {"BANK_XYZ"}}, nil)
		expectStatus(t, a, 200, "")
		if a.header.Get("Content-Type") != "application/x-pem-file" {
			t.Errorf("Content-Type %q", a.header.Get("Content-Type"))
		}
		clientCert = parsePEMCert(t, a.body)
		if len(clientCert.ExtKeyUsage) != 1 || clientCert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
			t.Errorf("EKU %v, want clientAuth only", clientCert.ExtKeyUsage)
		}
		if got := clientCert.CRLDistributionPoints; len(got) != 1 || got[0] != g.api+"/api/v1/certificates/ca/crl" {
			t.Errorf("CRL distribution points %v", got)
		}
		if err := clientCert.CheckSignatureFrom(caCert); err != nil {
			t.Fatal(err)
		}
		for name, c := range map[string]struct {
			form   url.Values
			status int
			text   string
		}{
			"garbage":         {url.Values{"csrPem": {"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----"}}, 400, ""},
			"not PEM":         {url.Values{"csrPem": {"hello"}}, 400, "PEM"},
			"missing":         {url.Values{"purpose": {"CLIENT"}}, 400, "csrPem"},
			"CA=true":         {url.Values{"csrPem": {string(makeCSR(t, key, "evil", caExtension()))}}, 400, "CA"},
			"weak RSA":        {url.Values{"csrPem": {string(makeCSR(t, weakKey(t), "weak", nil))}}, 400, "2048"},
			"too long":        {url.Values{"csrPem": {string(csrPEM)}, "validityDays": {"5000"}}, 400, "maximum"},
			"bad days":        {url.Values{"csrPem": {string(csrPEM)}, "validityDays": {"soon"}}, 400, "validityDays"},
			"huge days":       {url.Values{"csrPem": {string(csrPEM)}, "validityDays": {"213504"}}, 400, "validityDays"}, // wraps to 25 minutes
			"bad purpose":     {url.Values{"csrPem": {string(csrPEM)}, "purpose": {"EMAIL"}}, 400, "purpose"},
			"unknown partner": {url.Values{"csrPem": {string(csrPEM)}, "partnerId": {"NOBODY"}}, 404, ""},
		} {
			t.Run(name, func(t *testing.T) {
				expectStatus(t, g.call(t, "POST", "/api/v1/certificates/ca/sign", c.form, nil), c.status, c.text)
			})
		}
	})

	t.Run("seed curl commands with openssl", func(t *testing.T) {
		lookTool(t, "curl")
		openssl := lookTool(t, "openssl")
		w := t.TempDir()
		// The seed's client-side steps, verbatim apart from credentials.
		run(t, openssl, "genrsa", "-out", filepath.Join(w, "client-key.pem"), "2048")
		run(t, openssl, "req", "-new", "-key", filepath.Join(w, "client-key.pem"), "-out", filepath.Join(w, "client.csr"), "-subj", "/CN=bank-xyz.example.com/O=Bank XYZ/C=FR")
		script := fmt.Sprintf(`cd %s && curl -sf -X POST "%s/api/v1/certificates/ca/sign" \
-u admin:'%s' \
-d "csrPem=$(cat client.csr)" \
-d "purpose=CLIENT" \
-d "validityDays=365" \
-d "partnerId=BANK_XYZ" > client-cert.pem && curl -sf -o ca-cert.pem %s/api/v1/certificates/ca/certificate -u admin:'%s'`,
			w, g.api, adminPassword, g.api, adminPassword)
		run(t, "bash", "-c", script)
		out := run(t, openssl, "verify", "-CAfile", filepath.Join(w, "ca-cert.pem"), filepath.Join(w, "client-cert.pem"))
		if !strings.Contains(out, ": OK") {
			t.Fatalf("openssl verify: %s", out)
		}
		verify := fmt.Sprintf(`cd %s && curl -s -X POST "%s/api/v1/certificates/ca/verify" -u admin:'%s' -d "certificatePem=$(cat client-cert.pem)"`, w, g.api, adminPassword)
		out = run(t, "bash", "-c", verify)
		if strings.TrimSpace(out) != `{"message":"Certificate is valid and signed by our CA"}` {
			t.Fatalf("seed verify answered %s", out)
		}
		// generate, like sign, is for partners of the registry.
		expectStatus(t, g.call(t, "POST", "/api/v1/config/partners", nil, map[string]any{"partnerId": "SERVER_PROD", "password": "ComplexPassword123!"}), 201, "")
		gen := fmt.Sprintf(`curl -sf -X POST "%s/api/v1/certificates/ca/partner/SERVER_PROD/generate" -u admin:'%s' -d "commonName=pesit.example.com&purpose=SERVER&validityDays=365" -D %s/headers -o %s/server.p12`,
			g.api, adminPassword, w, w)
		run(t, "bash", "-c", gen)
		headers, _ := os.ReadFile(filepath.Join(w, "headers"))
		pw := headerValue(string(headers), "X-Keystore-Password")
		if len(pw) < 16 || pw == "changeit" {
			t.Fatalf("generated keystore password %q", pw)
		}
		out = run(t, openssl, "pkcs12", "-in", filepath.Join(w, "server.p12"), "-passin", "pass:"+pw, "-nokeys", "-clcerts")
		leaf := parsePEMCert(t, []byte(out[strings.Index(out, "-----BEGIN"):]))
		if leaf.Subject.CommonName != "pesit.example.com" || leaf.DNSNames[0] != "pesit.example.com" || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
			t.Errorf("server keystore holds %v %v %v", leaf.Subject, leaf.DNSNames, leaf.ExtKeyUsage)
		}
	})

	t.Run("partner keystores open in keytool", func(t *testing.T) {
		a := g.call(t, "POST", "/api/v1/certificates/ca/partner/BANK_XYZ/generate", url.Values{"commonName": {"bank-xyz.example.com"}, "purpose": {"CLIENT"}, "format": {"jks"}, "password": {"jks-pass-12345"}}, nil)
		expectStatus(t, a, 200, "")
		if a.header.Get("X-Keystore-Password") != "" {
			t.Error("X-Keystore-Password sent although the caller chose the password")
		}
		jks := filepath.Join(dir, "bank.jks")
		os.WriteFile(jks, a.body, 0o600)
		p12 := g.call(t, "POST", "/api/v1/certificates/ca/partner/BANK_XYZ/generate", url.Values{"commonName": {"bank-xyz.example.com"}}, nil)
		expectStatus(t, p12, 200, "")
		if p12.header.Get("Content-Type") != "application/x-pkcs12" {
			t.Errorf("p12 Content-Type %q", p12.header.Get("Content-Type"))
		}
		key, cert, chain, err := pkcs12.DecodeChain(p12.body, p12.header.Get("X-Keystore-Password"))
		if err != nil || key == nil || cert.Subject.CommonName != "bank-xyz.example.com" || len(chain) != 1 || !chain[0].Equal(caCert) {
			t.Fatalf("p12: %v", err)
		}
		ts := g.call(t, "GET", "/api/v1/certificates/ca/truststore?format=jks&password=trust-pass", nil, nil)
		expectStatus(t, ts, 200, "")
		tsFile := filepath.Join(dir, "trust.jks")
		os.WriteFile(tsFile, ts.body, 0o600)
		keytool := lookTool(t, "keytool")
		out := run(t, keytool, "-list", "-keystore", jks, "-storepass", "jks-pass-12345")
		if !strings.Contains(out, "bank_xyz") || !strings.Contains(out, "PrivateKeyEntry") {
			t.Errorf("keytool -list jks:\n%s", out)
		}
		p12File := filepath.Join(dir, "bank.p12")
		os.WriteFile(p12File, p12.body, 0o600)
		out = run(t, keytool, "-list", "-storetype", "PKCS12", "-keystore", p12File, "-storepass", p12.header.Get("X-Keystore-Password"))
		if !strings.Contains(out, "PrivateKeyEntry") {
			t.Errorf("keytool -list p12:\n%s", out)
		}
		out = run(t, keytool, "-list", "-keystore", tsFile, "-storepass", "trust-pass")
		if !strings.Contains(out, "trustedCertEntry") {
			t.Errorf("keytool -list truststore:\n%s", out)
		}
	})

	t.Run("psd2 sandbox certificates", func(t *testing.T) {
		a := g.call(t, "POST", "/api/v1/certificates/ca/psd2/tpp-1/generate", url.Values{
			"type": {"qseal"}, "orgId": {"PSDGR-BOG-123456"}, "roles": {"PSP_AI,PSP_PI"}, "ncaName": {"Bank of Greece"}, "format": {"pem"}, "password": {"pem-pass-12345"},
		}, nil)
		expectStatus(t, a, 200, "")
		first, rest := pem.Decode(a.body)
		if first == nil || first.Type != "CERTIFICATE" || !bytes.Contains(rest, []byte("ENCRYPTED PRIVATE KEY")) {
			t.Fatalf("PEM answer does not start with the certificate: %s", a.body)
		}
		qseal, _ := x509.ParseCertificate(first.Bytes)
		st, present, err := qcstatements.FromCertificate(qseal)
		if err != nil || !present || st.PSD2 == nil || st.PSD2.NCAID != "GR-BOG" || !st.HasType(qcstatements.QcTypeESeal) ||
			qcstatements.OrganizationIdentifier(qseal.Subject) != "PSDGR-BOG-123456" || len(st.PSD2.Roles) != 2 {
			t.Fatalf("QSEAL statements %+v %v", st, err)
		}
		if _, ok := qseal.PublicKey.(*rsa.PublicKey); !ok {
			t.Error("QSEAL key is not RSA")
		}
		expectStatus(t, g.call(t, "POST", "/api/v1/certificates/ca/psd2/tpp-1/generate", url.Values{"type": {"qwac"}, "orgId": {"BAD"}, "roles": {"PSP_AI"}}, nil), 400, "organizationIdentifier")
		expectStatus(t, g.call(t, "POST", "/api/v1/certificates/ca/psd2/tpp-1/generate", url.Values{"type": {"qwac"}, "orgId": {"PSDGR-BOG-1"}, "roles": {"PSP_XX"}}, nil), 400, "role")
		expectStatus(t, g.call(t, "POST", "/api/v1/certificates/ca/psd2/tpp-1/generate", url.Values{"type": {"cert"}, "orgId": {"PSDGR-BOG-1"}, "roles": {"PSP_AI"}}, nil), 400, "type")
		expectStatus(t, g.call(t, "POST", "/api/v1/certificates/ca/psd2/tpp-1/generate", url.Values{"type": {"qwac"}, "orgId": {"PSDGR-BOG-1"}, "roles": {"PSP_AI"}, "commonName": {"tpp-é.example"}, "keyType": {"ecdsa-p256"}}, nil), 400, "ASCII")
		expectStatus(t, g.call(t, "POST", "/api/v1/certificates/ca/partner/BANK_XYZ/generate", url.Values{"commonName": {"café.example"}, "purpose": {"SERVER"}, "keyType": {"ecdsa-p256"}}, nil), 400, "ASCII")
	})

	t.Run("mTLS with trust_pool bankedge, then revocation", func(t *testing.T) {
		a := g.call(t, "POST", "/api/v1/certificates/ca/partner/BANK_XYZ/generate", url.Values{"commonName": {"bank-xyz-tls"}, "format": {"pem"}}, nil)
		expectStatus(t, a, 200, "")
		// Without a password the PEM key is encrypted with a random one too.
		pw := a.header.Get("X-Keystore-Password")
		if pw == "" || !bytes.Contains(a.body, []byte("ENCRYPTED PRIVATE KEY")) {
			t.Fatalf("PEM without a password: header password %t, body:\n%s", pw != "", a.body)
		}
		keyBlock, _ := pem.Decode(a.body[bytes.Index(a.body, []byte("-----BEGIN ENCRYPTED PRIVATE KEY")):])
		keyDER, err := pemutil.DecryptPKCS8PrivateKey(keyBlock.Bytes, []byte(pw))
		if err != nil {
			t.Fatalf("decrypting the PEM key with X-Keystore-Password: %v", err)
		}
		tlsCert, err := tls.X509KeyPair(a.body, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AddCert(caCert)
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{tlsCert}}}}
		resp, err := client.Get(g.mtls)
		if err != nil {
			t.Fatalf("mTLS with a partner certificate: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "hello CN=bank-xyz-tls" {
			t.Fatalf("mTLS answer %q", body)
		}
		if srv := resp.TLS.PeerCertificates[0]; srv.CheckSignatureFrom(caCert) != nil {
			t.Error("server certificate not issued by the bankedge CA")
		}
		leaf, _ := x509.ParseCertificate(tlsCert.Certificate[0])
		serial := strings.ToLower(fmt.Sprintf("%X", leaf.SerialNumber))
		var colons []string
		for i := 0; i < len(serial); i += 2 {
			colons = append(colons, serial[i:min(i+2, len(serial))])
		}
		a = g.call(t, "POST", "/api/v1/certificates/ca/revoke", url.Values{"serial": {strings.Join(colons, ":")}, "reason": {"keyCompromise"}}, nil)
		expectStatus(t, a, 200, `"status":"revoked"`)
		expectStatus(t, g.call(t, "POST", "/api/v1/certificates/ca/revoke", url.Values{"serial": {serial}}, nil), 409, "")
		expectStatus(t, g.call(t, "POST", "/api/v1/certificates/ca/revoke", url.Values{"serial": {"ABCDEF"}}, nil), 404, "")
		expectStatus(t, g.call(t, "POST", "/api/v1/certificates/ca/revoke", url.Values{"serial": {serial}, "reason": {"bored"}}, nil), 400, "reason")
		expectStatus(t, g.call(t, "POST", "/api/v1/certificates/ca/revoke", url.Values{"serial": {"xyz"}}, nil), 400, "serial")
		client.CloseIdleConnections()
		fresh := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{tlsCert}}}}
		if _, err := fresh.Get(g.mtls); err == nil {
			t.Fatal("revoked certificate still accepted")
		}
		v := g.call(t, "POST", "/api/v1/certificates/ca/verify", url.Values{"certificatePem": {string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}))}}, nil)
		expectStatus(t, v, 422, `"reason":"revoked"`)

		crl := g.call(t, "GET", "/api/v1/certificates/ca/crl", nil, nil, true)
		expectStatus(t, crl, 200, "")
		list, err := x509.ParseRevocationList(crl.body)
		if err != nil || list.CheckSignatureFrom(caCert) != nil {
			t.Fatalf("CRL: %v", err)
		}
		found := false
		for _, e := range list.RevokedCertificateEntries {
			found = found || e.SerialNumber.Cmp(leaf.SerialNumber) == 0 && e.ReasonCode == 1
		}
		if !found || list.Number.Sign() <= 0 || !list.NextUpdate.After(time.Now()) {
			t.Fatalf("CRL does not list the revoked serial with keyCompromise (number %v)", list.Number)
		}
		if openssl, err := exec.LookPath("openssl"); err == nil {
			crlFile := filepath.Join(dir, "ca.crl")
			os.WriteFile(crlFile, crl.body, 0o644)
			out := run(t, openssl, "crl", "-inform", "DER", "-in", crlFile, "-CAfile", caFile, "-noout", "-verify", "-text")
			if !strings.Contains(out, "verify OK") || !strings.Contains(strings.ToUpper(out), fmt.Sprintf("%X", leaf.SerialNumber)) {
				t.Errorf("openssl crl:\n%s", out)
			}
		}
	})

	t.Run("verify", func(t *testing.T) {
		good := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: clientCert.Raw})
		expectStatus(t, g.call(t, "POST", "/api/v1/certificates/ca/verify", url.Values{"certificatePem": {string(good)}}, nil), 200, "Certificate is valid and signed by our CA")
		foreign := selfSigned(t)
		expectStatus(t, g.call(t, "POST", "/api/v1/certificates/ca/verify", url.Values{"certificatePem": {string(foreign)}}, nil), 422, `"reason":"not_ours"`)
		expectStatus(t, g.call(t, "POST", "/api/v1/certificates/ca/verify", url.Values{"certificatePem": {"garbage"}}, nil), 400, `"reason":"malformed"`)
		// JSON bodies work too.
		expectStatus(t, g.call(t, "POST", "/api/v1/certificates/ca/verify", nil, map[string]string{"certificatePem": string(good)}), 200, "")
	})

	t.Run("inventory", func(t *testing.T) {
		a := g.call(t, "GET", "/api/v1/certificates/ca/issued?partnerId=BANK_XYZ", nil, nil)
		expectStatus(t, a, 200, "")
		var recs []map[string]any
		if err := json.Unmarshal(a.body, &recs); err != nil {
			t.Fatal(err)
		}
		statuses := map[string]int{}
		for _, r := range recs {
			if r["partnerId"] != "BANK_XYZ" || r["serial"] == "" || r["notAfter"] == nil || r["purpose"] == nil || r["subject"] == nil {
				t.Fatalf("record %v", r)
			}
			statuses[r["status"].(string)]++
		}
		if statuses["revoked"] != 1 || statuses["valid"] < 3 {
			t.Fatalf("statuses %v", statuses)
		}
	})

	t.Run("audit log", func(t *testing.T) {
		data, err := os.ReadFile(g.auditLog)
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{adminPassword, "ComplexPassword123!", "AnotherPassword456?", "jks-pass-12345", "test-ca-passphrase", "keypass-12345"} {
			if bytes.Contains(data, []byte(secret)) {
				t.Fatalf("audit log contains a secret")
			}
		}
		actions := map[string]bool{}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				continue
			}
			if line["logger"] != "bankedge.audit" {
				t.Errorf("unexpected logger in audit log: %v", line["logger"])
			}
			actions[line["msg"].(string)] = true
			if n := bytes.Count(sc.Bytes(), []byte(`"user":`)); n != 1 {
				t.Errorf("%s line has %d user fields: %s", line["msg"], n, sc.Bytes())
			}
			if line["msg"] == "ca.revoke" && line["outcome"] == "revoked" && line["user"] != "admin" {
				t.Errorf("revocation not attributed to admin: %v", line)
			}
		}
		for _, want := range []string{"ca.sign", "ca.generate", "ca.revoke", "partner.create", "partner.update", "partner.delete", "ca.verify", "ca.csr", "ca.psd2.generate"} {
			if !actions[want] {
				t.Errorf("no %s line in the audit log", want)
			}
		}
	})

	t.Run("restart keeps CA, partners and inventory", func(t *testing.T) {
		before := g.call(t, "GET", "/api/v1/certificates/ca/issued", nil, nil)
		if err := caddy.Stop(); err != nil {
			t.Fatal(err)
		}
		http.DefaultClient.CloseIdleConnections()
		testcaddy.Load(t, g.caddyfile)
		after := g.call(t, "GET", "/api/v1/certificates/ca/certificate", nil, nil)
		if !bytes.Equal(after.body, caPEM.body) {
			t.Fatal("CA changed across a restart")
		}
		expectStatus(t, g.call(t, "GET", "/api/v1/config/partners/BANK_XYZ", nil, nil), 200, "Bank XYZ SA")
		if again := g.call(t, "GET", "/api/v1/certificates/ca/issued", nil, nil); !bytes.Equal(again.body, before.body) {
			t.Fatal("inventory changed across a restart")
		}
	})
}

func makeCSR(t *testing.T, key any, cn string, exts []pkix.Extension) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, ExtraExtensions: exts}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func caExtension() []pkix.Extension {
	v, _ := asn1.Marshal(struct{ IsCA bool }{true})
	return []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: v}}
}

func weakKey(t *testing.T) *rsa.PrivateKey {
	// Go refuses to generate keys under 1024 bits only with GODEBUG; 1024
	// is enough to be refused by the policy.
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Skipf("cannot generate an RSA-1024 key here: %v", err)
	}
	return k
}

func selfSigned(t *testing.T) []byte {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: bigOne(), Subject: pkix.Name{CommonName: "rogue"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func headerValue(headers, name string) string {
	for _, l := range strings.Split(headers, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func bigOne() *big.Int { return big.NewInt(1) }

// A password policy that cannot work is a configuration error. In JSON
// config (the Caddyfile refuses negative numbers) a negative history made the
// declared partner's password change panic.
func TestInvalidPasswordPolicy(t *testing.T) {
	cfg, _ := json.Marshal(map[string]any{
		"admin":   map[string]any{"disabled": true, "config": map[string]any{"persist": false}},
		"storage": map[string]any{"module": "file_system", "root": filepath.Join(t.TempDir(), "storage")},
		"apps": map[string]any{"bankedge": map[string]any{
			"ca":              map[string]any{"key_passphrase": "test-ca-passphrase"},
			"partners":        map[string]any{"declare": []any{map[string]any{"partnerId": "BANK_XYZ", "password": "ComplexPassword123!"}}},
			"password_policy": map[string]any{"history": -1},
		}},
	})
	err := caddy.Load(cfg, true)
	if err == nil {
		_ = caddy.Stop()
		t.Fatal("a password policy with a negative history was accepted")
	}
	if !strings.Contains(err.Error(), "history") {
		t.Fatalf("error %v does not name the history setting", err)
	}
}

package ca_test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"github.com/bankedge/bankedge/internal/runmode"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"golang.org/x/crypto/bcrypt"

	"github.com/bankedge/bankedge/internal/testcaddy"
	_ "github.com/bankedge/bankedge/modules/ca"
)

// auditLines reads the audit log as JSON objects.
func (g *gateway) auditLines(t *testing.T) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(g.auditLog)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("audit line is not JSON: %s", sc.Bytes())
		}
		out = append(out, line)
	}
	return out
}

// findAudit returns the last audit line with msg whose fields include want.
func (g *gateway) findAudit(t *testing.T, msg string, want map[string]any) map[string]any {
	t.Helper()
	lines := g.auditLines(t)
	for i := len(lines) - 1; i >= 0; i-- {
		l := lines[i]
		if l["msg"] != msg {
			continue
		}
		ok := true
		for k, v := range want {
			ok = ok && l[k] == v
		}
		if ok {
			return l
		}
	}
	t.Fatalf("no %s audit line with %v in:\n%v", msg, want, lines)
	return nil
}

// pemKeystore generates a CLIENT keystore for partner with an unencrypted
// PEM key and returns it as a TLS certificate and the leaf.
func (g *gateway) pemKeystore(t *testing.T, path string, form url.Values) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	form.Set("format", "pem")
	form.Set("encryptKey", "false")
	a := g.call(t, "POST", path, form, nil)
	expectStatus(t, a, 200, "-----BEGIN PRIVATE KEY-----")
	if a.header.Get("X-Keystore-Warning") == "" || a.header.Get("X-Keystore-Password") != "" {
		t.Fatalf("unencrypted PEM key: warning %q, password header %q", a.header.Get("X-Keystore-Warning"), a.header.Get("X-Keystore-Password"))
	}
	c, err := tls.X509KeyPair(a.body, a.body)
	if err != nil {
		t.Fatalf("the PEM keystore is not a usable key pair: %v", err)
	}
	leaf, _ := x509.ParseCertificate(c.Certificate[0])
	return c, leaf
}

// Issue 7, point 5: a revocation whose CRL cannot be written answered 500
// with an absolute storage path, its retry said 409 and the CRL missed the
// serial until the old one expired, across restarts.
func TestRevocationWhenTheCRLCannotBeWritten(t *testing.T) {
	dir := t.TempDir()
	g := startGateway(t, dir)
	expectStatus(t, g.call(t, "POST", "/api/v1/config/partners", nil, map[string]any{"partnerId": "P1", "password": "ComplexPassword123!"}), 201, "")
	_, leaf := g.pemKeystore(t, "/api/v1/certificates/ca/partner/P1/generate", url.Values{})
	serial := fmt.Sprintf("%X", leaf.SerialNumber)

	// The CRL's storage key cannot be written: a directory stands there.
	crlPath := filepath.Join(dir, "storage", "bankedge", "ca", "crl.json")
	if err := os.Remove(crlPath); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(crlPath, 0o700); err != nil {
		t.Fatal(err)
	}
	a := g.call(t, "POST", "/api/v1/certificates/ca/revoke", url.Values{"serial": {serial}, "reason": {"keyCompromise"}}, nil)
	expectStatus(t, a, 500, "revoked")
	m := a.json(t)
	if strings.Contains(string(a.body), dir) || strings.Contains(string(a.body), "storage") || m["requestId"] == "" {
		t.Fatalf("error body leaks internals or lacks a request id: %s", a.body)
	}
	g.findAudit(t, "ca.revoke", map[string]any{"outcome": "revoked", "crl_published": false, "request_id": m["requestId"]})
	// Never a CRL that misses the revocation.
	crl := g.call(t, "GET", "/api/v1/certificates/ca/crl", nil, nil, true)
	expectStatus(t, crl, 500, "")
	if strings.Contains(string(crl.body), dir) {
		t.Fatalf("CRL error leaks the storage path: %s", crl.body)
	}
	// Handshakes refuse the certificate at once.
	v := g.call(t, "POST", "/api/v1/certificates/ca/verify", url.Values{"certificatePem": {string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}))}}, nil)
	expectStatus(t, v, 422, `"reason":"revoked"`)

	// The storage recovers and the gateway restarts: the start publishes
	// the CRL, before anyone reads it.
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	http.DefaultClient.CloseIdleConnections()
	if err := os.Remove(crlPath); err != nil {
		t.Fatal(err)
	}
	testcaddy.Load(t, g.caddyfile)
	var stored struct{ DER []byte }
	if b, err := os.ReadFile(crlPath); err != nil || json.Unmarshal(b, &stored) != nil {
		t.Fatalf("no CRL stored at start: %v", err)
	}
	if !crlLists(t, stored.DER, leaf) {
		t.Fatal("the CRL published at start misses the revocation")
	}
	expectStatus(t, g.call(t, "POST", "/api/v1/certificates/ca/revoke", url.Values{"serial": {serial}}, nil), 409, "already revoked")
	if !crlLists(t, g.call(t, "GET", "/api/v1/certificates/ca/crl", nil, nil, true).body, leaf) {
		t.Fatal("the served CRL misses the revocation")
	}

	// Operators can publish a new CRL at will.
	before := parseCRLNumber(t, g.call(t, "GET", "/api/v1/certificates/ca/crl", nil, nil, true).body)
	r := g.call(t, "POST", "/api/v1/certificates/ca/crl/regenerate", nil, nil)
	expectStatus(t, r, 200, `"entries":1`)
	if got := r.json(t)["crlNumber"]; got != fmt.Sprint(before+1) {
		t.Fatalf("regenerate answered CRL number %v after %d", got, before)
	}
	if n := parseCRLNumber(t, g.call(t, "GET", "/api/v1/certificates/ca/crl", nil, nil, true).body); n != before+1 {
		t.Fatalf("served CRL number %d after regenerate, want %d", n, before+1)
	}
	g.findAudit(t, "ca.crl.regenerate", map[string]any{"outcome": "published", "user": "admin"})
	expectStatus(t, g.call(t, "POST", "/api/v1/certificates/ca/crl/regenerate", nil, nil, true), 401, "")
}

func crlLists(t *testing.T, der []byte, cert *x509.Certificate) bool {
	t.Helper()
	list, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("CRL: %v", err)
	}
	for _, e := range list.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(cert.SerialNumber) == 0 {
			return true
		}
	}
	return false
}

func parseCRLNumber(t *testing.T, der []byte) int64 {
	t.Helper()
	list, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	return list.Number.Int64()
}

var isoMillisUTC = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

// Issue 8, points 8 and 10: every refusal is a JSON body, 401 included,
// and is audited, with an ISO-8601 time; generate refuses an unknown
// partner as sign does.
func TestRefusalsAreJSONAndAudited(t *testing.T) {
	g := startGateway(t, t.TempDir())
	a := g.call(t, "GET", "/api/v1/certificates/ca/issued", nil, nil, true)
	expectStatus(t, a, 401, "authentication required")
	if !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("401 without WWW-Authenticate: %v", a.header)
	}
	for _, path := range []string{"/api/v1", "/api/v1/", "/ui", "/ui/", "/ui/partners"} {
		expectStatus(t, g.call(t, "GET", path, nil, nil, true), 401, "authentication required")
	}
	req, _ := http.NewRequest("GET", g.api+"/api/v1/config/partners", nil)
	req.SetBasicAuth("admin", "wrong-password")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("wrong password: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	bad := g.call(t, "POST", "/api/v1/config/partners", nil, "not an object")
	expectStatus(t, bad, 400, "")
	expectStatus(t, g.call(t, "POST", "/api/v1/certificates/ca/revoke", url.Values{"serial": {"0A"}, "reason": {"bored"}}, nil), 400, "reason")
	expectStatus(t, g.call(t, "POST", "/api/v1/certificates/ca/partner/NOBODY/generate", url.Values{"commonName": {"x"}}, nil), 404, "partner not found")
	expectStatus(t, g.call(t, "POST", "/api/v1/certificates/ca/partner/bad%20id/generate", url.Values{"commonName": {"x"}}, nil), 400, "partnerId")
	expectStatus(t, g.call(t, "GET", "/api/v1/nothing", nil, nil), 404, "")

	g.findAudit(t, "api.authenticate", map[string]any{"outcome": "refused", "user": "anonymous"})
	line := g.findAudit(t, "partner.create", map[string]any{"outcome": "refused", "request_id": bad.json(t)["requestId"]})
	if !strings.Contains(line["reason"].(string), "JSON") {
		t.Errorf("bad JSON audited with reason %v", line["reason"])
	}
	g.findAudit(t, "ca.revoke", map[string]any{"outcome": "refused", "serial": "0A"})
	g.findAudit(t, "ca.generate", map[string]any{"outcome": "refused", "partner": "NOBODY"})
	g.findAudit(t, "api.request", map[string]any{"outcome": "refused"})
	for _, l := range g.auditLines(t) {
		if s, _ := l["time"].(string); !isoMillisUTC.MatchString(s) {
			t.Fatalf("audit line without an RFC 3339 UTC time: %v", l)
		}
	}
	// Nothing was issued for the unknown partner.
	if list := g.call(t, "GET", "/api/v1/certificates/ca/issued?partnerId=NOBODY", nil, nil); string(bytes.TrimSpace(list.body)) != "[]" {
		t.Fatalf("inventory for NOBODY: %s", list.body)
	}
}

// Issue 7, point 12, over the API: the name policy, keystore passwords and
// imported hashes.
func TestAPIRefusesWeakNamesAndSecrets(t *testing.T) {
	g := startGateway(t, t.TempDir())
	expectStatus(t, g.call(t, "POST", "/api/v1/config/partners", nil, map[string]any{"partnerId": "P1", "password": "ComplexPassword123!"}), 201, "")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		csr  x509.CertificateRequest
		want string
	}{
		"DNS:*":        {x509.CertificateRequest{DNSNames: []string{"*"}}, "wildcard"},
		"*.com":        {x509.CertificateRequest{DNSNames: []string{"*.com"}}, "registrable"},
		"300 chars":    {x509.CertificateRequest{DNSNames: []string{strings.Repeat("a", 300) + ".example.com"}}, "characters"},
		"CN with CRLF": {x509.CertificateRequest{DNSNames: []string{"ok.example.com"}}, "control"},
	} {
		t.Run(name, func(t *testing.T) {
			if name == "CN with CRLF" {
				c.csr.Subject.CommonName = "evil\r\nX-Injected: 1"
			}
			der, err := x509.CreateCertificateRequest(rand.Reader, &c.csr, key)
			if err != nil {
				t.Fatal(err)
			}
			csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
			expectStatus(t, g.call(t, "POST", "/api/v1/certificates/ca/sign", url.Values{"csrPem": {string(csrPEM)}, "purpose": {"SERVER"}}, nil), 400, c.want)
		})
	}
	expectStatus(t, g.call(t, "POST", "/api/v1/certificates/ca/partner/P1/generate", url.Values{"password": {"x"}}, nil), 400, "password")
	expectStatus(t, g.call(t, "POST", "/api/v1/certificates/ca/partner/P1/generate", url.Values{"format": {"p12"}, "encryptKey": {"false"}}, nil), 400, "encryptKey")
	expectStatus(t, g.call(t, "POST", "/api/v1/certificates/ca/csr", url.Values{"commonName": {"x"}, "password": {"x"}}, nil), 400, "password")
	expectStatus(t, g.call(t, "POST", "/api/v1/certificates/ca/csr", url.Values{"commonName": {strings.Repeat("c", 5000)}}, nil), 400, "commonName")
	weak, _ := bcrypt.GenerateFromPassword([]byte("imported-pw"), 4)
	expectStatus(t, g.call(t, "POST", "/api/v1/config/partners", nil, map[string]any{"partnerId": "WEAK", "passwordHash": string(weak)}), 400, "too weak")
	g.findAudit(t, "ca.sign", map[string]any{"outcome": "refused", "user": "admin"})
}

// Issue 8, point 10: one serial notation, openssl's, everywhere; keystore
// aliases are the partner id; a PEM keystore's key can be unencrypted.
func TestSerialNotationAndKeystoreAliases(t *testing.T) {
	dir := t.TempDir()
	g := startGateway(t, dir)
	expectStatus(t, g.call(t, "POST", "/api/v1/config/partners", nil, map[string]any{"partnerId": "BANK_XYZ", "password": "ComplexPassword123!"}), 201, "")
	evenUpperHex := regexp.MustCompile(`^([0-9A-F]{2})+$`)
	// A serial of 31 hex digits comes once in 16 issuances (TestSerialNotation
	// in the authority pins the padding); these check every output.
	var leaves []*x509.Certificate
	for range 16 {
		_, leaf := g.pemKeystore(t, "/api/v1/certificates/ca/partner/BANK_XYZ/generate", url.Values{"keyType": {"ecdsa-p256"}})
		leaves = append(leaves, leaf)
	}
	inv := g.call(t, "GET", "/api/v1/certificates/ca/issued?partnerId=BANK_XYZ", nil, nil)
	var recs []map[string]any
	if err := json.Unmarshal(inv.body, &recs); err != nil || len(recs) != len(leaves) {
		t.Fatalf("inventory: %v %s", err, inv.body)
	}
	serials := map[string]bool{}
	for _, r := range recs {
		s := r["serial"].(string)
		if !evenUpperHex.MatchString(s) {
			t.Fatalf("inventory serial %q is not openssl's notation", s)
		}
		serials[s] = true
	}
	for _, l := range g.auditLines(t) {
		if s, ok := l["serial"].(string); ok && !evenUpperHex.MatchString(s) {
			t.Fatalf("audit serial %q is not openssl's notation: %v", s, l)
		}
	}
	if openssl, err := exec.LookPath("openssl"); err == nil {
		for _, leaf := range leaves[:3] {
			f := filepath.Join(dir, "leaf.pem")
			os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}), 0o600)
			out := strings.TrimPrefix(strings.TrimSpace(run(t, openssl, "x509", "-in", f, "-noout", "-serial")), "serial=")
			if !serials[out] {
				t.Fatalf("openssl prints serial %s, which the inventory does not hold", out)
			}
		}
	}
	// Lower case with colons is accepted on input, the answer is openssl's.
	s := strings.ToLower(fmt.Sprintf("%X", leaves[0].SerialNumber))
	if len(s)%2 == 1 {
		s = "0" + s
	}
	var pairs []string
	for i := 0; i < len(s); i += 2 {
		pairs = append(pairs, s[i:i+2])
	}
	a := g.call(t, "POST", "/api/v1/certificates/ca/revoke", url.Values{"serial": {strings.Join(pairs, ":")}}, nil)
	expectStatus(t, a, 200, `"serial":"`+strings.ToUpper(s)+`"`)

	p12 := g.call(t, "POST", "/api/v1/certificates/ca/partner/BANK_XYZ/generate", url.Values{"commonName": {"bank-xyz.example.com"}}, nil)
	expectStatus(t, p12, 200, "")
	p12File := filepath.Join(dir, "bank.p12")
	os.WriteFile(p12File, p12.body, 0o600)
	pw := p12.header.Get("X-Keystore-Password")
	if openssl, err := exec.LookPath("openssl"); err == nil {
		if out := run(t, openssl, "pkcs12", "-info", "-in", p12File, "-passin", "pass:"+pw, "-nocerts", "-nodes"); !strings.Contains(out, "friendlyName: BANK_XYZ") {
			t.Errorf("openssl pkcs12 -info shows no friendlyName BANK_XYZ:\n%s", out)
		}
	}
	keytool := lookTool(t, "keytool")
	if out := run(t, keytool, "-list", "-storetype", "PKCS12", "-keystore", p12File, "-storepass", pw); !strings.Contains(out, "bank_xyz, ") {
		t.Errorf("keytool -list does not name the entry after the partner:\n%s", out)
	}
}

// Issue 7, point 13: a TPP's QWAC (it carries clientAuth and chains to the
// same CA) does not complete mTLS where verifier bankedge guards.
func TestVerifierRefusesPSD2Certificates(t *testing.T) {
	g := startGateway(t, t.TempDir())
	caCert := parsePEMCert(t, g.call(t, "GET", "/api/v1/certificates/ca/certificate", nil, nil).body)
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	get := func(c tls.Certificate) error {
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{c}}}}
		defer client.CloseIdleConnections()
		resp, err := client.Get(g.mtls)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	qwac, _ := g.pemKeystore(t, "/api/v1/certificates/ca/psd2/tpp-1/generate", url.Values{"type": {"qwac"}, "orgId": {"PSDGR-BOG-123456"}, "roles": {"PSP_AI"}, "keyType": {"ecdsa-p256"}})
	if err := get(qwac); err == nil {
		t.Fatal("a QWAC completed mTLS on a listener with verifier bankedge")
	}
	expectStatus(t, g.call(t, "POST", "/api/v1/config/partners", nil, map[string]any{"partnerId": "P1", "password": "ComplexPassword123!"}), 201, "")
	client, _ := g.pemKeystore(t, "/api/v1/certificates/ca/partner/P1/generate", url.Values{"keyType": {"ecdsa-p256"}})
	if err := get(client); err != nil {
		t.Fatalf("a partner's CLIENT certificate: %v", err)
	}
}

// Issue 8, point 6: `bankedge validate` wrote the CA and the registry to
// storage; with ValidateOnly nothing is written, and a declared partner
// is still checked. A CA key that does not decrypt names its file.
func TestValidateOnlyAndKeyLocation(t *testing.T) {
	storage := filepath.Join(t.TempDir(), "storage")
	config := func(pass, partnerPassword string) []byte {
		cfg, _ := json.Marshal(map[string]any{
			"admin":   map[string]any{"disabled": true, "config": map[string]any{"persist": false}},
			"storage": map[string]any{"module": "file_system", "root": storage},
			"apps": map[string]any{"bankedge": map[string]any{
				"ca":       map[string]any{"key_passphrase": pass},
				"partners": map[string]any{"declare": []any{map[string]any{"partnerId": "BANK_XYZ", "password": partnerPassword}}},
			}},
		})
		return cfg
	}
	validate := func(raw []byte) error {
		var cfg caddy.Config
		if err := json.Unmarshal(raw, &cfg); err != nil {
			t.Fatal(err)
		}
		return caddy.Validate(&cfg)
	}
	runmode.ValidateOnly = true
	err := validate(config("test-ca-passphrase", "ComplexPassword123!"))
	weak := validate(config("test-ca-passphrase", "short"))
	runmode.ValidateOnly = false
	if err != nil {
		t.Fatalf("validate: %v", err)
	}
	if _, err := os.Stat(storage); !os.IsNotExist(err) {
		entries, _ := filepath.Glob(filepath.Join(storage, "*", "*"))
		t.Fatalf("validate wrote to storage: %v", entries)
	}
	if weak == nil || !strings.Contains(weak.Error(), "BANK_XYZ") {
		t.Fatalf("validate of a weak declared password: %v", weak)
	}
	// Run for real, a bad declared password fails the start before the CA
	// is created: nothing on disk to trip the next start.
	if err := caddy.Load(config("test-ca-passphrase", "short"), true); err == nil || !strings.Contains(err.Error(), "BANK_XYZ") {
		t.Fatalf("a start with a weak declared password: %v", err)
	}
	if entries, _ := filepath.Glob(filepath.Join(storage, "bankedge", "*", "*")); len(entries) > 0 {
		t.Fatalf("a failed start wrote the CA: %v", entries)
	}

	if err := caddy.Load(config("test-ca-passphrase", "ComplexPassword123!"), true); err != nil {
		t.Fatal(err)
	}
	_ = caddy.Stop()
	err = caddy.Load(config("another-passphrase", "ComplexPassword123!"), true)
	if err == nil {
		_ = caddy.Stop()
		t.Fatal("a wrong CA passphrase was accepted")
	}
	if !strings.Contains(err.Error(), filepath.Join(storage, "bankedge", "ca", "ca.key")) {
		t.Fatalf("the error does not say where the CA key is: %v", err)
	}
}

// Nested in handle blocks, bankedge_api cannot add its error route (Caddy
// drops it there): handle_errors { bankedge_api } answers the 401 as JSON.
// The verifier's purposes option parses.
func TestNestedAPIWithHandleErrors(t *testing.T) {
	dir := t.TempDir()
	hash, _ := bcrypt.GenerateFromPassword([]byte(adminPassword), bcrypt.MinCost)
	port := testcaddy.FreePort(t)
	testcaddy.Load(t, testcaddy.Globals(filepath.Join(dir, "storage"), `bankedge {
		ca {
			key_passphrase test-ca-passphrase
		}
	}`)+fmt.Sprintf(`
http://127.0.0.1:%d {
	bind 127.0.0.1
	handle /api/v1/certificates/ca/crl {
		bankedge_api
	}
	handle {
		basic_auth {
			admin %s
		}
		bankedge_api
	}
	handle_errors {
		bankedge_api
	}
}`, port, hash))
	g := &gateway{api: fmt.Sprintf("http://127.0.0.1:%d", port)}
	a := g.call(t, "GET", "/api/v1/certificates/ca/issued", nil, nil, true)
	expectStatus(t, a, 401, "authentication required")
	expectStatus(t, g.call(t, "GET", "/api/v1/certificates/ca/issued", nil, nil), 200, "")

	cfg := string(testcaddy.Adapt(t, testcaddy.Globals(filepath.Join(dir, "s2"), "")+`https://localhost:1 {
	tls {
		client_auth {
			trust_pool bankedge
			verifier bankedge {
				purposes CLIENT QWAC
			}
		}
	}
}`))
	if !strings.Contains(cfg, `"purposes":["CLIENT","QWAC"]`) {
		t.Fatalf("verifier purposes not in the adapted config: %s", cfg)
	}
}

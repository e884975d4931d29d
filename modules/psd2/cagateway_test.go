package psd2_test

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/bankedge/bankedge/internal/testcaddy"
	"github.com/bankedge/bankedge/internal/testpki"
	_ "github.com/bankedge/bankedge/modules/ca"
)

// caAPI drives the bankedge CA's admin REST API, the way an administrator
// issues sandbox certificates and revokes them.
type caAPI struct {
	base, user, password string
}

const keystorePassword = "Keystore-Pass-2024!"

// issuePSD2 asks the CA for a sandbox QWAC or QSEAL and opens the PKCS#12
// it answers with.
func (a caAPI) issuePSD2(t *testing.T, kind, org, roles string) *testpki.Leaf {
	t.Helper()
	form := url.Values{"type": {kind}, "orgId": {org}, "roles": {roles}, "ncaName": {"Bank of Greece"},
		"organization": {"Example TPP S.A."}, "commonName": {"tpp.example"}, "format": {"p12"}, "password": {keystorePassword}}
	body := a.post(t, "/api/v1/certificates/ca/psd2/"+strings.ToLower(org)+"/generate", form)
	key, cert, _, err := pkcs12.DecodeChain(body, keystorePassword)
	if err != nil {
		t.Fatalf("opening the %s keystore: %v", kind, err)
	}
	return &testpki.Leaf{Cert: cert, Key: key.(crypto.Signer)}
}

// revoke revokes cert through the API.
func (a caAPI) revoke(t *testing.T, cert *x509.Certificate) {
	t.Helper()
	a.post(t, "/api/v1/certificates/ca/revoke", url.Values{"serial": {fmt.Sprintf("%X", cert.SerialNumber)}, "reason": {"keyCompromise"}})
}

// caCertificate fetches the CA certificate, the sandbox QTSP root.
func (a caAPI) caCertificate(t *testing.T) *x509.Certificate {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, a.base+"/api/v1/certificates/ca/certificate", nil)
	req.SetBasicAuth(a.user, a.password)
	body := a.send(t, req)
	certs, err := parsePEMCertificates(body)
	if err != nil || len(certs) == 0 {
		t.Fatalf("CA certificate: %v\n%s", err, body)
	}
	return certs[0]
}

func (a caAPI) post(t *testing.T, path string, form url.Values) []byte {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, a.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(a.user, a.password)
	return a.send(t, req)
}

func (a caAPI) send(t *testing.T, req *http.Request) []byte {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, body)
	}
	return body
}

func parsePEMCertificates(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		if block, b = pem.Decode(b); block == nil {
			return out, nil
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
}

// caGateway is a running Caddy whose bankedge CA is the QTSP of an XS2A
// site (in front of a mock ASPSP) and answers its admin API.
type caGateway struct {
	api  caAPI
	xs2a string
	root *x509.Certificate
	// caddyfile is the configuration, auditLog where its audit lines go.
	caddyfile, auditLog string
}

const caAdminPassword = "Admin-Pass-2024!"

// caGatewayConfig is the configuration of a caGateway on fresh ports,
// storage in dir, psd2Options in both psd2 handlers and qsealOptions in
// psd2_qseal.
func caGatewayConfig(t *testing.T, dir, psd2Options, qsealOptions string) *caGateway {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(caAdminPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	apiPort, xs2aPort, upPort := testcaddy.FreePort(t), testcaddy.FreePort(t), testcaddy.FreePort(t)
	g := &caGateway{
		api:      caAPI{base: fmt.Sprintf("http://127.0.0.1:%d", apiPort), user: "admin", password: caAdminPassword},
		xs2a:     fmt.Sprintf("https://localhost:%d", xs2aPort),
		auditLog: filepath.Join(t.TempDir(), "audit.log"),
	}
	g.caddyfile = testcaddy.Globals(filepath.Join(dir, "storage"), fmt.Sprintf(`
	log audit {
		output file %[1]s
		include bankedge.audit
		format json
	}
	bankedge {
		ca {
			key_passphrase test-ca-passphrase
		}
	}`, g.auditLog)) + fmt.Sprintf(`
http://127.0.0.1:%[1]d {
	basic_auth {
		admin %[2]s
	}
	bankedge_api
}

https://localhost:%[3]d {
	bind 127.0.0.1
	tls {
		issuer bankedge
		client_auth {
			mode request
		}
	}
	psd2_qwac {
		trust_pool bankedge
		%[5]s
	}
	psd2_qseal {
		profile piraeus
		trust_pool bankedge
		require_signature
		%[5]s
		%[6]s
	}
	reverse_proxy 127.0.0.1:%[4]d {
		header_up X-TPP-Org-Id {psd2.tpp.org_id}
	}
}

http://:%[4]d {
	bind 127.0.0.1
	respond "forwarded for {http.request.header.X-TPP-Org-Id}"
}
`, apiPort, hash, xs2aPort, upPort, psd2Options, qsealOptions)
	return g
}

// startCAGateway runs the bankedge app, its admin API, and an XS2A site
// with psd2_qwac and psd2_qseal trusting the CA, storage in dir, and
// psd2Options (if any) in both handlers.
func startCAGateway(t *testing.T, dir string, psd2Options ...string) *caGateway {
	t.Helper()
	g := caGatewayConfig(t, dir, strings.Join(psd2Options, "\n"), "")
	g.start(t)
	return g
}

// start loads the gateway's configuration and waits until it serves.
func (g *caGateway) start(t *testing.T) {
	t.Helper()
	testcaddy.Load(t, g.caddyfile)
	g.root = g.api.caCertificate(t)
	waitForServerCertificate(t, strings.TrimPrefix(g.xs2a, "https://"), g.root)
}

// waitForServerCertificate waits until addr serves a certificate that
// chains to root: Caddy obtains it from the bankedge issuer in the
// background.
func waitForServerCertificate(t *testing.T, addr string, root *x509.Certificate) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(root)
	host, _, _ := net.SplitHostPort(addr)
	var err error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var conn *tls.Conn
		conn, err = tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: host})
		if err == nil {
			conn.Close()
			return
		}
	}
	t.Fatalf("%s serves no certificate from the CA: %v", addr, err)
}

// client returns an HTTPS client of a TPP presenting qwac, trusting the
// CA for the server certificate.
func (g *caGateway) client(qwac *testpki.Leaf) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(g.root)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs:      pool,
		Certificates: []tls.Certificate{{Certificate: [][]byte{qwac.Cert.Raw}, PrivateKey: qwac.Key, Leaf: qwac.Cert}},
	}}}
}

// pay sends a signed payment initiation.
func (g *caGateway) pay(t *testing.T, qwac, qseal *testpki.Leaf) response {
	t.Helper()
	h, body := signed(t, qwac, qseal, http.MethodPost, paymentPath, paymentBody)
	return g.send(t, qwac, h, body)
}

// send posts a signed payment initiation over mTLS with qwac.
func (g *caGateway) send(t *testing.T, qwac *testpki.Leaf, h http.Header, body []byte) response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, g.xs2a+paymentPath, bytes.NewReader(body))
	req.Header = h
	resp, err := g.client(qwac).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return readResponse(t, resp)
}

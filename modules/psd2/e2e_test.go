package psd2_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bankedge/bankedge/internal/certprofile/qcstatements"
	"github.com/bankedge/bankedge/internal/certprofile/tppcert"
	"github.com/bankedge/bankedge/internal/testcaddy"
	"github.com/bankedge/bankedge/internal/testpki"
	_ "github.com/bankedge/bankedge/modules/psd2"
	"github.com/bankedge/bankedge/modules/psd2/httpsig"
	"github.com/bankedge/bankedge/modules/psd2/tppclient"
)

const orgID = "PSDGR-BOG-123456"

// fixture is the PKI and the running gateway shared by the end-to-end tests.
type fixture struct {
	qtsp, untrusted, serverCA *testpki.CA

	qwac, qwacServerAuthOnly, qwacCritical, qwacNoPSD2, qwacExpired, qwacUntrusted, qwacAIOnly, qwacOther *testpki.Leaf
	qwacPIOnly, qwacICOnly                                                                                *testpki.Leaf
	qseal, qsealOtherOrg, qsealExpired, qsealUntrusted, qsealOther                                        *testpki.Leaf

	dir                                     string
	piraeusURL, bgURL, plainURL, specialURL string
	// upstreamURL is the mock ASPSP, which echoes what reaches it.
	upstreamURL string
	caddyfile   string
}

func subject(org string, roles ...qcstatements.Role) tppcert.Subject {
	return tppcert.Subject{OrgID: org, Organization: "Example TPP S.A.", CommonName: "tpp.example", Roles: roles, NCAName: "Bank of Greece", DNSNames: []string{"tpp.example"}}
}

// fixtureOptions change the fixture's configuration.
type fixtureOptions struct {
	// globals are extra global options, piraeusQSEAL extra options of the
	// piraeus listener's psd2_qseal.
	globals, piraeusQSEAL string
	// dir holds the storage; default: a new temporary directory.
	dir string
	// noLoad leaves the configuration in f.caddyfile unloaded.
	noLoad bool
}

func newFixture(t *testing.T) *fixture { return newFixtureWith(t, fixtureOptions{}) }

func newFixtureWith(t *testing.T, opts fixtureOptions) *fixture {
	f := &fixture{dir: opts.dir}
	if f.dir == "" {
		f.dir = t.TempDir()
	}
	f.qtsp = testpki.NewCA(t, "Test QTSP Qualified CA")
	f.untrusted = testpki.NewCA(t, "Rogue QTSP")
	f.serverCA = testpki.NewCA(t, "Gateway Server CA")

	all := []qcstatements.Role{qcstatements.RolePI, qcstatements.RoleAI, qcstatements.RoleIC}
	main := subject(orgID, all...)
	expired := testpki.Validity(time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	f.qwac = f.qtsp.TPP(t, tppcert.QWAC, main, testpki.ECKey(t))
	f.qwacServerAuthOnly = f.qtsp.TPP(t, tppcert.QWAC, main, testpki.ECKey(t), testpki.ServerAuthOnly())
	f.qwacCritical = f.qtsp.TPP(t, tppcert.QWAC, main, testpki.ECKey(t), testpki.CriticalQCStatements())
	f.qwacNoPSD2 = f.qtsp.TPP(t, tppcert.QWAC, main, testpki.ECKey(t), testpki.NoPSD2Statement())
	f.qwacExpired = f.qtsp.TPP(t, tppcert.QWAC, main, testpki.ECKey(t), expired)
	f.qwacUntrusted = f.untrusted.TPP(t, tppcert.QWAC, main, testpki.ECKey(t))
	f.qwacAIOnly = f.qtsp.TPP(t, tppcert.QWAC, subject(orgID, qcstatements.RoleAI), testpki.ECKey(t))
	f.qwacPIOnly = f.qtsp.TPP(t, tppcert.QWAC, subject(orgID, qcstatements.RolePI), testpki.ECKey(t))
	f.qwacICOnly = f.qtsp.TPP(t, tppcert.QWAC, subject(orgID, qcstatements.RoleIC), testpki.ECKey(t))
	f.qwacOther = f.qtsp.TPP(t, tppcert.QWAC, subject("PSDGR-BOG-999999", all...), testpki.ECKey(t))

	f.qseal = f.qtsp.TPP(t, tppcert.QSEAL, main, testpki.RSAKey(t, 2048, 0),
		testpki.SerialNumber(mustHex("6AA32860FF20999C9D12A78ADBDB1903")))
	f.qsealOtherOrg = f.qtsp.TPP(t, tppcert.QSEAL, subject("PSDGR-BOG-999999", all...), testpki.RSAKey(t, 2048, 1))
	f.qsealOther = f.qsealOtherOrg
	f.qsealExpired = f.qtsp.TPP(t, tppcert.QSEAL, main, testpki.RSAKey(t, 2048, 0), expired)
	f.qsealUntrusted = f.untrusted.TPP(t, tppcert.QSEAL, main, testpki.RSAKey(t, 2048, 0))

	server := f.serverCA.Server(t, "localhost")
	qtspFile := testpki.WriteFile(t, f.dir, "qtsp-roots.pem", testpki.CertPEM(f.qtsp.Cert))
	certFile := testpki.WriteFile(t, f.dir, "server.pem", testpki.CertPEM(server.Cert))
	keyFile := testpki.WriteFile(t, f.dir, "server-key.pem", testpki.KeyPEM(t, server.Key))

	portPiraeus, portBG, portPlain, portUp := testcaddy.FreePort(t), testcaddy.FreePort(t), testcaddy.FreePort(t), testcaddy.FreePort(t)
	f.piraeusURL = fmt.Sprintf("https://localhost:%d", portPiraeus)
	f.bgURL = fmt.Sprintf("https://localhost:%d", portBG)
	f.specialURL = f.bgURL + "/special/x"
	f.plainURL = fmt.Sprintf("http://127.0.0.1:%d", portPlain)
	f.upstreamURL = fmt.Sprintf("http://127.0.0.1:%d", portUp)

	// bind: the free ports were found on 127.0.0.1, which other processes'
	// sockets on other loopback addresses do not block.
	tlsBlock := fmt.Sprintf(`bind 127.0.0.1
	tls %s %s {
		client_auth {
			mode require
		}
	}`, certFile, keyFile)
	upstream := fmt.Sprintf(`reverse_proxy 127.0.0.1:%d {
			header_up X-TPP-Org-Id {psd2.tpp.org_id}
			header_up X-TPP-Name {psd2.tpp.name}
			header_up X-TPP-Roles {psd2.tpp.roles}
			header_up X-TPP-NCA-Id {psd2.tpp.nca_id}
			header_up X-TPP-NCA-Name {psd2.tpp.nca_name}
			header_up X-TPP-Cert-SHA256 {psd2.tpp.cert_sha256}
		}`, portUp)
	f.caddyfile = testcaddy.Globals(filepath.Join(f.dir, "storage"), opts.globals) + fmt.Sprintf(`
https://localhost:%[1]d {
	%[2]s
	psd2_qwac {
		trust_pool file %[3]s
	}
	psd2_qseal {
		profile piraeus
		trust_pool file %[3]s
		require_signature
		max_body_size 64KiB
		%[8]s
	}
	%[4]s
}

https://localhost:%[5]d {
	%[2]s
	handle /special/* {
		psd2_qwac {
			trust_pool file %[3]s
			require_roles PSP_AS PSP_IC
		}
		respond "special {psd2.tpp.roles}"
	}
	handle /oauth/* {
		psd2_qwac {
			trust_pool file %[3]s
			allow_unmapped
		}
		respond "oauth {psd2.tpp.org_id} {psd2.result}"
	}
	handle {
		psd2_qwac {
			trust_pool file %[3]s
		}
		psd2_qseal {
			profile berlingroup
			trust_pool file %[3]s
			max_clock_skew 60s
		}
		%[4]s
	}
}

http://127.0.0.1:%[6]d {
	psd2_qwac {
		trust_pool file %[3]s
	}
	respond "unreachable"
}

http://:%[7]d {
	bind 127.0.0.1
	templates {
		mime application/json
	}
	header Content-Type application/json
	respond <<JSON
		{{ dict "method" .Req.Method "path" .Req.URL.Path "rawPath" .Req.URL.RawPath "headers" .Req.Header "tpp" (dict "orgId" (.Req.Header.Get "X-TPP-Org-Id") "name" (.Req.Header.Get "X-TPP-Name") "roles" (.Req.Header.Get "X-TPP-Roles") "ncaId" (.Req.Header.Get "X-TPP-NCA-Id") "ncaName" (.Req.Header.Get "X-TPP-NCA-Name") "certSha256" (.Req.Header.Get "X-TPP-Cert-SHA256")) "body" (placeholder "http.request.body") | toJson }}
		JSON 200
}
`, portPiraeus, tlsBlock, qtspFile, upstream, portBG, portPlain, portUp, opts.piraeusQSEAL)
	if !opts.noLoad {
		testcaddy.Load(t, f.caddyfile)
	}
	return f
}

func mustHex(s string) *big.Int {
	n, ok := new(big.Int).SetString(s, 16)
	if !ok {
		panic(s)
	}
	return n
}

// client returns an HTTPS client presenting leaf in the TLS handshake.
func (f *fixture) client(leaf *testpki.Leaf) *http.Client {
	roots := x509.NewCertPool()
	roots.AddCert(f.serverCA.Cert)
	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost"}
	if leaf != nil {
		cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{leaf.Cert.Raw}, PrivateKey: leaf.Key, Leaf: leaf.Cert}}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
}

// request is one call to the gateway.
type request struct {
	profile httpsig.Profile
	alg     httpsig.Algorithm
	tls     *testpki.Leaf // TLS client certificate
	qwac    *testpki.Leaf // X-Client-Certificate; defaults to tls
	qseal   *testpki.Leaf // signer; nil: unsigned
	method  string
	url     string
	body    []byte
	header  http.Header
	// mutate runs after signing, to tamper with the request.
	mutate func(h http.Header, body *[]byte)
}

type response struct {
	header http.Header
	status int
	body   []byte
	code   string
	path   string
	text   string
	echo   map[string]any
	ctype  string
}

func (f *fixture) do(t *testing.T, rq request) response {
	t.Helper()
	if rq.method == "" {
		rq.method = http.MethodPost
	}
	if rq.header == nil {
		rq.header = http.Header{}
	}
	if rq.qwac == nil {
		rq.qwac = rq.tls
	}
	u, err := url.Parse(rq.url)
	if err != nil {
		t.Fatal(err)
	}
	body := rq.body
	if rq.qseal != nil {
		s := tppclient.Signer{Profile: rq.profile, Algorithm: rq.alg, QSEAL: rq.qseal.Cert, QSEALKey: rq.qseal.Key}
		if body, err = s.Sign(rq.method, u.RequestURI(), rq.header, body); err != nil {
			t.Fatal(err)
		}
	} else if rq.header.Get("X-Request-ID") == "" {
		rq.header.Set("X-Request-ID", uuid.NewString())
	}
	if rq.qwac != nil && rq.header.Get("X-Client-Certificate") == "" {
		rq.header.Set("X-Client-Certificate", base64.StdEncoding.EncodeToString(rq.qwac.Cert.Raw))
	}
	if rq.mutate != nil {
		rq.mutate(rq.header, &body)
	}
	req, err := http.NewRequest(rq.method, rq.url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = rq.header
	resp, err := f.client(rq.tls).Do(req)
	if err != nil {
		t.Fatalf("request failed: %v", err)
	}
	return readResponse(t, resp)
}

// readResponse reads an answer: a Berlin Group error, or the mock ASPSP's
// echo.
func readResponse(t *testing.T, resp *http.Response) response {
	t.Helper()
	defer resp.Body.Close()
	out := response{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), header: resp.Header}
	out.body, _ = io.ReadAll(resp.Body)
	var bg struct {
		TPPMessages []struct{ Category, Code, Path, Text string } `json:"tppMessages"`
	}
	if json.Unmarshal(out.body, &bg) == nil && len(bg.TPPMessages) == 1 {
		m := bg.TPPMessages[0]
		if m.Category != "ERROR" {
			t.Errorf("tppMessage category = %q, want ERROR", m.Category)
		}
		out.code, out.path, out.text = m.Code, m.Path, m.Text
	}
	_ = json.Unmarshal(out.body, &out.echo)
	return out
}

// expectError checks a Berlin Group error answer.
func expectError(t *testing.T, r response, status int, code, textPart string) {
	t.Helper()
	if r.status != status || r.code != code {
		t.Fatalf("got %d %q (%s), want %d %s", r.status, r.code, r.body, status, code)
	}
	if r.ctype != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", r.ctype)
	}
	if textPart != "" && !strings.Contains(r.text, textPart) {
		t.Errorf("text %q does not mention %q", r.text, textPart)
	}
}

func expectOK(t *testing.T, r response) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("got %d %s: %s", r.status, r.code, r.body)
	}
}

// tlsConfig is what a TPP presenting leaf uses.
func (f *fixture) tlsConfig(leaf *testpki.Leaf) *tls.Config {
	return f.client(leaf).Transport.(*http.Transport).TLSClientConfig
}

// signed signs a request for the piraeus profile with qseal and returns its
// headers (X-Client-Certificate from qwac included) and body.
func signed(t *testing.T, qwac, qseal *testpki.Leaf, method, requestURI string, body []byte) (http.Header, []byte) {
	t.Helper()
	h := http.Header{}
	s := tppclient.Signer{Profile: httpsig.Piraeus, QSEAL: qseal.Cert, QSEALKey: qseal.Key, QWAC: qwac.Cert}
	body, err := s.Sign(method, requestURI, h, body)
	if err != nil {
		t.Fatal(err)
	}
	h.Set("X-Client-Certificate", base64.StdEncoding.EncodeToString(qwac.Cert.Raw))
	return h, body
}

// rawRequest sends one HTTP/1.1 request written byte for byte over mTLS,
// for what Go's client would normalise or refuse to send, and reads the
// answer.
func (f *fixture) rawRequest(t *testing.T, base string, leaf *testpki.Leaf, method, target string, h http.Header, body []byte) response {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", u.Host, f.tlsConfig(leaf))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nConnection: close\r\n", method, target, u.Host, len(body))
	for k, vs := range h {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	if _, err := conn.Write(append([]byte(b.String()), body...)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer to %s %s: %v", method, target, err)
	}
	return readResponse(t, resp)
}

func writePEMFile(t *testing.T, dir, name string, blockType string, der []byte) string {
	t.Helper()
	return testpki.WriteFile(t, dir, name, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}))
}

func jsonCompact(dst *bytes.Buffer, src []byte) error { return json.Compact(dst, src) }

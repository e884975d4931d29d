package bankedge_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"golang.org/x/crypto/bcrypt"
	"software.sslmate.com/src/go-pkcs12"

	_ "github.com/mholt/caddy-l4/layer4"
	_ "github.com/mholt/caddy-l4/modules/l4proxy"

	_ "github.com/bankedge/bankedge"
	"github.com/bankedge/bankedge/internal/metrics/metricstest"
	"github.com/bankedge/bankedge/internal/testcaddy"
	"github.com/bankedge/bankedge/modules/ca/authority"
	"github.com/bankedge/bankedge/modules/pesit/fpdu"
	"github.com/bankedge/bankedge/modules/pesit/peer"
	"github.com/bankedge/bankedge/modules/psd2/httpsig"
	"github.com/bankedge/bankedge/modules/psd2/tppclient"
)

func TestMain(m *testing.M) { os.Exit(testcaddy.Main(m)) }

const (
	e2ePassphrase   = "metrics-e2e-ca-passphrase"
	e2eAdmin        = "ops"
	e2eAdminPass    = "Ops-Admin-Pass-2026!"
	e2ePartner      = "METRICS_P"
	e2ePartnerPass  = "Metrics-Pass-1!"
	e2eTPP          = "PSDGR-BOG-777777"
	e2eKeystorePass = "Keystore-Pass-2026!"
	e2ePaymentPath  = "/v1/payments/sepa-credit-transfers"
)

// gateway is a whole bankedge in one Caddy: the CA and its admin API, an
// XS2A site with both PSD2 handlers trusting the CA, a PeSIT gateway in
// front of pesit_server, and Caddy's metrics endpoint.
type gateway struct {
	caddyfile                 string
	api, xs2a, pesit, metrics string
	files                     string
	root                      *x509.Certificate
}

func startGateway(t *testing.T) *gateway {
	t.Helper()
	dir := t.TempDir()
	storageDir := filepath.Join(dir, "storage")
	// Certificates that must not count for a partner's expiry: one
	// expired yesterday, one revoked. Issued with the CA the gateway will
	// open, before it starts.
	storage := &certmagic.FileStorage{Path: storageDir}
	past := func() time.Time { return time.Now().Add(-48 * time.Hour) }
	old, _, err := authority.Open(context.Background(), authority.Config{Storage: storage, Passphrase: []byte(e2ePassphrase), Now: past}, true)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{}
	tmpl.Subject.CommonName = "expired partner"
	if _, _, err := old.Generate(context.Background(), authority.ECDSAP256, authority.Request{Template: tmpl, Purpose: authority.PurposeClient,
		Validity: 24 * time.Hour, PartnerID: "EXPIRED_P"}); err != nil {
		t.Fatal(err)
	}

	hash, err := bcrypt.GenerateFromPassword([]byte(e2eAdminPass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	port := func() int { return testcaddy.FreePort(t) }
	apiPort, xs2aPort, pesitPort, upPort, metricsPort := port(), port(), port(), port(), port()
	g := &gateway{
		api:     fmt.Sprintf("http://127.0.0.1:%d", apiPort),
		xs2a:    fmt.Sprintf("https://localhost:%d", xs2aPort),
		pesit:   fmt.Sprintf("127.0.0.1:%d", pesitPort),
		metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort),
		files:   filepath.Join(dir, "files"),
	}
	g.caddyfile = testcaddy.Globals(storageDir, fmt.Sprintf(`
	bankedge {
		ca {
			key_passphrase %[1]s
		}
	}
	layer4 {
		127.0.0.1:%[2]d {
			@pesit pesit
			route @pesit {
				pesit {
					server_id GWSRV
					upstream_credentials INTSRV {l4.pesit.partner_id} gwpass12
					connect_timeout 5s
				}
				proxy 127.0.0.1:%[3]d
			}
		}
		127.0.0.1:%[3]d {
			route {
				pesit_server {
					root %[4]s
					server_id INTSRV
					requester * gwpass12
				}
			}
		}
	}`, e2ePassphrase, pesitPort, upPort, g.files)) + fmt.Sprintf(`
http://127.0.0.1:%[1]d {
	basic_auth {
		%[2]s %[3]s
	}
	bankedge_api {
		roles {
			security_admin %[2]s
			partner_admin  %[2]s
		}
	}
}

https://localhost:%[4]d {
	bind 127.0.0.1
	tls {
		issuer bankedge
		client_auth {
			mode request
		}
	}
	psd2_qwac {
		trust_pool bankedge
	}
	psd2_qseal {
		profile piraeus
		trust_pool bankedge
		require_signature
	}
	respond "accepted for {psd2.tpp.org_id}"
}

http://127.0.0.1:%[5]d {
	metrics /metrics
}
`, apiPort, e2eAdmin, hash, xs2aPort, metricsPort)
	testcaddy.Load(t, g.caddyfile)
	g.root = certs(t, g.call(t, "GET", "/api/v1/certificates/ca/certificate", nil, http.StatusOK))[0]
	testcaddy.WaitForCertificate(t, strings.TrimPrefix(g.xs2a, "https://"), "localhost", g.root)
	return g
}

// call sends a form (or JSON when form is a string) to the admin API as
// the administrator and checks the status.
func (g *gateway) call(t *testing.T, method, path string, form any, want int) []byte {
	t.Helper()
	var body io.Reader
	ctype := ""
	switch f := form.(type) {
	case url.Values:
		body, ctype = strings.NewReader(f.Encode()), "application/x-www-form-urlencoded"
	case string:
		body, ctype = strings.NewReader(f), "application/json"
	}
	req, _ := http.NewRequest(method, g.api+path, body)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.SetBasicAuth(e2eAdmin, e2eAdminPass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	return b
}

func certs(t *testing.T, b []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for {
		var block *pem.Block
		if block, b = pem.Decode(b); block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		t.Fatal("no certificate in the answer")
	}
	return out
}

// tppCert is a sandbox QWAC or QSEAL issued by the API.
func (g *gateway) tppCert(t *testing.T, kind string) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	form := url.Values{"type": {kind}, "orgId": {e2eTPP}, "roles": {"PSP_PI,PSP_AI"}, "commonName": {"tpp.example"},
		"format": {"p12"}, "password": {e2eKeystorePass}}
	p12 := g.call(t, "POST", "/api/v1/certificates/ca/psd2/tpp-metrics/generate", form, http.StatusOK)
	key, cert, _, err := pkcs12.DecodeChain(p12, e2eKeystorePass)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key.(crypto.Signer)
}

// pay sends a payment initiation over mTLS with the QWAC (none when nil),
// signed with the QSEAL when given, and returns the status.
func (g *gateway) pay(t *testing.T, qwac *x509.Certificate, qwacKey crypto.Signer, qseal *x509.Certificate, qsealKey crypto.Signer) int {
	t.Helper()
	body := []byte(`{"instructedAmount":{"currency":"EUR","amount":"12.50"}}`)
	h := http.Header{}
	if qseal != nil {
		s := tppclient.Signer{Profile: httpsig.Piraeus, QSEAL: qseal, QSEALKey: qsealKey, QWAC: qwac}
		var err error
		if body, err = s.Sign(http.MethodPost, e2ePaymentPath, h, body); err != nil {
			t.Fatal(err)
		}
	} else {
		h.Set("X-Request-ID", "4f3c1a52-6b1e-4d7a-9a55-2f0c3c1d9e11")
	}
	pool := x509.NewCertPool()
	pool.AddCert(g.root)
	cfg := &tls.Config{RootCAs: pool}
	if qwac != nil {
		h.Set("X-Client-Certificate", base64.StdEncoding.EncodeToString(qwac.Raw))
		cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{qwac.Raw}, PrivateKey: qwacKey, Leaf: qwac}}
	}
	req, _ := http.NewRequest(http.MethodPost, g.xs2a+e2ePaymentPath, bytes.NewReader(body))
	req.Header = h
	resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// pesitSession opens a PeSIT session as partner with password, sends data
// as a file and releases; it returns the refusal of the CONNECT.
func (g *gateway) pesitSession(t *testing.T, partner, password string, data []byte) error {
	t.Helper()
	conn, err := net.Dial("tcp", g.pesit)
	if err != nil {
		t.Fatal(err)
	}
	c, err := peer.NewClient(conn, peer.ConnectOptions{RequesterID: partner, ServerID: "GWSRV", Password: password, Timeout: 10 * time.Second})
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	if _, err := c.Send(context.Background(), "METRICS.DAT", bytes.NewReader(data), int64(len(data)), peer.TransferOptions{}); err != nil {
		t.Fatalf("sending a file: %v", err)
	}
	return c.Release()
}

// TestMetricsAfterRealTraffic scrapes Caddy's metrics endpoint after real
// PSD2 requests (accepted and refused), PeSIT sessions (completed and
// refused), issuances and a revocation, checks the exact series, and
// checks them again after a config reload.
func TestMetricsAfterRealTraffic(t *testing.T) {
	g := startGateway(t)
	start := time.Now()

	// The CA: a partner and its keystore, a QWAC and a QSEAL.
	g.call(t, "POST", "/api/v1/config/partners", fmt.Sprintf(`{"partnerId":%q,"password":%q,"allowedIps":["127.0.0.1/32"]}`, e2ePartner, e2ePartnerPass), http.StatusCreated)
	pemKS := g.call(t, "POST", "/api/v1/certificates/ca/partner/"+e2ePartner+"/generate", url.Values{"format": {"pem"}, "password": {e2eKeystorePass}, "validityDays": {"90"}}, http.StatusOK)
	partnerCert := certs(t, pemKS)[0]
	g.call(t, "POST", "/api/v1/config/partners", `{"partnerId":"REVOKED_P","password":"Revoked-Partner-1!"}`, http.StatusCreated)
	revokedKS := g.call(t, "POST", "/api/v1/certificates/ca/partner/REVOKED_P/generate", url.Values{"format": {"pem"}, "password": {e2eKeystorePass}}, http.StatusOK)
	qwac, qwacKey := g.tppCert(t, "qwac")
	qseal, qsealKey := g.tppCert(t, "qseal")

	// PSD2: accepted twice (the second from the caches), refused unsigned,
	// refused without a certificate.
	for range 2 {
		if s := g.pay(t, qwac, qwacKey, qseal, qsealKey); s != http.StatusOK {
			t.Fatalf("signed payment: %d", s)
		}
	}
	if s := g.pay(t, qwac, qwacKey, nil, nil); s != http.StatusUnauthorized {
		t.Fatalf("unsigned payment: %d", s)
	}
	if s := g.pay(t, nil, nil, nil, nil); s != http.StatusUnauthorized {
		t.Fatalf("payment without a certificate: %d", s)
	}

	// PeSIT: a completed transfer, a wrong password, an unknown partner.
	data := bytes.Repeat([]byte("bankedge metrics e2e "), 1000)
	if err := g.pesitSession(t, e2ePartner, e2ePartnerPass, data); err != nil {
		t.Fatalf("PeSIT session: %v", err)
	}
	for _, id := range []string{e2ePartner, "NOBODY"} {
		err := g.pesitSession(t, id, "Wrong-Pass-123!", nil)
		var re *peer.RefusedError
		if !errors.As(err, &re) || re.FPDU != fpdu.TypeRConnect || re.Diag.Reason != fpdu.ReasonUnauthorized {
			t.Fatalf("%s with a wrong password: %v", id, err)
		}
	}

	// Revocations: REVOKED_P's only certificate, then the QWAC, whose next
	// payment is refused.
	for _, c := range []*x509.Certificate{certs(t, revokedKS)[0], qwac} {
		g.call(t, "POST", "/api/v1/certificates/ca/revoke", url.Values{"serial": {authority.SerialString(c.SerialNumber)}, "reason": {"keyCompromise"}}, http.StatusOK)
	}
	if s := g.pay(t, qwac, qwacKey, qseal, qsealKey); s != http.StatusUnauthorized {
		t.Fatalf("payment with a revoked QWAC: %d", s)
	}

	type series struct {
		name   string
		labels map[string]string
		// want is the exact value; min, when set instead, a lower bound.
		want, min float64
	}
	l := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	want := []series{
		{name: "bankedge_psd2_requests_total", labels: l("tpp", e2eTPP, "result", "ok"), want: 2},
		{name: "bankedge_psd2_requests_total", labels: l("tpp", e2eTPP, "result", "SIGNATURE_MISSING"), want: 1},
		{name: "bankedge_psd2_requests_total", labels: l("tpp", e2eTPP, "result", "CERTIFICATE_REVOKED"), want: 1},
		{name: "bankedge_psd2_requests_total", labels: l("tpp", "unknown", "result", "CERTIFICATE_MISSING"), want: 1},
		{name: "bankedge_psd2_verify_duration_seconds", want: 5},
		{name: "bankedge_psd2_cache_lookups_total", labels: l("cache", "qwac", "outcome", "miss"), want: 1},
		{name: "bankedge_psd2_cache_lookups_total", labels: l("cache", "qwac", "outcome", "hit"), want: 3},
		{name: "bankedge_psd2_cache_lookups_total", labels: l("cache", "qseal", "outcome", "miss"), want: 1},
		{name: "bankedge_psd2_cache_lookups_total", labels: l("cache", "qseal", "outcome", "hit"), want: 1},
		{name: "bankedge_pesit_sessions_total", labels: l("partner", e2ePartner, "result", "ok"), want: 1},
		{name: "bankedge_pesit_sessions_total", labels: l("partner", e2ePartner, "result", "3-304"), want: 1},
		{name: "bankedge_pesit_sessions_total", labels: l("partner", "unknown", "result", "3-304"), want: 1},
		{name: "bankedge_pesit_bytes_total", labels: l("partner", e2ePartner, "direction", "upload"), want: float64(len(data))},
		{name: "bankedge_pesit_active_sessions", labels: l("partner", e2ePartner), want: 0},
		{name: "bankedge_ca_issued_total", labels: l("purpose", "client"), want: 2},
		{name: "bankedge_ca_issued_total", labels: l("purpose", "qwac"), want: 1},
		{name: "bankedge_ca_issued_total", labels: l("purpose", "qseal"), want: 1},
		{name: "bankedge_ca_issued_total", labels: l("purpose", "server"), min: 1},
		{name: "bankedge_ca_revocations_total", want: 2},
		{name: "bankedge_ca_certificate_expiry_timestamp_seconds", want: float64(g.root.NotAfter.Unix())},
		{name: "bankedge_ca_partner_certificate_expiry_timestamp_seconds", labels: l("partner", e2ePartner), want: float64(partnerCert.NotAfter.Unix())},
		{name: "bankedge_ca_crl_next_update_timestamp_seconds", min: float64(start.Add(24 * time.Hour).Unix())},
	}
	check := func(fams metricstest.Families, when string) {
		t.Helper()
		for _, s := range want {
			v, ok := fams.Value(s.name, s.labels)
			switch {
			case !ok:
				t.Errorf("%s: no series %s%v", when, s.name, s.labels)
			case s.min == 0 && v != s.want:
				t.Errorf("%s: %s%v = %v, want %v", when, s.name, s.labels, v, s.want)
			case s.min != 0 && v < s.min:
				t.Errorf("%s: %s%v = %v, want at least %v", when, s.name, s.labels, v, s.min)
			}
		}
		// Revoked and expired certificates do not count for a partner's
		// expiry.
		for _, p := range []string{"EXPIRED_P", "REVOKED_P"} {
			if _, ok := fams.Value("bankedge_ca_partner_certificate_expiry_timestamp_seconds", l("partner", p)); ok {
				t.Errorf("%s: %s has an expiry series, without a valid certificate", when, p)
			}
		}
	}

	// The gauges follow the issuance and revocations within 5 s.
	var fams metricstest.Families
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		fams = metricstest.Scrape(t, g.metrics)
		_, revokedGone := fams.Value("bankedge_ca_partner_certificate_expiry_timestamp_seconds", l("partner", "REVOKED_P"))
		if _, ok := fams.Value("bankedge_ca_partner_certificate_expiry_timestamp_seconds", l("partner", e2ePartner)); ok && !revokedGone || time.Now().After(deadline) {
			break
		}
	}
	check(fams, "after the traffic")

	// A reload registers the collectors in a new registry: every series
	// is still there with its value.
	testcaddy.Reload(t, g.caddyfile+"# reloaded\n")
	check(metricstest.Scrape(t, g.metrics), "after a reload")

	// The API serves the same series to its users, and the console's
	// dashboard lists the TPP from them: its roles, requests, refusals and
	// last refusal.
	if b := g.call(t, "GET", "/api/v1/metrics", nil, http.StatusOK); !bytes.Contains(b, []byte(`bankedge_psd2_requests_total{result="CERTIFICATE_REVOKED",tpp="`+e2eTPP+`"} 1`)) {
		t.Errorf("/api/v1/metrics does not serve the same series")
	}
	dashboard := string(g.call(t, "GET", "/ui/", nil, http.StatusOK))
	row := regexp.MustCompile(`<tr><td class="mono">` + e2eTPP + `</td><td>PSP_PI, PSP_AI</td><td>[^<]+</td><td class="num">4</td><td class="num">2</td><td><span class="badge bad">CERTIFICATE_REVOKED</span>`)
	if !row.MatchString(dashboard) {
		t.Errorf("the dashboard does not list the TPP with its roles and last refusal:\n%s", dashboard)
	}
}

package clustere2e_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/bankedge/bankedge/internal/testcaddy"
	"github.com/bankedge/bankedge/internal/testpki"
	"github.com/bankedge/bankedge/internal/testredis"
	"github.com/bankedge/bankedge/modules/pesit/fpdu"
	"github.com/bankedge/bankedge/modules/pesit/peer"
	"github.com/bankedge/bankedge/modules/psd2/httpsig"
	"github.com/bankedge/bankedge/modules/psd2/tppclient"
)

const (
	caPassphrase    = "e2e-ca-passphrase"
	adminPassword   = "Admin-Pass-2024!"
	partnerPassword = "Partner-Pass-24"
	orgID           = "PSDGR-BOG-123456"
	gatewayID       = "GW"
	paymentPath     = "/v1/payments/sepa-credit-transfers"
	// maxAuthFailures is the gateways' max_auth_failures, in 1 minute.
	maxAuthFailures = 4
	// leaseTTL is the gateways' connection lease TTL (30 s in production).
	leaseTTL = 3 * time.Second
	// within is how soon a change on one gateway is in force on the others.
	within = time.Second
)

var paymentBody = []byte(`{"instructedAmount":{"currency":"EUR","amount":"123.50"},"creditorName":"Merchant"}`)

// deployment is one Redis and the gateways on it.
type deployment struct {
	t      *testing.T
	redis  *testredis.Server
	prefix string
	hash   string
	root   *x509.Certificate
}

// gateway is one bankedge process of the deployment.
type gateway struct {
	*process
	d                 *deployment
	api, xs2a, pesitA string
}

// caddyfile is a gateway's configuration: the bankedge app, its admin
// API, an XS2A site, a PeSIT listener in front of its own PeSIT server, on
// the deployment's Redis and nothing else shared.
func (d *deployment) caddyfile(dir string, api, xs2a, pesit, upstream int) string {
	return fmt.Sprintf(`{
	admin off
	persist_config off
	skip_install_trust
	grace_period 1ns
	auto_https disable_redirects
	storage redis {
		address %[1]s
		key_prefix %[2]s
	}
	log {
		output stderr
		format json
		level INFO
	}
	bankedge {
		ca {
			key_passphrase %[3]s
		}
	}
	layer4 {
		tcp/127.0.0.1:%[4]d {
			@pesit pesit
			route @pesit {
				pesit {
					server_id %[5]s
					upstream_credentials INTSRV {l4.pesit.partner_id} gwpass12
					connect_timeout 3s
					max_auth_failures %[6]d 1m
				}
				proxy 127.0.0.1:%[7]d
			}
		}
		tcp/127.0.0.1:%[7]d {
			route {
				pesit_server {
					root %[8]s
					server_id INTSRV
					requester * gwpass12
				}
			}
		}
	}
}

http://127.0.0.1:%[9]d {
	basic_auth {
		admin %[10]s
	}
	bankedge_api
}

https://localhost:%[11]d {
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
`, d.redis.Addr, d.prefix, caPassphrase, pesit, gatewayID, maxAuthFailures, upstream, filepath.Join(dir, "files"), api, d.hash, xs2a)
}

// start runs a gateway; it is ready after waitReady.
func (d *deployment) start(name string) *gateway {
	t := d.t
	port := func() int { return testcaddy.FreePort(t) }
	api, xs2a, pesit, up := port(), port(), port(), port()
	cfg := d.caddyfile(t.TempDir(), api, xs2a, pesit, up)
	return &gateway{
		process: startProcess(t, name, cfg, fmt.Sprintf("BANKEDGE_E2E_LEASE=%v,%v", leaseTTL, leaseTTL/3)),
		d:       d,
		api:     fmt.Sprintf("http://127.0.0.1:%d", api),
		xs2a:    fmt.Sprintf("https://localhost:%d", xs2a),
		pesitA:  fmt.Sprintf("127.0.0.1:%d", pesit),
	}
}

// apiCall sends an admin API request and returns the status, headers and
// body.
func (g *gateway) apiCall(t *testing.T, method, path, contentType string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, g.api+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.SetBasicAuth("admin", adminPassword)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s on %s: %v", method, path, g.name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// mustAPI is apiCall that wants a 2xx answer.
func (g *gateway) mustAPI(t *testing.T, method, path, contentType string, body []byte) []byte {
	t.Helper()
	status, _, b := g.apiCall(t, method, path, contentType, body)
	if status/100 != 2 {
		t.Fatalf("%s %s on %s: %d %s", method, path, g.name, status, b)
	}
	return b
}

func (g *gateway) postForm(t *testing.T, path string, form url.Values) []byte {
	t.Helper()
	return g.mustAPI(t, http.MethodPost, path, "application/x-www-form-urlencoded", []byte(form.Encode()))
}

func (g *gateway) partner(t *testing.T, method, id string, doc map[string]any) {
	t.Helper()
	b, _ := json.Marshal(doc)
	path := "/api/v1/config/partners"
	if method != http.MethodPost {
		path += "/" + id
	}
	g.mustAPI(t, method, path, "application/json", b)
}

// issuePSD2 asks the CA for a sandbox QWAC or QSEAL.
func (g *gateway) issuePSD2(t *testing.T, kind string) *testpki.Leaf {
	t.Helper()
	const pw = "Keystore-Pass-2024!"
	body := g.postForm(t, "/api/v1/certificates/ca/psd2/"+strings.ToLower(orgID)+"/generate", url.Values{
		"type": {kind}, "orgId": {orgID}, "roles": {"PSP_AI,PSP_PI"}, "ncaName": {"Bank of Greece"},
		"organization": {"Example TPP S.A."}, "commonName": {"tpp.example"}, "format": {"p12"}, "password": {pw}})
	key, cert, _, err := pkcs12.DecodeChain(body, pw)
	if err != nil {
		t.Fatalf("opening the %s keystore: %v", kind, err)
	}
	return &testpki.Leaf{Cert: cert, Key: key.(crypto.Signer)}
}

// psd2Answer is what an XS2A request got back.
type psd2Answer struct {
	status     int
	code, text string
	retryAfter string
	body       string
}

// pay sends a signed payment initiation with the request id to g.
func (g *gateway) pay(t *testing.T, qwac, qseal *testpki.Leaf, requestID string) psd2Answer {
	t.Helper()
	h := http.Header{}
	h.Set("X-Request-ID", requestID)
	s := tppclient.Signer{Profile: httpsig.Piraeus, QSEAL: qseal.Cert, QSEALKey: qseal.Key, QWAC: qwac.Cert}
	body, err := s.Sign(http.MethodPost, paymentPath, h, paymentBody)
	if err != nil {
		t.Fatal(err)
	}
	h.Set("X-Client-Certificate", base64.StdEncoding.EncodeToString(qwac.Cert.Raw))
	req, _ := http.NewRequest(http.MethodPost, g.xs2a+paymentPath, bytes.NewReader(body))
	req.Header = h
	pool := x509.NewCertPool()
	pool.AddCert(g.d.root)
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: pool, Certificates: []tls.Certificate{{Certificate: [][]byte{qwac.Cert.Raw}, PrivateKey: qwac.Key, Leaf: qwac.Cert}},
	}}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("XS2A request to %s: %v", g.name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := psd2Answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: string(b)}
	var bg struct {
		TPPMessages []struct{ Code, Text string } `json:"tppMessages"`
	}
	if json.Unmarshal(b, &bg) == nil && len(bg.TPPMessages) == 1 {
		a.code, a.text = bg.TPPMessages[0].Code, bg.TPPMessages[0].Text
	}
	return a
}

// connect opens a PeSIT session on g as partner, dialing from the loopback
// address from: each check that makes authentications fail uses its own,
// because failures also count per source address.
func (g *gateway) connect(t *testing.T, from, partner, password string) (*peer.Client, error) {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", g.pesitA)
	if err != nil {
		t.Fatal(err)
	}
	c, err := peer.NewClient(conn, peer.ConnectOptions{RequesterID: partner, Password: password, ServerID: gatewayID, Timeout: 10 * time.Second})
	if err != nil {
		conn.Close()
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c, nil
}

// mustConnect wants the session accepted.
func (g *gateway) mustConnect(t *testing.T, from, partner, password string) *peer.Client {
	t.Helper()
	c, err := g.connect(t, from, partner, password)
	if err != nil {
		t.Fatalf("%s on %s from %s: %v", partner, g.name, from, err)
	}
	return c
}

// refusedWith wants an RCONNECT with reason.
func (g *gateway) refusedWith(t *testing.T, from, partner, password string, reason uint16) {
	t.Helper()
	_, err := g.connect(t, from, partner, password)
	var re *peer.RefusedError
	if !errors.As(err, &re) || re.FPDU != fpdu.TypeRConnect || re.Diag.Reason != reason {
		t.Fatalf("%s on %s from %s: %v, want RCONNECT 3-%d", partner, g.name, from, err, reason)
	}
}

// logLines returns the JSON log lines of g since mark.
func (g *gateway) logLines(mark int) []map[string]any {
	var out []map[string]any
	for _, l := range g.log.since(mark) {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// waitUntil polls cond and returns how long it took to hold.
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// waitForServerCertificate waits until addr serves a certificate from
// root: Caddy obtains it from the bankedge issuer after start.
func waitForServerCertificate(t *testing.T, xs2a string, root *x509.Certificate) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(root)
	addr := strings.TrimPrefix(xs2a, "https://")
	waitUntil(t, 30*time.Second, "server certificate on "+addr, func() bool {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
}

func parseCertPEM(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("not PEM: %s", b)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Three gateways on one Redis act as one: one CA, replays, partners,
// connection limits, failure throttling, issuance and revocations across
// them; Redis stopped and hung (refusals, no 500, one log line) and back
// (recovery without restart, nothing lost); a gateway killed with -9
// leaking its connection slots only until its leases expire.
func TestGatewaysOnOneRedis(t *testing.T) {
	srv := testredis.Start(t)
	hash, err := bcrypt.GenerateFromPassword([]byte(adminPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	d := &deployment{t: t, redis: srv, prefix: "e2e", hash: string(hash)}

	// Started together on empty Redis: they race to create the CA.
	a, b, c := d.start("A"), d.start("B"), d.start("C")
	gws := []*gateway{a, b, c}
	for _, g := range gws {
		g.waitReady()
	}

	t.Run("one CA from concurrent starts", func(t *testing.T) {
		var pems [][]byte
		for _, g := range gws {
			pems = append(pems, g.mustAPI(t, http.MethodGet, "/api/v1/certificates/ca/certificate", "", nil))
		}
		for i, p := range pems[1:] {
			if !bytes.Equal(p, pems[0]) {
				t.Fatalf("gateway %s serves another CA than A:\n%s\n%s", gws[i+1].name, p, pems[0])
			}
		}
		d.root = parseCertPEM(t, pems[0])
		created := 0
		for _, g := range gws {
			for _, l := range g.logLines(0) {
				if l["msg"] == "created the bankedge CA" {
					created++
				}
			}
		}
		if created != 1 {
			t.Fatalf("%d gateways say they created the CA, want 1", created)
		}
	})
	if d.root == nil {
		t.FailNow()
	}
	for _, g := range gws {
		waitForServerCertificate(t, g.xs2a, d.root)
	}
	qwac, qseal := a.issuePSD2(t, "qwac"), a.issuePSD2(t, "qseal")
	replayed := uuid.NewString()

	t.Run("replay across gateways", func(t *testing.T) {
		if r := a.pay(t, qwac, qseal, replayed); r.status != http.StatusOK {
			t.Fatalf("first request on A: %d %s", r.status, r.body)
		}
		for _, g := range []*gateway{b, c} {
			r := g.pay(t, qwac, qseal, replayed)
			if r.status != http.StatusBadRequest || r.code != "FORMAT_ERROR" || !strings.Contains(r.text, "already used") {
				t.Fatalf("the same request on %s: %d %s, want 400 FORMAT_ERROR X-Request-ID already used", g.name, r.status, r.body)
			}
		}
		id := uuid.NewString()
		if r := b.pay(t, qwac, qseal, id); r.status != http.StatusOK {
			t.Fatalf("first request on B: %d %s", r.status, r.body)
		}
		if r := a.pay(t, qwac, qseal, id); r.status != http.StatusBadRequest || r.code != "FORMAT_ERROR" {
			t.Fatalf("B's request on A: %d %s", r.status, r.body)
		}
	})

	t.Run("partner changes on one gateway in force on the others", func(t *testing.T) {
		const id = "P1"
		ips := []string{"127.0.0.0/8"}
		a.partner(t, http.MethodPost, "", map[string]any{"partnerId": id, "password": partnerPassword, "allowedIps": ips})
		start := time.Now()
		b.mustConnect(t, "127.0.0.11", id, partnerPassword).Release()
		t.Logf("created on A, authenticated on B after %v", time.Since(start))

		// Every change is in force at the first attempt after the API
		// answered, on every gateway: authentication reads the partner's
		// record, and the cache of verifications is bound to its hash.
		const newPassword = "Partner-Pass-25"
		a.partner(t, http.MethodPut, id, map[string]any{"password": newPassword})
		b.refusedWith(t, "127.0.0.12", id, partnerPassword, fpdu.ReasonUnauthorized)
		c.mustConnect(t, "127.0.0.11", id, newPassword).Release()

		a.partner(t, http.MethodPut, id, map[string]any{"enabled": false})
		b.refusedWith(t, "127.0.0.13", id, newPassword, fpdu.ReasonUnauthorized)
		a.partner(t, http.MethodPut, id, map[string]any{"enabled": true})
		b.mustConnect(t, "127.0.0.11", id, newPassword).Release()

		a.mustAPI(t, http.MethodDelete, "/api/v1/config/partners/"+id, "", nil)
		c.refusedWith(t, "127.0.0.14", id, newPassword, fpdu.ReasonUnauthorized)
	})

	t.Run("connection limits across gateways", func(t *testing.T) {
		const id = "LIMITED"
		b.partner(t, http.MethodPost, "", map[string]any{"partnerId": id, "password": partnerPassword, "allowedIps": []string{"127.0.0.0/8"}, "maxConnections": 2})
		onA := a.mustConnect(t, "127.0.0.1", id, partnerPassword)
		onB := b.mustConnect(t, "127.0.0.1", id, partnerPassword)
		a.refusedWith(t, "127.0.0.1", id, partnerPassword, fpdu.ReasonTooManyConnections)
		c.refusedWith(t, "127.0.0.1", id, partnerPassword, fpdu.ReasonTooManyConnections)
		if err := onB.Release(); err != nil {
			t.Fatal(err)
		}
		el := waitUntil(t, within, "slot freed on B taken on C", func() bool {
			cl, err := c.connect(t, "127.0.0.1", id, partnerPassword)
			if err == nil {
				cl.Release()
			}
			return err == nil
		})
		t.Logf("slot freed on B free on C after %v", el)
		_ = onA.Release()
	})

	t.Run("failed authentications throttled across gateways", func(t *testing.T) {
		const id = "THROTTLED"
		a.partner(t, http.MethodPost, "", map[string]any{"partnerId": id, "password": partnerPassword, "allowedIps": []string{"127.0.0.0/8"}})
		// Per partner id: wrong passwords from several addresses, spread
		// over the gateways.
		for i := range maxAuthFailures {
			gws[i%3].refusedWith(t, fmt.Sprintf("127.0.1.%d", i+1), id, "Wrong-Pass-24", fpdu.ReasonUnauthorized)
		}
		mark := b.log.mark()
		b.refusedWith(t, "127.0.1.99", id, partnerPassword, fpdu.ReasonUnauthorized)
		b.waitThrottled(t, mark, id)
		// Per source address: unknown partners from one address.
		for i := range maxAuthFailures {
			gws[i%3].refusedWith(t, "127.0.2.1", fmt.Sprintf("NOBODY%d", i), "Wrong-Pass-24", fpdu.ReasonUnauthorized)
		}
		a.partner(t, http.MethodPost, "", map[string]any{"partnerId": "INNOCENT", "password": partnerPassword, "allowedIps": []string{"127.0.0.0/8"}})
		mark = c.log.mark()
		c.refusedWith(t, "127.0.2.1", "INNOCENT", partnerPassword, fpdu.ReasonUnauthorized)
		c.waitThrottled(t, mark, "INNOCENT")
		c.mustConnect(t, "127.0.2.2", "INNOCENT", partnerPassword).Release()
	})

	issued := map[string]*gateway{}
	t.Run("unique serials under concurrent issuance", func(t *testing.T) {
		a.partner(t, http.MethodPost, "", map[string]any{"partnerId": "ISSUED", "password": partnerPassword, "allowedIps": []string{"127.0.0.0/8"}})
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ISSUED"}}, key)
		if err != nil {
			t.Fatal(err)
		}
		csr := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, g := range gws {
			for range 6 {
				wg.Go(func() {
					for range 3 {
						b := g.postForm(t, "/api/v1/certificates/ca/sign", url.Values{"csrPem": {csr}, "purpose": {"CLIENT"}, "partnerId": {"ISSUED"}, "validityDays": {"30"}})
						serial := fmt.Sprintf("%X", parseCertPEM(t, b).SerialNumber)
						mu.Lock()
						if prev, dup := issued[serial]; dup {
							t.Errorf("serial %s issued twice, by %s and %s", serial, prev.name, g.name)
						}
						issued[serial] = g
						mu.Unlock()
					}
				})
			}
		}
		wg.Wait()
		for _, g := range gws {
			var recs []struct{ Serial string }
			if err := json.Unmarshal(g.mustAPI(t, http.MethodGet, "/api/v1/certificates/ca/issued?partnerId=ISSUED", "", nil), &recs); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range recs {
				got = append(got, strings.TrimLeft(r.Serial, "0"))
			}
			for serial := range issued {
				if !slices.Contains(got, strings.TrimLeft(serial, "0")) {
					t.Errorf("serial %s (issued on %s) missing from the inventory on %s", serial, issued[serial].name, g.name)
				}
			}
			if len(recs) != len(issued) {
				t.Errorf("inventory on %s holds %d certificates of ISSUED, %d were issued", g.name, len(recs), len(issued))
			}
		}
	})

	var revokedOnB string
	t.Run("revocation in force on the other gateways within 1s", func(t *testing.T) {
		qwac2 := b.issuePSD2(t, "qwac")
		// B has the revocation view loaded: the change must come from A.
		if r := b.pay(t, qwac2, qseal, uuid.NewString()); r.status != http.StatusOK {
			t.Fatalf("before the revocation: %d %s", r.status, r.body)
		}
		a.postForm(t, "/api/v1/certificates/ca/revoke", url.Values{"serial": {fmt.Sprintf("%X", qwac2.Cert.SerialNumber)}, "reason": {"keyCompromise"}})
		el := waitUntil(t, within, "revocation on A refused on B", func() bool {
			r := b.pay(t, qwac2, qseal, uuid.NewString())
			return r.status/100 == 4 && r.code == "CERTIFICATE_REVOKED"
		})
		t.Logf("revoked on A, refused on B after %v", el)
		if r := c.pay(t, qwac2, qseal, uuid.NewString()); r.code != "CERTIFICATE_REVOKED" {
			t.Fatalf("revoked QWAC on C: %d %s", r.status, r.body)
		}
		// Revocations from several gateways end up in one CRL.
		for serial := range issued {
			revokedOnB = serial
			break
		}
		b.postForm(t, "/api/v1/certificates/ca/revoke", url.Values{"serial": {revokedOnB}, "reason": {"superseded"}})
		for _, g := range gws {
			crl, err := x509.ParseRevocationList(g.mustAPI(t, http.MethodGet, "/api/v1/certificates/ca/crl", "", nil))
			if err != nil {
				t.Fatal(err)
			}
			var listed []string
			for _, e := range crl.RevokedCertificateEntries {
				listed = append(listed, fmt.Sprintf("%X", e.SerialNumber))
			}
			for _, want := range []string{fmt.Sprintf("%X", qwac2.Cert.SerialNumber), revokedOnB} {
				if !slices.Contains(listed, want) {
					t.Errorf("CRL from %s lacks %s: %v", g.name, want, listed)
				}
			}
		}
	})

	t.Run("Redis down: refusals, no 500, one log line; back: recovery, nothing lost", func(t *testing.T) {
		// INNOCENT (no maxConnections) authenticates on B just before:
		// its password is in B's cache for the record it used.
		b.mustConnect(t, "127.0.3.4", "INNOCENT", partnerPassword).Release()
		marks := map[*gateway]int{}
		for _, g := range gws {
			marks[g] = g.log.mark()
		}
		srv.Kill()

		r := a.pay(t, qwac, qseal, uuid.NewString())
		if r.status != http.StatusServiceUnavailable || r.code != "SERVICE_UNAVAILABLE" || r.retryAfter == "" {
			t.Errorf("XS2A request with Redis down: %d Retry-After %q %s", r.status, r.retryAfter, r.body)
		}
		// A CONNECT that needs Redis gets 3-322: a partner with
		// maxConnections (a lease), one whose authentication is not cached
		// (an unknown partner, a wrong password: nothing is verified, and
		// no refusal tells anything about the credentials). A cached one
		// without maxConnections goes on.
		b.mustConnect(t, "127.0.3.4", "INNOCENT", partnerPassword).Release()
		for _, p := range []struct{ id, password string }{{"LIMITED", partnerPassword}, {"NOBODY", partnerPassword}, {"INNOCENT", "Wrong-Pass-2024"}} {
			start := time.Now()
			b.refusedWith(t, "127.0.3.1", p.id, p.password, fpdu.ReasonCallLater)
			if el := time.Since(start); el > 3*time.Second {
				t.Errorf("RCONNECT 3-322 for %s after %v, beyond the connect timeout", p, el)
			}
		}
		requests := []struct{ method, path, ctype, body string }{
			{http.MethodGet, "/api/v1/config/partners", "", ""},
			{http.MethodGet, "/api/v1/config/partners/INNOCENT", "", ""},
			{http.MethodPost, "/api/v1/config/partners", "application/json", `{"partnerId":"LATE","password":"Partner-Pass-24","allowedIps":["127.0.0.0/8"]}`},
			{http.MethodPut, "/api/v1/config/partners/INNOCENT", "application/json", `{"enabled":false}`},
			{http.MethodDelete, "/api/v1/config/partners/THROTTLED", "", ""},
			{http.MethodGet, "/api/v1/certificates/ca/issued", "", ""},
			{http.MethodPost, "/api/v1/certificates/ca/revoke", "application/x-www-form-urlencoded", "serial=" + fmt.Sprintf("%X", qwac.Cert.SerialNumber)},
			{http.MethodGet, "/api/v1/certificates/ca/crl", "", ""},
			{http.MethodPost, "/api/v1/certificates/ca/partner/INNOCENT/generate", "application/x-www-form-urlencoded", "format=pem&encryptKey=false"},
		}
		for _, rq := range requests {
			status, h, body := c.apiCall(t, rq.method, rq.path, rq.ctype, []byte(rq.body))
			var e struct{ Error string }
			if status != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || json.Unmarshal(body, &e) != nil || e.Error == "" {
				t.Errorf("%s %s with Redis down: %d Retry-After %q %s, want 503 JSON with Retry-After", rq.method, rq.path, status, h.Get("Retry-After"), body)
			}
		}
		for _, g := range gws {
			var outage, errs []string
			for _, l := range g.logLines(marks[g]) {
				if l["level"] != "error" {
					continue
				}
				errs = append(errs, fmt.Sprint(l["logger"], ": ", l["msg"]))
				if strings.HasPrefix(fmt.Sprint(l["msg"]), "shared state on Redis unavailable") {
					outage = append(outage, fmt.Sprint(l))
				}
			}
			if len(outage) != 1 || len(errs) != 1 {
				t.Errorf("gateway %s logged %d outage lines and %d error lines during one outage, want one: %q", g.name, len(outage), len(errs), errs)
			}
		}

		// Restarted from its append-only file: everything works again,
		// without restarting the gateways, and nothing confirmed is lost.
		srv.Restart()
		el := waitUntil(t, 10*time.Second, "XS2A on A working again", func() bool {
			return a.pay(t, qwac, qseal, uuid.NewString()).status == http.StatusOK
		})
		t.Logf("XS2A working again %v after Redis came back", el)
		waitUntil(t, 10*time.Second, "PeSIT on B working again", func() bool {
			cl, err := b.connect(t, "127.0.3.2", "INNOCENT", partnerPassword)
			if err == nil {
				cl.Release()
			}
			return err == nil
		})
		waitUntil(t, 10*time.Second, "admin API on C working again", func() bool {
			status, _, _ := c.apiCall(t, http.MethodGet, "/api/v1/config/partners", "", nil)
			return status == http.StatusOK
		})
		if r := c.pay(t, qwac, qseal, replayed); r.code != "FORMAT_ERROR" {
			t.Errorf("a request id from before the outage on C: %d %s, want a replay", r.status, r.body)
		}
		var partners []struct{ PartnerID string }
		_ = json.Unmarshal(c.mustAPI(t, http.MethodGet, "/api/v1/config/partners", "", nil), &partners)
		var ids []string
		for _, p := range partners {
			ids = append(ids, p.PartnerID)
		}
		if !slices.Equal(ids, []string{"INNOCENT", "ISSUED", "LIMITED", "THROTTLED"}) {
			t.Errorf("partners after the restart: %v", ids)
		}
		var recs []struct{ Serial, Status string }
		_ = json.Unmarshal(a.mustAPI(t, http.MethodGet, "/api/v1/certificates/ca/issued?partnerId=ISSUED", "", nil), &recs)
		revoked := 0
		for _, r := range recs {
			if r.Status == "revoked" {
				revoked++
			}
		}
		if len(recs) != len(issued) || revoked != 1 {
			t.Errorf("inventory after the restart: %d certificates, %d revoked; want %d and 1", len(recs), revoked, len(issued))
		}
		for _, g := range gws {
			back := 0
			for _, l := range g.logLines(marks[g]) {
				if strings.HasPrefix(fmt.Sprint(l["msg"]), "shared state on Redis available again") {
					back++
				}
			}
			if back != 1 {
				t.Errorf("gateway %s logged %d recovery lines, want 1", g.name, back)
			}
		}
	})

	t.Run("Redis hung: answers within the timeouts", func(t *testing.T) {
		srv.Pause()
		start := time.Now()
		b.refusedWith(t, "127.0.3.3", "NOBODY", partnerPassword, fpdu.ReasonCallLater)
		if el := time.Since(start); el > 3*time.Second {
			t.Errorf("RCONNECT 3-322 after %v with Redis hung, beyond the connect timeout of 3s", el)
		}
		start = time.Now()
		if r := a.pay(t, qwac, qseal, uuid.NewString()); r.status != http.StatusServiceUnavailable {
			t.Errorf("XS2A request with Redis hung: %d %s", r.status, r.body)
		}
		t.Logf("XS2A answered 503 after %v with Redis hung", time.Since(start))
		srv.Resume()
		waitUntil(t, 10*time.Second, "XS2A on A working again", func() bool {
			return a.pay(t, qwac, qseal, uuid.NewString()).status == http.StatusOK
		})
	})

	t.Run("gateway killed with -9: its slots come back after the lease TTL", func(t *testing.T) {
		const id = "ONESLOT"
		a.partner(t, http.MethodPost, "", map[string]any{"partnerId": id, "password": partnerPassword, "allowedIps": []string{"127.0.0.0/8"}, "maxConnections": 1})
		c.mustConnect(t, "127.0.0.1", id, partnerPassword)
		a.refusedWith(t, "127.0.0.1", id, partnerPassword, fpdu.ReasonTooManyConnections)
		c.kill9()
		killed := time.Now()
		el := waitUntil(t, leaseTTL+2*time.Second, "the killed gateway's slot free", func() bool {
			cl, err := a.connect(t, "127.0.0.1", id, partnerPassword)
			if err == nil {
				cl.Release()
			}
			return err == nil
		})
		t.Logf("slot of the killed gateway free after %v (lease TTL %v)", el, leaseTTL)
		if time.Since(killed) < leaseTTL/2 {
			t.Errorf("slot free %v after the kill, before its lease could expire", time.Since(killed))
		}
	})
}

// waitThrottled waits for the audit line (written after the refusal is
// sent) that refuses partner as throttled.
func (g *gateway) waitThrottled(t *testing.T, mark int, partner string) {
	t.Helper()
	waitUntil(t, 5*time.Second, "audit line of the throttled attempt of "+partner+" on "+g.name, func() bool {
		for _, l := range g.logLines(mark) {
			if l["msg"] == "pesit.connect" && l["partner"] == partner && strings.HasPrefix(fmt.Sprint(l["reason"]), "throttled") {
				return true
			}
		}
		return false
	})
}

// With manual_initialize, the CA initialised through one gateway's API is
// the other gateways' without a restart, as soon as they have opened it.
func TestManualInitializeAcrossGateways(t *testing.T) {
	srv := testredis.Start(t)
	hash, err := bcrypt.GenerateFromPassword([]byte(adminPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	d := &deployment{t: t, redis: srv, prefix: "manual", hash: string(hash)}
	var gws []*gateway
	for _, name := range []string{"A", "B"} {
		api := testcaddy.FreePort(t)
		cfg := fmt.Sprintf(`{
	admin off
	persist_config off
	storage redis {
		address %s
		key_prefix %s
	}
	log {
		output stderr
		format json
	}
	bankedge {
		ca {
			key_passphrase %s
			manual_initialize
		}
	}
}
http://127.0.0.1:%d {
	basic_auth {
		admin %s
	}
	bankedge_api
}
`, srv.Addr, d.prefix, caPassphrase, api, d.hash)
		g := &gateway{process: startProcess(t, name, cfg), d: d, api: fmt.Sprintf("http://127.0.0.1:%d", api)}
		g.waitReady()
		gws = append(gws, g)
	}
	a, b := gws[0], gws[1]
	if status, _, body := b.apiCall(t, http.MethodGet, "/api/v1/certificates/ca/certificate", "", nil); status != http.StatusConflict {
		t.Fatalf("CA certificate before the initialisation: %d %s", status, body)
	}
	a.mustAPI(t, http.MethodPost, "/api/v1/certificates/ca/initialize", "application/x-www-form-urlencoded", nil)
	want := a.mustAPI(t, http.MethodGet, "/api/v1/certificates/ca/certificate", "", nil)
	var got []byte
	// Opening the CA decrypts its key (PBKDF2), which takes seconds under
	// the race detector on a loaded machine: the bound is not "within".
	el := waitUntil(t, 10*time.Second, "the CA initialised on A served by B", func() bool {
		status, _, body := b.apiCall(t, http.MethodGet, "/api/v1/certificates/ca/certificate", "", nil)
		got = body
		return status == http.StatusOK
	})
	if !bytes.Equal(got, want) {
		t.Fatalf("B serves another CA than A:\n%s\n%s", got, want)
	}
	t.Logf("initialised on A, served by B after %v", el)
}

package psd2_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/mholt/caddy-l4/layer4"
	_ "github.com/mholt/caddy-l4/modules/l4proxy"
	_ "github.com/mholt/caddy-l4/modules/l4subroute"
	_ "github.com/mholt/caddy-l4/modules/l4tls"
	"golang.org/x/crypto/bcrypt"

	"github.com/bankedge/bankedge"
	"github.com/bankedge/bankedge/internal/testcaddy"
	"github.com/bankedge/bankedge/modules/psd2/httpsig"
	"github.com/bankedge/bankedge/modules/psd2/tppclient"
)

// TestExampleXS2A serves Caddyfile.example, as `bankedge sandbox` does, and
// checks its XS2A site as a TPP developer and an administrator meet it: the
// handshake never fails for want of a client certificate, so every refusal
// is a Berlin Group answer; 127.0.0.1 and ::1 work; every request leaves one
// JSON access log line with the TPP and the result; a certificate the CA
// revoked is refused; the server bounds slow clients.
func TestExampleXS2A(t *testing.T) {
	dir := t.TempDir()
	const adminPassword = "Admin-Pass-2024!"
	hash, err := bcrypt.GenerateFromPassword([]byte(adminPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	ports := map[string]int{}
	for _, name := range []string{"XS2A", "ASPSP", "API", "PESIT", "PESITS", "PESIT_UPSTREAM", "ADMIN"} {
		ports[name] = testcaddy.FreePort(t)
		t.Setenv("BANKEDGE_"+name+"_PORT", fmt.Sprint(ports[name]))
	}
	t.Setenv("BANKEDGE_SANDBOX", dir)
	t.Setenv("BANKEDGE_CA_PASSWORD", "example-test-ca-passphrase")
	t.Setenv("BANKEDGE_ADMIN_PASSWORD_HASH", string(hash))
	t.Setenv("BANKEDGE_DEMO_PARTNER_PASSWORD", "Demo1234")
	t.Setenv("BANKEDGE_UPSTREAM_PESIT_PASSWORD", "Upst1234")

	adapted := testcaddy.Adapt(t, string(bankedge.ExampleCaddyfile))
	checkExampleServerOptions(t, adapted, ports["XS2A"])
	checkExampleLogs(t, adapted)
	testcaddy.Load(t, string(bankedge.ExampleCaddyfile))

	api := caAPI{base: fmt.Sprintf("http://127.0.0.1:%d", ports["API"]), user: "admin", password: adminPassword}
	g := &caGateway{api: api, root: api.caCertificate(t)}
	hosts := []string{"localhost", "127.0.0.1", "[::1]"}
	for _, h := range hosts {
		waitForServerCertificate(t, fmt.Sprintf("%s:%d", h, ports["XS2A"]), g.root)
	}
	base := func(host string) string { return fmt.Sprintf("https://%s:%d", host, ports["XS2A"]) }

	t.Run("no client certificate: 401 CERTIFICATE_MISSING, on every address", func(t *testing.T) {
		pool := x509.NewCertPool()
		pool.AddCert(g.root)
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		for _, h := range hosts {
			resp, err := client.Post(base(h)+paymentPath, "application/json", strings.NewReader("{}"))
			if err != nil {
				t.Fatalf("%s: %v", h, err)
			}
			expectError(t, readResponse(t, resp), http.StatusUnauthorized, "CERTIFICATE_MISSING", "")
		}
	})

	qwac := api.issuePSD2(t, "qwac", orgID, "PSP_AI,PSP_PI")
	qseal := api.issuePSD2(t, "qseal", orgID, "PSP_AI,PSP_PI")

	t.Run("a signed payment reaches the mock ASPSP with the verified identity only", func(t *testing.T) {
		for _, h := range hosts {
			g.xs2a = base(h)
			hdr, body := signed(t, qwac, qseal, http.MethodPost, paymentPath, paymentBody)
			hdr.Set("X-Original-URL", "/admin")
			hdr.Set("X-Forwarded-For", "203.0.113.66")
			hdr.Set("X-TPP-Roles", "PSP_AS")
			r := g.send(t, qwac, hdr, body)
			expectOK(t, r)
			tpp, _ := r.echo["tpp"].(map[string]any)
			if tpp["orgId"] != orgID || tpp["roles"] != "PSP_AI,PSP_PI" {
				t.Errorf("%s: the ASPSP saw %v", h, tpp)
			}
			seen, _ := r.echo["headers"].(map[string]any)
			if seen["X-Original-Url"] != nil || fmt.Sprint(seen["X-Forwarded-For"]) == "[203.0.113.66]" {
				t.Errorf("%s: client routing headers reached the ASPSP: %v %v", h, seen["X-Original-Url"], seen["X-Forwarded-For"])
			}
			if fmt.Sprint(seen["X-Real-Ip"]) == "[]" || seen["X-Real-Ip"] == nil {
				t.Errorf("%s: no X-Real-IP from the gateway", h)
			}
		}
	})

	t.Run("a profile mismatch says which profile and what it hashes", func(t *testing.T) {
		// A TPP that signs as the Berlin Group does, at the sandbox,
		// which follows Piraeus.
		g.xs2a = base("localhost")
		hdr := http.Header{"X-Client-Certificate": {base64.StdEncoding.EncodeToString(qwac.Cert.Raw)}}
		s := tppclient.Signer{Profile: httpsig.BerlinGroup, QSEAL: qseal.Cert, QSEALKey: qseal.Key}
		body, err := s.Sign(http.MethodPost, paymentPath, hdr, paymentBody)
		if err != nil {
			t.Fatal(err)
		}
		expectError(t, g.send(t, qwac, hdr, body), http.StatusUnauthorized, "SIGNATURE_INVALID",
			"Digest does not match the request body (profile piraeus: SHA-256 of the minified JSON body")
	})

	t.Run("the XS2A listener caps stalled handshakes per address", func(t *testing.T) {
		addr := fmt.Sprintf("127.0.0.1:%d", ports["XS2A"])
		// A TPP from 127.0.0.3 keeps a connection on which one request
		// with its QWAC was accepted: that connection no longer counts.
		tpp := g.client(qwac)
		tr := tpp.Transport.(*http.Transport)
		tr.DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 3)}}).DialContext
		g.xs2a = base("127.0.0.1")
		hdr, body := signed(t, qwac, qseal, http.MethodPost, paymentPath, paymentBody)
		req, _ := http.NewRequest(http.MethodPost, g.xs2a+paymentPath, bytes.NewReader(body))
		req.Header = hdr
		resp, err := tpp.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		expectOK(t, readResponse(t, resp))
		defer tr.CloseIdleConnections()

		const perAddress = 16 // max_pre_auth_per_ip in the example
		for _, src := range []net.IP{net.IPv4(127, 0, 0, 2), net.IPv4(127, 0, 0, 3)} {
			alive := stalledHandshakes(t, src, addr, perAddress+4)
			if alive != perAddress {
				t.Errorf("from %s: %d of %d stalled handshakes held, want %d", src, alive, perAddress+4, perAddress)
			}
		}
		// Meanwhile another address is served.
		g.xs2a = base("localhost")
		expectOK(t, g.pay(t, qwac, qseal))
	})

	t.Run("a revoked sandbox QWAC is refused", func(t *testing.T) {
		api.revoke(t, qwac.Cert)
		g.xs2a = base("127.0.0.1")
		hdr, body := signed(t, qwac, qseal, http.MethodPost, paymentPath, paymentBody)
		expectError(t, g.send(t, qwac, hdr, body), http.StatusUnauthorized, "CERTIFICATE_REVOKED", "QWAC")
	})

	t.Run("one JSON access log line per request, with the TPP and the result", func(t *testing.T) {
		lines := readJSONLines(t, filepath.Join(dir, "access.log"))
		count := map[string]int{}
		for _, l := range lines {
			res, _ := l["psd2_result"].(string)
			count[res]++
			if res != "CERTIFICATE_MISSING" && l["tpp_org_id"] != orgID {
				t.Errorf("%s line without the TPP: %v", res, l)
			}
			if res != "ok" && l["psd2_text"] == "" {
				t.Errorf("refusal without its reason: %v", l)
			}
			req, _ := l["request"].(map[string]any)
			headers, _ := req["headers"].(map[string]any)
			if headers["X-Client-Certificate"] != nil || headers["Tpp-Signature-Certificate"] != nil {
				t.Errorf("certificates in the access log: %v", headers)
			}
		}
		want := map[string]int{"CERTIFICATE_MISSING": 3, "ok": 5, "SIGNATURE_INVALID": 1, "CERTIFICATE_REVOKED": 1}
		if fmt.Sprint(count) != fmt.Sprint(want) {
			t.Errorf("access log results %v, want %v", count, want)
		}
	})

	t.Run("the audit log's timestamps are ISO-8601", func(t *testing.T) {
		lines := readJSONLines(t, filepath.Join(dir, "audit.log"))
		if len(lines) == 0 {
			t.Fatal("no audit line for the issuances and the revocation")
		}
		for _, l := range lines {
			for _, field := range []string{"ts", "not_after"} {
				v, present := l[field]
				if !present {
					continue
				}
				s, ok := v.(string)
				if _, err := time.Parse("2006-01-02T15:04:05.000Z0700", s); !ok || err != nil {
					t.Errorf("%s %v is not ISO-8601 in %v", field, v, l)
				}
			}
		}
	})
}

// checkExampleServerOptions checks the XS2A server of the adapted example:
// slow clients bounded, strict SNI off (psd2_qwac checks the certificate
// itself), and a connection policy that asks clients without SNI for a
// certificate too.
func checkExampleServerOptions(t *testing.T, cfg []byte, port int) {
	t.Helper()
	var c struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Listen            []string `json:"listen"`
					ReadTimeout       int64    `json:"read_timeout"`
					ReadHeaderTimeout int64    `json:"read_header_timeout"`
					ReadIdleTimeout   int64    `json:"read_idle_timeout"`
					ReadMinRate       int64    `json:"read_min_rate"`
					StrictSNIHost     *bool    `json:"strict_sni_host"`
					Policies          []struct {
						Match      map[string][]string `json:"match"`
						ClientAuth *struct {
							Mode string `json:"mode"`
						} `json:"client_authentication"`
					} `json:"tls_connection_policies"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(cfg, &c); err != nil {
		t.Fatal(err)
	}
	for _, srv := range c.Apps.HTTP.Servers {
		if len(srv.Listen) != 1 || srv.Listen[0] != fmt.Sprintf("guard+tcp/:%d", port) {
			continue
		}
		if srv.ReadHeaderTimeout <= 0 || srv.ReadHeaderTimeout > int64(15*time.Second) ||
			srv.ReadTimeout <= 0 || srv.ReadIdleTimeout <= 0 || srv.ReadMinRate <= 0 {
			t.Errorf("XS2A server timeouts: read_header %d, read_timeout %d, read_idle %d, min rate %d; want all set",
				srv.ReadHeaderTimeout, srv.ReadTimeout, srv.ReadIdleTimeout, srv.ReadMinRate)
		}
		if srv.StrictSNIHost == nil || *srv.StrictSNIHost {
			t.Error("strict_sni_host is on: clients connecting by IP address get 421")
		}
		for _, p := range srv.Policies {
			if p.ClientAuth == nil {
				continue
			}
			if p.ClientAuth.Mode != "request" {
				t.Errorf("client_auth mode %q: a TPP without a certificate gets a TLS alert, not a Berlin Group error", p.ClientAuth.Mode)
			}
			if !slices.Contains(p.Match["sni"], "") {
				t.Errorf("the client-auth policy matches SNI %q, not clients without SNI", p.Match["sni"])
			}
		}
		return
	}
	t.Fatalf("no server listens on :%d", port)
}

// checkExampleLogs checks that no log of the adapted example takes
// reverse_proxy's logger, which would make it encode every request's
// headers (about 5 KB with PSD2's certificates) on every round trip.
func checkExampleLogs(t *testing.T, cfg []byte) {
	t.Helper()
	var c struct {
		Logging struct {
			Logs map[string]struct {
				Include []string `json:"include"`
				Exclude []string `json:"exclude"`
			} `json:"logs"`
		} `json:"logging"`
	}
	if err := json.Unmarshal(cfg, &c); err != nil {
		t.Fatal(err)
	}
	const module = "http.handlers.reverse_proxy"
	covers := func(namespaces []string) bool {
		return slices.ContainsFunc(namespaces, func(ns string) bool { return ns == module || strings.HasPrefix(module, ns+".") })
	}
	for name, l := range c.Logging.Logs {
		if (len(l.Include) == 0 || covers(l.Include)) && !slices.Contains(l.Exclude, module) {
			t.Errorf("log %q takes %s's logger (include %v, exclude %v)", name, module, l.Include, l.Exclude)
		}
	}
}

// readJSONLines reads a JSON-lines log.
func readJSONLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %v\n%s", err, sc.Text())
		}
		out = append(out, m)
	}
	return out
}

// stalledHandshakes opens n connections from src to addr that send the
// first bytes of a TLS ClientHello and stall, and returns how many the
// server still holds a moment later (the others it reset at once). They
// are closed when the test ends.
func stalledHandshakes(t *testing.T, src net.IP, addr string, n int) int {
	t.Helper()
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range n {
		c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 2 * time.Second}).Dial("tcp", addr)
		if err != nil {
			continue
		}
		conns = append(conns, c)
		_, _ = c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00})
	}
	time.Sleep(500 * time.Millisecond)
	alive := 0
	buf := make([]byte, 1)
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, err := c.Read(buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			alive++
		}
	}
	return alive
}

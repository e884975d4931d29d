package trust_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/bankedge/bankedge/internal/testcaddy"
	"github.com/bankedge/bankedge/internal/testpki"
	"github.com/bankedge/bankedge/internal/testtsl"
	"github.com/bankedge/bankedge/modules/trust"
)

// site is a Caddy with two mTLS sites trusting the EU lists, one for QWACs
// (service web, Greece and Cyprus) and one for seals (service eseal,
// Cyprus only).
type site struct {
	sc             *testtsl.Scenario
	serverCA       *testpki.CA
	web, eseal     string
	caddyfile      string
	storage, files string
}

func newSite(t *testing.T, sc *testtsl.Scenario, storage string) *site {
	t.Helper()
	s := &site{sc: sc, serverCA: testpki.NewCA(t, "Server CA"), storage: storage, files: t.TempDir()}
	srv := s.serverCA.Server(t, "localhost")
	keyDER, err := x509.MarshalPKCS8PrivateKey(srv.Key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(s.files, "server.pem"), filepath.Join(s.files, "server-key.pem")
	if err := os.WriteFile(certFile, testpki.CertPEM(srv.Cert), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	webPort, esealPort := testcaddy.FreePort(t), testcaddy.FreePort(t)
	s.web, s.eseal = fmt.Sprintf("https://localhost:%d", webPort), fmt.Sprintf("https://localhost:%d", esealPort)
	block := func(service, territories string) string {
		return fmt.Sprintf(`
		client_auth {
			mode require_and_verify
			trust_pool eu_trusted_list {
				lotl_url      %s
				lotl_signers  %s
				service       %s
				territories   %s
				refresh       6h
			}
		}`, sc.URL(testtsl.LOTLPath), sc.SignersFile, service, territories)
	}
	s.caddyfile = testcaddy.Globals(storage, "") + fmt.Sprintf(`
https://localhost:%d {
	tls %s %s {%s
	}
	respond "web {http.request.tls.client.subject}"
}
https://localhost:%d {
	tls %s %s {%s
	}
	respond "eseal {http.request.tls.client.subject}"
}
`, webPort, certFile, keyFile, block("web", "GR CY"), esealPort, certFile, keyFile, block("eseal", "CY"))
	return s
}

// get calls url with a client certificate issued by ca and returns the
// body, or the error of the handshake or request.
func (s *site) get(t *testing.T, url string, ca *testpki.CA) (string, error) {
	t.Helper()
	key := testpki.ECKey(t)
	cert := ca.Issue(t, &x509.Certificate{
		Subject:   pkix.Name{CommonName: "TPP of " + ca.Cert.Subject.CommonName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, key.Public())
	roots := x509.NewCertPool()
	roots.AddCert(s.serverCA.Cert)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs:      roots,
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}},
	}}}
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body), nil
}

func (s *site) expect(t *testing.T, url string, ca *testpki.CA, pass bool) {
	t.Helper()
	body, err := s.get(t, url, ca)
	switch {
	case pass && err != nil:
		t.Fatalf("%s refused a client of %s: %v", url, ca.Cert.Subject.CommonName, err)
	case pass && !strings.Contains(body, ca.Cert.Subject.CommonName):
		t.Fatalf("%s answered %q", url, body)
	case !pass && err == nil:
		t.Fatalf("%s let in a client of %s: %q", url, ca.Cert.Subject.CommonName, body)
	}
}

// The pool works where Caddy takes a trust_pool: a QWAC-like client
// certificate from the granted QTSP passes; from the withdrawn one, or from
// the one granted for seals only, it is refused; the eseal pool takes the
// seal QTSP. Both pools (with different territories) and a reload share
// one fetch of each list.
func TestTrustPoolInClientAuth(t *testing.T) {
	trust.SetDocumentReuse(5 * time.Minute)
	sc := testtsl.NewScenario(t)
	s := newSite(t, sc, filepath.Join(t.TempDir(), "storage"))
	testcaddy.Load(t, s.caddyfile)

	s.expect(t, s.web, sc.GrantedCA, true)
	s.expect(t, s.web, sc.WithdrawnCA, false)
	s.expect(t, s.web, sc.ESealCA, false)
	s.expect(t, s.eseal, sc.ESealCA, true)
	s.expect(t, s.eseal, sc.GrantedCA, false) // a Greek QTSP; this pool takes Cyprus only
	s.expect(t, s.eseal, sc.WithdrawnCA, false)

	hits := func() [3]int {
		return [3]int{sc.Server.Hits(testtsl.LOTLPath), sc.Server.Hits(testtsl.ELPath), sc.Server.Hits(testtsl.CYPath)}
	}
	if h := hits(); h != [3]int{1, 1, 1} {
		t.Fatalf("fetches of LOTL, EL, CY = %v, want one each for two pools", h)
	}
	// A reload keeps the source and its lists.
	cfg := strings.Replace(s.caddyfile, `respond "web`, `respond "reloaded web`, 1)
	testcaddy.Reload(t, cfg)
	body, err := s.get(t, s.web, sc.GrantedCA)
	if err != nil || !strings.HasPrefix(body, "reloaded web") {
		t.Fatalf("after reload: %q %v", body, err)
	}
	if h := hits(); h != [3]int{1, 1, 1} {
		t.Fatalf("fetches after a reload = %v, want none more", h)
	}
}

// Last good copies in storage carry a restart without network; a first
// start with neither fails with a clear error.
func TestTrustPoolRestartWithoutNetwork(t *testing.T) {
	trust.SetDocumentReuse(0)
	defer trust.SetDocumentReuse(5 * time.Minute)
	sc := testtsl.NewScenario(t)
	storage := filepath.Join(t.TempDir(), "storage")
	s := newSite(t, sc, storage)
	if err := caddy.Load(testcaddy.Adapt(t, s.caddyfile), true); err != nil {
		t.Fatal(err)
	}
	s.expect(t, s.web, sc.GrantedCA, true)
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}

	sc.Server.Close()
	testcaddy.Load(t, s.caddyfile)
	s.expect(t, s.web, sc.GrantedCA, true)
	s.expect(t, s.web, sc.WithdrawnCA, false)
	_ = caddy.Stop()

	fresh := newSite(t, sc, filepath.Join(t.TempDir(), "empty-storage"))
	err := testcaddy.LoadError(t, fresh.caddyfile)
	if !strings.Contains(err.Error(), "no usable LOTL") || !strings.Contains(err.Error(), "needs the network or a last good copy") {
		t.Fatalf("error does not explain: %v", err)
	}
}

// CurrentCertPool follows refreshes (the PSD2 handlers' live view) while
// CertPool stays what Caddy's TLS code read; a refused list keeps the last
// good one.
func TestTrustPoolLiveView(t *testing.T) {
	trust.SetDocumentReuse(0)
	defer trust.SetDocumentReuse(5 * time.Minute)
	sc := testtsl.NewScenario(t)
	s := newSite(t, sc, filepath.Join(t.TempDir(), "storage"))
	testcaddy.Load(t, s.caddyfile)

	raw, _ := json.Marshal(map[string]any{"lotl_url": sc.URL(testtsl.LOTLPath), "lotl_signers": sc.SignersFile, "territories": []string{"EL"}})
	ctx := caddy.ActiveContext()
	mod, err := ctx.LoadModuleByID("tls.ca_pool.source.eu_trusted_list", raw)
	if err != nil {
		t.Fatal(err)
	}
	pool := mod.(*trust.EUTrustedList)
	initial := pool.CertPool()
	if pool.CurrentCertPool() != initial {
		t.Fatal("the live pool differs from the loaded one before any refresh")
	}
	if cas := pool.CurrentTrustedCAs(); len(cas) != 1 || cas[0].Provider != "Granted QTSP S.A." || cas[0].Territory != "EL" {
		t.Fatalf("trusted CAs %+v", cas)
	}
	if w := pool.NextRefresh(time.Now()); w != 6*time.Hour {
		t.Fatalf("next refresh in %s, want the 6h default", w)
	}

	verifies := func(p *x509.CertPool, ca *testpki.CA) bool {
		_, err := ca.Cert.Verify(x509.VerifyOptions{Roots: p})
		return err == nil
	}
	// Nothing changed: the same pool.
	if err := pool.RefreshNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	if pool.CurrentCertPool() != initial {
		t.Fatal("an unchanged list replaced the pool")
	}
	// EL sequence 2 grants the formerly withdrawn QTSP.
	el := sc.EL(2)
	el.Providers[1].Services[0].Status = testtsl.Granted
	sc.Server.Put(testtsl.ELPath, sc.ELSigner.Sign(t, el.XML()))
	if err := pool.RefreshNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	live := pool.CurrentCertPool()
	if live == initial || !verifies(live, sc.WithdrawnCA) || verifies(pool.CertPool(), sc.WithdrawnCA) {
		t.Fatal("the live pool did not follow the new list, or the loaded one changed")
	}
	// A tampered sequence 3 is refused: sequence 2 stays, and the next
	// refresh comes sooner.
	el3 := sc.EL(3)
	signed := sc.ELSigner.Sign(t, el3.XML())
	sc.Server.Put(testtsl.ELPath, []byte(strings.Replace(string(signed), "Withdrawn QTSP S.A.", "Other QTSP S.A.", 1)))
	if err := pool.RefreshNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	if pool.CurrentCertPool() != live {
		t.Fatal("a refused list changed the pool")
	}
	if w := pool.NextRefresh(time.Now()); w != 15*time.Minute {
		t.Fatalf("next refresh after a failure in %s, want 15m", w)
	}
}

// A refresh interval shorter than the document cache's reuse still reads
// the lists anew on each refresh: with `refresh 1s`, a QTSP withdrawn from
// the served list leaves the live pool within seconds, with no test hook
// turning the cache off.
func TestShortRefreshReadsListsAnew(t *testing.T) {
	trust.SetDocumentReuse(5 * time.Minute) // the production default
	sc := testtsl.NewScenario(t)
	testcaddy.Load(t, testcaddy.Globals(filepath.Join(t.TempDir(), "storage"), "")+fmt.Sprintf("http://127.0.0.1:%d {\n\trespond ok\n}\n", testcaddy.FreePort(t)))
	raw, _ := json.Marshal(map[string]any{"lotl_url": sc.URL(testtsl.LOTLPath), "lotl_signers": sc.SignersFile, "territories": []string{"EL"}, "refresh": "1s"})
	mod, err := caddy.ActiveContext().LoadModuleByID("tls.ca_pool.source.eu_trusted_list", raw)
	if err != nil {
		t.Fatal(err)
	}
	pool := mod.(*trust.EUTrustedList)
	granted := func() bool {
		for _, ca := range pool.CurrentTrustedCAs() {
			if ca.Provider == "Granted QTSP S.A." {
				return true
			}
		}
		return false
	}
	if !granted() {
		t.Fatalf("trusted CAs before the change: %+v", pool.CurrentTrustedCAs())
	}
	fetched := sc.Server.Hits(testtsl.ELPath)
	el := sc.EL(2)
	el.Providers[0].Services[0].Status = testtsl.Withdrawn
	sc.Server.Put(testtsl.ELPath, sc.ELSigner.Sign(t, el.XML()))
	for deadline := time.Now().Add(15 * time.Second); granted(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the withdrawn QTSP is still trusted 15 s after the change with refresh 1s (list fetched %d times since)", sc.Server.Hits(testtsl.ELPath)-fetched)
		}
	}
}

func TestCaddyfile(t *testing.T) {
	cfg := testcaddy.Globals(t.TempDir(), "") + `
https://localhost:9 {
	tls internal {
		client_auth {
			trust_pool eu_trusted_list {
				lotl_url      file:///srv/lotl/eu-lotl.xml
				lotl_signers  /etc/bankedge/lotl-signers.pem
				mirror        /srv/lotl
				service       eseal
				territories   GR CY
				refresh       1h
				fetch_timeout 10s
				max_list_size 1000000
			}
		}
	}
	respond ok
}`
	out := string(testcaddy.Adapt(t, cfg))
	for _, want := range []string{`"provider":"eu_trusted_list"`, `"lotl_url":"file:///srv/lotl/eu-lotl.xml"`,
		`"lotl_signers":"/etc/bankedge/lotl-signers.pem"`, `"mirror":"/srv/lotl"`, `"service":"eseal"`, `"territories":["GR","CY"]`,
		`"refresh":3600000000000`, `"fetch_timeout":10000000000`, `"max_list_size":1000000`} {
		if !strings.Contains(out, want) {
			t.Fatalf("adapted config lacks %s:\n%s", want, out)
		}
	}
	for _, bad := range []string{"service qwac", "colour blue", "refresh -1s", "territories"} {
		cfg := testcaddy.Globals(t.TempDir(), "") + `
https://localhost:9 {
	tls internal {
		client_auth {
			trust_pool eu_trusted_list {
				lotl_signers /x.pem
				` + bad + `
			}
		}
	}
}`
		_, _, err := caddyfileAdapt(cfg)
		if err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
	// lotl_signers is required.
	sc := testtsl.NewScenario(t)
	s := newSite(t, sc, t.TempDir())
	err := testcaddy.LoadError(t, strings.Replace(s.caddyfile, "lotl_signers  "+sc.SignersFile, "", 1))
	if !strings.Contains(err.Error(), "lotl_signers is required") {
		t.Fatalf("err = %v", err)
	}
}

func caddyfileAdapt(cfg string) ([]byte, []caddyconfig.Warning, error) {
	return caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), map[string]any{"filename": "Caddyfile"})
}

package ca

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/bankedge/bankedge/internal/metrics"
)

// browser is headless Chromium, with the flags that keep it quiet and
// local, or a skip where it is not installed.
func browser(t *testing.T) context.Context {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Skip("chromium is not installed (Debian package chromium)")
	}
	alloc, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1360, 900))
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	ctx, cancel = context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// tab is one user's browser session: its own browser context (cookies),
// signed in with basic auth.
type tab struct {
	t    *testing.T
	ctx  context.Context
	base string
	user string
}

func openTab(t *testing.T, b context.Context, base, user string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+consoleUsers[user]))
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}}); err != nil {
		t.Fatal(err)
	}
	return &tab{t: t, ctx: ctx, base: base, user: user}
}

func (b *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", b.user, err)
	}
}

func (b *tab) open(path string) { b.t.Helper(); b.do(chromedp.Navigate(b.base + path)) }

// submit clicks a button and waits for the page it leads to.
func (b *tab) submit(sel string) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.WaitEvent(cdppage.LoadEventFired, nil, chromedp.Click(chromedp.CSS(sel)))); err != nil {
		b.t.Fatalf("%s: submitting %s: %v", b.user, sel, err)
	}
}

func (b *tab) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("%s: text of %s: %v", b.user, sel, err)
	}
	return s
}

func (b *tab) eval(js string) int {
	b.t.Helper()
	n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](js))
	if err != nil {
		b.t.Fatalf("%s: %s: %v", b.user, js, err)
	}
	return n
}

func (b *tab) screenshot(dir, name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestConsoleInBrowser drives the console in headless Chromium as the
// three roles and checks its products with openssl.
func TestConsoleInBrowser(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl is not installed")
	}
	b := browser(t)
	s := startConsole(t)
	dir := t.TempDir()
	shots := os.Getenv("BANKEDGE_CONSOLE_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	// TPP traffic as the PSD2 handlers report it, for the dashboard.
	metrics.PSD2Request("PSDGR-BOG-123456", []string{"PSP_PI", "PSP_AI"}, "ok")
	metrics.PSD2Request("PSDFR-ACPR-99999", []string{"PSP_AI"}, "ok")
	metrics.PSD2Request("PSDFR-ACPR-99999", []string{"PSP_AI"}, "ROLE_INVALID")

	// The partner administrator creates a partner; the policy's error comes
	// next to the field first.
	bob := openTab(t, b, s.base, "bob")
	bob.open("/ui/partners")
	bob.do(chromedp.SendKeys(chromedp.ID("partnerId"), "BANK_UI"),
		chromedp.SendKeys(chromedp.ID("password"), "short"), chromedp.SendKeys(chromedp.ID("passwordConfirm"), "short"))
	bob.submit(`form[action="/ui/partners"] button[type=submit]`)
	if msg := bob.text("#password-error"); !strings.Contains(msg, "password policy") {
		t.Fatalf("policy error next to the password: %q", msg)
	}
	bob.do(chromedp.SendKeys(chromedp.ID("password"), "Partner-UI-pass-2025"), chromedp.SendKeys(chromedp.ID("passwordConfirm"), "Partner-UI-pass-2025"),
		chromedp.SetValue(chromedp.ID("allowedIps"), "203.0.113.0/24"), chromedp.SetValue(chromedp.ID("maxConnections"), "4"),
		chromedp.SetValue(chromedp.ID("description"), "Created in the console test"))
	bob.submit(`form[action="/ui/partners"] button[type=submit]`)
	if h := bob.text("h1"); h != "Partner BANK_UI" || !strings.Contains(bob.text(".flash"), "Partner created") {
		t.Fatalf("after creating: %q", h)
	}
	bob.screenshot(shots, "partner")
	bob.open("/ui/partners")
	bob.screenshot(shots, "partners")

	// The security administrator generates a keystore for it.
	alice := openTab(t, b, s.base, "alice")
	alice.open("/ui/certificates")
	alice.do(chromedp.SetValue(chromedp.ID("gen-partner"), "BANK_UI"), chromedp.SetValue(chromedp.ID("gen-cn"), "bank-ui.example.com"))
	alice.submit(`form[action="/ui/certificates/generate"] button[type=submit]`)
	password, err := chromedp.Run(alice.ctx, chromedp.Value(chromedp.ID("once")))
	if err != nil || len(password) < 16 {
		t.Fatalf("keystore password shown: %q %v", password, err)
	}
	href, err := chromedp.Run(alice.ctx, chromedp.AttributeValue(chromedp.ID("download"), "href"))
	if err != nil || !strings.HasPrefix(href.Value, "data:application/x-pkcs12;base64,") {
		t.Fatalf("download link %q %v", href.Value, err)
	}
	alice.screenshot(shots, "keystore")
	p12, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(href.Value, "data:application/x-pkcs12;base64,"))
	if err != nil {
		t.Fatal(err)
	}
	p12File := filepath.Join(dir, "bank-ui.p12")
	if err := os.WriteFile(p12File, p12, 0o600); err != nil {
		t.Fatal(err)
	}
	if out := runTool(t, openssl, "pkcs12", "-in", p12File, "-passin", "pass:"+password, "-nokeys", "-info"); !strings.Contains(out, "bank-ui.example.com") {
		t.Fatalf("openssl pkcs12 does not show the certificate:\n%s", out)
	}

	// A partner's own CSR, signed through the console.
	runTool(t, openssl, "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", filepath.Join(dir, "client-key.pem"),
		"-subj", "/CN=csr.bank-ui.example.com/O=Bank UI/C=FR", "-out", filepath.Join(dir, "client.csr"))
	csr, _ := os.ReadFile(filepath.Join(dir, "client.csr"))
	alice.open("/ui/certificates")
	alice.do(chromedp.SetValue(chromedp.ID("sign-csr"), string(csr)), chromedp.SetValue(chromedp.ID("sign-partner"), "BANK_UI"))
	alice.submit(`form[action="/ui/certificates/sign"] button[type=submit]`)
	heading := alice.text("#res-h")
	serial := strings.TrimPrefix(heading, "Certificate ")
	link, err := chromedp.Run(alice.ctx, chromedp.AttributeValue(chromedp.ID("download"), "href"))
	if err != nil {
		t.Fatal(err)
	}
	alice.screenshot(shots, "signed")
	ac := s.client(t, "alice")
	certPEM := ac.get(link.Value)
	caPEM := ac.get("/ui/ca/certificate.pem")
	if certPEM.status != 200 || caPEM.status != 200 || !strings.Contains(certPEM.header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("downloads: %d %d", certPEM.status, caPEM.status)
	}
	certFile, caFile := filepath.Join(dir, "client.pem"), filepath.Join(dir, "ca.pem")
	_ = os.WriteFile(certFile, []byte(certPEM.body), 0o600)
	_ = os.WriteFile(caFile, []byte(caPEM.body), 0o600)
	if out := runTool(t, openssl, "verify", "-CAfile", caFile, certFile); !strings.Contains(out, "OK") {
		t.Fatalf("openssl verify: %s", out)
	}

	// Revoking it changes the CRL.
	crlBefore := ac.get("/ui/ca/crl")
	alice.open("/ui/certificates?partner=BANK_UI")
	alice.do(chromedp.SetValue(chromedp.ID("reason-"+serial), "keyCompromise"), chromedp.Click(chromedp.ID("confirm-"+serial)))
	alice.submit(fmt.Sprintf(`form.inline:has(#confirm-%s) button`, serial))
	if !strings.Contains(alice.text(".flash"), "revoked") {
		t.Fatal("no confirmation of the revocation")
	}
	alice.open("/ui/certificates")
	alice.screenshot(shots, "certificates")
	crlAfter := ac.get("/ui/ca/crl")
	if crlAfter.body == crlBefore.body {
		t.Fatal("the CRL did not change")
	}
	crlFile := filepath.Join(dir, "ca.crl")
	_ = os.WriteFile(crlFile, []byte(crlAfter.body), 0o600)
	if out := runTool(t, openssl, "crl", "-inform", "DER", "-in", crlFile, "-CAfile", caFile, "-noout"); !strings.Contains(out, "verify OK") {
		t.Fatalf("openssl crl: %s", out)
	}
	crl, err := x509.ParseRevocationList([]byte(crlAfter.body))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := new(big.Int).SetString(serial, 16)
	revoked := false
	for _, e := range crl.RevokedCertificateEntries {
		revoked = revoked || e.SerialNumber.Cmp(want) == 0
	}
	if !revoked {
		t.Fatalf("serial %s not in the new CRL", serial)
	}
	alice.open("/ui/ca")
	alice.screenshot(shots, "ca")

	// The auditor sees no form that changes anything, and a form it makes
	// itself is refused.
	dave := openTab(t, b, s.base, "dave")
	for _, path := range []string{"/ui/", "/ui/partners", "/ui/partners/BANK_UI", "/ui/certificates", "/ui/ca", "/ui/audit"} {
		dave.open(path)
		if n := dave.eval(`document.querySelectorAll('form[method=post]').length`); n != 0 {
			t.Errorf("auditor sees %d state-changing forms on %s", n, path)
		}
	}
	dave.open("/ui/audit?user=alice")
	dave.screenshot(shots, "audit")
	if !strings.Contains(dave.text("table.audit"), "ca.revoke") {
		t.Error("the audit page does not show alice's revocation")
	}
	dave.open("/ui/partners")
	dave.eval(`(() => { const f = document.createElement('form'); f.method = 'post'; f.action = '/ui/partners';
		for (const [k, v] of Object.entries({csrf_token: document.querySelector('meta[name=csrf-token]').content, partnerId: 'DAVE_MADE',
			password: 'Valid-Partner-Pass-1', passwordConfirm: 'Valid-Partner-Pass-1'})) {
			const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i); }
		document.body.appendChild(f); f.submit(); return 1 })()`)
	if err := chromedp.Do(dave.ctx, chromedp.WaitVisible(chromedp.CSS(".alert"))); err != nil {
		t.Fatal(err)
	}
	if h := dave.text("h1"); h != "Forbidden" {
		t.Fatalf("auditor's own form: %q, want Forbidden", h)
	}

	// A page on another origin posts bob's form with bob's valid token.
	bob.open("/ui/partners")
	tok, err := chromedp.Run(bob.ctx, chromedp.AttributeValue(chromedp.CSS(`meta[name=csrf-token]`), "content"))
	if err != nil {
		t.Fatal(err)
	}
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<form method="post" action="%s/ui/partners"><input type="hidden" name="csrf_token" value="%s">
<input type="hidden" name="partnerId" value="EVIL_MADE"><input type="hidden" name="password" value="Valid-Partner-Pass-1">
<input type="hidden" name="passwordConfirm" value="Valid-Partner-Pass-1"><button id="go">Win a prize</button></form>`, s.base, tok.Value)
	}))
	defer evil.Close()
	bob.do(chromedp.Navigate(strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)))
	bob.submit("#go")
	if h := bob.text("h1"); h != "Forbidden" {
		t.Fatalf("cross-origin form: %q, want Forbidden", h)
	}
	if p := s.client(t, "bob").get("/ui/partners/EVIL_MADE"); p.status != http.StatusNotFound {
		t.Fatalf("the cross-origin form created a partner: %d", p.status)
	}

	alice.open("/ui/")
	alice.screenshot(shots, "dashboard")
	t.Logf("screenshots in %s", shots)
}

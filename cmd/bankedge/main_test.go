package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The test binary doubles as the bankedge binary: with BANKEDGE_TEST_MAIN
// set it runs main, so that the tests drive the real commands in their own
// processes.
func TestMain(m *testing.M) {
	if os.Getenv("BANKEDGE_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}

// runBankedge runs the binary with args in dir and returns its output.
func runBankedge(t *testing.T, ctx context.Context, dir string, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), append(env, "BANKEDGE_TEST_MAIN=1")...)
	return cmd
}

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) waitFor(t *testing.T, text string) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if strings.Contains(b.String(), text) {
			return
		}
	}
	t.Fatalf("no %q in the output:\n%s", text, b.String())
}

func waitListening(t *testing.T, port string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s", port)
}

// TestSandbox follows the README: start the sandbox, then send a signed
// request with bankedge tpp request and see it reach the mock ASPSP with
// the verified identity; then a tampered one is refused.
func TestSandbox(t *testing.T) {
	dir := t.TempDir()
	xs2a, aspsp, admin, api := freePort(t), freePort(t), freePort(t), freePort(t)
	pesitPort, pesitsPort, upstreamPort := freePort(t), freePort(t), freePort(t)
	env := []string{
		"BANKEDGE_XS2A_PORT=" + xs2a, "BANKEDGE_ASPSP_PORT=" + aspsp, "BANKEDGE_ADMIN_PORT=" + admin, "BANKEDGE_API_PORT=" + api,
		"BANKEDGE_PESIT_PORT=" + pesitPort, "BANKEDGE_PESITS_PORT=" + pesitsPort, "BANKEDGE_PESIT_UPSTREAM_PORT=" + upstreamPort,
		"XDG_DATA_HOME=" + filepath.Join(dir, "xdg"), "XDG_CONFIG_HOME=" + filepath.Join(dir, "xdg"),
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	serverLog := new(syncBuffer)
	server := runBankedge(t, ctx, dir, env, "sandbox")
	server.Stdout, server.Stderr = serverLog, serverLog
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = server.Wait()
		if t.Failed() {
			t.Logf("sandbox output:\n%s", serverLog.String())
		}
	}()
	// The sandbox says it runs once its server certificate is issued.
	serverLog.waitFor(t, "sandbox gateway running")

	for _, f := range []string{"secrets.env", "admin-password", "tpp/qtsp-root.pem", "tpp/qwac.pem", "tpp/qwac-key.pem", "tpp/qwac.p12", "tpp/qseal.pem", "tpp/qseal.p12", "storage", "audit.log"} {
		if _, err := os.Stat(filepath.Join(dir, "sandbox", f)); err != nil {
			t.Errorf("sandbox did not write %s: %v", f, err)
		}
	}
	body := filepath.Join(dir, "body.json")
	if err := os.WriteFile(body, []byte("{\n  \"instructedAmount\": {\"currency\": \"EUR\", \"amount\": \"12.00\"}\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	url := "https://localhost:" + xs2a + "/v1/payments/sepa-credit-transfers"
	out, err := runBankedge(t, ctx, dir, nil, "tpp", "request", "--qwac", "sandbox/tpp/qwac.pem", "--qseal", "sandbox/tpp/qseal.pem",
		"--profile", "piraeus", "-X", "POST", "--data", "@body.json", url).Output()
	if err != nil {
		t.Fatalf("tpp request: %v\n%s", err, out)
	}
	var echo struct {
		Method, Path, Body string
		TPP                map[string]string
	}
	if err := json.Unmarshal(out, &echo); err != nil {
		t.Fatalf("mock ASPSP answer is not JSON: %v\n%s", err, out)
	}
	if echo.Method != "POST" || echo.TPP["orgId"] != "PSDGR-BOG-123456" || echo.TPP["roles"] != "PSP_AI,PSP_PI,PSP_IC" ||
		echo.Body != `{"instructedAmount":{"currency":"EUR","amount":"12.00"}}` {
		t.Fatalf("upstream saw %+v", echo)
	}

	// tpp sign prints headers that curl-like clients can send; a body
	// other than the signed one is refused.
	signed, err := runBankedge(t, ctx, dir, nil, "tpp", "sign", "--qwac", "sandbox/tpp/qwac.pem", "--qseal", "sandbox/tpp/qseal.pem",
		"--profile", "piraeus", "--data", "@body.json", url).Output()
	if err != nil {
		t.Fatalf("tpp sign: %v", err)
	}
	for _, h := range []string{"X-Request-ID: ", "Digest: SHA-256=", "Signature: keyId=", "TPP-Signature-Certificate: MII", "X-Client-Certificate: MII"} {
		if !bytes.Contains(signed, []byte("\n"+h)) && !bytes.HasPrefix(signed, []byte(h)) {
			t.Errorf("tpp sign output lacks %q:\n%s", h, signed)
		}
	}
	// New certificates from the running CA, through the admin API, are
	// trusted at once.
	fromCA := runBankedge(t, ctx, dir, nil, "tpp", "certs", "--from", "http://127.0.0.1:"+api, "--password-file", "sandbox/admin-password",
		"--out", "ai-only", "--org-id", "PSDGR-BOG-654321", "--roles", "PSP_AI", "--p12-password", "x")
	if out, err := fromCA.CombinedOutput(); err != nil {
		t.Fatalf("tpp certs --from: %v\n%s", err, out)
	}
	out, err = runBankedge(t, ctx, dir, nil, "tpp", "request", "--qwac", "ai-only/qwac.pem", "--qseal", "ai-only/qseal.pem",
		"--profile", "piraeus", "-X", "POST", "--data", "@body.json", url).Output()
	if err != nil || !strings.Contains(string(out), `"code":"ROLE_INVALID"`) {
		t.Fatalf("a TPP without PSP_PI initiating a payment: %v %s", err, out)
	}
	out, err = runBankedge(t, ctx, dir, nil, "tpp", "request", "--qwac", "ai-only/qwac.p12", "--qseal", "ai-only/qseal.p12", "--p12-password", "x",
		"--profile", "piraeus", "https://localhost:"+xs2a+"/v1/accounts").Output()
	if err != nil || !strings.Contains(string(out), `"orgId":"PSDGR-BOG-654321"`) {
		t.Fatalf("the AISP reading accounts: %v %s", err, out)
	}
	// The audit log records the issuance by the admin user.
	audit, _ := os.ReadFile(filepath.Join(dir, "sandbox", "audit.log"))
	if !bytes.Contains(audit, []byte(`"msg":"ca.psd2.generate"`)) || !bytes.Contains(audit, []byte(`"user":"admin"`)) {
		t.Errorf("audit log lacks the PSD2 issuance:\n%s", audit)
	}

	// PeSIT: the DEMO partner pushes a file over TCP and fetches it back
	// over mTLS, through the gateway to the sandbox PeSIT server.
	payload := bytes.Repeat([]byte("PAYMENT;EUR;12.00;GR1601101250000000012300695\n"), 20000)
	if err := os.WriteFile(filepath.Join(dir, "pay.csv"), payload, 0o644); err != nil {
		t.Fatal(err)
	}
	send := runBankedge(t, ctx, dir, nil, "pesit", "send", "pay.csv", "--to", "127.0.0.1:"+pesitPort, "--partner", "DEMO",
		"--password-file", "sandbox/pesit/demo-password", "--server-id", "BANKEDGE", "--file-name", "PAY.CSV")
	if out, err := send.CombinedOutput(); err != nil {
		t.Fatalf("pesit send: %v\n%s", err, out)
	}
	stored, err := os.ReadFile(filepath.Join(dir, "sandbox", "pesit-files", "DEMO", "PAY.CSV"))
	if err != nil || !bytes.Equal(stored, payload) {
		t.Fatalf("the sandbox PeSIT server holds %d bytes (%v), want %d", len(stored), err, len(payload))
	}
	fetched, err := runBankedge(t, ctx, dir, nil, "pesit", "fetch", "PAY.CSV", "--to", "localhost:"+pesitsPort, "--partner", "DEMO",
		"--password-file", "sandbox/pesit/demo-password", "--server-id", "BANKEDGE",
		"--tls", "--cert", "sandbox/pesit/demo.pem", "--key", "sandbox/pesit/demo-key.pem", "--ca", "sandbox/pesit/ca.pem").Output()
	if err != nil || !bytes.Equal(fetched, payload) {
		t.Fatalf("pesit fetch over mTLS returned %d bytes: %v", len(fetched), err)
	}
	audit, _ = os.ReadFile(filepath.Join(dir, "sandbox", "audit.log"))
	if !bytes.Contains(audit, []byte(`"msg":"pesit.trans_end"`)) || !bytes.Contains(audit, []byte(`"counts_match":true`)) {
		t.Errorf("audit log lacks the PeSIT transfer:\n%s", audit)
	}
	wrong := runBankedge(t, ctx, dir, nil, "pesit", "send", "pay.csv", "--to", "127.0.0.1:"+pesitPort, "--partner", "DEMO",
		"--password", "nope1234", "--server-id", "BANKEDGE")
	if out, err := wrong.CombinedOutput(); err == nil || !strings.Contains(string(out), "3-304") {
		t.Fatalf("a wrong PeSIT password: %v\n%s", err, out)
	}

	// A QWAC from another sandbox root is refused with a Berlin Group error.
	other := runBankedge(t, ctx, dir, nil, "tpp", "certs", "--out", "other", "--org-id", "PSDGR-BOG-654321", "--roles", "PSP_AI", "--p12-password", "x")
	if out, err := other.CombinedOutput(); err != nil {
		t.Fatalf("tpp certs: %v\n%s", err, out)
	}
	out, err = runBankedge(t, ctx, dir, nil, "tpp", "request", "--qwac", "other/qwac.pem", "--qseal", "other/qseal.pem", "--cacert", "sandbox/tpp/qtsp-root.pem",
		"--profile", "piraeus", "-X", "POST", "--data", "@body.json", url).Output()
	if err != nil || !strings.Contains(string(out), `"code":"CERTIFICATE_INVALID"`) {
		t.Fatalf("untrusted QWAC: %v %s", err, out)
	}
	if openssl, err := exec.LookPath("openssl"); err == nil {
		out, err := exec.Command(openssl, "pkcs12", "-info", "-noout", "-passin", "pass:x", "-in", filepath.Join(dir, "other", "qseal.p12")).CombinedOutput()
		if err != nil {
			t.Errorf("openssl cannot open qseal.p12: %v\n%s", err, out)
		}
	}
}

// TestTwoInstancesOneCA starts two gateways at once on one empty storage
// directory: the storage lock must leave them with one CA.
func TestTwoInstancesOneCA(t *testing.T) {
	dir := t.TempDir()
	storage := filepath.Join(dir, "shared-storage")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ports []string
	var logs []*syncBuffer
	var procs []*exec.Cmd
	for i := range 2 {
		port := freePort(t)
		cfg := filepath.Join(dir, fmt.Sprintf("Caddyfile%d", i))
		os.WriteFile(cfg, []byte(fmt.Sprintf(`{
	admin off
	persist_config off
	storage file_system %s
	bankedge {
		ca {
			key_passphrase two-instances
		}
	}
}
http://127.0.0.1:%s {
	bind 127.0.0.1
	bankedge_api
}
`, storage, port)), 0o644)
		out := new(syncBuffer)
		cmd := runBankedge(t, ctx, dir, []string{"XDG_DATA_HOME=" + filepath.Join(dir, "xdg"), "XDG_CONFIG_HOME=" + filepath.Join(dir, "xdg")},
			"run", "--config", cfg, "--adapter", "caddyfile")
		cmd.Stdout, cmd.Stderr = out, out
		ports, logs, procs = append(ports, port), append(logs, out), append(procs, cmd)
	}
	for _, p := range procs {
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		cancel()
		for i, p := range procs {
			_ = p.Wait()
			if t.Failed() {
				t.Logf("instance %d:\n%s", i, logs[i].String())
			}
		}
	}()
	var certs []string
	for _, port := range ports {
		waitListening(t, port)
		out, err := exec.Command("curl", "-sf", "http://127.0.0.1:"+port+"/api/v1/certificates/ca/certificate").Output()
		if err != nil {
			// curl is not essential: fall back to Go.
			out = httpGet(t, "http://127.0.0.1:"+port+"/api/v1/certificates/ca/certificate")
		}
		certs = append(certs, string(out))
	}
	if !strings.Contains(certs[0], "BEGIN CERTIFICATE") || certs[0] != certs[1] {
		t.Fatalf("the two instances serve different CAs:\n%s\n%s", certs[0], certs[1])
	}
	created := strings.Count(logs[0].String()+logs[1].String(), "created the bankedge CA")
	if created != 1 {
		t.Fatalf("%d instances created a CA, want exactly 1", created)
	}
}

func httpGet(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

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

	"golang.org/x/crypto/bcrypt"

	"github.com/bankedge/bankedge/internal/testcaddy"
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

// freePort is testcaddy.FreePort as the string the environment takes.
func freePort(t *testing.T) string {
	t.Helper()
	return fmt.Sprint(testcaddy.FreePort(t))
}

// runBankedge runs the binary with args in dir and returns its output.
func runBankedge(t *testing.T, ctx context.Context, dir string, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), append(env, "BANKEDGE_TEST_MAIN=1", raceNoExitSleep())...)
	return cmd
}

// raceNoExitSleep is the GORACE setting that keeps a race-instrumented
// process from sleeping a second before it exits (atexit_sleep_ms defaults
// to 1000), which every command the tests run would pay.
func raceNoExitSleep() string {
	return "GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0")
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

// sandboxEnv returns the environment of a sandbox on free ports, with a
// cheap admin password (see cheapAdminPassword).
func sandboxEnv(t *testing.T, dir string) (env []string, ports map[string]string) {
	t.Helper()
	ports = map[string]string{}
	for _, p := range sandboxPorts {
		ports[p.env] = freePort(t)
		env = append(env, p.env+"="+ports[p.env])
	}
	return append(env, cheapAdminPassword(t, filepath.Join(dir, "sandbox")),
		"XDG_DATA_HOME="+filepath.Join(dir, "xdg"), "XDG_CONFIG_HOME="+filepath.Join(dir, "xdg")), ports
}

// cheapAdminPassword writes an admin password where the sandbox in
// sandboxDir would, and returns the variable that gives the sandbox its
// hash at bcrypt's lowest cost: at Caddy's cost, hashing and the first
// check of the password take seconds under the race detector.
// TestSandboxSecretsUpgrade checks the cost of the sandbox's own hashes.
func cheapAdminPassword(t *testing.T, sandboxDir string) string {
	t.Helper()
	const password = "sandbox-test-admin"
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(sandboxDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sandboxDir, "admin-password"), []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return envAdminHash + "=" + string(hash)
}

// TestSandbox follows the README: start the sandbox, then send a signed
// request with bankedge tpp request and see it reach the mock ASPSP with
// the verified identity; then refusals, PeSIT, a second sandbox on the same
// directory or ports, and bankedge doctor.
func TestSandbox(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env, ports := sandboxEnv(t, dir)
	xs2a, api, pesitPort, pesitsPort := ports["BANKEDGE_XS2A_PORT"], ports["BANKEDGE_API_PORT"], ports["BANKEDGE_PESIT_PORT"], ports["BANKEDGE_PESITS_PORT"]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	serverLog := new(syncBuffer)
	server := runBankedge(t, ctx, dir, env, "sandbox")
	server.Stdout, server.Stderr = serverLog, serverLog
	server.Cancel = func() error { return server.Process.Signal(os.Interrupt) }
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
	// The sandbox prints its summary once its server certificate is issued.
	serverLog.waitFor(t, "Stop with Ctrl-C")

	t.Run("summary", func(t *testing.T) {
		summary := serverLog.String()
		for _, want := range []string{"bankedge sandbox ready", "admin.sock", "https://localhost:" + xs2a, "http://127.0.0.1:" + api,
			":" + pesitPort, ":" + pesitsPort, ":" + ports["BANKEDGE_ASPSP_PORT"], ":" + ports["BANKEDGE_PESIT_UPSTREAM_PORT"],
			"sandbox/secrets.env", "sandbox/audit.log", "sandbox/storage/", "sandbox/admin-password", "sandbox/pesit/demo-password",
			"sandbox/tpp/p12-password", " tpp request ", " doctor --dir sandbox"} {
			if !strings.Contains(summary, want) {
				t.Errorf("the summary lacks %q", want)
			}
		}
		// No warning a sandbox user cannot act on (HTTP/3, strict SNI,
		// trust store, the admin socket's host checking).
		for line := range strings.SplitSeq(summary, "\n") {
			if strings.Contains(line, `"level":"warn"`) || strings.Contains(line, "pki.ca.local") {
				t.Errorf("the sandbox logged: %s", line)
			}
		}
		if strings.Count(summary, "bankedge sandbox ready") != 1 {
			t.Errorf("not exactly one summary")
		}
	})

	for _, f := range []string{"secrets.env", "admin-password", "tpp/qtsp-root.pem", "tpp/qwac.pem", "tpp/qwac-key.pem", "tpp/qwac.p12", "tpp/qseal.pem", "tpp/qseal.p12", "tpp/p12-password", "storage", "audit.log"} {
		if _, err := os.Stat(filepath.Join(dir, "sandbox", f)); err != nil {
			t.Errorf("sandbox did not write %s: %v", f, err)
		}
	}
	t.Run("admin endpoint", func(t *testing.T) {
		st, err := os.Stat(filepath.Join(dir, "sandbox", "admin.sock"))
		if err != nil || st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
			t.Fatalf("admin socket: %v %v", st, err)
		}
		if c, err := net.Dial("tcp", "127.0.0.1:2019"); err == nil {
			// Not necessarily ours: only report.
			c.Close()
			t.Log("something listens on 127.0.0.1:2019")
		}
	})

	body := filepath.Join(dir, "body.json")
	if err := os.WriteFile(body, []byte("{\n  \"instructedAmount\": {\"currency\": \"EUR\", \"amount\": \"12.00\"}\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	url := "https://localhost:" + xs2a + "/v1/payments/sepa-credit-transfers"
	// No --profile: the tpp commands and the sandbox agree by default.
	out, err := runBankedge(t, ctx, dir, nil, "tpp", "request", "--qwac", "sandbox/tpp/qwac.pem", "--qseal", "sandbox/tpp/qseal.pem",
		"-X", "POST", "--data", "@body.json", url).Output()
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

	// tpp sign prints headers that curl-like clients can send.
	signed, err := runBankedge(t, ctx, dir, nil, "tpp", "sign", "--qwac", "sandbox/tpp/qwac.pem", "--qseal", "sandbox/tpp/qseal.pem",
		"--data", "@body.json", url).Output()
	if err != nil {
		t.Fatalf("tpp sign: %v", err)
	}
	for _, h := range []string{"X-Request-ID: ", "Digest: SHA-256=", "Signature: keyId=", "TPP-Signature-Certificate: MII", "X-Client-Certificate: MII"} {
		if !bytes.Contains(signed, []byte("\n"+h)) && !bytes.HasPrefix(signed, []byte(h)) {
			t.Errorf("tpp sign output lacks %q:\n%s", h, signed)
		}
	}
	// tpp certs does not replace the sandbox's own certificates.
	if out, err := runBankedge(t, ctx, dir, nil, "tpp", "certs", "--out", "sandbox/tpp", "--org-id", "PSDGR-BOG-111111").CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "--force") {
		t.Errorf("tpp certs into sandbox/tpp: %v\n%s", err, out)
	}
	// New certificates from the running CA, through the admin API, are
	// trusted at once; a refusal exits 1 with the Berlin Group error on
	// standard error.
	fromCA := runBankedge(t, ctx, dir, nil, "tpp", "certs", "--from", "http://127.0.0.1:"+api, "--password-file", "sandbox/admin-password",
		"--out", "ai-only", "--org-id", "PSDGR-BOG-654321", "--roles", "PSP_AI", "--p12-password", "ai-only-p12-pass")
	if out, err := fromCA.CombinedOutput(); err != nil {
		t.Fatalf("tpp certs --from: %v\n%s", err, out)
	}
	refused := runBankedge(t, ctx, dir, nil, "tpp", "request", "--qwac", "ai-only/qwac.pem", "--qseal", "ai-only/qseal.pem",
		"-X", "POST", "--data", "@body.json", url)
	var stderr bytes.Buffer
	refused.Stderr = &stderr
	out, err = refused.Output()
	if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 1 || len(out) != 0 || !strings.Contains(stderr.String(), `"code":"ROLE_INVALID"`) {
		t.Fatalf("a TPP without PSP_PI initiating a payment: %v, stdout %q, stderr %q", err, out, stderr.String())
	}
	out, err = runBankedge(t, ctx, dir, nil, "tpp", "request", "--qwac", "ai-only/qwac.p12", "--qseal", "ai-only/qseal.p12",
		"https://localhost:"+xs2a+"/v1/accounts").Output()
	if err != nil || !strings.Contains(string(out), `"orgId":"PSDGR-BOG-654321"`) {
		t.Fatalf("the AISP reading accounts (p12-password read from the file next to the .p12): %v %s", err, out)
	}
	t.Run("audit", func(t *testing.T) {
		audit, _ := os.ReadFile(filepath.Join(dir, "sandbox", "audit.log"))
		if !bytes.Contains(audit, []byte(`"msg":"ca.psd2.generate"`)) || !bytes.Contains(audit, []byte(`"user":"admin"`)) {
			t.Errorf("audit log lacks the PSD2 issuance by the admin:\n%s", audit)
		}
		var sandboxIssued []string
		for line := range bytes.SplitSeq(audit, []byte("\n")) {
			var e struct{ Msg, User, Outcome, Purpose, Partner, Serial, Subject string }
			if json.Unmarshal(line, &e) == nil && e.User == sandboxUser && e.Outcome == "issued" && e.Serial != "" && e.Subject != "" {
				sandboxIssued = append(sandboxIssued, e.Msg+" "+e.Purpose+" "+e.Partner)
			}
		}
		want := []string{"ca.psd2.generate QWAC psdgr-bog-123456", "ca.psd2.generate QSEAL psdgr-bog-123456", "ca.generate CLIENT DEMO"}
		if strings.Join(sandboxIssued, "|") != strings.Join(want, "|") {
			t.Errorf("the sandbox's own issuances in the audit log: %q, want %q", sandboxIssued, want)
		}
	})

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
	audit, _ := os.ReadFile(filepath.Join(dir, "sandbox", "audit.log"))
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
		"--error-to-stdout", "-X", "POST", "--data", "@body.json", url).Output()
	if err == nil || !strings.Contains(string(out), `"code":"CERTIFICATE_INVALID"`) {
		t.Fatalf("untrusted QWAC: %v %s", err, out)
	}
	if openssl, err := exec.LookPath("openssl"); err == nil {
		out, err := exec.Command(openssl, "pkcs12", "-info", "-noout", "-passin", "pass:x", "-in", filepath.Join(dir, "other", "qseal.p12")).CombinedOutput()
		if err != nil {
			t.Errorf("openssl cannot open qseal.p12: %v\n%s", err, out)
		}
	}

	t.Run("second sandbox", func(t *testing.T) {
		// On the same directory: refused, naming the process that runs.
		out, err := runBankedge(t, ctx, dir, env, "sandbox").CombinedOutput()
		want := fmt.Sprintf("in use by another bankedge sandbox, process %d", server.Process.Pid)
		if err == nil || !strings.Contains(string(out), want) {
			t.Errorf("a second sandbox on the same directory: %v\n%s", err, out)
		}
		// On another directory with the same ports: refused before it
		// writes anything, naming each port, its variable and the holder.
		out, err = runBankedge(t, ctx, dir, env, "sandbox", "--dir", "elsewhere").CombinedOutput()
		if err == nil {
			t.Fatalf("a second sandbox on the same ports started:\n%s", out)
		}
		for _, p := range sandboxPorts {
			if want := fmt.Sprintf("port %s (%s, %s) is already in use", ports[p.env], p.name, p.env); !strings.Contains(string(out), want) {
				t.Errorf("the refusal lacks %q:\n%s", want, out)
			}
		}
		if !strings.Contains(string(out), fmt.Sprintf("process %d", server.Process.Pid)) {
			t.Errorf("the refusal does not name the process holding the ports:\n%s", out)
		}
		if _, err := os.Stat(filepath.Join(dir, "elsewhere")); err == nil {
			t.Errorf("the refused sandbox created its directory")
		}
	})

	t.Run("doctor", func(t *testing.T) {
		out, err := runBankedge(t, ctx, dir, env, "doctor").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "No problem found") || strings.Contains(string(out), "FAIL") {
			t.Fatalf("doctor on a healthy sandbox: %v\n%s", err, out)
		}
		for _, want := range []string{"XS2A API, https://localhost:" + xs2a + " presents a certificate for localhost", "verifies against the bankedge CA",
			"PeSIT over TLS", "its key decrypts with $BANKEDGE_CA_PASSWORD", "is signed by the CA", "reachable and writable", "the sandbox QWAC"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("doctor's report lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("doctor names a revoked sandbox certificate", func(t *testing.T) {
		qwac, err := readCertificate(filepath.Join(dir, "sandbox", "tpp", "qwac.pem"))
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:"+api+"/api/v1/certificates/ca/revoke",
			strings.NewReader(fmt.Sprintf("serial=%X&reason=keyCompromise", qwac.SerialNumber)))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("admin", "sandbox-test-admin")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("revoking the sandbox QWAC: %v %v", resp, err)
		}
		resp.Body.Close()
		out, err := runBankedge(t, ctx, dir, env, "doctor").CombinedOutput()
		if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 1 || !strings.Contains(string(out), fmt.Sprintf("was revoked: the CA's CRL lists its serial %X", qwac.SerialNumber)) {
			t.Errorf("doctor after the QWAC's revocation: %v\n%s", err, out)
		}
	})

	cancel()
	_ = server.Wait()
	t.Run("doctor on a stopped sandbox", func(t *testing.T) {
		out, err := runBankedge(t, context.Background(), dir, env, "doctor", "--dir", "sandbox").CombinedOutput()
		if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 1 {
			t.Fatalf("doctor exited with %v:\n%s", err, out)
		}
		for _, want := range []string{"FAIL  XS2A API", "nothing accepts connections", "fix: start the gateway", "sandbox --dir sandbox", "problem(s) found"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("doctor's report lacks %q:\n%s", want, out)
			}
		}
	})
}

// TestTwoInstancesOneCA starts two gateways at once on one empty storage
// directory: the storage lock must leave them with one CA.
func TestTwoInstancesOneCA(t *testing.T) {
	t.Parallel()
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

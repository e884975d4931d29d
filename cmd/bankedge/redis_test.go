package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/bankedge/bankedge/internal/testredis"
)

// The binary has the Redis storage: a configuration with storage redis
// validates against a real Redis (validation provisions the storage, which
// connects).
func TestRedisStorageInBinary(t *testing.T) {
	srv := testredis.Start(t)
	dir := t.TempDir()
	caddyfile := "{\n\tadmin off\n\tstorage redis {\n\t\taddress " + srv.Addr + "\n\t\tkey_prefix bankedge-test\n\t}\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "Caddyfile"), []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"XDG_DATA_HOME=" + filepath.Join(dir, "xdg"), "XDG_CONFIG_HOME=" + filepath.Join(dir, "xdg")}
	out, err := runBankedge(t, context.Background(), dir, env, "list-modules").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "caddy.storage.redis") {
		t.Fatalf("list-modules: %v\n%s", err, out)
	}
	out, err = runBankedge(t, context.Background(), dir, env, "validate", "--config", "Caddyfile", "--adapter", "caddyfile").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Valid configuration") {
		t.Fatalf("validate: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), srv.Addr) {
		t.Fatalf("the storage did not provision on %s:\n%s", srv.Addr, out)
	}
}

// startSandbox runs bankedge sandbox with args in dir and returns its
// output; the process is stopped when the test ends.
func startSandbox(t *testing.T, dir string, env []string, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := new(syncBuffer)
	cmd := runBankedge(t, ctx, dir, env, append([]string{"sandbox"}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("sandbox %v output:\n%s", args, out.String())
		}
	})
	return cmd, out
}

// Two sandboxes on one Redis are one gateway: the second, started with
// only its directory and ports, takes the first's secrets from Redis and
// serves the same CA; a request id used on one is a replay on the other;
// the DEMO partner's password works on both; a partner created through
// one's API is the other's. On a Redis whose CA left no secrets, a
// sandbox without them refuses to start, saying what to give it.
func TestSandboxesOnOneRedis(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t)
	dir := t.TempDir()
	env1, ports1 := sandboxEnv(t, filepath.Join(dir, "one"))
	env2, ports2 := sandboxEnv(t, filepath.Join(dir, "two"))
	_, out1 := startSandbox(t, dir, env1, "--dir", "one", "--redis", srv.Addr)
	out1.waitFor(t, "Stop with Ctrl-C")
	if !strings.Contains(out1.String(), "Redis "+srv.Addr) || !strings.Contains(out1.String(), "sandbox --redis "+srv.Addr+" --dir one2") {
		t.Errorf("the summary does not say the sandbox is on Redis, nor how to start another one:\n%s", out1.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "one", "storage")); err == nil {
		t.Error("the sandbox on Redis made a storage directory")
	}

	// The second needs nothing but its directory, its ports and the
	// Redis: it takes the first one's secrets from there.
	_, out2 := startSandbox(t, dir, env2, "--dir", "two", "--redis", srv.Addr)
	out2.waitFor(t, "Stop with Ctrl-C")
	d1, _ := os.ReadFile(filepath.Join(dir, "one", "pesit", "demo-password"))
	d2, _ := os.ReadFile(filepath.Join(dir, "two", "pesit", "demo-password"))
	if len(d1) == 0 || !bytes.Equal(d1, d2) {
		t.Error("the second sandbox does not have the first one's DEMO password")
	}
	root1, _ := os.ReadFile(filepath.Join(dir, "one", "tpp", "qtsp-root.pem"))
	root2, _ := os.ReadFile(filepath.Join(dir, "two", "tpp", "qtsp-root.pem"))
	if len(root1) == 0 || !bytes.Equal(root1, root2) {
		t.Fatalf("the two sandboxes serve different CAs")
	}

	ctx := context.Background()
	id := "8a2c1d6e-4f3b-4a7c-9d5e-0b1f2a3c4d5e"
	request := func(sandbox, port string) ([]byte, error) {
		return runBankedge(t, ctx, dir, nil, "tpp", "request", "--qwac", sandbox+"/tpp/qwac.pem", "--qseal", sandbox+"/tpp/qseal.pem",
			"--error-to-stdout", "-H", "X-Request-ID: "+id, "https://localhost:"+port+"/v1/accounts").Output()
	}
	if out, err := request("one", ports1["BANKEDGE_XS2A_PORT"]); err != nil {
		t.Fatalf("request on the first sandbox: %v %s", err, out)
	}
	if out, err := request("two", ports2["BANKEDGE_XS2A_PORT"]); err == nil || !strings.Contains(string(out), "already used") {
		t.Fatalf("the same request id on the second sandbox: %v %s, want a replay", err, out)
	}

	payload := []byte("PAYMENT;EUR;12.00\n")
	if err := os.WriteFile(filepath.Join(dir, "pay.csv"), payload, 0o644); err != nil {
		t.Fatal(err)
	}
	send := runBankedge(t, ctx, dir, nil, "pesit", "send", "pay.csv", "--to", "127.0.0.1:"+ports2["BANKEDGE_PESIT_PORT"], "--partner", "DEMO",
		"--password-file", "two/pesit/demo-password", "--server-id", "BANKEDGE", "--file-name", "PAY.CSV")
	if out, err := send.CombinedOutput(); err != nil {
		t.Fatalf("pesit send to the second sandbox with the DEMO password: %v\n%s", err, out)
	}

	const adminPassword = "sandbox-test-admin" // see cheapAdminPassword
	body := strings.NewReader(`{"partnerId":"SHARED","password":"Shared-Partner-2024!"}`)
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:"+ports1["BANKEDGE_API_PORT"]+"/api/v1/config/partners", body)
	req.SetBasicAuth("admin", adminPassword)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("creating a partner on the first sandbox: %v %v", resp, err)
	}
	resp.Body.Close()
	req, _ = http.NewRequest(http.MethodGet, "http://127.0.0.1:"+ports2["BANKEDGE_API_PORT"]+"/api/v1/config/partners/SHARED", nil)
	req.SetBasicAuth("admin", adminPassword)
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the partner on the second sandbox: %v %v", resp, err)
	}
	resp.Body.Close()

	// A Redis whose CA left no secrets (made by a deployment, say): a
	// sandbox without them refuses to start, before writing anything.
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rc.Close()
	if err := rc.Del(ctx, sharedSecretsKey).Err(); err != nil {
		t.Fatal(err)
	}
	env3, _ := sandboxEnv(t, filepath.Join(dir, "alone"))
	refused, err := runBankedge(t, ctx, dir, env3, "sandbox", "--dir", "alone", "--redis", srv.Addr).CombinedOutput()
	if err == nil || !strings.Contains(string(refused), "already holds the CA of another sandbox") || !strings.Contains(string(refused), "--envfile") {
		t.Fatalf("a sandbox without the CA's secrets: %v\n%s", err, refused)
	}
	if _, err := os.Stat(filepath.Join(dir, "alone", "secrets.env")); err == nil {
		t.Error("the refused sandbox wrote its secrets")
	}
}

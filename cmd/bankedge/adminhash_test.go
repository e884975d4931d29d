package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
	"golang.org/x/crypto/bcrypt"
)

// checkAdminHash checks that hash is a bcrypt hash of dir/admin-password at
// the cost of the fake hash Caddy's basic_auth compares unknown users with,
// so that a wrong password and an unknown user cost the same time.
func checkAdminHash(t *testing.T, dir, hash string) {
	t.Helper()
	cost, err := bcrypt.Cost([]byte(hash))
	if err != nil {
		t.Fatalf("%q is not a bcrypt hash: %v", hash, err)
	}
	fakeCost, err := bcrypt.Cost(caddyauth.BcryptHash{}.FakeHash())
	if err != nil {
		t.Fatal(err)
	}
	if cost != fakeCost {
		t.Errorf("the admin password is hashed at cost %d, Caddy's fake hash at %d: timing tells whether a user exists", cost, fakeCost)
	}
	pw, err := os.ReadFile(filepath.Join(dir, "admin-password"))
	if err != nil {
		t.Fatal(err)
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(strings.TrimSpace(string(pw)))) != nil {
		t.Error("the hash is not the hash of admin-password")
	}
}

// checkSecretsFile checks that a shell and Caddy's --envfile read the same
// values from dir/secrets.env as the sandbox.
func checkSecretsFile(t *testing.T, dir string, want map[string]string) {
	t.Helper()
	path := filepath.Join(dir, "secrets.env")
	if sh, err := exec.LookPath("sh"); err == nil {
		for name, value := range want {
			out, err := exec.Command(sh, "-c", `set -a; . "$0"; printf %s "$`+name+`"`, path).Output()
			if err != nil || string(out) != value {
				t.Errorf("sourced in a shell, %s = %q (%v), want %q", name, out, err, value)
			}
		}
	}
	// Caddy reads the file at adapt time here: {$VAR} placeholders.
	var caddyfile strings.Builder
	caddyfile.WriteString("{\n\tadmin off\n}\n:1 {\n")
	for name := range want {
		caddyfile.WriteString("\trespond /" + name + " \"{$" + name + "}\"\n")
	}
	caddyfile.WriteString("}\n")
	cfgPath := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(cfgPath, []byte(caddyfile.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runBankedge(t, context.Background(), dir, nil, "adapt", "--config", cfgPath, "--envfile", path).Output()
	if err != nil {
		t.Fatalf("bankedge adapt --envfile: %v\n%s", err, out)
	}
	for name, value := range want {
		if !strings.Contains(string(out), `"body":"`+value+`"`) {
			t.Errorf("read by --envfile, %s is not %q:\n%s", name, value, out)
		}
	}
}

// A secrets.env of an older sandbox (values unquoted, the admin password
// hashed at bcrypt's default cost, variables missing) is completed,
// quoted, and its admin hash brought to Caddy's cost.
func TestSandboxSecretsUpgrade(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old, err := bcrypt.GenerateFromPassword([]byte("old-admin-password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "admin-password"), []byte("old-admin-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secrets.env"), []byte("BANKEDGE_CA_PASSWORD=ca-secret-1\nBANKEDGE_ADMIN_PASSWORD_HASH="+string(old)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sf, err := readSecrets(dir)
	if err != nil {
		t.Fatal(err)
	}
	made, err := sf.complete(dir)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(made, ",") != envDemoPassword+","+envUpstreamPassword {
		t.Errorf("made %v", made)
	}
	if sf.values[envCAPassword] != "ca-secret-1" {
		t.Errorf("the CA password changed: %q", sf.values[envCAPassword])
	}
	checkAdminHash(t, dir, sf.values[envAdminHash])
	for _, name := range []string{envDemoPassword, envUpstreamPassword} {
		if err := checkPeSITPassword(sf.values[name]); err != nil || len(sf.values[name]) != 8 {
			t.Errorf("%s = %q: %v", name, sf.values[name], err)
		}
	}
	demo, _ := os.ReadFile(filepath.Join(dir, "pesit", "demo-password"))
	if strings.TrimSpace(string(demo)) != sf.values[envDemoPassword] {
		t.Errorf("pesit/demo-password does not hold the DEMO password")
	}
	checkSecretsFile(t, dir, sf.values)

	// Read again, the file is complete: nothing to make or write.
	again, err := readSecrets(dir)
	if err != nil || again.rewrite || !again.existed {
		t.Fatalf("read again: %+v, %v", again, err)
	}
}

// A first start makes every secret the environment does not set; one the
// environment sets is neither made nor written. (The admin password's hash
// is made as in TestSandboxSecretsUpgrade, and its cost checked end to end
// by TestReadme without the race detector.)
func TestSandboxSecretsFirstStart(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(envAdminHash, "$2a$04$Zt3PZN0dbkcpGBf.L3dQqebvrrC8b3ZL3KiQpNkiS7KZpC0bqfyVS")
	sf, err := readSecrets(dir)
	if err != nil || sf.existed || !sf.rewrite || !sf.fromEnv[envAdminHash] {
		t.Fatalf("%+v %v", sf, err)
	}
	made, err := sf.complete(dir)
	if err != nil || strings.Join(made, ",") != envCAPassword+","+envDemoPassword+","+envUpstreamPassword {
		t.Fatalf("made %v: %v", made, err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "secrets.env"))
	if err != nil || strings.Contains(string(data), envAdminHash) {
		t.Fatalf("secrets.env holds a variable from the environment: %v\n%s", err, data)
	}
	if _, err := os.Stat(filepath.Join(dir, "admin-password")); err == nil {
		t.Error("an admin-password was written although the environment sets the hash")
	}
	st, err := os.Stat(filepath.Join(dir, "secrets.env"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("secrets.env: %v %v", st, err)
	}
}

// A bad variable is refused before the sandbox writes anything.
func TestSandboxRefusesBadVariables(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out, err := runBankedge(t, context.Background(), dir, []string{envDemoPassword + "=much-too-long"}, "sandbox", "--dir", "fresh").CombinedOutput()
	if err == nil || !strings.Contains(string(out), envDemoPassword+" (from the environment) must be 1 to 8 characters") {
		t.Fatalf("a 13-character DEMO password: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "much-too-long") {
		t.Errorf("the error shows the password:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "fresh")); err == nil {
		t.Error("the sandbox created its directory before refusing")
	}

	existing := filepath.Join(dir, "existing")
	if err := os.MkdirAll(existing, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(existing, "secrets.env"), []byte("BANKEDGE_ADMIN_PASSWORD_HASH='not-a-hash'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = runBankedge(t, context.Background(), dir, nil, "sandbox", "--dir", "existing").CombinedOutput()
	if err == nil || !strings.Contains(string(out), envAdminHash+" (from "+filepath.Join(existing, "secrets.env")+") is not a bcrypt hash") {
		t.Fatalf("a bad hash in secrets.env: %v\n%s", err, out)
	}
	if entries, _ := os.ReadDir(existing); len(entries) != 1 {
		t.Errorf("the refused sandbox wrote %d files", len(entries)-1)
	}

	// A directory too deep for the admin socket is refused before anything
	// is written, saying why.
	deep := filepath.Join(dir, strings.Repeat("d", 120))
	env, _ := sandboxEnv(t, t.TempDir())
	out, err = runBankedge(t, context.Background(), dir, env, "sandbox", "--dir", deep).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "choose a shorter --dir") {
		t.Fatalf("a sandbox directory too deep for a unix socket: %v\n%s", err, out)
	}
	if _, err := os.Stat(deep); err == nil {
		t.Error("the refused sandbox created its directory")
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/bankedge/bankedge"
	"github.com/bankedge/bankedge/modules/psd2/tppcmd"
)

// runCLI runs the bankedge command line in this process and returns what
// it printed.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// The binary presents itself as bankedge: version first, then Caddy's and
// Go's.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, err := runCLI(t, args...)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "bankedge ") || !strings.HasPrefix(lines[1], "Caddy v2.") ||
			!strings.HasPrefix(lines[2], runtime.Version()+" ") {
			t.Errorf("%v printed:\n%s", args, out)
		}
	}
	version = "v9.8.7"
	defer func() { version = "" }()
	if out, _ := runCLI(t, "version"); !strings.HasPrefix(out, "bankedge v9.8.7\n") {
		t.Errorf("with -X main.version: %s", out)
	}
}

// Usage lines and help say bankedge; bankedge's commands link to the README,
// Caddy's to Caddy's documentation.
func TestHelpPresentsBankedge(t *testing.T) {
	out, err := runCLI(t, "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"bankedge [command]", "bankedge sandbox", "doctor", readmeURL} {
		if !strings.Contains(out, want) {
			t.Errorf("bankedge --help lacks %q:\n%s", want, out)
		}
	}
	for _, unwanted := range []string{"caddy run", "Caddy is an extensible server platform", "upgrade", "add-package"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("bankedge --help shows %q", unwanted)
		}
	}
	for _, args := range [][]string{{"tpp", "request", "--help"}, {"sandbox", "--help"}, {"doctor", "--help"}, {"pesit", "send", "--help"}} {
		out, err := runCLI(t, args...)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "bankedge "+args[0]) || !strings.Contains(out, readmeURL) || strings.Contains(out, "caddyserver.com/docs/command-line") {
			t.Errorf("%v:\n%s", args, out)
		}
	}
	out, _ = runCLI(t, "run", "--help")
	if !strings.Contains(out, "bankedge run") || !strings.Contains(out, "caddyserver.com/docs/command-line") {
		t.Errorf("bankedge run --help:\n%s", out)
	}
}

// The exit status of a command survives: caddycmd's wrapped errors keep
// their code, and a command that returns a status without an error exits
// with it.
func TestExitStatus(t *testing.T) {
	wrapped := caddycmd.WrapCommandFuncForCobra(func(caddycmd.Flags) (int, error) { return 3, errors.New("boom") })
	if got := exitStatus(wrapped(&cobra.Command{}, nil)); got != 3 {
		t.Errorf("caddycmd's exit error gave status %d, want 3", got)
	}
	status := runStatus(func(caddycmd.Flags) (int, error) { return 1, nil })
	if got := exitStatus(status(&cobra.Command{}, nil)); got != 1 {
		t.Errorf("status 1 without an error gave %d", got)
	}
	if got := exitStatus(errors.New("unknown flag")); got != 1 {
		t.Errorf("a plain error gave %d", got)
	}
	if got := execute([]string{"no-such-command"}); got != 1 {
		t.Errorf("an unknown command exited with %d", got)
	}
}

// "go run" is recognised by where its executable lives.
func TestIsGoRun(t *testing.T) {
	t.Setenv("GOCACHE", "/srv/cache/gobuild")
	for path, want := range map[string]bool{
		"/tmp/go-build2510244641/b001/exe/bankedge":             true,
		"/home/dev/.cache/go-build/3f/3f9a-d/bankedge":          true,
		"/srv/cache/gobuild/ab/abcdef-d/bankedge":               true,
		"/usr/local/bin/bankedge":                               false,
		"/home/dev/src/bankedge/bankedge":                       false,
		"/home/dev/go-builds-are-not-go-run/../bin/bankedge":    false,
		"/home/dev/go/pkg/mod/cache/download/bankedge/bankedge": false,
	} {
		if got := isGoRun(path); got != want {
			t.Errorf("isGoRun(%q) = %v, want %v", path, got, want)
		}
	}
}

// exampleConfig adapts the embedded Caddyfile.example.
func exampleConfig(t *testing.T) map[string]any {
	t.Helper()
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(bankedge.ExampleCaddyfile, map[string]any{"filename": "Caddyfile.example"})
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(cfg, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// The tpp commands sign in the profile the sandbox checks, unless told
// otherwise.
func TestTPPProfileMatchesSandbox(t *testing.T) {
	cfg, _ := json.Marshal(exampleConfig(t))
	var profiles []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if v["handler"] == "psd2_qseal" {
				p, _ := v["profile"].(string)
				profiles = append(profiles, p)
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	var c any
	_ = json.Unmarshal(cfg, &c)
	walk(c)
	if len(profiles) == 0 {
		t.Fatal("no psd2_qseal handler in Caddyfile.example")
	}
	for _, p := range profiles {
		if p != tppcmd.DefaultProfile {
			t.Errorf("Caddyfile.example checks the %q profile, bankedge tpp signs in %q by default", p, tppcmd.DefaultProfile)
		}
	}
}

// The example's admin endpoint is a unix socket only its owner can open.
func TestExampleAdminEndpointIsOwnerOnlySocket(t *testing.T) {
	admin, _ := exampleConfig(t)["admin"].(map[string]any)
	listen, _ := admin["listen"].(string)
	if !strings.HasPrefix(listen, "unix/") || !strings.HasSuffix(listen, "/admin.sock|0600") {
		t.Fatalf("admin listen = %q, want an owner-only unix socket in the sandbox directory", listen)
	}
}

// bankedge validate on the example provisions everything and writes no
// state: no storage (neither the bankedge CA nor a Caddy local CA), no
// PeSIT files directory. (Caddy opens the log files it is told to.)
func TestValidateTheExampleWritesNoState(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Caddyfile"), bankedge.ExampleCaddyfile, 0o600); err != nil {
		t.Fatal(err)
	}
	env, _ := sandboxEnv(t, dir)
	sandbox := filepath.Join(dir, "sb")
	env = append(env, "BANKEDGE_SANDBOX="+sandbox, "BANKEDGE_CA_PASSWORD=validate-ca-passphrase",
		"BANKEDGE_DEMO_PARTNER_PASSWORD=Demo1234", "BANKEDGE_UPSTREAM_PESIT_PASSWORD=Upst1234")
	out, err := runBankedge(t, context.Background(), dir, env, "validate", "--config", "Caddyfile", "--adapter", "caddyfile").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Valid configuration") {
		t.Fatalf("validate: %v\n%s", err, out)
	}
	entries, _ := os.ReadDir(sandbox)
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".log") {
			t.Errorf("validate wrote %s", filepath.Join(sandbox, e.Name()))
		}
	}
}

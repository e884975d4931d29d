package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
)

// printSummary writes the one message a sandbox user needs once it runs:
// every listener, every file and credential, and what to try next, with
// paths as they can be pasted from the current directory.
func printSummary(w io.Writer, dir string, listeners []listener, fromEnv map[string]bool, redisAddr string) {
	self := selfCommand()
	p := func(parts ...string) string { return displayPath(filepath.Join(append([]string{dir}, parts...)...)) }
	var b strings.Builder
	fmt.Fprintf(&b, "\nbankedge sandbox ready in %s\n\nListening:\n", p())
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	xs2a, api, pesit := "https://localhost:8443", "http://127.0.0.1:8080", "127.0.0.1:6502"
	for _, l := range listeners {
		switch {
		case l.app == "admin" && l.network == "unix":
			path, _, _ := strings.Cut(l.addr, "|")
			fmt.Fprintf(tw, "  unix socket %s\tCaddy admin endpoint, owner only (it can read and change the configuration)\n", displayPath(path))
		case l.app == "admin":
			fmt.Fprintf(tw, "  %s\tCaddy admin endpoint (any local process can use it)\n", l)
		default:
			what, variable := fmt.Sprintf("%s server %s", l.app, l.server), ""
			if v, ok := portVariable(l.port); ok {
				what, variable = v.name+": "+v.detail, v.env
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", l, what, variable)
			switch variable {
			case "BANKEDGE_XS2A_PORT":
				xs2a = l.String()
			case "BANKEDGE_API_PORT":
				api = l.String()
			case "BANKEDGE_PESIT_PORT":
				pesit = l.dialAddr()
			}
		}
	}
	tw.Flush()

	b.WriteString("\nFiles:\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	adminPassword := "password in " + p("admin-password")
	if fromEnv[envAdminHash] {
		adminPassword = "the password whose hash you set in $" + envAdminHash
	}
	demoPassword := "password in " + p("pesit", "demo-password")
	if fromEnv[envDemoPassword] {
		demoPassword = "the password you set in $" + envDemoPassword
	}
	for _, f := range []struct{ name, what string }{
		{"secrets.env", "the CA key passphrase, the admin password hash, the PeSIT passwords (keep it: the CA key needs it)"},
		{"tpp/", "QWAC and QSEAL of PSDGR-BOG-123456 (qwac.pem, qseal.pem, keys, .p12), qtsp-root.pem, p12-password"},
		{"pesit/", "the DEMO partner's PeSIT password and TLS client certificate (demo.pem, demo-key.pem, ca.pem)"},
		{"pesit-files/", "the files the sandbox PeSIT server holds"},
		{"audit.log", "audit trail: CA issuances and revocations, partner changes, PeSIT sessions"},
		{"access.log", "one JSON line per XS2A request, accepted or refused"},
		{"storage/", "Caddy's storage: the CA, its inventory and CRL, the partner registry"},
	} {
		path := filepath.Join(dir, f.name)
		if _, err := os.Stat(path); err != nil {
			continue
		}
		shown := displayPath(path)
		if strings.HasSuffix(f.name, "/") {
			shown += "/"
		}
		fmt.Fprintf(tw, "  %s\t%s\n", shown, f.what)
	}
	if redisAddr != "" {
		fmt.Fprintf(tw, "  Redis %s\tCaddy's storage (the CA, its inventory and CRL, the partner registry) and the shared state "+
			"(replay ids, PeSIT connection slots, failure counters), key prefix %s: every sandbox started with --redis %s is one gateway with this one\n",
			redisAddr, sandboxRedisPrefix, redisAddr)
	}
	tw.Flush()

	b.WriteString("\nCredentials:\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  admin API (%s)\tuser admin, %s\n", api, adminPassword)
	fmt.Fprintf(tw, "  PeSIT partner DEMO\t%s, server id BANKEDGE, TLS client certificate %s\n", demoPassword, p("pesit", "demo.pem"))
	fmt.Fprintf(tw, "  TPP PSDGR-BOG-123456\t%s, %s (PKCS#12 password in %s)\n", p("tpp", "qwac.pem"), p("tpp", "qseal.pem"), p("tpp", "p12-password"))
	tw.Flush()

	fmt.Fprintf(&b, `
Next:
  # a signed payment initiation, as a TPP
  %[1]s tpp request --qwac %[2]s --qseal %[3]s \
    -X POST --data '{"instructedAmount":{"currency":"EUR","amount":"12.00"},"creditorName":"Shop"}' \
    %[4]s/v1/payments/sepa-credit-transfers
  # the certificates the CA issued, as the bank's administrator
  curl -u admin:$(cat %[5]s) %[6]s/api/v1/certificates/ca/issued
  # a file sent over PeSIT, as the DEMO partner
  echo '<Document/>' > payments.xml
  %[1]s pesit send payments.xml --to %[7]s --partner DEMO --password-file %[8]s --server-id BANKEDGE
  # a check of every listener, the CA, the storage and the certificates
  %[1]s doctor --dir %[9]s

%[11]s
Stop with Ctrl-C; the next start reuses %[9]s. Documentation: %[10]s
`, self, p("tpp", "qwac.pem"), p("tpp", "qseal.pem"), xs2a, p("admin-password"), api, pesit,
		p("pesit", "demo-password"), p(), readmeURL, secondSandbox(self, p(), redisAddr))
	_, _ = io.WriteString(w, b.String())
}

// displayPath shows path relative to the working directory when it lies
// below it, else absolute.
func displayPath(path string) string {
	wd, err := os.Getwd()
	if err != nil {
		return path
	}
	rel, err := filepath.Rel(wd, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return path
	}
	return rel
}

// selfCommand is how the user runs this program again: "go run
// ./cmd/bankedge" when "go run" started it, else the binary's name when it
// is the one on PATH, else its path.
func selfCommand() string {
	exe, err := os.Executable()
	if err != nil {
		return "bankedge"
	}
	if isGoRun(exe) {
		if st, err := os.Stat(filepath.Join("cmd", "bankedge")); err == nil && st.IsDir() {
			return "go run ./cmd/bankedge"
		}
		return "go run github.com/bankedge/bankedge/cmd/bankedge"
	}
	if onPath, err := exec.LookPath(filepath.Base(exe)); err == nil {
		if a, err1 := os.Stat(onPath); err1 == nil {
			if b, err2 := os.Stat(exe); err2 == nil && os.SameFile(a, b) {
				return filepath.Base(exe)
			}
		}
	}
	if p := displayPath(exe); !filepath.IsAbs(p) {
		return "." + string(filepath.Separator) + p
	}
	return exe
}

// isGoRun reports whether exe was built by "go run": such executables live
// in Go's build cache (GOCACHE, by default <user cache dir>/go-build) or in
// a temporary go-build directory.
func isGoRun(exe string) bool {
	exe = filepath.Clean(exe)
	for _, part := range strings.Split(filepath.ToSlash(exe), "/") {
		if strings.HasPrefix(part, "go-build") {
			return true
		}
	}
	if cache := os.Getenv("GOCACHE"); cache != "" && cache != "off" {
		if rel, err := filepath.Rel(filepath.Clean(cache), exe); err == nil && !strings.HasPrefix(rel, "..") {
			return true
		}
	}
	return false
}

// secondSandbox tells how to start another sandbox on the same Redis.
func secondSandbox(self, dir, redisAddr string) string {
	if redisAddr == "" {
		return ""
	}
	return fmt.Sprintf(`  # another sandbox on this Redis, one gateway with this one (its own directory and ports)
  BANKEDGE_XS2A_PORT=18443 BANKEDGE_ASPSP_PORT=19080 BANKEDGE_API_PORT=18080 BANKEDGE_PESIT_PORT=16502 \
  BANKEDGE_PESITS_PORT=15001 BANKEDGE_PESIT_UPSTREAM_PORT=16503 \
    %s sandbox --redis %s --dir %s2
`, self, redisAddr, strings.TrimSuffix(dir, string(filepath.Separator)))
}

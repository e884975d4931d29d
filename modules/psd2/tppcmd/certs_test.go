package tppcmd

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bankedge/bankedge/internal/testpki"
	"github.com/bankedge/bankedge/modules/psd2/tppclient"
)

func runCerts(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := certsCommand()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err = cmd.Execute()
	return out.String(), errOut.String(), err
}

// snapshot reads every file of dir.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(b)
	}
	return files
}

// p12Opens checks that dir's .p12 files open with dir/p12-password.
func p12Opens(t *testing.T, dir string) {
	t.Helper()
	pw, err := os.ReadFile(filepath.Join(dir, "p12-password"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"qwac.p12", "qseal.p12"} {
		if _, err := tppclient.LoadIdentity(filepath.Join(dir, name), "", strings.TrimSpace(string(pw))); err != nil {
			t.Fatalf("%s does not open with p12-password: %v", name, err)
		}
	}
}

// A directory that holds a sandbox's certificates (the gateway CA's
// qtsp-root.pem without its key, a QWAC, a p12-password) is left alone
// without --force; with it, the files are replaced and the .p12 files agree
// with p12-password.
func TestCertsNeverOverwriteWithoutForce(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "gateway CA")
	testpki.WriteFile(t, dir, "qtsp-root.pem", testpki.CertPEM(ca.Cert))
	testpki.WriteFile(t, dir, "qwac.pem", []byte("the sandbox's QWAC\n"))
	testpki.WriteFile(t, dir, "p12-password", []byte("the sandbox's password\n"))
	before := snapshot(t, dir)

	_, _, err := runCerts(t, "--out", dir, "--org-id", "PSDGR-BOG-123456")
	if err == nil || !strings.Contains(err.Error(), "--force") || !strings.Contains(err.Error(), "qtsp-root.pem") {
		t.Fatalf("tpp certs into a taken directory: %v", err)
	}
	if after := snapshot(t, dir); len(after) != len(before) || after["qwac.pem"] != before["qwac.pem"] ||
		after["qtsp-root.pem"] != before["qtsp-root.pem"] || after["p12-password"] != before["p12-password"] {
		t.Fatalf("files changed without --force: %v", after)
	}

	out, _, err := runCerts(t, "--out", dir, "--org-id", "PSDGR-BOG-123456", "--force")
	if err != nil {
		t.Fatalf("tpp certs --force: %v", err)
	}
	if !strings.Contains(out, "p12-password") {
		t.Errorf("the output does not say where the PKCS#12 password is:\n%s", out)
	}
	after := snapshot(t, dir)
	if after["qtsp-root.pem"] == before["qtsp-root.pem"] || after["p12-password"] == before["p12-password"] {
		t.Fatal("--force did not replace the files")
	}
	for name := range after {
		if strings.Contains(name, ".tmp-") {
			t.Errorf("a temporary file is left: %s", name)
		}
	}
	p12Opens(t, dir)
}

// A second run in the same directory is refused; with --force it reuses
// the local root, so that a gateway trusting it keeps trusting the new
// certificates.
func TestCertsRerunReusesLocalRoot(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := runCerts(t, "--out", dir, "--org-id", "PSDGR-BOG-123456", "--p12-password", "first-password"); err != nil {
		t.Fatal(err)
	}
	first := snapshot(t, dir)
	if first["p12-password"] != "first-password\n" {
		t.Fatalf("p12-password = %q, want the --p12-password", first["p12-password"])
	}
	if _, _, err := runCerts(t, "--out", dir, "--org-id", "PSDGR-BOG-123456"); err == nil {
		t.Fatal("a second tpp certs replaced the first one's files without --force")
	}
	if _, _, err := runCerts(t, "--out", dir, "--org-id", "PSDGR-BOG-654321", "--force"); err != nil {
		t.Fatal(err)
	}
	second := snapshot(t, dir)
	if second["qtsp-root.pem"] != first["qtsp-root.pem"] || second["qtsp-root-key.pem"] != first["qtsp-root-key.pem"] {
		t.Fatal("--force made a new root instead of reusing the one in --out")
	}
	if second["qwac.pem"] == first["qwac.pem"] || second["p12-password"] == first["p12-password"] {
		t.Fatal("--force did not replace the certificates")
	}
	p12Opens(t, dir)
	root, err := tppclient.LoadCertificate(filepath.Join(dir, "qtsp-root.pem"))
	if err != nil {
		t.Fatal(err)
	}
	qwac, err := tppclient.LoadCertificate(filepath.Join(dir, "qwac.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := qwac.CheckSignatureFrom(root); err != nil {
		t.Fatalf("the new QWAC does not chain to the kept root: %v", err)
	}
}

// A run that fails (here: no gateway at --from) writes nothing.
func TestCertsFailureWritesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	t.Setenv("BANKEDGE_ADMIN_PASSWORD", "unused")
	_, _, err := runCerts(t, "--out", dir, "--org-id", "PSDGR-BOG-123456", "--from", "http://127.0.0.1:1")
	if err == nil {
		t.Fatal("tpp certs --from a closed port succeeded")
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Fatalf("a failed run left %d files in --out", len(entries))
	}
}

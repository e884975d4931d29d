package tppcmd

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bankedge/bankedge/modules/psd2/tppclient"
)

// The PKCS#12 password from the environment must never appear in --help or
// in the usage printed on a flag error, yet it must still be used.
func TestP12PasswordFromEnvironmentIsNotPrinted(t *testing.T) {
	const secret = "env-secret-6f1d2c"
	t.Setenv(p12PasswordEnv, secret)
	for _, cmd := range []interface{ UsageString() string }{certsCommand(), signCommand(), requestCommand()} {
		if strings.Contains(cmd.UsageString(), secret) {
			t.Fatalf("usage shows the PKCS#12 password:\n%s", cmd.UsageString())
		}
	}

	dir := t.TempDir()
	cmd := certsCommand()
	var stdout, stderr bytes.Buffer
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	cmd.SetArgs([]string{"--out", dir, "--org-id", "PSDGR-BOG-123456", "--roles", "PSP_AI"})
	if err := cmd.Execute(); err != nil {
		t.Fatalf("tpp certs: %v\n%s", err, stderr.String())
	}
	if strings.Contains(stderr.String(), "shown once") {
		t.Errorf("a random password was made although %s is set: %s", p12PasswordEnv, stderr.String())
	}
	if _, err := tppclient.LoadIdentity(filepath.Join(dir, "qseal.p12"), "", secret); err != nil {
		t.Fatalf("qseal.p12 does not open with the password from the environment: %v", err)
	}
}

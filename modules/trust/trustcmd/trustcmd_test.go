package trustcmd_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bankedge/bankedge/internal/testpki"
	"github.com/bankedge/bankedge/internal/testtsl"
	"github.com/bankedge/bankedge/modules/trust/trustcmd"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := trustcmd.ShowCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestShow(t *testing.T) {
	sc := testtsl.NewScenario(t)
	out, err := run(t, "--lotl-url", sc.URL(testtsl.LOTLPath), "--lotl-signers", sc.SignersFile)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"LOTL " + sc.URL(testtsl.LOTLPath), "sequence 1", "CN=Test LOTL signer, O=Test scheme operator, C=EU",
		"EL  ", "Granted QTSP S.A.", "CN=Granted QTSP Qualified CA, O=Test QTSP S.A., organizationIdentifier=VATGR-999999999, C=GR", "SHA-256 ", "CY  ", "(no granted CA/QC service for web)",
		"1 CA certificate would be trusted for web, from 2 of 2 national lists."} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Withdrawn QTSP") || strings.Contains(out, "Failed lists") {
		t.Fatalf("withdrawn QTSP or a failure shown:\n%s", out)
	}

	// A mirrored LOTL from a file, seals, Cyprus only.
	mirror := filepath.Join(t.TempDir(), "eu-lotl.xml")
	if err := os.WriteFile(mirror, sc.LOTLSigner.Sign(t, sc.LOTL(1).XML()), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = run(t, "--lotl-url", "file://"+mirror, "--lotl-signers", sc.SignersFile, "--service", "eseal", "--territory", "CY")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "ESeal QTSP Ltd") || strings.Contains(out, "EL  ") ||
		!strings.Contains(out, "1 CA certificate would be trusted for eseal, from 1 of 1 national lists.") {
		t.Fatalf("eseal CY:\n%s", out)
	}
}

func TestShowFailures(t *testing.T) {
	sc := testtsl.NewScenario(t)
	intruder := testtsl.NewSigner(t, "not the EL operator", testtsl.RSASHA256, 2)
	sc.Server.Put(testtsl.ELPath, intruder.Sign(t, sc.EL(2).XML()))
	args := []string{"--lotl-url", sc.URL(testtsl.LOTLPath), "--lotl-signers", sc.SignersFile}
	out, err := run(t, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "Failed lists:\n  EL "+sc.URL(testtsl.ELPath)+": signature: signature does not verify") ||
		!strings.Contains(out, "in force: not in force") || !strings.Contains(out, "0 CA certificates would be trusted for web, from 1 of 2") {
		t.Fatalf("failure not reported:\n%s", out)
	}
	if _, err := run(t, append(args, "--fail-on-error")...); err == nil {
		t.Fatal("--fail-on-error exited 0")
	}

	// The LOTL itself: signers that did not sign it.
	other := filepath.Join(t.TempDir(), "other.pem")
	if err := os.WriteFile(other, testpki.CertPEM(intruder.Cert), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, "--lotl-url", sc.URL(testtsl.LOTLPath), "--lotl-signers", other); err == nil || !strings.Contains(err.Error(), "no usable LOTL") {
		t.Fatalf("err = %v\n%s", err, out)
	}
	if _, err := run(t, "--lotl-url", sc.URL(testtsl.LOTLPath)); err == nil || !strings.Contains(err.Error(), "--lotl-signers is required") {
		t.Fatalf("err = %v", err)
	}
	if _, err := run(t, "--lotl-signers", sc.SignersFile, "--service", "qwac"); err == nil {
		t.Fatal("service qwac accepted")
	}
}

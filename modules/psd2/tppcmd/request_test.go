package tppcmd

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

// tpp request exits non-zero on an answer other than 2xx and prints that
// answer on standard error, or on standard output with --error-to-stdout.
func TestRequestFailsOnNon2xx(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := runCerts(t, "--out", dir, "--org-id", "PSDGR-BOG-123456"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) == 0 || r.Header.Get("Signature") == "" {
			http.Error(w, "unsigned", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/v1/accounts" {
			w.Write([]byte(`{"accounts":[]}`))
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"tppMessages":[{"category":"ERROR","code":"ROLE_INVALID"}]}`))
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	srv.StartTLS()
	defer srv.Close()

	run := func(args ...string) (string, string, error) {
		cmd := requestCommand()
		var out, errOut bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&errOut)
		cmd.SetArgs(append([]string{"-k", "--qwac", filepath.Join(dir, "qwac.pem"), "--qseal", filepath.Join(dir, "qseal.pem")}, args...))
		err := cmd.Execute()
		return out.String(), errOut.String(), err
	}

	out, _, err := run(srv.URL + "/v1/accounts")
	if err != nil || !strings.Contains(out, `"accounts"`) {
		t.Fatalf("a 200 answer: %v, stdout %q", err, out)
	}
	out, errOut, err := run("-X", "POST", "--data", "{}", srv.URL+"/v1/payments/sepa-credit-transfers")
	var se *StatusError
	if !errors.As(err, &se) || se.Status != http.StatusUnauthorized {
		t.Fatalf("a 401 answer returned %v, want a StatusError", err)
	}
	if out != "" || !strings.Contains(errOut, "ROLE_INVALID") || !strings.Contains(errOut, "401") {
		t.Fatalf("a 401 answer: stdout %q, stderr %q", out, errOut)
	}
	out, _, err = run("--error-to-stdout", "-X", "POST", "--data", "{}", srv.URL+"/v1/payments/sepa-credit-transfers")
	if !errors.As(err, &se) || !strings.Contains(out, "ROLE_INVALID") {
		t.Fatalf("--error-to-stdout: %v, stdout %q", err, out)
	}
}

package revocation_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bankedge/bankedge/internal/testcaddy"
	"github.com/bankedge/bankedge/internal/testpki"
	"github.com/bankedge/bankedge/modules/trust/fetch"
	"github.com/bankedge/bankedge/modules/trust/revocation"
)

// opensslCA is a CA directory that `openssl ca` maintains: its index of
// issued and revoked certificates, and the CRLs it signs.
type opensslCA struct {
	t   *testing.T
	bin string
	dir string
	ca  *testpki.CA
}

func newOpensslCA(t *testing.T, ca *testpki.CA) *opensslCA {
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed: the independent OCSP responder and CRL issuer are skipped")
	}
	dir := t.TempDir()
	keyDER, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"ca.pem":     testpki.CertPEM(ca.Cert),
		"ca-key.pem": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		"index.txt":  nil,
		"crlnumber":  []byte("1000\n"),
		"ca.cnf": []byte(fmt.Sprintf(`[ca]
default_ca = qtsp
[qtsp]
dir = %s
database = $dir/index.txt
crlnumber = $dir/crlnumber
certificate = $dir/ca.pem
private_key = $dir/ca-key.pem
default_md = sha256
default_crl_days = 1
unique_subject = no
`, dir)),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return &opensslCA{t: t, bin: bin, dir: dir, ca: ca}
}

func (o *opensslCA) run(args ...string) {
	o.t.Helper()
	cmd := exec.Command(o.bin, args...)
	cmd.Dir = o.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		o.t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (o *opensslCA) writeCert(name string, c *x509.Certificate) string {
	p := filepath.Join(o.dir, name)
	if err := os.WriteFile(p, testpki.CertPEM(c), 0o600); err != nil {
		o.t.Fatal(err)
	}
	return p
}

// record enters a certificate in the index as valid.
func (o *opensslCA) record(name string, c *x509.Certificate) {
	o.run("ca", "-config", "ca.cnf", "-valid", o.writeCert(name, c))
}

// revoke marks a certificate revoked in the index.
func (o *opensslCA) revoke(name string, c *x509.Certificate) {
	o.run("ca", "-config", "ca.cnf", "-revoke", o.writeCert(name, c), "-crl_reason", "keyCompromise")
}

// crl signs a CRL from the index and returns it in DER.
func (o *opensslCA) crl() []byte {
	o.run("ca", "-config", "ca.cnf", "-gencrl", "-out", "crl.pem")
	o.run("crl", "-in", "crl.pem", "-outform", "DER", "-out", "crl.der")
	der, err := os.ReadFile(filepath.Join(o.dir, "crl.der"))
	if err != nil {
		o.t.Fatal(err)
	}
	return der
}

// startResponder runs `openssl ocsp` as the CA's delegated responder on
// port and stops it when the test ends.
func (o *opensslCA) startResponder(port int) {
	key := testpki.ECKey(o.t)
	resp := o.ca.Issue(o.t, &x509.Certificate{
		Subject:   pkix.Name{CommonName: "QTSP OCSP responder"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning},
	}, key.Public())
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	o.writeCert("responder.pem", resp)
	if err := os.WriteFile(filepath.Join(o.dir, "responder-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		o.t.Fatal(err)
	}
	cmd := exec.Command(o.bin, "ocsp", "-index", "index.txt", "-CA", "ca.pem", "-rsigner", "responder.pem",
		"-rkey", "responder-key.pem", "-port", fmt.Sprint(port), "-ndays", "1")
	cmd.Dir = o.dir
	// openssl ocsp serves one connection at a time, so readiness is read
	// from its log rather than probed with a connection.
	stderr, err := cmd.StderrPipe()
	if err != nil {
		o.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		o.t.Fatal(err)
	}
	o.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "waiting for OCSP client connections") {
				ready <- nil
				break
			}
		}
		ready <- fmt.Errorf("openssl ocsp ended: %v", sc.Err())
		_, _ = io.Copy(io.Discard, stderr)
	}()
	select {
	case err := <-ready:
		if err != nil {
			o.t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		o.t.Fatalf("openssl ocsp did not start on port %d", port)
	}
}

// opensslChecker does not keep connections alive: openssl ocsp would wait
// on an idle one while the next request comes on another.
func opensslChecker() *revocation.Checker {
	hc := fetch.NewHTTPClient(5 * time.Second)
	hc.Transport.(*http.Transport).DisableKeepAlives = true
	return revocation.New(revocation.Options{HTTP: &fetch.Client{HTTP: hc}})
}

// A real `openssl ocsp` responder (delegated, with id-kp-OCSPSigning) and
// CRLs signed by `openssl ca` give the same answers.
func TestOpenSSLResponderAndCRL(t *testing.T) {
	ca := testpki.NewCA(t, "QTSP CA")
	o := newOpensslCA(t, ca)
	port := testcaddy.FreePort(t)
	crlDER := make(chan []byte, 1)
	crlSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		der := <-crlDER
		crlDER <- der
		_, _ = w.Write(der)
	}))
	defer crlSrv.Close()
	ocspURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	good := leaf(t, ca, ocspURL, crlSrv.URL+"/qtsp.crl")
	revoked := leaf(t, ca, ocspURL, crlSrv.URL+"/qtsp.crl")
	o.record("good.pem", good)
	o.revoke("revoked.pem", revoked)
	crlDER <- o.crl()
	o.startResponder(port)

	for _, prefer := range []revocation.Prefer{revocation.PreferOCSP, revocation.PreferCRL} {
		source := map[revocation.Prefer]string{revocation.PreferOCSP: "ocsp", revocation.PreferCRL: "crl"}[prefer]
		c := opensslChecker()
		if res := check(c, good, ca.Cert, prefer); res.Status != revocation.Good || res.Source != source {
			t.Fatalf("%s: good certificate: %+v", source, res)
		}
		res := check(c, revoked, ca.Cert, prefer)
		if res.Status != revocation.Revoked || res.Source != source || res.Reason != 1 {
			t.Fatalf("%s: revoked certificate: %+v", source, res)
		}
	}

	// A certificate the CA never recorded: openssl answers "unknown", and
	// the CRL (which does not list it) decides.
	stranger := leaf(t, ca, ocspURL, "")
	if res := check(opensslChecker(), stranger, ca.Cert, revocation.PreferOCSP); res.Status != revocation.Unknown || !strings.Contains(res.Detail, "does not know") {
		t.Fatalf("unrecorded certificate: %+v", res)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	other := testpki.NewCA(t, "Other CA")
	if res := opensslChecker().Check(ctx, sha256.Sum256(good.Raw), good, other.Cert, revocation.PreferOCSP); res.Status != revocation.Unknown {
		t.Fatalf("answers checked against the wrong issuer: %+v", res)
	}
}

// Package testrevocation serves revocation data for tests: an OCSP
// responder built on x/crypto/ocsp whose answers a test shapes, a CRL
// server, and a CA directory maintained by `openssl ca` with a real
// `openssl ocsp` responder, as an independent implementation.
package testrevocation

import (
	"bufio"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/bankedge/bankedge/internal/testpki"
)

// Responder is an OCSP responder for the certificates of CA. Change its
// fields with Set.
type Responder struct {
	*httptest.Server
	CA   *testpki.CA
	hits atomic.Int64

	mu sync.Mutex
	// Status of each serial (lower-case hex, big.Int.Text(16)); absent is
	// ocsp.Good.
	Status map[string]int
	// Signer signs responses, with SignCert in the response; nil is the
	// CA itself.
	Signer   crypto.Signer
	SignCert *x509.Certificate
	// ThisUpdate and NextUpdate are offsets from now; a zero NextUpdate
	// means none.
	ThisUpdate, NextUpdate time.Duration
	// Raw, when set, is answered instead.
	Raw []byte
	// Hang holds the answer until the request ends.
	Hang bool
}

// NewResponder starts a responder that answers good, fresh for an hour,
// and is closed when the test ends.
func NewResponder(t testing.TB, ca *testpki.CA) *Responder {
	r := &Responder{CA: ca, Status: map[string]int{}, ThisUpdate: -time.Minute, NextUpdate: time.Hour}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

// Set changes the responder under its lock.
func (r *Responder) Set(f func(r *Responder)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r)
}

// Revoke answers revoked for cert from now on.
func (r *Responder) Revoke(cert *x509.Certificate) {
	r.Set(func(r *Responder) { r.Status[cert.SerialNumber.Text(16)] = ocsp.Revoked })
}

// Hits is the number of requests received.
func (r *Responder) Hits() int64 { return r.hits.Load() }

func (r *Responder) serve(w http.ResponseWriter, req *http.Request) {
	r.hits.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Hang {
		r.mu.Unlock()
		<-req.Context().Done()
		r.mu.Lock()
		return
	}
	if r.Raw != nil {
		_, _ = w.Write(r.Raw)
		return
	}
	var der []byte
	if req.Method == http.MethodPost {
		der, _ = io.ReadAll(req.Body)
	} else {
		p, _ := url.PathUnescape(strings.TrimPrefix(req.URL.Path, "/"))
		der, _ = base64.StdEncoding.DecodeString(p)
	}
	oreq, err := ocsp.ParseRequest(der)
	if err != nil {
		_, _ = w.Write(ocsp.MalformedRequestErrorResponse)
		return
	}
	now := time.Now()
	tmpl := ocsp.Response{
		Status:       r.Status[oreq.SerialNumber.Text(16)],
		SerialNumber: oreq.SerialNumber,
		ThisUpdate:   now.Add(r.ThisUpdate),
		RevokedAt:    now.Add(-time.Hour),
	}
	if r.NextUpdate != 0 {
		tmpl.NextUpdate = now.Add(r.NextUpdate)
	}
	signer, cert := r.CA.Key, (*x509.Certificate)(nil)
	if r.Signer != nil {
		signer, cert = r.Signer, r.SignCert
		tmpl.Certificate = cert
	}
	if cert == nil {
		cert = r.CA.Cert
	}
	resp, err := ocsp.CreateResponse(r.CA.Cert, cert, tmpl, signer)
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	_, _ = w.Write(resp)
}

// CRLServer serves one CRL at every path.
type CRLServer struct {
	*httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	der  []byte
}

// NewCRLServer starts a CRL server that answers 404 until Put; it is
// closed when the test ends.
func NewCRLServer(t testing.TB) *CRLServer {
	s := &CRLServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		der := s.der
		s.mu.Unlock()
		if der == nil {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(der)
	}))
	t.Cleanup(s.Close)
	return s
}

// Put serves der from now on.
func (s *CRLServer) Put(der []byte) {
	s.mu.Lock()
	s.der = der
	s.mu.Unlock()
}

// Hits is the number of downloads.
func (s *CRLServer) Hits() int64 { return s.hits.Load() }

// MakeCRL signs a CRL of ca listing revoked (reason keyCompromise).
func MakeCRL(t testing.TB, ca *testpki.CA, thisUpdate, nextUpdate time.Time, revoked ...*x509.Certificate) []byte {
	var entries []x509.RevocationListEntry
	for _, c := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: time.Now().Add(-time.Hour), ReasonCode: 1})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(time.Now().UnixNano()), ThisUpdate: thisUpdate, NextUpdate: nextUpdate,
		RevokedCertificateEntries: entries,
	}, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// OpenSSLCA is a CA directory that `openssl ca` maintains: its index of
// issued and revoked certificates, and the CRLs it signs.
type OpenSSLCA struct {
	t   testing.TB
	bin string
	dir string
	ca  *testpki.CA
}

// NewOpenSSLCA sets up the directory for ca, or skips the test when
// openssl is not installed.
func NewOpenSSLCA(t testing.TB, ca *testpki.CA) *OpenSSLCA {
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
	return &OpenSSLCA{t: t, bin: bin, dir: dir, ca: ca}
}

func (o *OpenSSLCA) run(args ...string) {
	o.t.Helper()
	cmd := exec.Command(o.bin, args...)
	cmd.Dir = o.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		o.t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (o *OpenSSLCA) writeCert(name string, c *x509.Certificate) string {
	p := filepath.Join(o.dir, name)
	if err := os.WriteFile(p, testpki.CertPEM(c), 0o600); err != nil {
		o.t.Fatal(err)
	}
	return p
}

// Record enters a certificate in the index as valid.
func (o *OpenSSLCA) Record(name string, c *x509.Certificate) {
	o.run("ca", "-config", "ca.cnf", "-valid", o.writeCert(name, c))
}

// Revoke marks a certificate revoked (keyCompromise) in the index.
func (o *OpenSSLCA) Revoke(name string, c *x509.Certificate) {
	o.run("ca", "-config", "ca.cnf", "-revoke", o.writeCert(name, c), "-crl_reason", "keyCompromise")
}

// CRL signs a CRL from the index and returns it in DER.
func (o *OpenSSLCA) CRL() []byte {
	o.run("ca", "-config", "ca.cnf", "-gencrl", "-out", "crl.pem")
	o.run("crl", "-in", "crl.pem", "-outform", "DER", "-out", "crl.der")
	der, err := os.ReadFile(filepath.Join(o.dir, "crl.der"))
	if err != nil {
		o.t.Fatal(err)
	}
	return der
}

// StartResponder runs `openssl ocsp` as the CA's delegated responder (a
// certificate with id-kp-OCSPSigning) on port, and stops it when the test
// ends. It serves one connection at a time: clients should not keep
// connections alive.
func (o *OpenSSLCA) StartResponder(port int) {
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
	// Readiness is read from its log rather than probed with a
	// connection, which it would serve instead of the test's.
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

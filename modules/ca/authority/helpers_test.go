package authority

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

const testPassphrase = "Tr0ub4dor&3-ca-passphrase"

// fakeClock is an injectable Config.Now, safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Now().Truncate(time.Second)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testConfig is a CA configuration on a FileStorage rooted at dir.
func testConfig(dir string) Config {
	return Config{Storage: &certmagic.FileStorage{Path: dir}, Passphrase: []byte(testPassphrase)}
}

// newCA creates a CA in a new temporary directory; mod adjusts its config.
// It returns the authority and its storage directory.
func newCA(t testing.TB, mod func(*Config)) (*Authority, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := testConfig(dir)
	if mod != nil {
		mod(&cfg)
	}
	a, created, err := Open(context.Background(), cfg, true)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if !created {
		t.Fatal("Open on empty storage did not report created")
	}
	return a, dir
}

// Keys that are slow to make are made once for the whole package.
var (
	rsaKeysOnce sync.Once
	rsa2048Key  *rsa.PrivateKey
	rsa1024Key  *rsa.PrivateKey
	rsaKeysErr  error
)

func testRSAKeys(t testing.TB) (k2048, k1024 *rsa.PrivateKey) {
	t.Helper()
	rsaKeysOnce.Do(func() {
		if rsa2048Key, rsaKeysErr = rsa.GenerateKey(rand.Reader, 2048); rsaKeysErr != nil {
			return
		}
		rsa1024Key, rsaKeysErr = rsa.GenerateKey(rand.Reader, 1024)
	})
	if rsaKeysErr != nil {
		t.Fatalf("generating RSA test keys: %v", rsaKeysErr)
	}
	return rsa2048Key, rsa1024Key
}

// newCSR signs a CSR for tmpl with key and parses it back.
func newCSR(t testing.TB, key crypto.Signer, tmpl *x509.CertificateRequest) *x509.CertificateRequest {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatalf("CreateCertificateRequest: %v", err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatalf("ParseCertificateRequest: %v", err)
	}
	return csr
}

// issue issues a CLIENT certificate for pub, failing the test on error.
func issue(t testing.TB, a *Authority, pub crypto.PublicKey, cn string, validity time.Duration) *x509.Certificate {
	t.Helper()
	cert, err := a.Issue(context.Background(), Request{
		PublicKey: pub,
		Template:  &x509.Certificate{Subject: pkix.Name{CommonName: cn}},
		Purpose:   PurposeClient,
		Validity:  validity,
		PartnerID: "P_" + cn,
		IssuedBy:  "tester",
	})
	if err != nil {
		t.Fatalf("Issue(%s): %v", cn, err)
	}
	return cert
}

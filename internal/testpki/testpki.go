// Package testpki makes throw-away certificate authorities and certificates
// for tests: a QTSP-like root, PSD2 QWACs and QSEALs with real qcStatements,
// and TLS server certificates.
package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bankedge/bankedge/internal/certprofile/qcstatements"
	"github.com/bankedge/bankedge/internal/certprofile/tppcert"
)

// CA is a self-signed certificate authority.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// Leaf is an issued certificate with its key.
type Leaf struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewCA makes an ECDSA P-256 root named cn.
func NewCA(t testing.TB, cn string) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject: pkix.Name{
			Country: []string{"GR"}, Organization: []string{"Test QTSP S.A."}, CommonName: cn,
			ExtraNames: []pkix.AttributeTypeAndValue{{Type: qcstatements.OIDOrganizationIdentifier, Value: "VATGR-999999999"}},
		},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &CA{Cert: cert, Key: key}
}

// Intermediate makes an ECDSA P-256 CA named cn that ca signed.
func (ca *CA) Intermediate(t testing.TB, cn string) *CA {
	t.Helper()
	key := ECKey(t)
	cert := ca.Issue(t, &x509.Certificate{
		Subject:               pkix.Name{Country: []string{"GR"}, Organization: []string{"Test QTSP S.A."}, CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(5 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, key.Public())
	return &CA{Cert: cert, Key: key}
}

// Issue signs tmpl for pub. A zero serial is replaced with a random one.
func (ca *CA) Issue(t testing.TB, tmpl *x509.Certificate, pub crypto.PublicKey) *x509.Certificate {
	t.Helper()
	if tmpl.SerialNumber == nil || tmpl.SerialNumber.Sign() == 0 {
		tmpl.SerialNumber = serial(t)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		t.Fatalf("issuing certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TPPOption changes a PSD2 template before it is signed.
type TPPOption func(*x509.Certificate)

// Validity sets the validity period.
func Validity(notBefore, notAfter time.Time) TPPOption {
	return func(c *x509.Certificate) { c.NotBefore, c.NotAfter = notBefore, notAfter }
}

// ServerAuthOnly leaves only the serverAuth EKU, as recent QWACs have.
func ServerAuthOnly() TPPOption {
	return func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} }
}

// CriticalQCStatements marks the qcStatements extension critical.
func CriticalQCStatements() TPPOption {
	return func(c *x509.Certificate) {
		for i := range c.ExtraExtensions {
			if c.ExtraExtensions[i].Id.Equal(qcstatements.OIDExtension) {
				c.ExtraExtensions[i].Critical = true
			}
		}
	}
}

// NoPSD2Statement keeps QcCompliance and QcType but drops PSD2QcType.
func NoPSD2Statement() TPPOption {
	return func(c *x509.Certificate) {
		ext, err := qcstatements.Extension(qcstatements.Statements{Compliance: true, Types: []qcstatements.QcType{qcstatements.QcTypeWeb}}, false)
		if err != nil {
			panic(err)
		}
		for i := range c.ExtraExtensions {
			if c.ExtraExtensions[i].Id.Equal(qcstatements.OIDExtension) {
				c.ExtraExtensions[i] = ext
			}
		}
	}
}

// SerialNumber sets the serial number.
func SerialNumber(n *big.Int) TPPOption {
	return func(c *x509.Certificate) { c.SerialNumber = n }
}

// TPP issues a QWAC or QSEAL for subject with key.
func (ca *CA) TPP(t testing.TB, kind tppcert.Kind, subject tppcert.Subject, key crypto.Signer, opts ...TPPOption) *Leaf {
	t.Helper()
	tmpl, err := tppcert.Template(kind, subject, time.Now().Add(-time.Hour), time.Now().Add(365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range opts {
		o(tmpl)
	}
	return &Leaf{Cert: ca.Issue(t, tmpl, key.Public()), Key: key}
}

// Server issues a TLS server certificate for names with an ECDSA key.
func (ca *CA) Server(t testing.TB, names ...string) *Leaf {
	t.Helper()
	key := ECKey(t)
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: names[0]},
		DNSNames:    names,
		NotBefore:   time.Now().Add(-time.Hour),
		NotAfter:    time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	return &Leaf{Cert: ca.Issue(t, tmpl, key.Public()), Key: key}
}

// ECKey returns a new ECDSA P-256 key.
func ECKey(t testing.TB) crypto.Signer {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

var (
	rsaMu   sync.Mutex
	rsaKeys = map[int][]*rsa.PrivateKey{}
)

// RSAKey returns the n-th RSA key of the given size, generated once per
// process: RSA key generation is slow and tests need only a handful.
func RSAKey(t testing.TB, bits, n int) *rsa.PrivateKey {
	t.Helper()
	rsaMu.Lock()
	defer rsaMu.Unlock()
	for len(rsaKeys[bits]) <= n {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		rsaKeys[bits] = append(rsaKeys[bits], k)
	}
	return rsaKeys[bits][n]
}

func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		t.Fatal(err)
	}
	return n.Add(n, big.NewInt(1))
}

// CertPEM encodes certificates as PEM.
func CertPEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// KeyPEM encodes a private key as PKCS#8 PEM.
func KeyPEM(t testing.TB, key crypto.Signer) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// WriteFile writes data to dir/name and returns the path.
func WriteFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// ServerFiles issues a TLS server certificate for names and writes it and
// its key as PEM files in dir, for a Caddyfile's tls directive.
func (ca *CA) ServerFiles(t testing.TB, dir string, names ...string) (certFile, keyFile string) {
	t.Helper()
	srv := ca.Server(t, names...)
	return WriteFile(t, dir, "server.pem", CertPEM(srv.Cert)), WriteFile(t, dir, "server-key.pem", KeyPEM(t, srv.Key))
}

// Client returns an HTTPS client that trusts serverRoot and presents leaf
// (when not nil) as its TLS client certificate.
func Client(serverRoot *x509.Certificate, leaf *Leaf) *http.Client {
	roots := x509.NewCertPool()
	roots.AddCert(serverRoot)
	cfg := &tls.Config{RootCAs: roots}
	if leaf != nil {
		cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{leaf.Cert.Raw}, PrivateKey: leaf.Key, Leaf: leaf.Cert}}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

package keystore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"sync"
	"testing"
	"time"
)

// testPKI is a throw-away two-level CA (ECDSA P-384 root, ECDSA P-256
// issuing CA) with one client leaf per supported key type. A two-level chain
// is used so that chain order ("nearest first") is actually exercised.
type testPKI struct {
	root, issuing *x509.Certificate
	leaves        map[string]leaf // keyed by "rsa", "ecdsa", "ed25519"
}

type leaf struct {
	key  crypto.Signer
	cert *x509.Certificate
}

// chain is the issuing chain above a leaf, nearest first.
func (p *testPKI) chain() []*x509.Certificate { return []*x509.Certificate{p.issuing, p.root} }

func (p *testPKI) entry(kt string) Entry {
	l := p.leaves[kt]
	return Entry{Alias: "BANK_XYZ", Key: l.key, Cert: l.cert, Chain: p.chain(), CAAlias: "PeSIT-CA"}
}

var keyTypes = []string{"rsa", "ecdsa", "ed25519"}

var (
	pkiOnce sync.Once
	pki     *testPKI
	pkiErr  error
)

// getPKI builds the PKI once per test binary: RSA key generation is the
// slowest step and the certificates are immutable.
func getPKI(t testing.TB) *testPKI {
	t.Helper()
	pkiOnce.Do(func() { pki, pkiErr = newTestPKI() })
	if pkiErr != nil {
		t.Fatalf("building test PKI: %v", pkiErr)
	}
	return pki
}

func newTestPKI() (*testPKI, error) {
	now := time.Now()
	rootKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	rootTpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "Keystore Test Root CA", Organization: []string{"Example"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
	}
	root, err := sign(rootTpl, rootTpl, rootKey.Public(), rootKey)
	if err != nil {
		return nil, err
	}
	issKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	issTpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "Keystore Test Issuing CA", Organization: []string{"Example"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	issuing, err := sign(issTpl, root, issKey.Public(), rootKey)
	if err != nil {
		return nil, err
	}

	p := &testPKI{root: root, issuing: issuing, leaves: map[string]leaf{}}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	for kt, key := range map[string]crypto.Signer{"rsa": rsaKey, "ecdsa": ecKey, "ed25519": edKey} {
		tpl := &x509.Certificate{
			Subject:     pkix.Name{CommonName: "bank-xyz.example.com", Organization: []string{"Bank XYZ"}, Country: []string{"FR"}},
			DNSNames:    []string{"bank-xyz.example.com"},
			NotBefore:   now.Add(-time.Hour),
			NotAfter:    now.Add(24 * time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		if kt == "rsa" {
			tpl.KeyUsage |= x509.KeyUsageKeyEncipherment
		}
		cert, err := sign(tpl, issuing, key.Public(), issKey)
		if err != nil {
			return nil, err
		}
		p.leaves[kt] = leaf{key: key, cert: cert}
	}
	return p, nil
}

func sign(tpl, parent *x509.Certificate, pub crypto.PublicKey, priv crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tpl, parent, pub, priv)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

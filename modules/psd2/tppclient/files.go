package tppclient

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"software.sslmate.com/src/go-pkcs12"
)

// Identity is a certificate with its private key and any chain that came
// with it.
type Identity struct {
	Cert  *x509.Certificate
	Key   crypto.Signer
	Chain []*x509.Certificate
}

// TLSCertificate returns the identity for a tls.Config.
func (id *Identity) TLSCertificate() tls.Certificate {
	c := tls.Certificate{Certificate: [][]byte{id.Cert.Raw}, PrivateKey: id.Key, Leaf: id.Cert}
	for _, ic := range id.Chain {
		c.Certificate = append(c.Certificate, ic.Raw)
	}
	return c
}

// LoadIdentity reads a certificate and its key. path is a PKCS#12 file
// (.p12 or .pfx, opened with password) or a PEM file holding the
// certificate and possibly the key. The key is looked for in keyPath, then
// in path, then in the sibling "<name>-key.pem" that bankedge tpp certs
// writes.
func LoadIdentity(path, keyPath, password string) (*Identity, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".p12", ".pfx":
		id, err := DecodePKCS12(data, password)
		if err != nil {
			return nil, fmt.Errorf("opening %s: %w", path, err)
		}
		return id, nil
	}
	certs, key, err := parsePEM(data)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s holds no certificate", path)
	}
	if keyPath == "" && key == nil {
		keyPath = strings.TrimSuffix(path, filepath.Ext(path)) + "-key.pem"
	}
	if keyPath != "" {
		kd, err := os.ReadFile(keyPath)
		if err != nil {
			return nil, fmt.Errorf("no private key in %s and %w", path, err)
		}
		if _, key, err = parsePEM(kd); err != nil {
			return nil, fmt.Errorf("reading %s: %w", keyPath, err)
		}
		if key == nil {
			return nil, fmt.Errorf("%s holds no private key", keyPath)
		}
	}
	if !samePublicKey(certs[0].PublicKey, key.Public()) {
		return nil, fmt.Errorf("the private key does not belong to the certificate in %s", path)
	}
	return &Identity{Cert: certs[0], Key: key, Chain: certs[1:]}, nil
}

// DecodePKCS12 opens a PKCS#12 keystore holding a key, its certificate and
// the chain.
func DecodePKCS12(data []byte, password string) (*Identity, error) {
	key, cert, chain, err := pkcs12.DecodeChain(data, password)
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key of type %T cannot sign", key)
	}
	return &Identity{Cert: cert, Key: signer, Chain: chain}, nil
}

// LoadCertificate reads the first certificate of a PEM file.
func LoadCertificate(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	certs, _, err := parsePEM(data)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s holds no certificate", path)
	}
	return certs[0], nil
}

// LoadCertPool reads every certificate of a PEM file into a pool.
func LoadCertPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

func parsePEM(data []byte) ([]*x509.Certificate, crypto.Signer, error) {
	var certs []*x509.Certificate
	var key crypto.Signer
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		switch block.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, nil, err
			}
			certs = append(certs, c)
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
			k, err := parsePrivateKey(block)
			if err != nil {
				return nil, nil, err
			}
			key = k
		case "ENCRYPTED PRIVATE KEY":
			return nil, nil, errors.New("encrypted PEM keys are not supported; use the PKCS#12 file")
		}
	}
	return certs, key, nil
}

func parsePrivateKey(block *pem.Block) (crypto.Signer, error) {
	var k any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing private key: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key of type %T cannot sign", k)
	}
	return signer, nil
}

func samePublicKey(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	switch k := a.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		return k.(equaler).Equal(b)
	}
	return false
}

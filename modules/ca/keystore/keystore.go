// Package keystore encodes the key material the private CA hands out to
// partners: keystores (private key, certificate and CA chain) and truststores
// (CA certificates) as PKCS#12, legacy JKS or PEM.
//
// The encoders are chosen for what partners actually run: PKCS#12 uses
// go-pkcs12's Modern parameters (PBES2/AES-256-CBC, HMAC-SHA256), the newest
// profile that OpenSSL 3.0 (without -legacy) and Java 17 both read; the
// PBMAC1-based Modern2026 profile and the RC2-based legacy profile are
// deliberately never used. JKS exists only for old Java clients that cannot be
// told to use PKCS#12.
//
// The package is pure: it generates nothing but salts and passwords and
// performs no I/O.
package keystore

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	jks "github.com/pavlo-v-chernykh/keystore-go/v4"
	"go.step.sm/crypto/pemutil"
	"software.sslmate.com/src/go-pkcs12"
)

// Format is a keystore file format.
type Format string

// The supported formats. The values double as the API's query-parameter
// spelling, so they must stay stable.
const (
	FormatP12 Format = "p12"
	FormatJKS Format = "jks"
	FormatPEM Format = "pem"
)

// DefaultCAAlias is the alias given to CA certificates when the caller names
// none; it matches what the seed's client configurations expect to find.
const DefaultCAAlias = "ca"

// DefaultKeyAlias is the key alias used when Entry.Alias is empty: "1",
// the alias Java gives a PKCS#12 key without a friendlyName.
const DefaultKeyAlias = "1"

// ErrPasswordRequired is returned when a container format that cannot be
// written without a password (PKCS#12, JKS) is asked for with an empty one.
var ErrPasswordRequired = errors.New("a non-empty password is required for this format")

// ErrKeyMismatch is returned when the private key does not belong to the
// certificate; such a keystore would only fail later, inside a TLS handshake.
var ErrKeyMismatch = errors.New("private key does not match the certificate's public key")

// ErrUnknownFormat is returned for a format other than p12, jks or pem.
var ErrUnknownFormat = errors.New("unknown keystore format")

// ParseFormat accepts "p12" (also "pkcs12", "pfx"), "jks", "pem",
// case-insensitively; "" means p12, the format Java and OpenSSL both default to.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "p12", "pkcs12", "pfx":
		return FormatP12, nil
	case "jks":
		return FormatJKS, nil
	case "pem":
		return FormatPEM, nil
	}
	return "", fmt.Errorf("%w %q (want p12, jks or pem)", ErrUnknownFormat, s)
}

// ContentType returns the MIME type to serve the format with, or
// application/octet-stream for an unknown format so a download still works.
func (f Format) ContentType() string {
	switch f {
	case FormatP12:
		return "application/x-pkcs12"
	case FormatJKS:
		return "application/x-java-keystore"
	case FormatPEM:
		return "application/x-pem-file"
	}
	return "application/octet-stream"
}

// Extension returns ".p12", ".jks" or ".pem" (and "" for an unknown format),
// for building a Content-Disposition file name.
func (f Format) Extension() string {
	switch f {
	case FormatP12, FormatJKS, FormatPEM:
		return "." + string(f)
	}
	return ""
}

// Entry is a private key with its certificate and the CA chain above it.
type Entry struct {
	// Alias names the key entry (e.g. the partner id): the JKS alias, which
	// JKS lower-cases, and the PKCS#12 friendlyName of the key, which
	// keytool shows as the alias and openssl pkcs12 -info as friendlyName.
	// Empty means DefaultKeyAlias.
	Alias string
	// Key is an *rsa.PrivateKey, *ecdsa.PrivateKey or ed25519.PrivateKey;
	// opaque signers (HSM) cannot be exported and are refused.
	Key crypto.Signer
	// Cert is the certificate for Key.
	Cert *x509.Certificate
	// Chain holds the issuing CA(s), nearest first, as TLS sends them.
	Chain []*x509.Certificate
	// CAAlias names the CA trusted-certificate entries in JKS (default "ca",
	// then "ca-2", … for further CAs). JKS stores the chain both in the key
	// entry and as trusted entries so the same file serves as a truststore.
	CAAlias string
}

// String describes the entry without key material, so that logging an Entry
// with %v cannot leak the private key.
func (e Entry) String() string {
	subject := "<nil>"
	if e.Cert != nil {
		subject = e.Cert.Subject.String()
	}
	return fmt.Sprintf("keystore.Entry{Alias: %q, Key: %s, Cert: %q, Chain: %d certificate(s)}",
		e.Alias, keyType(e.Key), subject, len(e.Chain))
}

// GoString redacts the key for %#v as well.
func (e Entry) GoString() string { return e.String() }

// EncodeKeystore encodes e in format f, protected by password.
//
// For PEM the output is the certificate first, then the chain, then the
// private key — as PKCS#8 "ENCRYPTED PRIVATE KEY" (PBES2, AES-256-CBC,
// readable by `openssl pkey -passin`) when password is non-empty, or plain
// "PRIVATE KEY" when it is empty. P12 and JKS require a non-empty password.
// In JKS the key password equals the store password, because most Java
// clients only let you configure one.
func EncodeKeystore(e Entry, f Format, password string) ([]byte, error) {
	if err := validateFormat(f); err != nil {
		return nil, err
	}
	key, err := checkEntry(e)
	if err != nil {
		return nil, err
	}
	switch f {
	case FormatP12:
		if password == "" {
			return nil, fmt.Errorf("encoding PKCS#12 keystore: %w", ErrPasswordRequired)
		}
		out, err := pkcs12.Modern.Encode(key, e.Cert, e.Chain, password)
		if err != nil {
			return nil, fmt.Errorf("encoding PKCS#12 keystore: %w", err)
		}
		if e.Alias != "" {
			if out, err = setKeyFriendlyName(out, password, e.Alias); err != nil {
				return nil, fmt.Errorf("naming the PKCS#12 key entry: %w", err)
			}
		}
		return out, nil
	case FormatJKS:
		if password == "" {
			return nil, fmt.Errorf("encoding JKS keystore: %w", ErrPasswordRequired)
		}
		out, err := encodeJKSKeystore(e, key, password)
		if err != nil {
			return nil, fmt.Errorf("encoding JKS keystore: %w", err)
		}
		return out, nil
	default: // FormatPEM
		var buf bytes.Buffer
		writeCertsPEM(&buf, append([]*x509.Certificate{e.Cert}, e.Chain...))
		keyPEM, err := EncodePrivateKeyPEM(key, password)
		if err != nil {
			return nil, fmt.Errorf("encoding PEM keystore: %w", err)
		}
		buf.Write(keyPEM)
		return buf.Bytes(), nil
	}
}

// EncodeTruststore encodes CA certificates for clients to trust, under alias
// (default "ca"; for several certificates alias, alias-2, …).
//
// P12 uses friendly name = alias, so keytool shows the same alias as for JKS
// instead of the subject DN that plain EncodeTrustStore would use. PEM is just
// the certificates, and password is ignored. P12/JKS require a non-empty
// password.
func EncodeTruststore(certs []*x509.Certificate, f Format, alias, password string) ([]byte, error) {
	if err := validateFormat(f); err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		return nil, errors.New("encoding truststore: no certificates")
	}
	for i, c := range certs {
		if c == nil {
			return nil, fmt.Errorf("encoding truststore: certificate %d is nil", i)
		}
	}
	if alias == "" {
		alias = DefaultCAAlias
	}
	aliases := numberedAliases(alias, len(certs))
	switch f {
	case FormatP12:
		if password == "" {
			return nil, fmt.Errorf("encoding PKCS#12 truststore: %w", ErrPasswordRequired)
		}
		entries := make([]pkcs12.TrustStoreEntry, len(certs))
		for i, c := range certs {
			entries[i] = pkcs12.TrustStoreEntry{Cert: c, FriendlyName: aliases[i]}
		}
		out, err := pkcs12.Modern.EncodeTrustStoreEntries(entries, password)
		if err != nil {
			return nil, fmt.Errorf("encoding PKCS#12 truststore: %w", err)
		}
		return out, nil
	case FormatJKS:
		if password == "" {
			return nil, fmt.Errorf("encoding JKS truststore: %w", ErrPasswordRequired)
		}
		ks := jks.New(jks.WithOrderedAliases())
		if err := addTrusted(ks, aliases, certs, time.Now()); err != nil {
			return nil, fmt.Errorf("encoding JKS truststore: %w", err)
		}
		out, err := storeJKS(ks, password)
		if err != nil {
			return nil, fmt.Errorf("encoding JKS truststore: %w", err)
		}
		return out, nil
	default: // FormatPEM
		var buf bytes.Buffer
		writeCertsPEM(&buf, certs)
		return buf.Bytes(), nil
	}
}

// EncodePrivateKeyPEM encodes a key as PKCS#8 PEM. With a non-empty password
// it is an "ENCRYPTED PRIVATE KEY" (PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC)
// rather than RFC 1423 "Proc-Type: 4,ENCRYPTED" PEM, whose MD5-based key
// derivation is weak and which Go itself has deprecated.
func EncodePrivateKeyPEM(key crypto.Signer, password string) ([]byte, error) {
	k, err := exportableKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding private key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encoding private key: %w", err)
	}
	defer clear(der)
	if password == "" {
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
	}
	pw := []byte(password)
	defer clear(pw)
	block, err := pemutil.EncryptPKCS8PrivateKey(rand.Reader, der, pw, x509.PEMCipherAES256)
	if err != nil {
		return nil, fmt.Errorf("encrypting private key: %w", err)
	}
	return pem.EncodeToMemory(block), nil
}

// Bounds of keystore passwords chosen by callers.
const (
	// MinPasswordLength is the shortest keystore password accepted: a
	// keystore leaves with its holder, where a weak password is open to
	// offline guessing (PKCS#12's KDF runs only 2048 iterations).
	MinPasswordLength = 12
	// MaxPasswordLength bounds the work of encoding attacker-chosen input.
	MaxPasswordLength = 128
	// minDistinct refuses passwords of long runs such as "aaaaaaaaaaaa".
	minDistinct = 5
)

// ErrWeakPassword is returned (wrapped) by CheckPassword.
var ErrWeakPassword = errors.New("keystore password refused")

// CheckPassword refuses a caller-chosen password that cannot protect a
// private key: fewer than MinPasswordLength characters, fewer than 5
// different characters, more than MaxPasswordLength, or characters other
// than printable ASCII (Java and OpenSSL encode other characters in
// PKCS#12 differently, so the keystore would open in one and not the
// other). The message never quotes the password.
func CheckPassword(password string) error {
	distinct := map[byte]bool{}
	for i := 0; i < len(password); i++ {
		if c := password[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("%w: use printable ASCII characters only, which Java and OpenSSL encode alike", ErrWeakPassword)
		}
		distinct[password[i]] = true
	}
	switch {
	case len(password) < MinPasswordLength:
		return fmt.Errorf("%w: at least %d characters are required (leave it out to get a random one)", ErrWeakPassword, MinPasswordLength)
	case len(password) > MaxPasswordLength:
		return fmt.Errorf("%w: at most %d characters are allowed", ErrWeakPassword, MaxPasswordLength)
	case len(distinct) < minDistinct:
		return fmt.Errorf("%w: it needs at least %d different characters", ErrWeakPassword, minDistinct)
	}
	return nil
}

// passwordAlphabet is alphanumeric only: it is URL-safe, survives shells,
// .properties files and `-storepass` arguments unquoted, and selects as one
// word on double-click when an operator copies it.
const passwordAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// passwordLength gives 24·log2(62) ≈ 142.9 bits, above the 128 bits needed
// for go-pkcs12's 2048 PBKDF2 iterations to be irrelevant to brute force.
const passwordLength = 24

// RandomPassword returns a random password of 24 URL-safe (alphanumeric)
// characters, about 143 bits, for keystores whose owner gave none; the seed's
// constant "changeit" is exactly what this replaces.
func RandomPassword() (string, error) {
	// Rejection sampling keeps every character uniform: 248 is the largest
	// multiple of 62 that fits in a byte.
	const limit = 256 - 256%len(passwordAlphabet)
	out := make([]byte, 0, passwordLength)
	buf := make([]byte, passwordLength*2)
	for len(out) < passwordLength {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("generating password: %w", err)
		}
		for _, b := range buf {
			if int(b) >= limit {
				continue
			}
			out = append(out, passwordAlphabet[int(b)%len(passwordAlphabet)])
			if len(out) == passwordLength {
				break
			}
		}
	}
	return string(out), nil
}

func validateFormat(f Format) error {
	switch f {
	case FormatP12, FormatJKS, FormatPEM:
		return nil
	}
	return fmt.Errorf("%w %q", ErrUnknownFormat, string(f))
}

// checkEntry refuses entries that would produce a keystore that loads but
// fails in use: a key that is not the certificate's, or a chain out of order.
func checkEntry(e Entry) (crypto.Signer, error) {
	if e.Cert == nil {
		return nil, errors.New("invalid keystore entry: certificate is nil")
	}
	key, err := exportableKey(e.Key)
	if err != nil {
		return nil, fmt.Errorf("invalid keystore entry: %w", err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(e.Cert.PublicKey) {
		return nil, fmt.Errorf("invalid keystore entry: %w", ErrKeyMismatch)
	}
	child := e.Cert
	for i, c := range e.Chain {
		if c == nil {
			return nil, fmt.Errorf("invalid keystore entry: chain certificate %d is nil", i)
		}
		if err := child.CheckSignatureFrom(c); err != nil {
			return nil, fmt.Errorf("invalid keystore entry: chain certificate %d (%s) did not issue %s: %w",
				i, c.Subject, child.Subject, err)
		}
		child = c
	}
	return key, nil
}

// exportableKey normalises the key to the forms x509.MarshalPKCS8PrivateKey
// and go-pkcs12 accept; in particular *ed25519.PrivateKey satisfies
// crypto.Signer but is rejected by the marshaller.
func exportableKey(key crypto.Signer) (crypto.Signer, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k != nil {
			return k, nil
		}
	case *ecdsa.PrivateKey:
		if k != nil {
			return k, nil
		}
	case ed25519.PrivateKey:
		if len(k) == ed25519.PrivateKeySize {
			return k, nil
		}
	case *ed25519.PrivateKey:
		if k != nil && len(*k) == ed25519.PrivateKeySize {
			return *k, nil
		}
	case nil:
		return nil, errors.New("private key is nil")
	default:
		return nil, fmt.Errorf("unsupported private key type %T (not exportable)", key)
	}
	return nil, fmt.Errorf("invalid %s private key", keyType(key))
}

func keyType(k crypto.Signer) string {
	switch k := k.(type) {
	case nil:
		return "<nil>"
	case *rsa.PrivateKey:
		if k != nil && k.N != nil {
			return "RSA-" + strconv.Itoa(k.N.BitLen())
		}
		return "RSA"
	case *ecdsa.PrivateKey:
		if k != nil && k.Curve != nil {
			return "ECDSA-" + k.Curve.Params().Name
		}
		return "ECDSA"
	case ed25519.PrivateKey, *ed25519.PrivateKey:
		return "Ed25519"
	default:
		return fmt.Sprintf("%T", k)
	}
}

func encodeJKSKeystore(e Entry, key crypto.Signer, password string) ([]byte, error) {
	// JKS aliases are case-insensitive and keystore-go lower-cases them, so
	// compare lower-cased to catch a key alias that would silently replace a
	// CA entry (keystore-go overwrites without complaint).
	keyAlias := strings.ToLower(e.Alias)
	if keyAlias == "" {
		keyAlias = DefaultKeyAlias
	}
	caAlias := strings.ToLower(e.CAAlias)
	if caAlias == "" {
		caAlias = DefaultCAAlias
	}
	caAliases := numberedAliases(caAlias, len(e.Chain))
	for _, a := range caAliases {
		if a == keyAlias {
			return nil, fmt.Errorf("key alias %q collides with a CA alias", keyAlias)
		}
	}

	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshalling private key: %w", err)
	}
	defer clear(der)

	now := time.Now()
	chain := make([]jks.Certificate, 0, 1+len(e.Chain))
	chain = append(chain, jks.Certificate{Type: "X509", Content: e.Cert.Raw})
	for _, c := range e.Chain {
		chain = append(chain, jks.Certificate{Type: "X509", Content: c.Raw})
	}
	ks := jks.New(jks.WithOrderedAliases())
	pw := []byte(password)
	defer clear(pw)
	if err := ks.SetPrivateKeyEntry(keyAlias, jks.PrivateKeyEntry{
		CreationTime:     now,
		PrivateKey:       der,
		CertificateChain: chain,
	}, pw); err != nil {
		return nil, fmt.Errorf("adding key entry: %w", err)
	}
	if err := addTrusted(ks, caAliases, e.Chain, now); err != nil {
		return nil, err
	}
	return storeJKS(ks, password)
}

func addTrusted(ks jks.KeyStore, aliases []string, certs []*x509.Certificate, now time.Time) error {
	for i, c := range certs {
		if err := ks.SetTrustedCertificateEntry(aliases[i], jks.TrustedCertificateEntry{
			CreationTime: now,
			Certificate:  jks.Certificate{Type: "X509", Content: c.Raw},
		}); err != nil {
			return fmt.Errorf("adding trusted entry %q: %w", aliases[i], err)
		}
	}
	return nil
}

func storeJKS(ks jks.KeyStore, password string) ([]byte, error) {
	pw := []byte(password)
	defer clear(pw)
	var buf bytes.Buffer
	if err := ks.Store(&buf, pw); err != nil {
		return nil, fmt.Errorf("writing store: %w", err)
	}
	return buf.Bytes(), nil
}

// numberedAliases returns alias, alias-2, alias-3, … so the first (usually
// only) CA keeps the plain alias clients are configured with.
func numberedAliases(alias string, n int) []string {
	out := make([]string, n)
	for i := range out {
		if i == 0 {
			out[i] = alias
		} else {
			out[i] = alias + "-" + strconv.Itoa(i+1)
		}
	}
	return out
}

func writeCertsPEM(buf *bytes.Buffer, certs []*x509.Certificate) {
	for _, c := range certs {
		// pem.Encode to a bytes.Buffer cannot fail.
		_ = pem.Encode(buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
}

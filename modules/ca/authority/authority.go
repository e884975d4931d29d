// Package authority is the private CA of bankedge: one self-signed CA whose
// certificate, encrypted key, issued-certificate inventory, revocations and
// CRL live in a certmagic.Storage, so that several gateways sharing a
// storage act as one CA. Initialisation and every read-modify-write take the
// storage lock.
//
// It has no Caddy dependency; the bankedge app wires it to Caddy's storage,
// the REST API, the trust pool and the certificate issuer.
package authority

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"go.step.sm/crypto/pemutil"
	"go.uber.org/zap"
)

// KeyType is a key algorithm, of the CA or of a key the CA generates.
type KeyType string

// The supported key types. ECDSA is the default for the CA: it is fast, and
// CRL and OCSP signing libraries support it (unlike Ed25519). RSA-2048 and
// Ed25519 are for holders' keys only.
const (
	ECDSAP256 KeyType = "ecdsa-p256"
	ECDSAP384 KeyType = "ecdsa-p384"
	RSA2048   KeyType = "rsa-2048"
	RSA3072   KeyType = "rsa-3072"
	RSA4096   KeyType = "rsa-4096"
	Ed25519   KeyType = "ed25519"
)

// ParseKeyType validates a key type name; "" means ECDSA P-256.
func ParseKeyType(s string) (KeyType, error) {
	switch k := KeyType(strings.ToLower(s)); k {
	case "":
		return ECDSAP256, nil
	case ECDSAP256, ECDSAP384, RSA2048, RSA3072, RSA4096, Ed25519:
		return k, nil
	}
	return "", fmt.Errorf("key type %q is not one of ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096, ed25519", s)
}

// ForCA reports whether a CA may have a key of this type.
func (k KeyType) ForCA() bool {
	switch k {
	case ECDSAP256, ECDSAP384, RSA3072, RSA4096:
		return true
	}
	return false
}

// NewKey generates a private key of type k.
func NewKey(k KeyType) (crypto.Signer, error) {
	switch k {
	case ECDSAP256, "":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case RSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case RSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	case Ed25519:
		_, key, err := ed25519.GenerateKey(rand.Reader)
		return key, err
	}
	return nil, fmt.Errorf("unsupported key type %q", k)
}

// Config describes a CA.
type Config struct {
	Storage certmagic.Storage
	// Prefix of every storage key; default "bankedge/ca".
	Prefix string
	// Passphrase encrypts the CA key at rest. Required.
	Passphrase []byte
	// KeyType of a new CA; an existing CA keeps its key.
	KeyType KeyType
	// Subject of a new CA certificate.
	Subject pkix.Name
	// Lifetime of a new CA certificate; default 10 years.
	Lifetime time.Duration
	// MaxValidity bounds the validity of issued certificates; default 825 days.
	MaxValidity time.Duration
	// CRLURL, when set, goes into issued certificates as CRL distribution point.
	CRLURL string
	// CRLValidity is the time from a CRL's thisUpdate to its nextUpdate; default 7 days.
	CRLValidity time.Duration
	// RevocationRefresh is how stale the in-memory view of revocations made
	// by other instances may get; default 30 seconds.
	RevocationRefresh time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// ReadOnly forbids every storage write: a CA missing from storage is
	// made in memory only, and issuing, revoking and signing CRLs fail.
	// Configuration checks (caddy validate) use it.
	ReadOnly bool
	// OnIssue, when set, is told of every certificate request the authority
	// decides, whoever made it: with the issued certificate, or with the
	// refusal. The bankedge app writes it to the audit log.
	OnIssue func(ctx context.Context, req Request, cert *x509.Certificate, err error)
	// OnRevoke, when set, is told of every revocation once it is in force
	// (stored), whoever made it; the bankedge app tells the other gateways.
	OnRevoke func(ctx context.Context, serial *big.Int)
	// Logger, when set, is told of the repairs of storage done at start
	// and of index writes that failed after an issuance.
	Logger *zap.Logger
}

// Errors of the authority.
var (
	ErrNoCA      = errors.New("the CA is not initialized")
	ErrCAExists  = errors.New("the CA already exists")
	ErrNotFound  = errors.New("no certificate with this serial number was issued by this CA")
	ErrRevoked   = errors.New("the certificate is already revoked")
	ErrBadKey    = errors.New("the CA key cannot be decrypted: is key_passphrase the one it was created with?")
	ErrPolicy    = errors.New("request refused by the CA policy")
	ErrReadOnly  = errors.New("the CA is open read-only (configuration check): nothing is written to storage")
	errNoStorage = errors.New("no storage configured")
)

// Authority is an initialised CA.
type Authority struct {
	cfg     Config
	cert    *x509.Certificate
	certPEM []byte
	key     crypto.Signer

	// revView is the view of revocations that handshakes consult, and
	// revSealed the revocations of the immutable segments of the
	// revocation log as last read. revMu orders the changes of revView
	// with revGen, which counts ForgetRevocations calls, so that a load
	// that started before one does not pass for fresh after it.
	revView   atomic.Pointer[revocationView]
	revSealed atomic.Pointer[sealedRevocations]
	revMu     sync.Mutex
	revGen    uint64
	// segs caches the immutable segments read from storage.
	segs *segCache
	// locks are the local queues before the storage locks (lock).
	locks sync.Map
	// indexSegSize and revSegSize are the segment sizes of the index and
	// of the revocation log (indexSegmentSize, revocationSegmentSize;
	// tests make them small).
	indexSegSize, revSegSize int
}

func (c *Config) setDefaults() error {
	if c.Storage == nil {
		return errNoStorage
	}
	if len(c.Passphrase) == 0 {
		return errors.New("the CA key passphrase is empty: set BANKEDGE_CA_PASSWORD or ca { key_passphrase … }")
	}
	if c.Prefix == "" {
		c.Prefix = "bankedge/ca"
	}
	if c.Subject.CommonName == "" {
		// An organization configured without a common name is kept.
		c.Subject.CommonName = "bankedge Private CA"
		if len(c.Subject.Organization) == 0 {
			c.Subject.Organization = []string{"bankedge"}
		}
	}
	if c.Lifetime == 0 {
		c.Lifetime = 10 * 365 * 24 * time.Hour
	}
	if c.MaxValidity == 0 {
		c.MaxValidity = 825 * 24 * time.Hour
	}
	if c.CRLValidity == 0 {
		c.CRLValidity = 7 * 24 * time.Hour
	}
	if c.RevocationRefresh == 0 {
		c.RevocationRefresh = 30 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.KeyType != "" && !c.KeyType.ForCA() {
		return fmt.Errorf("a CA key cannot be %s: use ecdsa-p256, ecdsa-p384, rsa-3072 or rsa-4096", c.KeyType)
	}
	return nil
}

func (c *Config) key(name string) string { return c.Prefix + "/" + name }

// Open loads the CA from storage. When it does not exist yet, Open creates
// it if create is true, and fails with ErrNoCA otherwise. created reports
// whether this call made the CA. Creation holds the storage lock, so that
// instances starting together on empty storage end with one CA.
func Open(ctx context.Context, cfg Config, create bool) (a *Authority, created bool, err error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, false, err
	}
	a = &Authority{cfg: cfg, segs: newSegCache(defaultSegCacheEntries), indexSegSize: indexSegmentSize, revSegSize: revocationSegmentSize}
	if err := a.load(ctx); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, false, err
		}
		if !create {
			return nil, false, ErrNoCA
		}
		if created, err = a.initialize(ctx); err != nil {
			// The Authority has no certificate or key: never hand it out.
			return nil, false, err
		}
	}
	if !cfg.ReadOnly {
		a.repair(ctx)
	}
	return a, created, nil
}

// Initialize creates the CA if storage holds none. It returns ErrCAExists,
// with a usable Authority, when the CA exists already.
func Initialize(ctx context.Context, cfg Config) (*Authority, error) {
	a, created, err := Open(ctx, cfg, true)
	if err != nil {
		return nil, err
	}
	if !created {
		return a, ErrCAExists
	}
	return a, nil
}

func (a *Authority) load(ctx context.Context) error {
	certPEM, err := a.cfg.Storage.Load(ctx, a.cfg.key("ca.crt"))
	if err != nil {
		return err
	}
	keyPEM, err := a.cfg.Storage.Load(ctx, a.cfg.key("ca.key"))
	if err != nil {
		// Not %w: a missing key must not look like a missing CA (fs.ErrNotExist),
		// or Open(create=true) would silently replace the CA that partners trust.
		return fmt.Errorf("CA certificate found but not its key %s: %v", a.where("ca.key"), err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return errors.New("stored CA certificate is not PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("parsing stored CA certificate: %w", err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return errors.New("stored CA key is not PEM")
	}
	der, err := pemutil.DecryptPKCS8PrivateKey(kb.Bytes, a.cfg.Passphrase)
	if err != nil {
		return fmt.Errorf("%w (%s)", ErrBadKey, a.where("ca.key"))
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		// A wrong passphrase passes the CBC padding check about once in 256
		// tries and then yields garbage: report it as a bad passphrase too.
		return fmt.Errorf("%w (%s)", ErrBadKey, a.where("ca.key"))
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return fmt.Errorf("CA key of type %T cannot sign", k)
	}
	// Locks may mis-synchronise (certmagic's Locker has no fencing), and two
	// racing initialisations could leave one's key next to the other's
	// certificate: refuse a pair that would sign unverifiable certificates.
	if pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
		return errors.New("stored CA key does not match the stored CA certificate")
	}
	a.cert, a.certPEM, a.key = cert, certPEM, signer
	return nil
}

// where says where a storage key lives, for errors that an operator must
// act on: the file of a file_system storage, else the storage's type. It
// never prints the storage's configuration, which may hold credentials.
func (a *Authority) where(name string) string {
	if fs, ok := a.cfg.Storage.(*certmagic.FileStorage); ok {
		return "in " + fs.Filename(a.cfg.key(name))
	}
	return fmt.Sprintf("at key %s of storage %T", a.cfg.key(name), a.cfg.Storage)
}

// store writes to storage unless the authority is read-only.
func (a *Authority) store(ctx context.Context, name string, value []byte) error {
	return a.storeKey(ctx, a.cfg.key(name), value)
}

// storeKey is store with a full storage key.
func (a *Authority) storeKey(ctx context.Context, key string, value []byte) error {
	if a.cfg.ReadOnly {
		return ErrReadOnly
	}
	return a.cfg.Storage.Store(ctx, key, value)
}

func (a *Authority) initialize(ctx context.Context) (bool, error) {
	if a.cfg.ReadOnly {
		// Nothing may be written, not even a lock: a CA of this process
		// only, so that the configuration can still be checked.
		key, certPEM, _, err := a.newCA()
		if err != nil {
			return false, err
		}
		return true, a.use(certPEM, key)
	}
	st := a.cfg.Storage
	lock := a.cfg.key("init")
	if err := st.Lock(ctx, lock); err != nil {
		return false, fmt.Errorf("taking the CA initialisation lock: %w", err)
	}
	defer unlock(st, lock)
	// Another instance may have created the CA while we waited.
	if err := a.load(ctx); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	key, certPEM, keyPEM, err := a.newCA()
	if err != nil {
		return false, err
	}
	// Key first: a certificate without its key would look like a CA.
	if err := st.Store(ctx, a.cfg.key("ca.key"), keyPEM); err != nil {
		return false, fmt.Errorf("storing CA key: %w", err)
	}
	if err := st.Store(ctx, a.cfg.key("ca.crt"), certPEM); err != nil {
		return false, fmt.Errorf("storing CA certificate: %w", err)
	}
	return true, a.use(certPEM, key)
}

// use makes certPEM and key the authority's.
func (a *Authority) use(certPEM []byte, key crypto.Signer) error {
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return err
	}
	a.cert, a.certPEM, a.key = cert, certPEM, key
	return nil
}

// newCA makes a CA key and its self-signed certificate, in PEM, the key
// encrypted with the passphrase.
func (a *Authority) newCA() (key crypto.Signer, certPEM, keyPEM []byte, err error) {
	key, err = NewKey(a.cfg.KeyType)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generating CA key: %w", err)
	}
	now := a.cfg.Now()
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               a.cfg.Subject,
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.Add(a.cfg.Lifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		SubjectKeyId:          subjectKeyID(key.Public()),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("creating CA certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	defer clear(keyDER)
	block, err := pemutil.EncryptPKCS8PrivateKey(rand.Reader, keyDER, a.cfg.Passphrase, x509.PEMCipherAES256)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("encrypting CA key: %w", err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(block), nil
}

// unlock releases a storage lock even when the request context is done.
func unlock(st certmagic.Storage, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = st.Unlock(ctx, name)
}

// Certificate returns the CA certificate.
func (a *Authority) Certificate() *x509.Certificate { return a.cert }

// CertificatePEM returns the CA certificate in PEM.
func (a *Authority) CertificatePEM() []byte { return a.certPEM }

// randomSerial returns a positive serial of 127 random bits, above the 64
// bits CA/B Forum asks for, so that no shared counter is needed.
func randomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generating serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// SerialString is the one notation of serials in the API, the inventory,
// the audit log and the CRL's answers: the one `openssl x509 -serial`
// prints, upper-case hex without separators and with an even number of
// digits (a leading 0 when needed).
func SerialString(n *big.Int) string {
	s := strings.ToUpper(n.Text(16))
	if len(s)%2 == 1 {
		s = "0" + s
	}
	return s
}

// storageSerial is the serial in storage keys: upper-case hex without a
// leading zero, as inventories made before SerialString padded hold them.
func storageSerial(n *big.Int) string { return strings.ToUpper(n.Text(16)) }

// ParseSerial reads a serial as openssl prints it: hex, with or without
// colons, spaces or a 0x prefix, in any case.
func ParseSerial(s string) (*big.Int, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	clean := strings.Map(func(r rune) rune {
		if r == ':' || r == ' ' {
			return -1
		}
		return r
	}, s)
	n, ok := new(big.Int).SetString(clean, 16)
	// SetString also takes a sign ("+6a", "-6a"): only hex digits are a serial.
	if !ok || clean == "" || len(clean) > 64 || n.Sign() <= 0 || strings.Trim(clean, "0123456789abcdefABCDEF") != "" {
		return nil, fmt.Errorf("serial %s is not a positive hexadecimal number of at most 64 digits", quoteShort(s))
	}
	return n, nil
}

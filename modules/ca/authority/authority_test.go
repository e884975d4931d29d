package authority

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.step.sm/crypto/pemutil"
)

func TestParseKeyType(t *testing.T) {
	for in, want := range map[string]KeyType{"": ECDSAP256, "ECDSA-P256": ECDSAP256, "ecdsa-p384": ECDSAP384, "rsa-2048": RSA2048,
		"RSA-3072": RSA3072, "rsa-4096": RSA4096, "Ed25519": Ed25519} {
		got, err := ParseKeyType(in)
		if err != nil || got != want {
			t.Errorf("ParseKeyType(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"rsa-1024", "ecdsa-p521", "ecdsa-p224", "rsa", "dsa"} {
		if _, err := ParseKeyType(in); err == nil {
			t.Errorf("ParseKeyType(%q) accepted", in)
		}
	}
	for k, want := range map[KeyType]bool{ECDSAP256: true, ECDSAP384: true, RSA3072: true, RSA4096: true, RSA2048: false, Ed25519: false} {
		if k.ForCA() != want {
			t.Errorf("%s.ForCA() = %v", k, !want)
		}
	}
}

// Holder-only key types cannot become the CA key (Ed25519 cannot sign OCSP
// with x/crypto/ocsp; RSA-2048 is below the CA's own bar).
func TestOpenRefusesHolderKeyTypes(t *testing.T) {
	t.Parallel()
	for _, kt := range []KeyType{RSA2048, Ed25519, "dsa"} {
		dir := t.TempDir()
		cfg := testConfig(dir)
		cfg.KeyType = kt
		if a, _, err := Open(context.Background(), cfg, true); err == nil || a != nil {
			t.Errorf("Open with CA key type %q: %v", kt, err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("Open with CA key type %q wrote to storage", kt)
		}
	}
}

func TestOpenCreatesCA(t *testing.T) {
	cases := []struct {
		keyType KeyType
		check   func(t *testing.T, pub any)
	}{
		{"", func(t *testing.T, pub any) { // the default
			if k, ok := pub.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
				t.Errorf("default CA key is %T, want ECDSA P-256", pub)
			}
		}},
		{ECDSAP384, func(t *testing.T, pub any) {
			if k, ok := pub.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P384() {
				t.Errorf("CA key is %T, want ECDSA P-384", pub)
			}
		}},
		{RSA3072, func(t *testing.T, pub any) {
			if k, ok := pub.(*rsa.PublicKey); !ok || k.N.BitLen() != 3072 {
				t.Errorf("CA key is %T, want RSA-3072", pub)
			}
		}},
	}
	for _, tc := range cases {
		name := string(tc.keyType)
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a, dir := newCA(t, func(c *Config) { c.KeyType = tc.keyType })
			ca := a.Certificate()
			tc.check(t, ca.PublicKey)

			if !bytes.Equal(ca.RawIssuer, ca.RawSubject) {
				t.Error("CA certificate is not self-issued")
			}
			if err := ca.CheckSignatureFrom(ca); err != nil {
				t.Errorf("CA certificate is not self-signed: %v", err)
			}
			if !ca.IsCA || !ca.BasicConstraintsValid {
				t.Error("CA certificate lacks basicConstraints CA=true")
			}
			if ca.MaxPathLen != 0 || !ca.MaxPathLenZero {
				t.Errorf("MaxPathLen = %d, MaxPathLenZero = %v; want 0, true", ca.MaxPathLen, ca.MaxPathLenZero)
			}
			if len(ca.SubjectKeyId) == 0 || !bytes.Equal(ca.SubjectKeyId, subjectKeyID(ca.PublicKey)) {
				t.Errorf("SubjectKeyId = %x", ca.SubjectKeyId)
			}
			const must = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
			if ca.KeyUsage&must != must {
				t.Errorf("KeyUsage = %b, lacks certSign|crlSign", ca.KeyUsage)
			}
			// digitalSignature is allowed (the CA key may sign OCSP
			// responses, CA/B BR 7.1.2.1); nothing else is.
			if ca.KeyUsage&^(must|x509.KeyUsageDigitalSignature) != 0 {
				t.Errorf("KeyUsage = %b has unexpected bits", ca.KeyUsage)
			}
			if ca.Subject.CommonName != "bankedge Private CA" {
				t.Errorf("default subject CN = %q", ca.Subject.CommonName)
			}
			if d := ca.NotAfter.Sub(ca.NotBefore); d < 10*365*24*time.Hour || d > 10*365*24*time.Hour+time.Hour {
				t.Errorf("default lifetime = %v, want 10 years", d)
			}
			if !bytes.Equal(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), a.CertificatePEM()) {
				t.Error("CertificatePEM does not encode Certificate")
			}

			// Reopening with the same passphrase gives the same CA and key.
			b, created, err := Open(context.Background(), testConfig(dir), false)
			if err != nil || created {
				t.Fatalf("reopen: created=%v err=%v", created, err)
			}
			if !bytes.Equal(b.CertificatePEM(), a.CertificatePEM()) {
				t.Error("reopened CA has another certificate")
			}
			if !b.key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(a.key.Public()) {
				t.Error("reopened CA has another key")
			}
		})
	}
}

func TestStoredKeyIsEncrypted(t *testing.T) {
	t.Parallel()
	a, dir := newCA(t, nil)
	st := &certmagic.FileStorage{Path: dir}
	keyPEM, err := st.Load(context.Background(), "bankedge/ca/ca.key")
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode(keyPEM)
	if block == nil || block.Type != "ENCRYPTED PRIVATE KEY" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("stored key is not one ENCRYPTED PRIVATE KEY block: %q", keyPEM)
	}
	der, err := pemutil.DecryptPKCS8PrivateKey(block.Bytes, []byte(testPassphrase))
	if err != nil {
		t.Fatalf("decrypting the stored key with the passphrase: %v", err)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		t.Fatal(err)
	}
	if !k.(*ecdsa.PrivateKey).PublicKey.Equal(a.Certificate().PublicKey) {
		t.Error("stored key is not the CA's")
	}
	// No plain key anywhere in storage.
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, plain := range []string{"BEGIN PRIVATE KEY", "BEGIN EC PRIVATE KEY", "BEGIN RSA PRIVATE KEY"} {
			if bytes.Contains(b, []byte(plain)) {
				t.Errorf("%s holds a plain key (%s)", p, plain)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenWrongPassphrase(t *testing.T) {
	t.Parallel()
	_, dir := newCA(t, nil)
	const wrong = "not-the-passphrase-42"
	cfg := testConfig(dir)
	cfg.Passphrase = []byte(wrong)
	for _, create := range []bool{false, true} {
		a, _, err := Open(context.Background(), cfg, create)
		if !errors.Is(err, ErrBadKey) {
			t.Fatalf("Open(create=%v) with a wrong passphrase: %v, want ErrBadKey", create, err)
		}
		if a != nil {
			t.Error("Open returned an Authority with its error")
		}
		if msg := err.Error(); strings.Contains(msg, wrong) || strings.Contains(msg, testPassphrase) {
			t.Errorf("error text reveals a passphrase: %q", msg)
		}
		// Issue 8, point 6: the operator is told which storage holds it.
		if msg := err.Error(); !strings.Contains(msg, filepath.Join(dir, "bankedge", "ca", "ca.key")) {
			t.Errorf("error does not say where the CA key is: %q", msg)
		}
	}
	if _, err := Initialize(context.Background(), cfg); !errors.Is(err, ErrBadKey) {
		t.Errorf("Initialize with a wrong passphrase: %v, want ErrBadKey", err)
	}
}

func TestOpenEmptyPassphrase(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.Passphrase = nil
	_, _, err := Open(context.Background(), cfg, true)
	if err == nil || !strings.Contains(err.Error(), "passphrase is empty") {
		t.Fatalf("Open with an empty passphrase: %v, want a clear 'passphrase is empty' error", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("Open with an empty passphrase wrote to storage: %v", ents)
	}
	if _, _, err := Open(context.Background(), Config{Passphrase: []byte("x")}, true); err == nil {
		t.Error("Open without storage succeeded")
	}
}

func TestOpenNoCA(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, created, err := Open(context.Background(), testConfig(dir), false)
	if !errors.Is(err, ErrNoCA) || a != nil || created {
		t.Fatalf("Open(create=false) on empty storage: %v, %v, %v; want ErrNoCA", a, created, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("Open(create=false) wrote to storage: %v", ents)
	}
}

func TestInitializeExisting(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, err := Initialize(context.Background(), testConfig(dir))
	if err != nil {
		t.Fatalf("first Initialize: %v", err)
	}
	b, err := Initialize(context.Background(), testConfig(dir))
	if !errors.Is(err, ErrCAExists) {
		t.Fatalf("second Initialize: %v, want ErrCAExists", err)
	}
	if b == nil {
		t.Fatal("second Initialize returned no Authority")
	}
	if !bytes.Equal(a.CertificatePEM(), b.CertificatePEM()) {
		t.Fatal("second Initialize replaced the CA")
	}
	// The returned Authority is usable: it issues certificates a's
	// certificate verifies.
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := issue(t, b, k.Public(), "after-exists", 24*time.Hour)
	if err := leaf.CheckSignatureFrom(a.Certificate()); err != nil {
		t.Errorf("certificate from the ErrCAExists Authority: %v", err)
	}
}

// A certificate without its key must not be taken for "no CA": that would
// replace the CA every partner trusts.
func TestOpenCertWithoutKeyKeepsCA(t *testing.T) {
	t.Parallel()
	a, dir := newCA(t, nil)
	st := &certmagic.FileStorage{Path: dir}
	if err := st.Delete(context.Background(), "bankedge/ca/ca.key"); err != nil {
		t.Fatal(err)
	}
	for _, create := range []bool{false, true} {
		_, _, err := Open(context.Background(), testConfig(dir), create)
		if err == nil || errors.Is(err, ErrNoCA) || !strings.Contains(err.Error(), "not its key") {
			t.Errorf("Open(create=%v) with the key missing: %v, want 'not its key'", create, err)
		}
	}
	crt, err := st.Load(context.Background(), "bankedge/ca/ca.crt")
	if err != nil || !bytes.Equal(crt, a.CertificatePEM()) {
		t.Fatalf("the stored CA certificate was replaced (err=%v)", err)
	}
}

// A key that does not match the certificate (racing initialisations under
// a lock that mis-synchronised) is refused rather than used to sign
// certificates nobody can verify.
func TestOpenMismatchedKey(t *testing.T) {
	t.Parallel()
	_, dir1 := newCA(t, nil)
	_, dir2 := newCA(t, nil)
	ctx := context.Background()
	other, err := (&certmagic.FileStorage{Path: dir2}).Load(ctx, "bankedge/ca/ca.key")
	if err != nil {
		t.Fatal(err)
	}
	if err := (&certmagic.FileStorage{Path: dir1}).Store(ctx, "bankedge/ca/ca.key", other); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(ctx, testConfig(dir1), false); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("Open with another CA's key: %v, want a mismatch error", err)
	}
}

// Decrypted bytes that are no PKCS#8 key are what a wrong passphrase gives
// when it passes the CBC padding check by chance (about 1 in 256).
func TestOpenUndecodableKeyIsBadKey(t *testing.T) {
	t.Parallel()
	_, dir := newCA(t, nil)
	block, err := pemutil.EncryptPKCS8PrivateKey(rand.Reader, []byte("garbage that is not PKCS#8"), []byte(testPassphrase), x509.PEMCipherAES256)
	if err != nil {
		t.Fatal(err)
	}
	st := &certmagic.FileStorage{Path: dir}
	if err := st.Store(context.Background(), "bankedge/ca/ca.key", pem.EncodeToMemory(block)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(context.Background(), testConfig(dir), false); !errors.Is(err, ErrBadKey) {
		t.Fatalf("Open: %v, want ErrBadKey", err)
	}
}

// Eight instances, each with its own FileStorage value on one directory,
// start together on empty storage: the storage lock makes one CA.
func TestConcurrentOpen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const n = 8
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		pems    [n][]byte
		created [n]bool
		errs    [n]error
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := testConfig(dir) // a new FileStorage value each
			<-start
			a, c, err := Open(context.Background(), cfg, true)
			created[i], errs[i] = c, err
			if a != nil {
				pems[i] = a.CertificatePEM()
			}
		}()
	}
	close(start)
	wg.Wait()
	nCreated := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("instance %d: %v", i, errs[i])
		}
		if created[i] {
			nCreated++
		}
		if !bytes.Equal(pems[i], pems[0]) {
			t.Errorf("instance %d has another CA certificate", i)
		}
	}
	if nCreated != 1 {
		t.Errorf("%d instances report created, want exactly 1", nCreated)
	}
	stored, err := (&certmagic.FileStorage{Path: dir}).Load(context.Background(), "bankedge/ca/ca.crt")
	if err != nil || !bytes.Equal(stored, pems[0]) {
		t.Errorf("stored CA certificate differs from the instances' (err=%v)", err)
	}
}

func TestNewKeyTypes(t *testing.T) {
	k, err := NewKey(RSA2048)
	if err != nil {
		t.Fatal(err)
	}
	if n := k.Public().(*rsa.PublicKey).N.BitLen(); n != 2048 {
		t.Errorf("NewKey(RSA2048) made %d bits", n)
	}
	if k, err := NewKey(Ed25519); err != nil || CheckKey(k.Public()) != nil {
		t.Errorf("NewKey(Ed25519) = %T, %v", k, err)
	}
	if _, err := NewKey("dsa-1024"); err == nil {
		t.Error("NewKey accepted an unknown type")
	}
}

// failingStore is a storage whose writes fail.
type failingStore struct{ *certmagic.FileStorage }

func (failingStore) Store(context.Context, string, []byte) error { return errors.New("disk full") }

func TestOpenStoreFailure(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t.TempDir())
	cfg.Storage = failingStore{&certmagic.FileStorage{Path: t.TempDir()}}
	a, created, err := Open(context.Background(), cfg, true)
	if err == nil || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), "storing CA key") {
		t.Fatalf("Open on a failing storage: %v, want the wrapped write error", err)
	}
	if a != nil || created {
		t.Errorf("Open returned an Authority (%v, created=%v) with its error", a != nil, created)
	}
}

// ca { organization … } without common_name used to be dropped in favour
// of the whole default subject.
func TestOrganizationWithoutCommonName(t *testing.T) {
	t.Parallel()
	a, _ := newCA(t, func(c *Config) { c.Subject = pkix.Name{Organization: []string{"Example Bank"}} })
	s := a.Certificate().Subject
	if s.CommonName != "bankedge Private CA" || !slices.Equal(s.Organization, []string{"Example Bank"}) {
		t.Fatalf("CA subject %v, want the default CN with organization Example Bank", s)
	}
}

// A read-only CA (caddy validate) writes nothing: without a CA in storage
// it makes one in memory, and it issues, revokes and publishes nothing.
func TestReadOnlyWritesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.ReadOnly = true
	a, created, err := Open(context.Background(), cfg, true)
	if err != nil || !created || a.Certificate() == nil {
		t.Fatalf("read-only Open on empty storage: %v, created %v", err, created)
	}
	ctx := context.Background()
	if _, err := a.Issue(ctx, Request{PublicKey: mustECDSA(t, elliptic.P256()).Public(), Template: &x509.Certificate{}, Purpose: PurposeClient, Validity: time.Hour}); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Issue: %v", err)
	}
	if _, err := a.CRL(ctx); !errors.Is(err, ErrReadOnly) {
		t.Errorf("CRL: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("read-only CA wrote %v", entries)
	}
}

// Issue 8, point 10: serials in openssl's notation (x509 -serial): upper
// case, an even number of digits; colons and lower case accepted on input.
func TestSerialNotation(t *testing.T) {
	for in, want := range map[string]string{"abc": "0ABC", "0a:bc": "0ABC", "7F": "7F", "1:00": "0100", "0x0aBc": "0ABC"} {
		n, err := ParseSerial(in)
		if err != nil || SerialString(n) != want {
			t.Errorf("ParseSerial(%q) → %v (%v), want %s", in, n, err, want)
		}
	}
}

package keystore

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	jks "github.com/pavlo-v-chernykh/keystore-go/v4"
	"go.step.sm/crypto/pemutil"
	"software.sslmate.com/src/go-pkcs12"
)

const testPassword = "s3cret-Keystore-pw"

// privateKeyEqual compares keys through their Equal methods, which all three
// stdlib key types provide.
func privateKeyEqual(t *testing.T, got any, want crypto.Signer) {
	t.Helper()
	k, ok := got.(interface{ Equal(crypto.PrivateKey) bool })
	if !ok {
		t.Fatalf("decoded key %T has no Equal method", got)
	}
	if !k.Equal(want) {
		t.Fatalf("decoded %T key differs from the original", got)
	}
}

func certsEqual(t *testing.T, what string, got, want []*x509.Certificate) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d certificates, want %d", what, len(got), len(want))
	}
	for i := range want {
		if !got[i].Equal(want[i]) {
			t.Fatalf("%s: certificate %d is %q, want %q", what, i, got[i].Subject, want[i].Subject)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{
		"": FormatP12, "p12": FormatP12, "PKCS12": FormatP12, "Pfx": FormatP12,
		"jks": FormatJKS, "JKS": FormatJKS, "pem": FormatPEM, " PEM ": FormatPEM,
	} {
		got, err := ParseFormat(in)
		if err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"der", "p7b", "jceks", "p12x"} {
		if _, err := ParseFormat(in); !errors.Is(err, ErrUnknownFormat) {
			t.Errorf("ParseFormat(%q) error = %v, want ErrUnknownFormat", in, err)
		}
	}
}

func TestFormatMetadata(t *testing.T) {
	for _, tc := range []struct {
		f       Format
		ct, ext string
	}{
		{FormatP12, "application/x-pkcs12", ".p12"},
		{FormatJKS, "application/x-java-keystore", ".jks"},
		{FormatPEM, "application/x-pem-file", ".pem"},
		{Format("der"), "application/octet-stream", ""},
	} {
		if got := tc.f.ContentType(); got != tc.ct {
			t.Errorf("%q.ContentType() = %q, want %q", tc.f, got, tc.ct)
		}
		if got := tc.f.Extension(); got != tc.ext {
			t.Errorf("%q.Extension() = %q, want %q", tc.f, got, tc.ext)
		}
	}
}

func TestP12KeystoreRoundTrip(t *testing.T) {
	p := getPKI(t)
	for _, kt := range keyTypes {
		t.Run(kt, func(t *testing.T) {
			e := p.entry(kt)
			der, err := EncodeKeystore(e, FormatP12, testPassword)
			if err != nil {
				t.Fatal(err)
			}
			key, cert, chain, err := pkcs12.DecodeChain(der, testPassword)
			if err != nil {
				t.Fatalf("DecodeChain: %v", err)
			}
			privateKeyEqual(t, key, e.Key)
			certsEqual(t, "leaf", []*x509.Certificate{cert}, []*x509.Certificate{e.Cert})
			certsEqual(t, "chain", chain, p.chain())
			if _, _, _, err := pkcs12.DecodeChain(der, testPassword+"x"); err == nil {
				t.Fatal("DecodeChain succeeded with a wrong password")
			}
		})
	}
}

func TestJKSKeystoreRoundTrip(t *testing.T) {
	p := getPKI(t)
	for _, kt := range keyTypes {
		t.Run(kt, func(t *testing.T) {
			e := p.entry(kt)
			der, err := EncodeKeystore(e, FormatJKS, testPassword)
			if err != nil {
				t.Fatal(err)
			}
			ks := jks.New()
			if err := ks.Load(bytes.NewReader(der), []byte(testPassword)); err != nil {
				t.Fatalf("Load: %v", err)
			}
			// JKS lower-cases aliases; the CA chain becomes ca, ca-2.
			wantAliases := []string{"bank_xyz", "pesit-ca", "pesit-ca-2"}
			got := ks.Aliases()
			slices.Sort(got)
			if !slices.Equal(got, wantAliases) {
				t.Fatalf("aliases = %q, want %q", got, wantAliases)
			}
			pke, err := ks.GetPrivateKeyEntry("bank_xyz", []byte(testPassword))
			if err != nil {
				t.Fatalf("GetPrivateKeyEntry: %v", err)
			}
			key, err := x509.ParsePKCS8PrivateKey(pke.PrivateKey)
			if err != nil {
				t.Fatalf("key is not PKCS#8: %v", err)
			}
			privateKeyEqual(t, key, e.Key)
			var chain []*x509.Certificate
			for _, c := range pke.CertificateChain {
				if c.Type != "X509" {
					t.Fatalf("chain certificate type %q", c.Type)
				}
				pc, err := x509.ParseCertificate(c.Content)
				if err != nil {
					t.Fatal(err)
				}
				chain = append(chain, pc)
			}
			certsEqual(t, "key entry chain", chain, append([]*x509.Certificate{e.Cert}, p.chain()...))
			for i, alias := range wantAliases[1:] {
				tce, err := ks.GetTrustedCertificateEntry(alias)
				if err != nil {
					t.Fatalf("trusted entry %q: %v", alias, err)
				}
				if !bytes.Equal(tce.Certificate.Content, p.chain()[i].Raw) {
					t.Fatalf("trusted entry %q holds the wrong certificate", alias)
				}
			}
			if err := jks.New().Load(bytes.NewReader(der), []byte("wrong")); err == nil {
				t.Fatal("JKS loaded with a wrong password")
			}
		})
	}
}

func TestJKSDefaultAliases(t *testing.T) {
	p := getPKI(t)
	e := p.entry("ecdsa")
	e.Alias, e.CAAlias = "", ""
	e.Chain = e.Chain[:1]
	der, err := EncodeKeystore(e, FormatJKS, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	ks := jks.New()
	if err := ks.Load(bytes.NewReader(der), []byte(testPassword)); err != nil {
		t.Fatal(err)
	}
	if !ks.IsPrivateKeyEntry(DefaultKeyAlias) || !ks.IsTrustedCertificateEntry(DefaultCAAlias) {
		t.Fatalf("aliases = %q, want key %q and CA %q", ks.Aliases(), DefaultKeyAlias, DefaultCAAlias)
	}
}

// pemBlocks splits a PEM bundle, failing on trailing garbage.
func pemBlocks(t *testing.T, data []byte) []*pem.Block {
	t.Helper()
	var blocks []*pem.Block
	for {
		b, rest := pem.Decode(data)
		if b == nil {
			if len(bytes.TrimSpace(rest)) != 0 {
				t.Fatalf("trailing non-PEM data: %q", rest)
			}
			return blocks
		}
		blocks = append(blocks, b)
		data = rest
	}
}

// TestPEMKeystore checks the bundle layout for every key type. It uses the
// unencrypted form because encryption (600k PBKDF2 rounds, several seconds
// each under -race) does not depend on the key type; TestPEMEncryptedKey
// covers it once.
func TestPEMKeystore(t *testing.T) {
	p := getPKI(t)
	for _, kt := range keyTypes {
		t.Run(kt, func(t *testing.T) {
			e := p.entry(kt)
			out, err := EncodeKeystore(e, FormatPEM, "")
			if err != nil {
				t.Fatal(err)
			}
			blocks := checkPEMBundle(t, out, e, "PRIVATE KEY")
			key, err := x509.ParsePKCS8PrivateKey(blocks[3].Bytes)
			if err != nil {
				t.Fatal(err)
			}
			privateKeyEqual(t, key, e.Key)
		})
	}
}

func TestPEMEncryptedKey(t *testing.T) {
	p := getPKI(t)
	e := p.entry("rsa")
	out, err := EncodeKeystore(e, FormatPEM, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte(testPassword)) {
		t.Fatal("the password appears in the output")
	}
	blocks := checkPEMBundle(t, out, e, "ENCRYPTED PRIVATE KEY")
	keyPEM := pem.EncodeToMemory(blocks[3])
	key, err := pemutil.ParseKey(keyPEM, pemutil.WithPassword([]byte(testPassword)))
	if err != nil {
		t.Fatalf("decrypting key: %v", err)
	}
	privateKeyEqual(t, key, e.Key)
	if _, err := pemutil.ParseKey(keyPEM, pemutil.WithPassword([]byte("not-the-password"))); err == nil {
		t.Fatal("encrypted key decrypted with a wrong password")
	}
}

// checkPEMBundle asserts the order certificate, chain, key and returns the
// blocks.
func checkPEMBundle(t *testing.T, out []byte, e Entry, keyType string) []*pem.Block {
	t.Helper()
	blocks := pemBlocks(t, out)
	var types []string
	for _, b := range blocks {
		types = append(types, b.Type)
	}
	wantTypes := []string{"CERTIFICATE", "CERTIFICATE", "CERTIFICATE", keyType}
	if !slices.Equal(types, wantTypes) {
		t.Fatalf("block types = %q, want %q", types, wantTypes)
	}
	var certs []*x509.Certificate
	for _, b := range blocks[:3] {
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	certsEqual(t, "bundle", certs, append([]*x509.Certificate{e.Cert}, e.Chain...))
	return blocks
}

func TestTruststores(t *testing.T) {
	p := getPKI(t)
	cas := []*x509.Certificate{p.root, p.issuing}

	t.Run("p12", func(t *testing.T) {
		der, err := EncodeTruststore(cas, FormatP12, "pesit-ca", testPassword)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pkcs12.DecodeTrustStore(der, testPassword)
		if err != nil {
			t.Fatalf("DecodeTrustStore: %v", err)
		}
		certsEqual(t, "truststore", got, cas)
	})
	t.Run("jks", func(t *testing.T) {
		der, err := EncodeTruststore(cas, FormatJKS, "", testPassword)
		if err != nil {
			t.Fatal(err)
		}
		ks := jks.New()
		if err := ks.Load(bytes.NewReader(der), []byte(testPassword)); err != nil {
			t.Fatal(err)
		}
		for i, alias := range []string{"ca", "ca-2"} {
			tce, err := ks.GetTrustedCertificateEntry(alias)
			if err != nil {
				t.Fatalf("%q: %v (aliases %q)", alias, err, ks.Aliases())
			}
			if !bytes.Equal(tce.Certificate.Content, cas[i].Raw) {
				t.Fatalf("%q holds the wrong certificate", alias)
			}
		}
		if n := len(ks.Aliases()); n != 2 {
			t.Fatalf("%d entries, want 2", n)
		}
	})
	t.Run("pem", func(t *testing.T) {
		out, err := EncodeTruststore(cas, FormatPEM, "", "")
		if err != nil {
			t.Fatal(err)
		}
		certs, err := pemutil.ParseCertificateBundle(out)
		if err != nil {
			t.Fatal(err)
		}
		certsEqual(t, "truststore", certs, cas)
		if len(pemBlocks(t, out)) != 2 {
			t.Fatal("PEM truststore holds more than the certificates")
		}
	})
}

func TestErrors(t *testing.T) {
	p := getPKI(t)
	good := p.entry("rsa")
	other := p.entry("ecdsa")

	mismatch := good
	mismatch.Key = other.Key
	noCert := good
	noCert.Cert = nil
	noKey := good
	noKey.Key = nil
	badChain := good
	badChain.Chain = []*x509.Certificate{p.root, p.issuing}
	nilInChain := good
	nilInChain.Chain = []*x509.Certificate{p.issuing, nil}
	collide := good
	collide.Alias, collide.CAAlias = "CA", "ca"
	typedNil := good
	typedNil.Key = (*rsa.PrivateKey)(nil)
	opaque := good
	opaque.Key = opaqueSigner{good.Key}

	for _, tc := range []struct {
		name   string
		e      Entry
		f      Format
		pw     string
		target error
	}{
		{"p12 empty password", good, FormatP12, "", ErrPasswordRequired},
		{"jks empty password", good, FormatJKS, "", ErrPasswordRequired},
		{"unknown format", good, Format("der"), testPassword, ErrUnknownFormat},
		{"empty format", good, Format(""), testPassword, ErrUnknownFormat},
		{"key mismatch p12", mismatch, FormatP12, testPassword, ErrKeyMismatch},
		{"key mismatch pem", mismatch, FormatPEM, testPassword, ErrKeyMismatch},
		{"key mismatch jks", mismatch, FormatJKS, testPassword, ErrKeyMismatch},
		{"nil cert", noCert, FormatP12, testPassword, nil},
		{"nil key", noKey, FormatPEM, "", nil},
		{"typed nil key", typedNil, FormatPEM, "", nil},
		{"opaque signer", opaque, FormatP12, testPassword, nil},
		{"chain out of order", badChain, FormatP12, testPassword, nil},
		{"nil chain cert", nilInChain, FormatJKS, testPassword, nil},
		{"alias collides with CA alias", collide, FormatJKS, testPassword, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := EncodeKeystore(tc.e, tc.f, tc.pw)
			if err == nil {
				t.Fatalf("no error; got %d bytes", len(out))
			}
			if tc.target != nil && !errors.Is(err, tc.target) {
				t.Fatalf("error %v is not %v", err, tc.target)
			}
			if tc.pw != "" && strings.Contains(err.Error(), tc.pw) {
				t.Fatalf("error message contains the password: %v", err)
			}
		})
	}

	t.Run("private key PEM", func(t *testing.T) {
		for _, k := range []crypto.Signer{nil, (*ecdsa.PrivateKey)(nil), opaqueSigner{good.Key}} {
			if out, err := EncodePrivateKeyPEM(k, ""); err == nil {
				t.Errorf("%T: no error; got %q", k, out)
			}
		}
	})

	t.Run("truststore", func(t *testing.T) {
		cas := []*x509.Certificate{p.root}
		for _, tc := range []struct {
			name  string
			certs []*x509.Certificate
			f     Format
			pw    string
		}{
			{"p12 empty password", cas, FormatP12, ""},
			{"jks empty password", cas, FormatJKS, ""},
			{"unknown format", cas, Format("p7b"), testPassword},
			{"no certificates", nil, FormatPEM, ""},
			{"nil certificate", []*x509.Certificate{nil}, FormatP12, testPassword},
		} {
			if out, err := EncodeTruststore(tc.certs, tc.f, "ca", tc.pw); err == nil {
				t.Errorf("%s: no error; got %d bytes", tc.name, len(out))
			}
		}
	})
}

// opaqueSigner stands in for an HSM key: it signs but cannot be exported.
type opaqueSigner struct{ crypto.Signer }

func TestEntryStringRedactsKey(t *testing.T) {
	p := getPKI(t)
	for _, kt := range keyTypes {
		e := p.entry(kt)
		der, err := x509.MarshalPKCS8PrivateKey(e.Key)
		if err != nil {
			t.Fatal(err)
		}
		var secret string
		switch k := e.Key.(type) {
		case *rsa.PrivateKey:
			secret = k.D.String()
		case *ecdsa.PrivateKey:
			b, err := k.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			secret = fmt.Sprintf("%x", b)
		case ed25519.PrivateKey:
			secret = fmt.Sprintf("%x", k.Seed())
		}
		for _, s := range []string{fmt.Sprint(e), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e), fmt.Sprint(&e)} {
			if strings.Contains(s, secret) || strings.Contains(s, fmt.Sprintf("%x", der)) || strings.Contains(s, fmt.Sprint(der)) {
				t.Fatalf("%s: formatted Entry leaks key material: %s", kt, s)
			}
			if !strings.Contains(s, "bank-xyz.example.com") {
				t.Fatalf("%s: formatted Entry lost the subject: %s", kt, s)
			}
		}
	}
}

func TestEd25519PointerKey(t *testing.T) {
	p := getPKI(t)
	e := p.entry("ed25519")
	k := e.Key.(ed25519.PrivateKey)
	e.Key = &k
	if _, err := EncodeKeystore(e, FormatP12, testPassword); err != nil {
		t.Fatalf("*ed25519.PrivateKey refused: %v", err)
	}
}

func TestRandomPassword(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		pw, err := RandomPassword()
		if err != nil {
			t.Fatal(err)
		}
		if len(pw) != 24 {
			t.Fatalf("len(%q) = %d, want 24", pw, len(pw))
		}
		for _, r := range pw {
			if !strings.ContainsRune(passwordAlphabet, r) {
				t.Fatalf("%q contains %q, outside the URL-safe alphabet", pw, r)
			}
		}
		if pw == pkcs12.DefaultPassword || seen[pw] {
			t.Fatalf("password %q repeated or the default", pw)
		}
		seen[pw] = true
	}
	// The alphabet must be URL-safe: unreserved characters only (RFC 3986).
	for _, r := range passwordAlphabet {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~", r)) {
			t.Fatalf("alphabet character %q is not URL-safe", r)
		}
	}
}

// TestRandomPasswordUsesWholeAlphabet guards against a biased or truncated
// mapping (e.g. b%26) that would silently cut the entropy.
func TestRandomPasswordUsesWholeAlphabet(t *testing.T) {
	counts := map[rune]int{}
	for range 200 {
		pw, err := RandomPassword()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range pw {
			counts[r]++
		}
	}
	// 4800 draws over 62 symbols: every symbol is expected ~77 times; the
	// chance that one never appears is negligible (< 62·e^-77).
	if len(counts) != len(passwordAlphabet) {
		t.Fatalf("only %d of %d alphabet characters appeared", len(counts), len(passwordAlphabet))
	}
}

// Issue 7, point 12: a keystore password of "x" protected a private key.
func TestCheckPassword(t *testing.T) {
	for pw, ok := range map[string]bool{
		"x": false, "changeit": false, "aaaaaaaaaaaaaaaa": false, "abababababab": false, "jks-pass-1": false,
		"pässwörd-long-enough": false, "tab\there-long-enough": false, strings.Repeat("ab1-Z", 26): false,
		"correct-horse-battery": true, "0123456789ab": true, "24e5d1e0c7a9b1c2d3e4f5a6": true,
	} {
		err := CheckPassword(pw)
		if (err == nil) != ok {
			t.Errorf("CheckPassword(%q) = %v, want ok=%v", pw, err, ok)
		}
		if err != nil && (!errors.Is(err, ErrWeakPassword) || strings.Contains(err.Error(), pw)) {
			t.Errorf("CheckPassword(%q): %v", pw, err)
		}
	}
	if pw, _ := RandomPassword(); CheckPassword(pw) != nil {
		t.Errorf("a random password is refused: %v", CheckPassword(pw))
	}
}

// The PKCS#12 key entry is named after Entry.Alias: Java and go-pkcs12 read
// the rewritten file (its MAC is computed again), and an entry without an
// alias keeps go-pkcs12's output.
func TestP12KeyFriendlyName(t *testing.T) {
	p := getPKI(t)
	der, err := EncodeKeystore(p.entry("rsa"), FormatP12, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := pkcs12.DecodeChain(der, testPassword); err != nil {
		t.Fatalf("go-pkcs12 refuses the named keystore: %v", err)
	}
	if _, _, _, err := pkcs12.DecodeChain(der, "wrong-password"); err == nil {
		t.Fatal("MAC verified with a wrong password")
	}
	blocks, err := pkcs12.ToPEM(der, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	named := 0
	for _, b := range blocks {
		if b.Headers["friendlyName"] == "BANK_XYZ" {
			named++
		}
	}
	if named != 1 {
		t.Fatalf("%d blocks named BANK_XYZ, want the key's", named)
	}
}

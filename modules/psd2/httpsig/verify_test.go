package httpsig_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/bankedge/bankedge/modules/psd2/httpsig"
)

// TestKeyVerifier checks that a KeyVerifier gives Verify's answer for every
// key size, valid and tampered signatures alike, and that it precomputes
// exactly the keys rsaverify takes (2048 to 4096 bits; a 1024-bit key goes
// to crypto/rsa).
func TestKeyVerifier(t *testing.T) {
	signing := []byte("digest: " + seedDigest1 + "\nx-request-id: " + seedRequestID1)
	// Another key of the same size, so that only the key differs.
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, bits := range []int{1024, 2048, 3072, 4096} {
		key := rsaKey(t, bits)
		v := httpsig.NewKeyVerifier(&key.PublicKey)
		if want := bits >= 2048; v.Fast() != want {
			t.Errorf("rsa%d: Fast() = %v, want %v", bits, v.Fast(), want)
		}
		for _, alg := range []httpsig.Algorithm{httpsig.RSASHA256, httpsig.RSASHA512} {
			t.Run(fmt.Sprintf("rsa%d/%s", bits, alg.Name), func(t *testing.T) {
				msg := httpsig.Piraeus.Message(signing)
				sig, err := httpsig.Sign(key, alg, msg)
				if err != nil {
					t.Fatal(err)
				}
				raw, _ := base64.StdEncoding.DecodeString(sig)
				if err := v.Verify(alg, msg, sig); err != nil {
					t.Fatalf("valid signature: %v", err)
				}
				if err := httpsig.Verify(&key.PublicKey, alg, msg, sig); err != nil {
					t.Fatalf("valid signature, Verify: %v", err)
				}
				tampered := map[string]struct {
					alg httpsig.Algorithm
					msg []byte
					sig string
				}{
					"tampered message":   {alg, append(slices.Clone(msg), 'x'), sig},
					"signing string":     {alg, signing, sig},
					"tampered signature": {alg, msg, flipByte(raw)},
					"first byte":         {alg, msg, base64.StdEncoding.EncodeToString(append([]byte{raw[0] ^ 0x80}, raw[1:]...))},
					"one byte short":     {alg, msg, base64.StdEncoding.EncodeToString(raw[1:])},
					"one byte long":      {alg, msg, base64.StdEncoding.EncodeToString(append([]byte{0}, raw...))},
					"other algorithm":    {otherAlg(alg), msg, sig},
					"other key":          {alg, msg, mustSign(t, other, alg, msg)},
					"not base64":         {alg, msg, "!" + sig},
					"empty":              {alg, msg, ""},
					"longer than stack":  {alg, msg, strings.Repeat("QUFB", 400)},
				}
				for name, c := range tampered {
					err := v.Verify(c.alg, c.msg, c.sig)
					if !errors.Is(err, httpsig.ErrVerification) {
						t.Errorf("%s: KeyVerifier.Verify = %v, want ErrVerification", name, err)
					}
					if errStd := httpsig.Verify(&key.PublicKey, c.alg, c.msg, c.sig); !errors.Is(errStd, httpsig.ErrVerification) {
						t.Errorf("%s: Verify = %v, want ErrVerification", name, errStd)
					}
				}
			})
		}
	}
}

func mustSign(t *testing.T, key *rsa.PrivateKey, alg httpsig.Algorithm, msg []byte) string {
	t.Helper()
	sig, err := httpsig.Sign(key, alg, msg)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// TestKeyVerifierRefusesOtherKeys checks that a verifier of a key the
// algorithms cannot use fails as Verify does.
func TestKeyVerifierRefusesOtherKeys(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := httpsig.Sign(rsaKey(t, 2048), httpsig.RSASHA256, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]*httpsig.KeyVerifier{"ecdsa": httpsig.NewKeyVerifier(&ecKey.PublicKey), "nil": httpsig.NewKeyVerifier(nil)} {
		if v.Fast() {
			t.Errorf("%s: Fast", name)
		}
		if err := v.Verify(httpsig.RSASHA256, []byte("x"), sig); !errors.Is(err, httpsig.ErrAlgorithm) {
			t.Errorf("%s: Verify = %v, want ErrAlgorithm", name, err)
		}
	}
	if err := httpsig.NewKeyVerifier(&rsaKey(t, 2048).PublicKey).Verify(httpsig.Algorithm{}, []byte("x"), sig); !errors.Is(err, httpsig.ErrAlgorithm) {
		t.Errorf("zero Algorithm: %v", err)
	}
}

// TestKeyVerifierAllocatesNothing: the signature is decoded on the stack
// and rsaverify keeps its numbers there, so a verification of a QSEAL
// signature allocates nothing, valid or not.
func TestKeyVerifierAllocatesNothing(t *testing.T) {
	msg := []byte("digest: " + seedDigest1 + "\nx-request-id: " + seedRequestID1)
	for _, bits := range []int{2048, 3072, 4096} {
		key := rsaKey(t, bits)
		v := httpsig.NewKeyVerifier(&key.PublicKey)
		for _, alg := range []httpsig.Algorithm{httpsig.RSASHA256, httpsig.RSASHA512} {
			sig, err := httpsig.Sign(key, alg, msg)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := base64.StdEncoding.DecodeString(sig)
			bad := flipByte(raw)
			allocs := testing.AllocsPerRun(20, func() {
				if v.Verify(alg, msg, sig) != nil || v.Verify(alg, msg, bad) == nil {
					t.Fatal("wrong answer")
				}
			})
			if allocs != 0 {
				t.Errorf("rsa%d/%s: %.1f allocations per pair of verifications, want 0", bits, alg.Name, allocs)
			}
		}
	}
}

// BenchmarkVerify compares, per key size, the one-off Verify (crypto/rsa)
// with a KeyVerifier kept for the key, as the gateway keeps it with the
// verified QSEAL.
func BenchmarkVerify(b *testing.B) {
	msg := httpsig.Piraeus.Message([]byte("digest: " + seedDigest1 + "\nx-request-id: " + seedRequestID1))
	for _, bits := range []int{2048, 3072, 4096} {
		key := rsaKey(b, bits)
		sig, err := httpsig.Sign(key, httpsig.RSASHA256, msg)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("rsa%d/crypto-rsa", bits), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := httpsig.Verify(&key.PublicKey, httpsig.RSASHA256, msg, sig); err != nil {
					b.Fatal(err)
				}
			}
		})
		v := httpsig.NewKeyVerifier(&key.PublicKey)
		b.Run(fmt.Sprintf("rsa%d/key-verifier", bits), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := v.Verify(httpsig.RSASHA256, msg, sig); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

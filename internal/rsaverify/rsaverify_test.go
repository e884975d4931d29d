package rsaverify

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"math/big"
	"sync"
	"testing"
)

func TestNewRefuses(t *testing.T) {
	k2048 := testKey(t, "rsa2048.pem")
	n := k2048.N
	even := new(big.Int).Add(n, big.NewInt(1))
	cases := map[string]*rsa.PublicKey{
		"nil key":          nil,
		"no modulus":       {E: 65537},
		"even modulus":     {N: even, E: 65537},
		"negative modulus": {N: new(big.Int).Neg(n), E: 65537},
		"1536 bits":        &testKey(t, "rsa1536.pem").PublicKey,
		"e = 1":            {N: n, E: 1},
		"e = 2":            {N: n, E: 2},
		"e even":           {N: n, E: 65536},
		"e negative":       {N: n, E: -65537},
		"e above 2³¹−1":    {N: n, E: 1 << 31},
	}
	for name, pub := range cases {
		if _, err := New(pub); !errors.Is(err, ErrKey) {
			t.Errorf("%s: New = %v, want ErrKey", name, err)
		}
	}
	// crypto/rsa refuses the same keys, except the 1536-bit one, which it
	// still takes (1024 bits is its floor).
	digest := digestOf(crypto.SHA256, []byte("m"))
	for name, pub := range cases {
		if name == "nil key" || name == "1536 bits" {
			continue
		}
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest, make([]byte, 256)); err == nil {
			t.Errorf("%s: crypto/rsa accepted", name)
		}
	}
}

// TestOwnArithmetic checks which keys this package verifies itself.
func TestOwnArithmetic(t *testing.T) {
	for _, fast := range []bool{true, false} {
		withKernel(t, fast)
		for name, want := range map[string]bool{
			"rsa2048.pem":      fast,
			"rsa2056-emax.pem": true,
			"rsa3072.pem":      true,
			"rsa4096.pem":      true,
			"rsa4104.pem":      false,
		} {
			v, err := New(&testKey(t, name).PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			if v.own != want {
				t.Errorf("fast kernel %v, %s: own arithmetic %v, want %v", fast, name, v.own, want)
			}
		}
	}
}

func TestVerify(t *testing.T) {
	for _, name := range testKeyFiles {
		priv := testKey(t, name)
		v, err := New(&priv.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		if v.Size() != priv.Size() || v.PublicKey() != &priv.PublicKey {
			t.Fatalf("%s: Size %d, want %d", name, v.Size(), priv.Size())
		}
		for _, hash := range hashes {
			digest := digestOf(hash, []byte("payment "+name))
			sig, err := rsa.SignPKCS1v15(nil, priv, hash, digest)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.VerifyPKCS1v15(hash, digest, sig); err != nil {
				t.Fatalf("%s %v: valid signature refused: %v", name, hash, err)
			}
			if err := VerifyPKCS1v15(&priv.PublicKey, hash, digest, sig); err != nil {
				t.Fatalf("%s %v: one-shot refused: %v", name, hash, err)
			}
			refuse := func(what string, hash crypto.Hash, digest, sig []byte, want error) {
				t.Helper()
				if err := v.VerifyPKCS1v15(hash, digest, sig); !errors.Is(err, want) {
					t.Errorf("%s %v, %s: %v, want %v", name, hash, what, err, want)
				}
			}
			flipped := append([]byte(nil), sig...)
			flipped[len(flipped)/2] ^= 0x40
			refuse("flipped signature bit", hash, digest, flipped, ErrVerification)
			otherDigest := append([]byte(nil), digest...)
			otherDigest[0] ^= 1
			refuse("other digest", hash, otherDigest, sig, ErrVerification)
			refuse("signature one byte short", hash, digest, sig[1:], ErrVerification)
			refuse("signature one byte long", hash, digest, append([]byte{0}, sig...), ErrVerification)
			refuse("empty signature", hash, digest, nil, ErrVerification)
			refuse("digest one byte short", hash, digest[1:], sig, ErrHash)
			refuse("SHA-1", crypto.SHA1, digest[:20], sig, ErrHash)
			refuse("SHA-224", crypto.SHA224, digest[:28], sig, ErrHash)
			refuse("no hash", 0, digest, sig, ErrHash)
			// s + n has the same length when it does not carry out of the
			// top byte: the same value mod n, refused for being ≥ n.
			sPlusN := new(big.Int).Add(new(big.Int).SetBytes(sig), priv.N)
			if sPlusN.BitLen() <= 8*priv.Size() {
				refuse("s + n", hash, digest, sPlusN.FillBytes(make([]byte, priv.Size())), ErrVerification)
			}
			refuse("s = n", hash, digest, priv.N.FillBytes(make([]byte, priv.Size())), ErrVerification)
		}
	}
}

// TestEncodingIsCompared signs encoded messages that differ from the
// expected one in each field: every one must be refused, by this package
// and by crypto/rsa. A parser that skipped the padding, took a shorter
// one, or ignored bytes after the digest would accept some of them.
func TestEncodingIsCompared(t *testing.T) {
	priv := testKey(t, "rsa2048-e3.pem")
	v, err := New(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	digest := digestOf(crypto.SHA256, []byte("m"))
	good := encoded(priv, crypto.SHA256, digest)
	prefix := len(good) - 32 - len(digestInfoPrefixes[crypto.SHA256])
	variants := map[string]func(em []byte) []byte{
		"block type 2":      func(em []byte) []byte { em[1] = 2; return em },
		"leading byte 1":    func(em []byte) []byte { em[0] = 1; return em },
		"padding byte 0xfe": func(em []byte) []byte { em[10] = 0xfe; return em },
		"separator 0xff":    func(em []byte) []byte { em[prefix-1] = 0xff; return em },
		"early separator":   func(em []byte) []byte { em[20] = 0; return em },
		"SHA-512 OID":       func(em []byte) []byte { em[prefix+14] = 0x03; return em },
		"DigestInfo length": func(em []byte) []byte { em[prefix+1]++; return em },
		"last digest byte":  func(em []byte) []byte { em[len(em)-1] ^= 1; return em },
		"garbage after digest": func(em []byte) []byte {
			// The Bleichenbacher 2006 layout: short padding, the digest,
			// then garbage up to the end of the block.
			out := make([]byte, len(em))
			out[1] = 1
			copy(out[2:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0})
			copy(out[11:], digestInfoPrefixes[crypto.SHA256])
			copy(out[11+19:], digest)
			for i := 11 + 19 + 32; i < len(out); i++ {
				out[i] = 0xa5
			}
			return out
		},
	}
	if err := v.VerifyPKCS1v15(crypto.SHA256, digest, rawSign(priv, new(big.Int).SetBytes(good))); err != nil {
		t.Fatalf("the raw signature of the right encoding is refused: %v", err)
	}
	for name, mutate := range variants {
		em := mutate(append([]byte(nil), good...))
		sig := rawSign(priv, new(big.Int).SetBytes(em))
		if err := v.VerifyPKCS1v15(crypto.SHA256, digest, sig); !errors.Is(err, ErrVerification) {
			t.Errorf("%s: %v, want ErrVerification", name, err)
		}
		if rsa.VerifyPKCS1v15(&priv.PublicKey, crypto.SHA256, digest, sig) == nil {
			t.Errorf("%s: crypto/rsa accepts it", name)
		}
	}
}

func TestVerifyDoesNotAllocate(t *testing.T) {
	for _, name := range []string{"rsa2048.pem", "rsa3072.pem", "rsa4096.pem"} {
		priv := testKey(t, name)
		v, err := New(&priv.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		if !v.own {
			continue // crypto/rsa allocates; nothing to hold this package to
		}
		digest := digestOf(crypto.SHA256, []byte("m"))
		sig, _ := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, digest)
		bad := append([]byte(nil), sig...)
		bad[5] ^= 1
		allocs := testing.AllocsPerRun(20, func() {
			if v.VerifyPKCS1v15(crypto.SHA256, digest, sig) != nil || v.VerifyPKCS1v15(crypto.SHA256, digest, bad) == nil {
				t.Fatal("wrong answer")
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per verification pair, want 0", name, allocs)
		}
	}
}

// TestConcurrentUse shares one Verifier between goroutines (run it with
// -race): it must hold no per-call state.
func TestConcurrentUse(t *testing.T) {
	priv := testKey(t, "rsa3072.pem")
	v, err := New(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5 {
				msg := make([]byte, 16)
				_, _ = rand.Read(msg)
				digest := digestOf(crypto.SHA384, msg)
				sig, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA384, digest)
				if err != nil {
					t.Error(err)
					return
				}
				if (g+i)%2 == 1 {
					sig[0] ^= 0x80
				}
				if got := v.VerifyPKCS1v15(crypto.SHA384, digest, sig) == nil; got != ((g+i)%2 == 0) {
					t.Errorf("goroutine %d, call %d: valid=%v", g, i, got)
				}
			}
		}()
	}
	wg.Wait()
}

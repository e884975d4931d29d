package rsaverify

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// testKeys are the fixed keys of testdata, in the order the fuzz corpus
// names them by index (keyIndex).
var testKeyFiles = []string{
	"rsa2048.pem",
	"rsa2048-e3.pem",
	"rsa2056-emax.pem",
	"rsa3000.pem",
	"rsa3072.pem",
	"rsa4096.pem",
	"rsa4104.pem",
}

var (
	keysOnce sync.Once
	keys     map[string]*rsa.PrivateKey
	keysErr  error
)

// testKey loads a key of testdata by file name.
func testKey(t testing.TB, name string) *rsa.PrivateKey {
	t.Helper()
	keysOnce.Do(func() {
		keys = map[string]*rsa.PrivateKey{}
		names, _ := filepath.Glob(filepath.Join("testdata", "*.pem"))
		for _, path := range names {
			data, err := os.ReadFile(path)
			if err != nil {
				keysErr = err
				return
			}
			block, _ := pem.Decode(data)
			if block == nil {
				keysErr = os.ErrInvalid
				return
			}
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				keysErr = err
				return
			}
			keys[filepath.Base(path)] = k.(*rsa.PrivateKey)
		}
	})
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	k, ok := keys[name]
	if !ok {
		t.Fatalf("no test key %s", name)
	}
	return k
}

// keyIndex returns the test key at index i modulo the list.
func keyIndex(t testing.TB, i int) *rsa.PrivateKey {
	return testKey(t, testKeyFiles[i%len(testKeyFiles)])
}

// rawSign computes m^d mod n with the CRT, for any m < n: it signs crafted
// encoded messages that SignPKCS1v15 would never produce.
func rawSign(priv *rsa.PrivateKey, m *big.Int) []byte {
	p, q := priv.Primes[0], priv.Primes[1]
	one := big.NewInt(1)
	dp := new(big.Int).Mod(priv.D, new(big.Int).Sub(p, one))
	dq := new(big.Int).Mod(priv.D, new(big.Int).Sub(q, one))
	qinv := new(big.Int).ModInverse(q, p)
	m1 := new(big.Int).Exp(m, dp, p)
	m2 := new(big.Int).Exp(m, dq, q)
	h := m1.Sub(m1, m2)
	h.Mul(h, qinv).Mod(h, p)
	s := h.Mul(h, q).Add(h, m2)
	return s.FillBytes(make([]byte, priv.Size()))
}

// encoded returns EMSA-PKCS1-v1_5 for hash and digest at the key's size.
func encoded(priv *rsa.PrivateKey, hash crypto.Hash, digest []byte) []byte {
	em := make([]byte, priv.Size())
	encodeEM(em, digestInfoPrefixes[hash], digest)
	return em
}

// withKernel runs the rest of the test with the assembly kernel on or off.
// Tests that use it must not run in parallel.
func withKernel(t *testing.T, fast bool) {
	t.Helper()
	old := fastKernel
	fastKernel = fast
	t.Cleanup(func() { fastKernel = old })
}

var hashes = []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512}

func digestOf(hash crypto.Hash, msg []byte) []byte {
	h := hash.New()
	h.Write(msg)
	return h.Sum(nil)
}

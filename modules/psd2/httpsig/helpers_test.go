package httpsig_test

import (
	"crypto/rand"
	"crypto/rsa"
	"os/exec"
	"sync"
	"testing"
)

// needOpenSSL skips the test when the openssl command is not installed, and
// returns its path.
func needOpenSSL(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl is not installed")
	}
	return path
}

var (
	rsaKeysMu sync.Mutex
	rsaKeys   = map[int]*rsa.PrivateKey{}
)

// rsaKey returns an RSA key of the given size, generated once per test
// binary: key generation dominates the run time otherwise.
func rsaKey(t testing.TB, bits int) *rsa.PrivateKey {
	t.Helper()
	rsaKeysMu.Lock()
	defer rsaKeysMu.Unlock()
	if k, ok := rsaKeys[bits]; ok {
		return k
	}
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	rsaKeys[bits] = k
	return k
}

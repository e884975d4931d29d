package revocation_test

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bankedge/bankedge/modules/trust/revocation"
)

// fuzzNow is inside the validity of the seed corpus (testdata/fuzz) and of
// the certificates it was made with (testdata/fuzz-*.pem).
var fuzzNow = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)

func fuzzCert(t testing.TB, name string) *x509.Certificate {
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("testdata/%s holds no PEM block", name)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// FuzzVerifyOCSP feeds OCSP responses from an untrusted responder to the
// parser and the checks behind it.
func FuzzVerifyOCSP(f *testing.F) {
	issuer, cert := fuzzCert(f, "fuzz-issuer.pem"), fuzzCert(f, "fuzz-leaf.pem")
	f.Fuzz(func(t *testing.T, der []byte) {
		resp, err := revocation.VerifyOCSP(der, cert, issuer, fuzzNow, 5*time.Minute, time.Hour)
		if err == nil && resp.SerialNumber.Cmp(cert.SerialNumber) != 0 {
			t.Fatal("accepted a response about another serial")
		}
	})
}

// FuzzVerifyCRL feeds CRLs from an untrusted distribution point to the
// parser and the checks behind it.
func FuzzVerifyCRL(f *testing.F) {
	issuer := fuzzCert(f, "fuzz-issuer.pem")
	f.Fuzz(func(t *testing.T, der []byte) {
		crl, err := revocation.VerifyCRL(der, issuer, fuzzNow, 5*time.Minute)
		if err == nil && crl.NextUpdate.Before(fuzzNow.Add(-5*time.Minute)) {
			t.Fatal("accepted a stale CRL")
		}
	})
}

// The signed seeds must pass, or the fuzzer never gets past the signature.
func TestFuzzSeedsVerify(t *testing.T) {
	issuer, cert := fuzzCert(t, "fuzz-issuer.pem"), fuzzCert(t, "fuzz-leaf.pem")
	for _, name := range []string{"good", "revoked", "delegated"} {
		if _, err := revocation.VerifyOCSP(readSeed(t, "FuzzVerifyOCSP", name), cert, issuer, fuzzNow, 5*time.Minute, time.Hour); err != nil {
			t.Fatalf("OCSP seed %s: %v", name, err)
		}
	}
	if _, err := revocation.VerifyCRL(readSeed(t, "FuzzVerifyCRL", "revoked"), issuer, fuzzNow, 5*time.Minute); err != nil {
		t.Fatalf("CRL seed: %v", err)
	}
}

func readSeed(t *testing.T, target, name string) []byte {
	raw, err := os.ReadFile("testdata/fuzz/" + target + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var s string
	if _, err := fmt.Sscanf(strings.SplitN(string(raw), "\n", 2)[1], "[]byte(%q)", &s); err != nil {
		t.Fatalf("%s/%s: %v", target, name, err)
	}
	return []byte(s)
}

package tsl_test

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/bankedge/bankedge/modules/trust/tsl"
)

// FuzzParse feeds arbitrary bytes to the trusted-list parser: it must
// return a list or an error, never panic or hang. Seeds: testdata/fuzz.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := tsl.Parse(data)
		if err != nil {
			return
		}
		for _, p := range l.Providers {
			for _, s := range p.Services {
				s.Qualifies(tsl.UsageWeb)
				s.Qualifies(tsl.UsageESeal)
			}
		}
		l.XMLPointers()
	})
}

// FuzzVerifyEnveloped feeds mutated signed lists to the signature check,
// against the certificate that signed the seed (testdata/fuzz-signer.pem).
func FuzzVerifyEnveloped(f *testing.F) {
	signers := []*x509.Certificate{fuzzSigner(f)}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := tsl.VerifyEnveloped(data, signers)
		if err != nil {
			return
		}
		if _, err := tsl.Parse(v.Signed); err != nil {
			return
		}
	})
}

// The signed seeds must verify, or the fuzzer never reaches the reference
// and parsing code behind the signature check.
func TestFuzzSeedsVerify(t *testing.T) {
	cert := fuzzSigner(t)
	for _, name := range []string{"el-go", "cy-xmlsec"} {
		raw, err := os.ReadFile("testdata/fuzz/FuzzVerifyEnveloped/" + name)
		if err != nil {
			t.Fatal(err)
		}
		var doc string
		if _, err := fmt.Sscanf(strings.SplitN(string(raw), "\n", 2)[1], "[]byte(%q)", &doc); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := tsl.VerifyEnveloped([]byte(doc), []*x509.Certificate{cert}); err != nil {
			t.Fatalf("seed %s does not verify: %v", name, err)
		}
	}
}

// fuzzSigner reads the certificate that signed the FuzzVerifyEnveloped seeds.
func fuzzSigner(t testing.TB) *x509.Certificate {
	pemBytes, err := os.ReadFile("testdata/fuzz-signer.pem")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		t.Fatal("testdata/fuzz-signer.pem holds no PEM block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

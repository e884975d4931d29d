package certheader_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/bankedge/bankedge/modules/psd2/certheader"
)

// sf is a certificate as an RFC 8941 byte sequence.
func sf(der []byte) string { return ":" + base64.StdEncoding.EncodeToString(der) + ":" }

func TestClientCert(t *testing.T) {
	der := testCert(t)
	unpadded := ":" + base64.RawStdEncoding.EncodeToString(der[:len(der)-1]) + ":"
	for name, v := range map[string]string{
		"plain":                sf(der),
		"surrounding spaces":   "  " + sf(der) + " \t",
		"parameters ignored":   sf(der) + `;a=1;b="x\"y";c;*d=?0;e=tok/en:1;f=:AAAA:;g=-1.5`,
		"space after the semi": sf(der) + "; a=1",
	} {
		got, err := certheader.AppendClientCert(nil, v)
		if err != nil || !bytes.Equal(got, der) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Missing padding is accepted (RFC 8941 4.2.7).
	if got, err := certheader.AppendClientCert(nil, unpadded); err != nil || !bytes.Equal(got, der[:len(der)-1]) {
		t.Errorf("unpadded: %v", err)
	}
	b64 := base64.StdEncoding.EncodeToString(der)
	for name, v := range map[string]string{
		"empty":               "",
		"bare base64":         b64,
		"PEM":                 pemText(der),
		"two items":           sf(der) + ", " + sf(der),
		"unclosed":            ":" + b64,
		"not base64":          ":" + strings.Replace(b64, "A", "-", 1) + ":",
		"not DER":             ":" + base64.StdEncoding.EncodeToString([]byte("hello")) + ":",
		"empty sequence":      "::",
		"trailing garbage":    sf(der) + " x",
		"bad parameter key":   sf(der) + ";A=1",
		"bad parameter value": sf(der) + ";a=@",
		"unterminated string": sf(der) + `;a="x`,
		"long number":         sf(der) + ";a=1234567890123456",
		"bad boolean":         sf(der) + ";a=?2",
		"too large":           ":" + strings.Repeat("A", certheader.MaxLen) + ":",
	} {
		if _, err := certheader.AppendClientCert(nil, v); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestClientCertChain(t *testing.T) {
	der := testCert(t)
	other := append([]byte{0x30, 0x03}, 1, 2, 3)
	chain, err := certheader.ClientCertChain(sf(der) + ",\t" + sf(other) + ";x=1 , " + sf(der))
	if err != nil || len(chain) != 3 || !bytes.Equal(chain[0], der) || !bytes.Equal(chain[1], other) || !bytes.Equal(chain[2], der) {
		t.Fatalf("chain: %d certificates, %v", len(chain), err)
	}
	if chain, err := certheader.ClientCertChain(""); err != nil || len(chain) != 0 {
		t.Fatalf("empty chain: %v %v", chain, err)
	}
	for name, v := range map[string]string{
		"trailing comma":  sf(der) + ",",
		"no comma":        sf(der) + " " + sf(der),
		"inner list":      "(" + sf(der) + ")",
		"token member":    "abc",
		"too many":        strings.Repeat(sf(other)+",", certheader.MaxChain) + sf(other),
		"leading comma":   ", " + sf(der),
		"not DER in list": sf(der) + ", :aGVsbG8=:",
	} {
		if _, err := certheader.ClientCertChain(v); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzClientCert(f *testing.F) {
	der := testCert(f)
	f.Add(sf(der))
	f.Add(sf(der) + `;a=1;b="x";c;d=?1`)
	f.Add(sf(der) + ", " + sf(der))
	f.Add(":MAA=:")
	f.Add(":MAA:;a=:MAA=:")
	f.Add(`:MAA=:;k="\"`)
	f.Add("(:MAA=:)")
	f.Fuzz(func(t *testing.T, v string) {
		packageError := func(err error) bool {
			return errors.Is(err, certheader.ErrEmpty) || errors.Is(err, certheader.ErrTooLarge) || errors.Is(err, certheader.ErrEncoding)
		}
		got, err := certheader.AppendClientCert([]byte{9}, v)
		switch {
		case err != nil && !packageError(err):
			t.Fatalf("error %v is none of the package's errors", err)
		case err != nil && !bytes.Equal(got, []byte{9}):
			t.Fatalf("a refused value changed dst: %x", got)
		case err == nil:
			cert := got[1:]
			if len(cert) < 2 || cert[0] != 0x30 || len(cert) > len(v) {
				t.Fatalf("AppendClientCert(%q) = %x", v, cert)
			}
			// The canonical form of the result reads back the same.
			again, err := certheader.AppendClientCert(nil, sf(cert))
			if err != nil || !bytes.Equal(again, cert) {
				t.Fatalf("canonical form: %v", err)
			}
		}
		chain, err := certheader.ClientCertChain(v)
		if err != nil {
			if !packageError(err) {
				t.Fatalf("chain error %v is none of the package's errors", err)
			}
			return
		}
		if len(chain) > certheader.MaxChain {
			t.Fatalf("%d certificates in a chain", len(chain))
		}
		parts := make([]string, len(chain))
		for i, c := range chain {
			if len(c) < 2 || c[0] != 0x30 {
				t.Fatalf("chain member %x is not a DER SEQUENCE", c)
			}
			parts[i] = sf(c)
		}
		again, err := certheader.ClientCertChain(strings.Join(parts, ", "))
		if err != nil || len(again) != len(chain) {
			t.Fatalf("canonical chain: %d, %v", len(again), err)
		}
	})
}

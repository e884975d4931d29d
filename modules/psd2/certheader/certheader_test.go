package certheader_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bankedge/bankedge/modules/psd2/certheader"
)

var (
	certOnce sync.Once
	certDER  []byte
	certErr  error
)

// testCert returns the DER of a self-signed certificate of about 1.7 KB, the
// size of a real QWAC: extra SANs pad it.
func testCert(t testing.TB) []byte {
	t.Helper()
	certOnce.Do(func() {
		var key *ecdsa.PrivateKey
		key, certErr = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if certErr != nil {
			return
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(0xB1C2D3E4),
			Subject:      pkix.Name{Country: []string{"GR"}, Organization: []string{"Example TPP S.A."}, CommonName: "tpp.example"},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
		}
		for i := 0; i < 60; i++ {
			tmpl.DNSNames = append(tmpl.DNSNames, fmt.Sprintf("host-%02d.tpp.example", i))
		}
		certDER, certErr = x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	})
	if certErr != nil {
		t.Fatal(certErr)
	}
	return certDER
}

func pemText(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestDecodeForms(t *testing.T) {
	der := testCert(t)
	if len(der) < 1500 || len(der) > 2000 {
		t.Fatalf("test certificate is %d bytes, want about 1.7 KB", len(der))
	}
	b64 := base64.StdEncoding.EncodeToString(der)
	p := pemText(der)
	pemLines := strings.Split(strings.TrimSpace(p), "\n")
	body := pemLines[1 : len(pemLines)-1]

	forms := map[string]string{
		"base64 DER":                   b64,
		"base64 DER, surrounding OWS":  " \t" + b64 + " ",
		"base64 DER without padding":   strings.TrimRight(b64, "="),
		"base64url DER":                base64.URLEncoding.EncodeToString(der),
		"base64url DER without pad":    base64.RawURLEncoding.EncodeToString(der),
		"PEM as is":                    p,
		"PEM folded with spaces":       strings.ReplaceAll(strings.TrimSpace(p), "\n", " "),
		"PEM folded with tabs":         strings.ReplaceAll(strings.TrimSpace(p), "\n", "\t"),
		"PEM with CRLF":                strings.ReplaceAll(p, "\n", "\r\n"),
		"PEM nginx continuation":       strings.ReplaceAll(strings.TrimSpace(p), "\n", "\n\t"),
		"PEM without newlines":         strings.ReplaceAll(p, "\n", ""),
		"PEM, text before and after":   "subject=CN=tpp.example\n" + p + "trailer",
		"PEM body, spaces":             strings.Join(body, " "),
		"PEM body, tabs":               strings.Join(body, "\t"),
		"PEM body, no separators":      strings.Join(body, ""),
		"URL-encoded PEM (PathEscape)": url.PathEscape(p),
		// url.QueryEscape writes spaces as '+' and '+' as %2B.
		"URL-encoded PEM (QueryEscape)": url.QueryEscape(p),
		// nginx $ssl_client_escaped_cert: every reserved byte escaped.
		"URL-encoded PEM (nginx)":      nginxEscape(p),
		"URL-encoded base64 (%2B %2F)": url.QueryEscape(b64),
		"URL-encoded body, no armour":  url.PathEscape(strings.Join(body, "\n")),
		"RFC 9440":                     ":" + b64 + ":",
		"RFC 9440 with OWS":            "  :" + b64 + ":  ",
	}
	for name, v := range forms {
		t.Run(name, func(t *testing.T) {
			got, err := certheader.Decode(v)
			if err != nil {
				t.Fatalf("Decode = %v", err)
			}
			if !bytes.Equal(got, der) {
				t.Fatalf("Decode gave %d bytes, not the certificate", len(got))
			}
			// AppendDecode appends after what dst holds.
			dst := append(make([]byte, 0, 8), "head"...)
			out, err := certheader.AppendDecode(dst, v)
			if err != nil || string(out[:4]) != "head" || !bytes.Equal(out[4:], der) {
				t.Fatalf("AppendDecode = %d bytes, %v", len(out), err)
			}
		})
	}
}

// nginxEscape escapes like nginx's $ssl_client_escaped_cert: everything but
// unreserved characters as %XX.
func nginxEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func TestDecodeErrors(t *testing.T) {
	der := testCert(t)
	b64 := base64.StdEncoding.EncodeToString(der)
	p := pemText(der)
	for _, tc := range []struct {
		name, in string
		want     error
	}{
		{"empty", "", certheader.ErrEmpty},
		{"blank", " \t\r\n ", certheader.ErrEmpty},
		{"RFC 9440 empty", "::", certheader.ErrEmpty},
		{"PEM armour without body", "-----BEGIN CERTIFICATE----- -----END CERTIFICATE-----", certheader.ErrEmpty},
		{"URL-encoded blank", "%20%0A", certheader.ErrEmpty},
		{"oversize", strings.Repeat("A", certheader.MaxLen+1), certheader.ErrTooLarge},
		{"oversize spaces", strings.Repeat(" ", certheader.MaxLen+1), certheader.ErrTooLarge},
		// The seed's illustrative value, as printed, with an ellipsis.
		{"seed placeholder X-Client-Certificate", "MIIGEzCPu….MeTnWxq==", certheader.ErrEncoding},
		{"seed placeholder TPP-Signature-Certificate", "MIITCzCEu….MfLnQxq==", certheader.ErrEncoding},
		{"seed placeholder with ASCII dots", "MIIGEzCPu....MeTnWxq==", certheader.ErrEncoding},
		{"garbage", "not a certificate!", certheader.ErrEncoding},
		{"base64 of text", base64.StdEncoding.EncodeToString([]byte("hello, world")), certheader.ErrEncoding},
		{"base64 of a non-SEQUENCE", base64.StdEncoding.EncodeToString([]byte{0x04, 0x02, 0x01, 0x02}), certheader.ErrEncoding},
		{"base64 of one byte 0x30", base64.StdEncoding.EncodeToString([]byte{0x30}), certheader.ErrEncoding},
		{"bad padding", b64 + "=", certheader.ErrEncoding},
		{"mixed alphabets", strings.Replace(b64, "A", "-", 1) + "+", certheader.ErrEncoding},
		{"PEM without END line", strings.Split(p, "-----END")[0], certheader.ErrEncoding},
		{"PEM with a corrupt body", strings.Replace(p, "MII", "M!I", 1), certheader.ErrEncoding},
		{"bad URL encoding", "%zz" + b64, certheader.ErrEncoding},
		{"RFC 9440 with an inner colon", ":" + b64[:100] + ":" + b64[100:] + ":", certheader.ErrEncoding},
		{"truncated base64", b64[:len(b64)-3], certheader.ErrEncoding},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := certheader.Decode(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode(%.50q) = %d bytes, %v; want %v", tc.in, len(got), err, tc.want)
			}
			// On error, AppendDecode gives dst back unchanged.
			dst := []byte("head")
			out, _ := certheader.AppendDecode(dst, tc.in)
			if string(out) != "head" {
				t.Errorf("AppendDecode returned %q on error", out)
			}
		})
	}
	// A header of exactly MaxLen bytes is not refused for its size.
	padded := b64 + strings.Repeat(" ", certheader.MaxLen-len(b64))
	if got, err := certheader.Decode(padded); err != nil || !bytes.Equal(got, der) {
		t.Errorf("a header of exactly MaxLen bytes: %v", err)
	}
}

// TestDecodeIsOnlyASyntaxCheck documents the contract: Decode checks that the
// bytes start like a DER SEQUENCE, and x509.ParseCertificate does the rest.
// The seed's placeholder without its ellipsis decodes to such bytes.
func TestDecodeIsOnlyASyntaxCheck(t *testing.T) {
	got, err := certheader.Decode("MIIGEzCPuMeTnWxq")
	if err != nil {
		t.Skipf("Decode now refuses it earlier: %v", err)
	}
	if got[0] != 0x30 {
		t.Fatalf("decoded %x", got)
	}
	if _, err := x509.ParseCertificate(got); err == nil {
		t.Fatal("the seed's placeholder parsed as a certificate")
	}
}

func FuzzDecode(f *testing.F) {
	der := testCert(f)
	b64 := base64.StdEncoding.EncodeToString(der)
	f.Add(b64)
	f.Add(strings.ReplaceAll(pemText(der), "\n", " "))
	f.Add(url.QueryEscape(pemText(der)))
	f.Add(":" + b64 + ":")
	f.Add("MIIGEzCPu….MeTnWxq==")
	f.Add("MAA")
	f.Add("%2B+-----BEGIN CERTIFICATE-----")
	f.Fuzz(func(t *testing.T, v string) {
		got, err := certheader.Decode(v)
		if err != nil {
			if !errors.Is(err, certheader.ErrEmpty) && !errors.Is(err, certheader.ErrTooLarge) && !errors.Is(err, certheader.ErrEncoding) {
				t.Fatalf("error %v is none of the package's errors", err)
			}
			return
		}
		if len(got) < 2 || got[0] != 0x30 {
			t.Fatalf("Decode(%q) = %x: not a DER SEQUENCE", v, got)
		}
		if len(got) > len(v) {
			t.Fatalf("Decode gave %d bytes from %d", len(got), len(v))
		}
		// AppendDecode agrees with Decode and keeps dst.
		out, err := certheader.AppendDecode([]byte{1, 2, 3}, v)
		if err != nil || !bytes.Equal(out[:3], []byte{1, 2, 3}) || !bytes.Equal(out[3:], got) {
			t.Fatalf("AppendDecode disagrees with Decode: %x, %v", out, err)
		}
		// Once decoded, the canonical base64 form decodes to the same bytes.
		again, err := certheader.Decode(base64.StdEncoding.EncodeToString(got))
		if err != nil || !bytes.Equal(again, got) {
			t.Fatalf("re-decoding the base64 of the result: %v", err)
		}
	})
}

func BenchmarkDecodeHeader(b *testing.B) {
	der := testCert(b)
	buf := make([]byte, 0, 4096)
	for _, bc := range []struct{ name, v string }{
		{"base64", base64.StdEncoding.EncodeToString(der)},
		{"pem-folded", strings.ReplaceAll(strings.TrimSpace(pemText(der)), "\n", " ")},
		{"url-encoded-pem", nginxEscape(pemText(der))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.v)))
			for b.Loop() {
				out, err := certheader.AppendDecode(buf[:0], bc.v)
				if err != nil {
					b.Fatal(err)
				}
				buf = out
			}
		})
	}
}

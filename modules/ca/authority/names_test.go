package authority

import (
	"context"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The name policy (issue 7, point 12): each of these was signed as SERVER
// from a CSR before it existed.
func TestNamePolicyRefusals(t *testing.T) {
	t.Parallel()
	a, _ := newCA(t, nil)
	key := mustECDSA(t, elliptic.P256())
	many := make([]string, 20000)
	for i := range many {
		many[i] = fmt.Sprintf("h%d.example.com", i)
	}
	for name, c := range map[string]struct {
		csr  x509.CertificateRequest
		want string
	}{
		"bare wildcard":        {x509.CertificateRequest{DNSNames: []string{"*"}}, "wildcard"},
		"wildcard TLD":         {x509.CertificateRequest{DNSNames: []string{"*.com"}}, "registrable"},
		"wildcard suffix":      {x509.CertificateRequest{DNSNames: []string{"*.co.uk"}}, "public suffix"},
		"wildcard private sfx": {x509.CertificateRequest{DNSNames: []string{"*.github.io"}}, "public suffix"},
		"two wildcards":        {x509.CertificateRequest{DNSNames: []string{"*.*.example.com"}}, "left-most"},
		"inner wildcard":       {x509.CertificateRequest{DNSNames: []string{"www.*.example.com"}}, "left-most"},
		"partial wildcard":     {x509.CertificateRequest{DNSNames: []string{"w*.example.com"}}, "left-most"},
		"TLD":                  {x509.CertificateRequest{DNSNames: []string{"com"}}, "public suffix"},
		"suffix":               {x509.CertificateRequest{DNSNames: []string{"co.uk"}}, "public suffix"},
		"long label":           {x509.CertificateRequest{DNSNames: []string{strings.Repeat("a", 300) + ".example.com"}}, "characters"},
		"long label 64":        {x509.CertificateRequest{DNSNames: []string{strings.Repeat("a", 64) + ".example.com"}}, "label"},
		"underscore":           {x509.CertificateRequest{DNSNames: []string{"a_b.example.com"}}, "letter, digit or hyphen"},
		"trailing dot":         {x509.CertificateRequest{DNSNames: []string{"example.com."}}, "empty label"},
		"20000 SANs":           {x509.CertificateRequest{DNSNames: many}, "at most 100"},
		"IPv4 unspecified":     {x509.CertificateRequest{IPAddresses: []net.IP{net.IPv4zero}}, "unspecified"},
		"IPv6 unspecified":     {x509.CertificateRequest{IPAddresses: []net.IP{net.IPv6unspecified}}, "unspecified"},
		"broadcast":            {x509.CertificateRequest{IPAddresses: []net.IP{net.IPv4bcast}}, "broadcast"},
		"multicast":            {x509.CertificateRequest{IPAddresses: []net.IP{net.ParseIP("224.0.0.1")}}, "multicast"},
		"link-local":           {x509.CertificateRequest{IPAddresses: []net.IP{net.ParseIP("fe80::1")}}, "link-local"},
		"this network":         {x509.CertificateRequest{IPAddresses: []net.IP{net.ParseIP("0.1.2.3")}}, "reserved"},
		"CRLF in CN":           {x509.CertificateRequest{Subject: pkix.Name{CommonName: "evil\r\nX-Injected: 1"}, DNSNames: []string{"ok.example.com"}}, "control"},
		"long CN":              {x509.CertificateRequest{Subject: pkix.Name{CommonName: strings.Repeat("x", 5000)}, DNSNames: []string{"ok.example.com"}}, "at most 64"},
		"bidi override":        {x509.CertificateRequest{Subject: pkix.Name{CommonName: "abc\u202egpj.exe"}, DNSNames: []string{"ok.example.com"}}, "control"},
		"long O":               {x509.CertificateRequest{Subject: pkix.Name{CommonName: "x", Organization: []string{strings.Repeat("o", 65)}}, DNSNames: []string{"ok.example.com"}}, "organization"},
		"bad country":          {x509.CertificateRequest{Subject: pkix.Name{CommonName: "x", Country: []string{"France"}}, DNSNames: []string{"ok.example.com"}}, "country"},
		"e-mail":               {x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}, EmailAddresses: []string{"a b@example.com"}}, "e-mail"},
		"URI":                  {x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}, URIs: []*url.URL{{Path: "relative"}}}, "URI"},
	} {
		t.Run(name, func(t *testing.T) {
			csr := newCSR(t, key, &c.csr)
			_, err := a.SignCSR(context.Background(), csr, PurposeServer, time.Hour, "", "tester")
			if !errors.Is(err, ErrPolicy) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("SignCSR: %v; want a policy refusal mentioning %q", err, c.want)
			}
			if len(err.Error()) > 300 {
				t.Errorf("refusal of %d bytes quotes too much: %.100s…", len(err.Error()), err)
			}
		})
	}
}

func TestNamePolicyAccepts(t *testing.T) {
	t.Parallel()
	a, _ := newCA(t, nil)
	key := mustECDSA(t, elliptic.P256())
	csr := newCSR(t, key, &x509.CertificateRequest{
		Subject:     pkix.Name{CommonName: "Büro Zürich – gateway", Organization: []string{"Bank XYZ S.A."}, Country: []string{"FR"}},
		DNSNames:    []string{"*.pesit.example.com", "localhost", "gw-1", "xn--bcher-kva.example", "bank.github.io", strings.Repeat("a", 63) + ".example.com"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1"), net.ParseIP("10.1.2.3"), net.ParseIP("2001:db8::1")},
	})
	if _, err := a.SignCSR(context.Background(), csr, PurposeServer, time.Hour, "", "tester"); err != nil {
		t.Fatal(err)
	}
}

// FuzzCheckDNSName: whatever the input, no panic, and an accepted name is
// ASCII, bounded and has a wildcard at most as its whole first label.
func FuzzCheckDNSName(f *testing.F) {
	for _, s := range []string{"example.com", "*.example.com", "*", "*.com", "localhost", "a..b", "xn--bcher-kva.example", "co.uk", "-a.example", "a.b.c.d.e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if CheckDNSName(s) != nil {
			return
		}
		if len(s) > maxDNSName || strings.ContainsAny(s, " \r\n\x00_") || strings.Contains(strings.TrimPrefix(s, "*."), "*") {
			t.Fatalf("accepted %q", s)
		}
	})
}

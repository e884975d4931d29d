package tsl_test

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"strings"
	"testing"

	"github.com/bankedge/bankedge/internal/testtsl"
	"github.com/bankedge/bankedge/modules/trust/tsl"
)

func TestVerifyEnvelopedMethods(t *testing.T) {
	ca := testtsl.NewScenario(t)
	doc := ca.EL(1).XML()
	for _, m := range []string{testtsl.RSASHA256, testtsl.RSASHA512, testtsl.RSAPSS256, testtsl.RSAPSS384,
		testtsl.ECDSASHA256, testtsl.ECDSASHA384, testtsl.ECDSASHA512} {
		t.Run(m[strings.LastIndex(m, "#")+1:], func(t *testing.T) {
			s := testtsl.NewSigner(t, "signer", m, 0)
			signed := s.Sign(t, doc)
			v, err := tsl.VerifyEnveloped(signed, []*x509.Certificate{s.Cert})
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if v.SignatureMethod != m || !v.Signer.Equal(s.Cert) {
				t.Fatalf("method %s signer %s", v.SignatureMethod, v.Signer.Subject)
			}
			l, err := tsl.Parse(v.Signed)
			if err != nil {
				t.Fatal(err)
			}
			if l.Territory != "EL" || len(l.Providers) != 2 {
				t.Fatalf("parsed %+v", l)
			}
			// Another key of the same kind must not verify it.
			other := testtsl.NewSigner(t, "other", m, 3)
			if _, err := tsl.VerifyEnveloped(signed, []*x509.Certificate{other.Cert}); err == nil {
				t.Fatal("verified with a key that did not sign")
			}
		})
	}
}

func TestVerifyEnvelopedXmlsec(t *testing.T) {
	ca := testtsl.NewScenario(t)
	doc := ca.CY(1).XML()
	for _, m := range []string{testtsl.RSASHA256, testtsl.ECDSASHA256, testtsl.ECDSASHA384} {
		t.Run(m[strings.LastIndex(m, "#")+1:], func(t *testing.T) {
			s := testtsl.NewSigner(t, "xmlsec signer", m, 2)
			signed := s.SignXmlsec(t, doc)
			v, err := tsl.VerifyEnveloped(signed, []*x509.Certificate{s.Cert})
			if err != nil {
				t.Fatalf("a list signed by xmlsec1 was refused: %v\n%s", err, signed)
			}
			if _, err := tsl.Parse(v.Signed); err != nil {
				t.Fatal(err)
			}
			tampered := bytes.Replace(signed, []byte("ForeSeals"), []byte("ForWebSiteAuthentication"), 1)
			if _, err := tsl.VerifyEnveloped(tampered, []*x509.Certificate{s.Cert}); err == nil {
				t.Fatal("tampered xmlsec1 list accepted")
			}
		})
	}
	t.Run("inclusive c14n", func(t *testing.T) {
		s := testtsl.NewSigner(t, "xmlsec signer", testtsl.RSASHA256, 2)
		s.C14N = testtsl.InclusiveC14N
		signed := s.SignXmlsec(t, doc)
		if !bytes.Contains(signed, []byte(testtsl.InclusiveC14N)) {
			t.Fatal("not signed with inclusive C14N")
		}
		if _, err := tsl.VerifyEnveloped(signed, []*x509.Certificate{s.Cert}); err != nil {
			t.Fatalf("a list signed by xmlsec1 with inclusive C14N was refused: %v", err)
		}
	})
}

func TestVerifyEnvelopedRefusals(t *testing.T) {
	ca := testtsl.NewScenario(t)
	s := ca.ELSigner
	signed := s.Sign(t, ca.EL(1).XML())
	signers := []*x509.Certificate{s.Cert}
	if _, err := tsl.VerifyEnveloped(signed, signers); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		doc  []byte
		want string
	}{
		"status changed":            {bytes.Replace(signed, []byte("Svcstatus/withdrawn"), []byte("Svcstatus/granted"), 1), "digest does not match"},
		"signed properties changed": {bytes.Replace(signed, []byte("<xades:SigningTime>2"), []byte("<xades:SigningTime>1"), 1), "reference 2"},
		"signature value changed":   {flipSignatureValue(t, signed), "does not verify"},
		"signature method changed":  {bytes.Replace(signed, []byte(testtsl.RSAPSS256), []byte(testtsl.RSASHA256), 1), "does not verify"},
		"unsigned":                  {ca.EL(1).XML(), "not signed"},
		"doctype":                   {append([]byte(`<!DOCTYPE x [<!ENTITY a "b">]>`), signed[bytes.IndexByte(signed, '\n')+1:]...), "type declarations"},
		"two signatures": {bytes.Replace(signed, []byte("</tsl:TrustServiceStatusList>"),
			append(signed[bytes.Index(signed, []byte("<ds:Signature")):bytes.Index(signed, []byte("</ds:Signature>"))+len("</ds:Signature>")], []byte("</tsl:TrustServiceStatusList>")...), 1), "2 signatures"},
		"duplicate signed properties id": {bytes.Replace(signed, []byte("</ds:Signature>"),
			[]byte(`<ds:Object><x Id="xades-sig-1"/></ds:Object></ds:Signature>`), 1), "2 elements have Id"},
		"sha1 digest": {bytes.Replace(signed, []byte("http://www.w3.org/2001/04/xmlenc#sha256"), []byte("http://www.w3.org/2000/09/xmldsig#sha1"), 1), ""},
		"not xml":     {[]byte("%PDF-1.7"), "no root element"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := tsl.VerifyEnveloped(c.doc, signers)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not say %q", err, c.want)
			}
		})
	}
	if _, err := tsl.VerifyEnveloped(signed, nil); err == nil {
		t.Fatal("verified without signers")
	}
}

// A signature moved into an element other than the root's direct child is
// not the enveloped signature of the list.
func TestVerifyEnvelopedSignatureNotUnderRoot(t *testing.T) {
	ca := testtsl.NewScenario(t)
	signed := ca.ELSigner.Sign(t, ca.EL(1).XML())
	start := bytes.Index(signed, []byte("<ds:Signature"))
	end := bytes.Index(signed, []byte("</ds:Signature>")) + len("</ds:Signature>")
	sig := append([]byte{}, signed[start:end]...)
	moved := append(append([]byte{}, signed[:start]...), signed[end:]...)
	moved = bytes.Replace(moved, []byte("</tsl:SchemeInformation>"), append(sig, []byte("</tsl:SchemeInformation>")...), 1)
	if _, err := tsl.VerifyEnveloped(moved, []*x509.Certificate{ca.ELSigner.Cert}); err == nil || !strings.Contains(err.Error(), "not signed") {
		t.Fatalf("err = %v", err)
	}
}

func flipSignatureValue(t *testing.T, doc []byte) []byte {
	i := bytes.Index(doc, []byte("<ds:SignatureValue>"))
	if i < 0 {
		t.Fatal("no SignatureValue")
	}
	out := append([]byte{}, doc...)
	j := i + len("<ds:SignatureValue>") + 10
	if out[j] == 'A' {
		out[j] = 'B'
	} else {
		out[j] = 'A'
	}
	return out
}

// largeList is a national list of 400 services, about the size of a large
// member state's list: thousands of elements.
func largeList(t testing.TB, sc *testtsl.Scenario) *testtsl.List {
	l := sc.EL(1)
	svc := l.Providers[0].Services[0]
	for i := 0; i < 400; i++ {
		l.Providers = append(l.Providers, testtsl.Provider{Name: fmt.Sprintf("QTSP %d", i), Services: []testtsl.Service{svc}})
	}
	return l
}

// goxmldsig's namespace helpers stop at 1000 elements; a real national
// list has many more.
func TestVerifyEnvelopedLargeList(t *testing.T) {
	sc := testtsl.NewScenario(t)
	doc := largeList(t, sc).XML()
	if _, _, err := tsl.ParseSigned(sc.ELSigner.Sign(t, doc), []*x509.Certificate{sc.ELSigner.Cert}); err != nil {
		t.Fatalf("a large list signed in Go: %v", err)
	}
	s := testtsl.NewSigner(t, "xmlsec signer", testtsl.RSASHA256, 2)
	l, _, err := tsl.ParseSigned(s.SignXmlsec(t, doc), []*x509.Certificate{s.Cert})
	if err != nil {
		t.Fatalf("a large list signed by xmlsec1: %v", err)
	}
	if len(l.Providers) != 402 {
		t.Fatalf("%d providers", len(l.Providers))
	}
}

// BenchmarkParseSigned verifies and parses a large national list.
func BenchmarkParseSigned(b *testing.B) {
	sc := testtsl.NewScenario(b)
	signed := sc.ELSigner.Sign(b, largeList(b, sc).XML())
	signers := []*x509.Certificate{sc.ELSigner.Cert}
	b.SetBytes(int64(len(signed)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := tsl.ParseSigned(signed, signers); err != nil {
			b.Fatal(err)
		}
	}
}

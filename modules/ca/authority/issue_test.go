package authority

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"net"
	"slices"
	"testing"
	"time"
)

func TestParsePurpose(t *testing.T) {
	for in, want := range map[string]Purpose{"client": PurposeClient, " SERVER ": PurposeServer, "Qwac": PurposeQWAC, "qseal": PurposeQSEAL} {
		if got, err := ParsePurpose(in); err != nil || got != want {
			t.Errorf("ParsePurpose(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "CA", "clientAuth"} {
		if _, err := ParsePurpose(in); err == nil {
			t.Errorf("ParsePurpose(%q) accepted", in)
		}
	}
}

func mustECDSA(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSignCSRClient(t *testing.T) {
	t.Parallel()
	a, _ := newCA(t, nil)
	rsaKey, _ := testRSAKeys(t)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name string
		key  crypto.Signer
		ku   x509.KeyUsage
	}{
		{"ecdsa", mustECDSA(t, elliptic.P256()), x509.KeyUsageDigitalSignature},
		{"rsa", rsaKey, x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment},
		{"ed25519", edKey, x509.KeyUsageDigitalSignature},
	} {
		csr := newCSR(t, tc.key, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "bank-xyz.example.com", Organization: []string{"Bank XYZ"}, Country: []string{"FR"}}})
		cert, err := a.SignCSR(context.Background(), csr, PurposeClient, 365*24*time.Hour, "BANK_XYZ", "admin")
		if err != nil {
			t.Fatalf("%s: SignCSR: %v", tc.name, err)
		}
		if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || len(cert.UnknownExtKeyUsage) != 0 {
			t.Errorf("%s: EKU = %v %v, want clientAuth only", tc.name, cert.ExtKeyUsage, cert.UnknownExtKeyUsage)
		}
		if cert.KeyUsage != tc.ku {
			t.Errorf("%s: KeyUsage = %b, want %b", tc.name, cert.KeyUsage, tc.ku)
		}
		if cert.IsCA || !cert.BasicConstraintsValid {
			t.Errorf("%s: leaf has IsCA=%v BasicConstraintsValid=%v", tc.name, cert.IsCA, cert.BasicConstraintsValid)
		}
		if cert.Subject.CommonName != "bank-xyz.example.com" || !slices.Equal(cert.Subject.Organization, []string{"Bank XYZ"}) || !slices.Equal(cert.Subject.Country, []string{"FR"}) {
			t.Errorf("%s: subject = %s", tc.name, cert.Subject)
		}
		if len(cert.DNSNames)+len(cert.IPAddresses) != 0 {
			t.Errorf("%s: a CLIENT certificate got SANs from its CN: %v %v", tc.name, cert.DNSNames, cert.IPAddresses)
		}
		if err := cert.CheckSignatureFrom(a.Certificate()); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		roots := x509.NewCertPool()
		roots.AddCert(a.Certificate())
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s: chain verification for clientAuth: %v", tc.name, err)
		}
	}
}

func TestSignCSRServer(t *testing.T) {
	t.Parallel()
	a, _ := newCA(t, nil)
	key := mustECDSA(t, elliptic.P256())
	ctx := context.Background()
	roots := x509.NewCertPool()
	roots.AddCert(a.Certificate())

	// CN only: the CN becomes the DNS SAN; the caller's CSR is not changed.
	csr := newCSR(t, key, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "pesit.example.com"}})
	cert, err := a.SignCSR(ctx, csr, PurposeServer, 90*24*time.Hour, "SERVER_PROD", "admin")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cert.DNSNames, []string{"pesit.example.com"}) || len(cert.IPAddresses) != 0 {
		t.Errorf("DNSNames = %v, IPAddresses = %v; want the CN as DNS SAN", cert.DNSNames, cert.IPAddresses)
	}
	if len(csr.DNSNames) != 0 {
		t.Error("SignCSR modified the caller's CSR")
	}
	if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) || cert.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("EKU = %v, KU = %b; want serverAuth, digitalSignature", cert.ExtKeyUsage, cert.KeyUsage)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "pesit.example.com"}); err != nil {
		t.Errorf("server certificate does not verify for its name: %v", err)
	}

	// CN is an IP address: IP SAN.
	csr = newCSR(t, key, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "10.1.2.3"}})
	cert, err = a.SignCSR(ctx, csr, PurposeServer, 90*24*time.Hour, "", "admin")
	if err != nil {
		t.Fatal(err)
	}
	if len(cert.IPAddresses) != 1 || !cert.IPAddresses[0].Equal(net.ParseIP("10.1.2.3")) || len(cert.DNSNames) != 0 {
		t.Errorf("IPAddresses = %v, DNSNames = %v; want [10.1.2.3]", cert.IPAddresses, cert.DNSNames)
	}

	// SANs in the CSR are kept as they are.
	csr = newCSR(t, key, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "gw"}, DNSNames: []string{"a.example.com", "b.example.com"}})
	cert, err = a.SignCSR(ctx, csr, PurposeServer, 90*24*time.Hour, "", "admin")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cert.DNSNames, []string{"a.example.com", "b.example.com"}) {
		t.Errorf("DNSNames = %v", cert.DNSNames)
	}

	// RSA server keys also get keyEncipherment.
	rsaKey, _ := testRSAKeys(t)
	cert, err = a.SignCSR(ctx, newCSR(t, rsaKey, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "rsa.example.com"}}), PurposeServer, 24*time.Hour, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if cert.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment {
		t.Errorf("RSA server KeyUsage = %b", cert.KeyUsage)
	}

	// No name at all: refused.
	csr = newCSR(t, key, &x509.CertificateRequest{Subject: pkix.Name{Organization: []string{"no name"}}})
	if _, err := a.SignCSR(ctx, csr, PurposeServer, 24*time.Hour, "", ""); !errors.Is(err, ErrPolicy) {
		t.Errorf("SERVER CSR without a name: %v, want ErrPolicy", err)
	}
	if _, err := a.Issue(ctx, Request{PublicKey: key.Public(), Template: &x509.Certificate{Subject: pkix.Name{CommonName: "x"}}, Purpose: PurposeServer, Validity: time.Hour}); !errors.Is(err, ErrPolicy) {
		t.Errorf("SERVER Issue without a SAN: %v, want ErrPolicy", err)
	}
}

// Key usages come from the purpose: whatever the CSR asks for is ignored.
func TestSignCSRIgnoresRequestedUsages(t *testing.T) {
	t.Parallel()
	a, _ := newCA(t, nil)
	key := mustECDSA(t, elliptic.P256())
	ekus, err := asn1.Marshal([]asn1.ObjectIdentifier{
		{1, 3, 6, 1, 5, 5, 7, 3, 3}, // codeSigning
		{1, 3, 6, 1, 5, 5, 7, 3, 9}, // OCSPSigning
		{1, 3, 6, 1, 5, 5, 7, 3, 1}, // serverAuth
		{1, 2, 3, 4},                // private
	})
	if err != nil {
		t.Fatal(err)
	}
	ku, err := asn1.Marshal(asn1.BitString{Bytes: []byte{0x06}, BitLength: 7}) // keyCertSign, cRLSign
	if err != nil {
		t.Fatal(err)
	}
	csr := newCSR(t, key, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "greedy"},
		ExtraExtensions: []pkix.Extension{
			{Id: oidExtKeyUsage, Value: ekus},
			{Id: oidKeyUsage, Critical: true, Value: ku},
		},
	})
	if len(csr.Extensions) < 2 {
		t.Fatalf("the CSR carries %d extensions, want 2", len(csr.Extensions))
	}
	cert, err := a.SignCSR(context.Background(), csr, PurposeClient, 24*time.Hour, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || len(cert.UnknownExtKeyUsage) != 0 {
		t.Errorf("EKU = %v %v, want clientAuth only", cert.ExtKeyUsage, cert.UnknownExtKeyUsage)
	}
	if cert.KeyUsage != x509.KeyUsageDigitalSignature || cert.IsCA {
		t.Errorf("KeyUsage = %b IsCA = %v, want digitalSignature, false", cert.KeyUsage, cert.IsCA)
	}
}

func basicConstraintsExt(t testing.TB, isCA bool) pkix.Extension {
	t.Helper()
	v, err := asn1.Marshal(struct {
		IsCA bool `asn1:"optional"`
	}{isCA})
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: oidBasicConstraints, Critical: true, Value: v}
}

func TestSignCSRRefusesCA(t *testing.T) {
	t.Parallel()
	a, _ := newCA(t, nil)
	key := mustECDSA(t, elliptic.P256())
	ctx := context.Background()
	csr := newCSR(t, key, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "sub-ca.example.com"}, ExtraExtensions: []pkix.Extension{basicConstraintsExt(t, true)}})
	if _, err := a.SignCSR(ctx, csr, PurposeClient, 24*time.Hour, "", ""); !errors.Is(err, ErrPolicy) {
		t.Errorf("CSR with CA=true: %v, want ErrPolicy", err)
	}
	csr = newCSR(t, key, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "leaf.example.com"}, ExtraExtensions: []pkix.Extension{basicConstraintsExt(t, false)}})
	if _, err := a.SignCSR(ctx, csr, PurposeClient, 24*time.Hour, "", ""); err != nil {
		t.Errorf("CSR with CA=false: %v", err)
	}
}

func TestSignCSRBadSignature(t *testing.T) {
	t.Parallel()
	a, _ := newCA(t, nil)
	csr := newCSR(t, mustECDSA(t, elliptic.P256()), &x509.CertificateRequest{Subject: pkix.Name{CommonName: "tampered"}})
	csr.Signature = bytes.Clone(csr.Signature)
	csr.Signature[len(csr.Signature)-1] ^= 0x01
	if _, err := a.SignCSR(context.Background(), csr, PurposeClient, 24*time.Hour, "", ""); !errors.Is(err, ErrPolicy) {
		t.Errorf("CSR with a broken signature: %v, want ErrPolicy", err)
	}
	// A CSR whose key was swapped after signing.
	csr = newCSR(t, mustECDSA(t, elliptic.P256()), &x509.CertificateRequest{Subject: pkix.Name{CommonName: "swapped"}})
	csr.PublicKey = mustECDSA(t, elliptic.P256()).Public()
	if _, err := a.SignCSR(context.Background(), csr, PurposeClient, 24*time.Hour, "", ""); !errors.Is(err, ErrPolicy) {
		t.Errorf("CSR with a swapped key: %v, want ErrPolicy", err)
	}
}

func TestKeyPolicy(t *testing.T) {
	t.Parallel()
	a, _ := newCA(t, nil)
	k2048, k1024 := testRSAKeys(t)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name string
		key  crypto.Signer
		ok   bool
		csr  bool // Go can make a CSR with this key
	}{
		{"rsa-1024", k1024, false, true},
		{"rsa-2048", k2048, true, true},
		{"p-224", mustECDSA(t, elliptic.P224()), false, false},
		{"p-256", mustECDSA(t, elliptic.P256()), true, true},
		{"p-384", mustECDSA(t, elliptic.P384()), true, true},
		{"p-521", mustECDSA(t, elliptic.P521()), false, true},
		{"ed25519", ed, true, true},
	} {
		_, err := a.Issue(context.Background(), Request{PublicKey: tc.key.Public(), Template: &x509.Certificate{Subject: pkix.Name{CommonName: tc.name}}, Purpose: PurposeClient, Validity: time.Hour})
		if tc.ok && err != nil {
			t.Errorf("Issue with %s: %v", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, ErrPolicy) {
			t.Errorf("Issue with %s: %v, want ErrPolicy", tc.name, err)
		}
		if !tc.csr {
			continue
		}
		csr := newCSR(t, tc.key, &x509.CertificateRequest{Subject: pkix.Name{CommonName: tc.name}})
		_, err = a.SignCSR(context.Background(), csr, PurposeClient, time.Hour, "", "")
		if tc.ok != (err == nil) || (!tc.ok && !errors.Is(err, ErrPolicy)) {
			t.Errorf("SignCSR with %s: %v (want ok=%v)", tc.name, err, tc.ok)
		}
	}
	// Even RSA exponents are refused too.
	bad := k2048.PublicKey
	bad.E = 65536
	if err := CheckKey(&bad); !errors.Is(err, ErrPolicy) {
		t.Errorf("CheckKey(e=65536): %v", err)
	}
	if err := CheckKey(nil); !errors.Is(err, ErrPolicy) {
		t.Errorf("CheckKey(nil): %v", err)
	}
}

func TestValidity(t *testing.T) {
	t.Parallel()
	clk := newClock()
	a, _ := newCA(t, func(c *Config) {
		c.Now = clk.Now
		c.Lifetime = 400 * 24 * time.Hour
		c.MaxValidity = 500 * 24 * time.Hour
	})
	pub := mustECDSA(t, elliptic.P256()).Public()
	req := func(v time.Duration) (*x509.Certificate, error) {
		return a.Issue(context.Background(), Request{PublicKey: pub, Template: &x509.Certificate{Subject: pkix.Name{CommonName: "v"}}, Purpose: PurposeClient, Validity: v})
	}
	for _, v := range []time.Duration{0, -time.Hour, 500*24*time.Hour + time.Second} {
		if _, err := req(v); !errors.Is(err, ErrPolicy) {
			t.Errorf("validity %v: %v, want ErrPolicy", v, err)
		}
	}
	cert, err := req(30 * 24 * time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.NotAfter.Equal(clk.Now().Add(30*24*time.Hour)) || !cert.NotBefore.Equal(clk.Now().Add(-5*time.Minute)) {
		t.Errorf("validity %v – %v, want now-5m – now+30d", cert.NotBefore, cert.NotAfter)
	}
	// 450 days is allowed but the CA ends after 400: clamped.
	clk.Add(10 * 24 * time.Hour)
	cert, err = req(450 * 24 * time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.NotAfter.Equal(a.Certificate().NotAfter) {
		t.Errorf("NotAfter = %v, want the CA's %v", cert.NotAfter, a.Certificate().NotAfter)
	}
	rec, err := a.Lookup(context.Background(), cert.SerialNumber)
	if err != nil || !rec.NotAfter.Equal(cert.NotAfter) {
		t.Errorf("inventory NotAfter = %v (%v), want %v", rec.NotAfter, err, cert.NotAfter)
	}
}

func TestSerials(t *testing.T) {
	t.Parallel()
	a, _ := newCA(t, nil)
	pub := mustECDSA(t, elliptic.P256()).Public()
	seen := map[string]bool{}
	long := 0
	for i := range 20 {
		cert := issue(t, a, pub, "serial", time.Hour)
		s := cert.SerialNumber
		if s.Sign() <= 0 {
			t.Fatalf("serial %d is not positive: %v", i, s)
		}
		if len(s.Bytes()) > 20 {
			t.Errorf("serial %x is longer than 20 octets", s)
		}
		if seen[s.String()] {
			t.Fatalf("serial %x issued twice", s)
		}
		seen[s.String()] = true
		if s.BitLen() > 64 {
			long++
		}
	}
	// 127 random bits: all but a vanishing fraction exceed 64 bits.
	if long < 18 {
		t.Errorf("only %d of 20 serials have more than 64 bits", long)
	}
}

func TestCRLDistributionPoint(t *testing.T) {
	t.Parallel()
	pub := mustECDSA(t, elliptic.P256()).Public()
	const url = "http://ca.bank.example/crl.der"

	a, _ := newCA(t, nil)
	if c := issue(t, a, pub, "no-dp", time.Hour); len(c.CRLDistributionPoints) != 0 {
		t.Errorf("no CRLURL, yet CRL DP %v", c.CRLDistributionPoints)
	}
	// A template cannot bring its own distribution point either.
	c, err := a.Issue(context.Background(), Request{PublicKey: pub, Template: &x509.Certificate{Subject: pkix.Name{CommonName: "x"}, CRLDistributionPoints: []string{"http://evil.example/crl"}}, Purpose: PurposeClient, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.CRLDistributionPoints) != 0 {
		t.Errorf("template CRL DP kept: %v", c.CRLDistributionPoints)
	}

	b, _ := newCA(t, func(c *Config) { c.CRLURL = url })
	if c := issue(t, b, pub, "dp", time.Hour); !slices.Equal(c.CRLDistributionPoints, []string{url}) {
		t.Errorf("CRL DP = %v, want [%s]", c.CRLDistributionPoints, url)
	}
}

func TestKeyIdentifiers(t *testing.T) {
	t.Parallel()
	a, _ := newCA(t, nil)
	pub := mustECDSA(t, elliptic.P256()).Public()
	c := issue(t, a, pub, "aki", time.Hour)
	if len(c.AuthorityKeyId) == 0 || !bytes.Equal(c.AuthorityKeyId, a.Certificate().SubjectKeyId) {
		t.Errorf("AKI = %x, want the CA SKI %x", c.AuthorityKeyId, a.Certificate().SubjectKeyId)
	}
	if !bytes.Equal(c.SubjectKeyId, subjectKeyID(pub)) || len(c.SubjectKeyId) != 20 {
		t.Errorf("SKI = %x, want %x", c.SubjectKeyId, subjectKeyID(pub))
	}
	if !bytes.Equal(c.RawIssuer, a.Certificate().RawSubject) {
		t.Error("issuer name is not the CA subject")
	}
}

// A template's ExtraExtensions override the fields the CA sets in
// x509.CreateCertificate: they must not make a CA or change key usages.
func TestIssueTemplateCannotOverridePolicy(t *testing.T) {
	t.Parallel()
	a, _ := newCA(t, nil)
	pub := mustECDSA(t, elliptic.P256()).Public()
	ctx := context.Background()
	ekus, _ := asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 3}})
	for _, tc := range []struct {
		name    string
		purpose Purpose
		ext     pkix.Extension
	}{
		{"basicConstraints CA", PurposeClient, basicConstraintsExt(t, true)},
		{"basicConstraints CA (QWAC)", PurposeQWAC, basicConstraintsExt(t, true)},
		{"EKU", PurposeClient, pkix.Extension{Id: oidExtKeyUsage, Value: ekus}},
		{"AKI", PurposeServer, pkix.Extension{Id: oidAuthorityKeyID, Value: []byte{0x30, 0}}},
	} {
		tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: "t"}, DNSNames: []string{"t.example"}, ExtraExtensions: []pkix.Extension{tc.ext}}
		cert, err := a.Issue(ctx, Request{PublicKey: pub, Template: tmpl, Purpose: tc.purpose, Validity: time.Hour})
		if !errors.Is(err, ErrPolicy) {
			t.Errorf("%s: Issue = %v (IsCA=%v), want ErrPolicy", tc.name, err, cert != nil && cert.IsCA)
		}
	}
	// Fields of the template: IsCA and unknown EKUs are overridden.
	tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: "t"}, IsCA: true, MaxPathLen: 3, KeyUsage: x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, UnknownExtKeyUsage: []asn1.ObjectIdentifier{{1, 2, 3}}}
	cert, err := a.Issue(ctx, Request{PublicKey: pub, Template: tmpl, Purpose: PurposeClient, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if cert.IsCA || cert.KeyUsage != x509.KeyUsageDigitalSignature || !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || len(cert.UnknownExtKeyUsage) != 0 {
		t.Errorf("IsCA=%v KU=%b EKU=%v %v", cert.IsCA, cert.KeyUsage, cert.ExtKeyUsage, cert.UnknownExtKeyUsage)
	}
	if !tmpl.IsCA || len(tmpl.UnknownExtKeyUsage) != 1 {
		t.Error("Issue modified the caller's template")
	}
	// Other extensions pass through (the PSD2 qcStatements, for one).
	qc := pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 3}, Value: []byte{0x30, 0}}
	cert, err = a.Issue(ctx, Request{PublicKey: pub, Template: &x509.Certificate{Subject: pkix.Name{CommonName: "q"}, ExtraExtensions: []pkix.Extension{qc}}, Purpose: PurposeQSEAL, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(cert.Extensions, func(e pkix.Extension) bool { return e.Id.Equal(qc.Id) }) {
		t.Error("qcStatements extension dropped")
	}
}

func TestIssueBadRequests(t *testing.T) {
	t.Parallel()
	a, _ := newCA(t, nil)
	pub := mustECDSA(t, elliptic.P256()).Public()
	ctx := context.Background()
	if _, err := a.Issue(ctx, Request{PublicKey: pub, Purpose: PurposeClient, Validity: time.Hour}); !errors.Is(err, ErrPolicy) {
		t.Errorf("nil template: %v, want ErrPolicy", err)
	}
	if _, err := a.Issue(ctx, Request{PublicKey: pub, Template: &x509.Certificate{}, Purpose: "CODESIGN", Validity: time.Hour}); !errors.Is(err, ErrPolicy) {
		t.Errorf("unknown purpose: %v, want ErrPolicy", err)
	}
	recs, err := a.Issued(ctx)
	if err != nil || len(recs) != 0 {
		t.Errorf("refused requests left %d inventory records (%v)", len(recs), err)
	}
}

func TestGenerate(t *testing.T) {
	t.Parallel()
	a, _ := newCA(t, nil)
	for _, kt := range []KeyType{"", RSA2048, Ed25519} {
		key, cert, err := a.Generate(context.Background(), kt, Request{Template: &x509.Certificate{Subject: pkix.Name{CommonName: "gen"}}, Purpose: PurposeClient, Validity: time.Hour, PartnerID: "BANK_XYZ"})
		if err != nil {
			t.Fatalf("Generate(%q): %v", kt, err)
		}
		if !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(cert.PublicKey) {
			t.Errorf("Generate(%q): certificate is not for the returned key", kt)
		}
		if _, err := a.Lookup(context.Background(), cert.SerialNumber); err != nil {
			t.Errorf("Generate(%q): not in the inventory: %v", kt, err)
		}
	}
	if _, _, err := a.Generate(context.Background(), "dsa", Request{Template: &x509.Certificate{}, Purpose: PurposeClient, Validity: time.Hour}); err == nil {
		t.Error("Generate with an unknown key type succeeded")
	}
	if _, err := a.Lookup(context.Background(), big.NewInt(1)); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup(1): %v", err)
	}
}

// A non-ASCII DNS name (a commonName such as café.example) made
// x509.CreateCertificate fail with an error the API answered with 500.
func TestIssueRefusesNonASCIINames(t *testing.T) {
	t.Parallel()
	a, _ := newCA(t, nil)
	key := mustECDSA(t, elliptic.P256())
	for _, tmpl := range []*x509.Certificate{
		{Subject: pkix.Name{CommonName: "café.example"}, DNSNames: []string{"café.example"}},
		{Subject: pkix.Name{CommonName: "x"}, EmailAddresses: []string{"é@example.com"}},
	} {
		_, err := a.Issue(context.Background(), Request{PublicKey: key.Public(), Template: tmpl, Purpose: PurposeServer, Validity: time.Hour})
		if !errors.Is(err, ErrPolicy) {
			t.Errorf("Issue(%v %v) = %v, want ErrPolicy", tmpl.DNSNames, tmpl.EmailAddresses, err)
		}
	}
}

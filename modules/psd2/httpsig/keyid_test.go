package httpsig_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bankedge/bankedge/modules/psd2/httpsig"
)

var oidOrganizationIdentifier = asn1.ObjectIdentifier{2, 5, 4, 97}

// fixtureSerial is the serial of the reference QSealC and of the Piraeus
// example keyId.
var fixtureSerial, _ = new(big.Int).SetString("6AA32860FF20999C9D12A78ADBDB1903", 16)

// The test QTSP's name in DER order, as the reference fixture has it:
// C, organizationIdentifier, O, CN. Go's pkix.Name would reorder it, so the
// CA's subject is marshalled from this RDNSequence.
var qtspName = pkix.RDNSequence{
	{{Type: asn1.ObjectIdentifier{2, 5, 4, 6}, Value: "GR"}},
	{{Type: oidOrganizationIdentifier, Value: "VATGR-999999999"}},
	{{Type: asn1.ObjectIdentifier{2, 5, 4, 10}, Value: "Test QTSP S.A."}},
	{{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: "Test QTSP Qualified CA"}},
}

var (
	qsealOnce sync.Once
	qsealCert *x509.Certificate
	qsealErr  error
)

// issuedCert returns a leaf with the fixture serial, issued by a CA named
// qtspName. ECDSA keys keep it fast; keyId matching does not look at keys.
func issuedCert(t testing.TB) *x509.Certificate {
	t.Helper()
	qsealOnce.Do(func() {
		qsealCert, qsealErr = makeIssuedCert()
	})
	if qsealErr != nil {
		t.Fatal(qsealErr)
	}
	return qsealCert
}

func makeIssuedCert() (*x509.Certificate, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	rawName, err := asn1.Marshal(qtspName)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), RawSubject: rawName,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: fixtureSerial,
		Subject: pkix.Name{
			Country: []string{"GR"}, Locality: []string{"Athens"}, Organization: []string{"Example TPP S.A."}, CommonName: "Example TPP QSealC",
			ExtraNames: []pkix.AttributeTypeAndValue{{Type: oidOrganizationIdentifier, Value: "PSDGR-BOG-123456"}},
		},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
	}
	der, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, leafKey.Public(), caKey)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func TestParseKeyID(t *testing.T) {
	const bgIssuer = "CN=D-TRUST CA 2-1 2015,O=D-Trust GmbH,C=DE"
	for _, tc := range []struct {
		in     string
		serial string // hex
		issuer string
	}{
		{"6AA32860FF20999C9D12A78ADBDB1903", "6aa32860ff20999c9d12a78adbdb1903", ""},
		{"6aa32860ff20999c9d12a78adbdb1903", "6aa32860ff20999c9d12a78adbdb1903", ""},
		{" 6AA32860FF20999C9D12A78ADBDB1903 ", "6aa32860ff20999c9d12a78adbdb1903", ""},
		{"6a:a3:28:60:ff:20:99:9c:9d:12:a7:8a:db:db:19:03", "6aa32860ff20999c9d12a78adbdb1903", ""},
		{"0x6AA32860FF20999C9D12A78ADBDB1903", "6aa32860ff20999c9d12a78adbdb1903", ""},
		{"0X0a", "a", ""},
		{"0a:1b", "a1b", ""},
		{"6A A3 28", "6aa328", ""},
		{"00000001", "1", ""},
		{"SN=9FA1,CA=CN=D-TRUST%20CA%202-1%202015,O=D-Trust%20GmbH,C=DE", "9fa1", bgIssuer},
		{"SN=9FA1,CA=CN=D-TRUST CA 2-1 2015,O=D-Trust GmbH,C=DE", "9fa1", bgIssuer},
		{"sn=9fa1,ca=" + bgIssuer, "9fa1", bgIssuer},
		{"SN=9FA1,CA= " + bgIssuer + " ", "9fa1", bgIssuer},
		{"SN=6a:a3:28,CA=CN=x", "6aa328", "CN=x"},
		{"SN=9FA1", "9fa1", ""},
		// A '%' that is not an escape leaves the issuer as sent.
		{"SN=1,CA=CN=100% sure", "1", "CN=100% sure"},
		// Only the first ",CA=" splits.
		{"SN=1,CA=O=a,CA=b", "1", "O=a,CA=b"},
		// The BG style keyId of the reference with the #hex attribute.
		{"SN=6aa32860ff20999c9d12a78adbdb1903,CA=CN=Test%20QTSP%20Qualified%20CA,O=Test%20QTSP%20S.A.,C=GR,2.5.4.97=#130f56415447522d393939393939393939",
			"6aa32860ff20999c9d12a78adbdb1903", "CN=Test QTSP Qualified CA,O=Test QTSP S.A.,C=GR,2.5.4.97=#130f56415447522d393939393939393939"},
	} {
		k, err := httpsig.ParseKeyID(tc.in)
		if err != nil {
			t.Errorf("ParseKeyID(%q) = %v", tc.in, err)
			continue
		}
		if got := k.Serial.Text(16); got != tc.serial || k.Issuer != tc.issuer {
			t.Errorf("ParseKeyID(%q) = %s, %q; want %s, %q", tc.in, got, k.Issuer, tc.serial, tc.issuer)
		}
	}

	for _, in := range []string{
		"", " ", "0x", "::", "xyz", "6AA3G0", "-1", "+1", "1.0", "SN=", "SN=,CA=CN=x", "SN=zz,CA=CN=x",
		"SN=9FA1,CA=", "SN=9FA1,CA=%20", "SN=9FA1,CA= ",
		strings.Repeat("f", 65),
	} {
		if k, err := httpsig.ParseKeyID(in); !errors.Is(err, httpsig.ErrKeyID) {
			t.Errorf("ParseKeyID(%q) = %+v, %v; want ErrKeyID", in, k, err)
		}
	}
	if _, err := httpsig.ParseKeyID(strings.Repeat("f", 64)); err != nil {
		t.Errorf("a 64-digit serial: %v", err)
	}
}

func TestParseSerialNumeric(t *testing.T) {
	for _, same := range [][]string{
		{"1", "01", "0001", "0x1", "00:01", "0 1"},
		{"6AA32860FF20999C9D12A78ADBDB1903", "06aa32860ff20999c9d12a78adbdb1903", "6a:a3:28:60:ff:20:99:9c:9d:12:a7:8a:db:db:19:03"},
		{"0", "00", "0x00"},
	} {
		first, err := httpsig.ParseSerial(same[0])
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range same[1:] {
			n, err := httpsig.ParseSerial(s)
			if err != nil || n.Cmp(first) != 0 {
				t.Errorf("ParseSerial(%q) = %v, %v; want %v", s, n, err, first)
			}
		}
	}
	a, _ := httpsig.ParseSerial("10")
	b, _ := httpsig.ParseSerial("100")
	if a.Cmp(b) == 0 || a.Int64() != 16 {
		t.Errorf("ParseSerial is not hexadecimal: 10 → %v, 100 → %v", a, b)
	}
}

func TestKeyIDMatches(t *testing.T) {
	cert := issuedCert(t)
	const serial = "6AA32860FF20999C9D12A78ADBDB1903"
	hexOrgID := "2.5.4.97=#130f56415447522d393939393939393939"
	match := map[string]string{
		"go rendering":             cert.Issuer.String(),
		"openssl RFC2253":          "CN=Test QTSP Qualified CA,O=Test QTSP S.A.,organizationIdentifier=VATGR-999999999,C=GR",
		"openssl oneline":          "C = GR, organizationIdentifier = VATGR-999999999, O = Test QTSP S.A., CN = Test QTSP Qualified CA",
		"hex value, RFC 2253":      "CN=Test QTSP Qualified CA,O=Test QTSP S.A.," + hexOrgID + ",C=GR",
		"DER order":                "C=GR,organizationIdentifier=VATGR-999999999,O=Test QTSP S.A.,CN=Test QTSP Qualified CA",
		"other order and case":     "o=TEST QTSP S.A.,c=gr,cn=test qtsp qualified ca,ORGANIZATIONIDENTIFIER=vatgr-999999999",
		"dotted OID, OID. prefix":  "OID.2.5.4.3=Test QTSP Qualified CA,2.5.4.10=Test QTSP S.A.,2.5.4.97=VATGR-999999999,2.5.4.6=GR",
		"extra inner spaces":       "CN=Test  QTSP   Qualified CA,O=Test QTSP S.A.,organizationIdentifier=VATGR-999999999,C=GR",
		"semicolons and quotes":    `CN="Test QTSP Qualified CA"; O=Test QTSP S.A.; organizationIdentifier=VATGR-999999999; C=GR`,
		"multi-valued RDN":         "CN=Test QTSP Qualified CA+O=Test QTSP S.A.,organizationIdentifier=VATGR-999999999+C=GR",
		"percent-encoded in keyId": "CN=Test%20QTSP%20Qualified%20CA,O=Test%20QTSP%20S.A.,C=GR," + hexOrgID,
	}
	if !strings.Contains(cert.Issuer.String(), hexOrgID) {
		t.Fatalf("Go renders the issuer as %q, expected the #hex organizationIdentifier", cert.Issuer.String())
	}
	for name, ca := range match {
		for _, sn := range []string{serial, strings.ToLower(serial), "0x0" + serial} {
			k, err := httpsig.ParseKeyID("SN=" + sn + ",CA=" + ca)
			if err != nil {
				t.Errorf("%s: ParseKeyID: %v", name, err)
				continue
			}
			if err := k.Matches(cert); err != nil {
				t.Errorf("%s (SN=%s): %v", name, sn, err)
			}
		}
	}
	// The Piraeus form has no issuer: the serial alone decides.
	if k, err := httpsig.ParseKeyID(serial); err != nil || k.Matches(cert) != nil {
		t.Errorf("bare serial does not match: %v", err)
	}

	noMatch := map[string]string{
		"missing attribute":        "CN=Test QTSP Qualified CA,O=Test QTSP S.A.,C=GR",
		"extra attribute":          "CN=Test QTSP Qualified CA,O=Test QTSP S.A.,organizationIdentifier=VATGR-999999999,C=GR,L=Athens",
		"different value":          "CN=Test QTSP Qualified CA,O=Other QTSP S.A.,organizationIdentifier=VATGR-999999999,C=GR",
		"different orgId":          "CN=Test QTSP Qualified CA,O=Test QTSP S.A.,organizationIdentifier=VATGR-999999998,C=GR",
		"value under another type": "CN=Test QTSP Qualified CA,OU=Test QTSP S.A.,organizationIdentifier=VATGR-999999999,C=GR",
		"duplicate for a missing":  "CN=Test QTSP Qualified CA,O=Test QTSP S.A.,C=GR,C=GR",
		"the subject":              cert.Subject.String(),
		"prefix of a value":        "CN=Test QTSP,O=Test QTSP S.A.,organizationIdentifier=VATGR-999999999,C=GR",
	}
	for name, ca := range noMatch {
		k, err := httpsig.ParseKeyID("SN=" + serial + ",CA=" + ca)
		if err != nil {
			t.Fatalf("%s: ParseKeyID: %v", name, err)
		}
		if err := k.Matches(cert); err == nil {
			t.Errorf("%s: %q matched the issuer", name, ca)
		}
	}
	for name, keyID := range map[string]string{
		"other serial":        "SN=6AA32860FF20999C9D12A78ADBDB1904,CA=" + cert.Issuer.String(),
		"bare other serial":   "6AA32860FF20999C9D12A78ADBDB19",
		"unparsable CA":       "SN=" + serial + ",CA=Test QTSP",
		"unknown type in CA":  "SN=" + serial + ",CA=XX=Test QTSP",
		"trailing , in CA":    "SN=" + serial + ",CA=" + cert.Issuer.String() + ",",
		"bad hex value in CA": "SN=" + serial + ",CA=2.5.4.97=#13zz",
	} {
		k, err := httpsig.ParseKeyID(keyID)
		if err != nil {
			t.Fatalf("%s: ParseKeyID: %v", name, err)
		}
		if err := k.Matches(cert); err == nil {
			t.Errorf("%s: %q matched", name, keyID)
		}
	}
	// A zero KeyID or a certificate without a serial must not panic.
	if err := (httpsig.KeyID{}).Matches(cert); err == nil {
		t.Error("a zero KeyID matched")
	}
	if err := (httpsig.KeyID{Serial: fixtureSerial}).Matches(&x509.Certificate{}); err == nil {
		t.Error("a certificate without serial matched")
	}
}

// TestKeyIDMatchesOpenSSLRendering asks OpenSSL to print the issuer, the way
// a TPP following the bank's instructions would build keyId, and matches it.
func TestKeyIDMatchesOpenSSLRendering(t *testing.T) {
	openssl := needOpenSSL(t)
	cert := issuedCert(t)
	path := filepath.Join(t.TempDir(), "qseal.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, nameopt := range []string{"RFC2253", "oneline", "utf8,sep_semi_plus_space", "RFC2253,dn_rev"} {
		out, err := exec.Command(openssl, "x509", "-in", path, "-noout", "-issuer", "-serial", "-nameopt", nameopt).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl: %v\n%s", err, out)
		}
		var issuer, serial string
		for line := range strings.Lines(string(out)) {
			line = strings.TrimSpace(line)
			if v, ok := strings.CutPrefix(line, "issuer="); ok {
				issuer = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(line, "serial="); ok {
				serial = v
			}
		}
		if issuer == "" || serial == "" {
			t.Fatalf("openssl -nameopt %s printed %q", nameopt, out)
		}
		k, err := httpsig.ParseKeyID("SN=" + serial + ",CA=" + strings.ReplaceAll(issuer, " ", "%20"))
		if err != nil {
			t.Errorf("-nameopt %s: ParseKeyID: %v", nameopt, err)
			continue
		}
		if err := k.Matches(cert); err != nil {
			t.Errorf("-nameopt %s: issuer %q: %v", nameopt, issuer, err)
		}
	}
}

func TestKeyIDString(t *testing.T) {
	cert := issuedCert(t)
	for _, k := range []httpsig.KeyID{
		{Serial: fixtureSerial},
		{Serial: fixtureSerial, Issuer: cert.Issuer.String()},
		{Serial: big.NewInt(0x9FA1), Issuer: "CN=D-TRUST CA 2-1 2015,O=D-Trust GmbH,C=DE"},
		// A '%' in the issuer must be escaped, or the percent-decoding of
		// ParseKeyID changes the name.
		{Serial: big.NewInt(1), Issuer: "CN=100%20 sure,O=50% off"},
	} {
		s := k.String()
		if strings.Contains(s, " ") {
			t.Errorf("String() = %q contains a space", s)
		}
		got, err := httpsig.ParseKeyID(s)
		if err != nil {
			t.Errorf("ParseKeyID(%q) = %v", s, err)
			continue
		}
		if got.Serial.Cmp(k.Serial) != 0 || got.Issuer != k.Issuer {
			t.Errorf("round trip of %+v gave %+v via %q", k, got, s)
		}
	}
	if got := (httpsig.KeyID{Serial: big.NewInt(0x9FA1), Issuer: "CN=D-TRUST CA 2-1 2015,C=DE"}).String(); got != "SN=9FA1,CA=CN=D-TRUST%20CA%202-1%202015,C=DE" {
		t.Errorf("String() = %q", got)
	}
	// What tppclient sends for the Berlin Group profile names the
	// certificate.
	k, err := httpsig.ParseKeyID(httpsig.KeyID{Serial: cert.SerialNumber, Issuer: cert.Issuer.String()}.String())
	if err != nil || k.Matches(cert) != nil {
		t.Errorf("the tppclient keyId does not match: %v", err)
	}
}

func FuzzParseKeyID(f *testing.F) {
	f.Add("6AA32860FF20999C9D12A78ADBDB1903")
	f.Add("6a:a3:28:60:ff:20:99:9c:9d:12:a7:8a:db:db:19:03")
	f.Add("0x00ff")
	f.Add("SN=9FA1,CA=CN=D-TRUST%20CA%202-1%202015,O=D-Trust%20GmbH,C=DE")
	f.Add("SN=6aa3,CA=CN=Test QTSP Qualified CA,O=Test QTSP S.A.,C=GR,2.5.4.97=#130f56415447522d393939393939393939")
	f.Add("sn=1,ca=CN=100%25")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := httpsig.ParseKeyID(s)
		if err != nil {
			if !errors.Is(err, httpsig.ErrKeyID) {
				t.Fatalf("error %v does not wrap ErrKeyID", err)
			}
			return
		}
		if k.Serial == nil || k.Serial.Sign() < 0 || k.Serial.BitLen() > 256 {
			t.Fatalf("serial %v out of range", k.Serial)
		}
		if k.Issuer != strings.TrimSpace(k.Issuer) {
			t.Fatalf("issuer %q is not trimmed", k.Issuer)
		}
		again, err := httpsig.ParseKeyID(k.String())
		if err != nil {
			t.Fatalf("String() = %q does not parse: %v", k.String(), err)
		}
		if again.Serial.Cmp(k.Serial) != 0 || again.Issuer != k.Issuer {
			t.Fatalf("round trip via %q: %+v became %+v", k.String(), k, again)
		}
		// Matching must not panic whatever the issuer text.
		_ = k.Matches(fuzzCert)
	})
}

// fuzzCert is a certificate without a real signature, enough for Matches.
var fuzzCert = func() *x509.Certificate {
	raw, _ := asn1.Marshal(qtspName)
	return &x509.Certificate{SerialNumber: big.NewInt(0x9FA1), RawIssuer: raw}
}()

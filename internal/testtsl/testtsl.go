// Package testtsl makes ETSI TS 119 612 trusted lists at test time: a LOTL
// and national lists, signed in Go (RSA, RSA-PSS, ECDSA; enveloped,
// exclusive C14N, with a XAdES SignedProperties reference as the EU lists
// have) or by xmlsec1 as an independent signer, and served by a local HTTP
// server.
package testtsl

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"html"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
	"github.com/russellhaering/goxmldsig/etreeutils"

	"github.com/bankedge/bankedge/internal/testpki"
)

// URIs used in the lists.
const (
	TypeLOTL    = "http://uri.etsi.org/TrstSvc/TrustedList/TSLType/EUlistofthelists"
	TypeGeneric = "http://uri.etsi.org/TrstSvc/TrustedList/TSLType/EUgeneric"
	CAQC        = "http://uri.etsi.org/TrstSvc/Svctype/CA/QC"
	Granted     = "http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/granted"
	Withdrawn   = "http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/withdrawn"
	ForWeb      = "http://uri.etsi.org/TrstSvc/TrustedList/SvcInfoExt/ForWebSiteAuthentication"
	ForESeals   = "http://uri.etsi.org/TrstSvc/TrustedList/SvcInfoExt/ForeSeals"
	MimeXML     = "application/vnd.etsi.tsl+xml"
	MimePDF     = "application/pdf"
	// InclusiveC14N is canonical XML 1.0, which some national lists use.
	InclusiveC14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
)

// Signature methods.
const (
	RSASHA256   = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
	RSASHA512   = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
	RSAPSS256   = "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1"
	RSAPSS384   = "http://www.w3.org/2007/05/xmldsig-more#sha384-rsa-MGF1"
	ECDSASHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
	ECDSASHA384 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
	ECDSASHA512 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"
)

// Service is a TSPService.
type Service struct {
	Name           string
	Type           string
	Status         string
	AdditionalInfo []string
	Certs          []*x509.Certificate
}

// Provider is a TrustServiceProvider.
type Provider struct {
	Name     string
	Services []Service
}

// Pointer is an OtherTSLPointer.
type Pointer struct {
	Location  string
	Territory string
	Type      string
	MimeType  string
	Certs     []*x509.Certificate
}

// List is a trusted list to render.
type List struct {
	Type       string
	Territory  string
	Seq        int
	Issue      time.Time
	NextUpdate time.Time // zero: no NextUpdate
	Pointers   []Pointer
	Providers  []Provider
}

// XML renders the unsigned list.
func (l *List) XML() []byte {
	var b strings.Builder
	e := html.EscapeString
	name := func(s string) string { return `<tsl:Name xml:lang="en">` + e(s) + `</tsl:Name>` }
	certs := func(cs []*x509.Certificate) string {
		var s strings.Builder
		for _, c := range cs {
			s.WriteString("<tsl:DigitalId><tsl:X509Certificate>" + base64.StdEncoding.EncodeToString(c.Raw) + "</tsl:X509Certificate></tsl:DigitalId>")
		}
		return s.String()
	}
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(&b, `<tsl:TrustServiceStatusList xmlns:tsl="http://uri.etsi.org/02231/v2#" xmlns:ns3="http://uri.etsi.org/02231/v2/additionaltypes#" Id="tsl-%s" TSLTag="http://uri.etsi.org/19612/TSLTag">`+"\n", e(l.Territory))
	b.WriteString("  <tsl:SchemeInformation>\n")
	fmt.Fprintf(&b, "    <tsl:TSLVersionIdentifier>5</tsl:TSLVersionIdentifier>\n    <tsl:TSLSequenceNumber>%d</tsl:TSLSequenceNumber>\n", l.Seq)
	fmt.Fprintf(&b, "    <tsl:TSLType>%s</tsl:TSLType>\n", e(l.Type))
	fmt.Fprintf(&b, "    <tsl:SchemeOperatorName>%s</tsl:SchemeOperatorName>\n", name("Test scheme operator "+l.Territory))
	fmt.Fprintf(&b, "    <tsl:SchemeTerritory>%s</tsl:SchemeTerritory>\n", e(l.Territory))
	if len(l.Pointers) > 0 {
		b.WriteString("    <tsl:PointersToOtherTSL>\n")
		for _, p := range l.Pointers {
			fmt.Fprintf(&b, "      <tsl:OtherTSLPointer><tsl:ServiceDigitalIdentities><tsl:ServiceDigitalIdentity>%s</tsl:ServiceDigitalIdentity></tsl:ServiceDigitalIdentities>", certs(p.Certs))
			fmt.Fprintf(&b, "<tsl:TSLLocation>%s</tsl:TSLLocation><tsl:AdditionalInformation>", e(p.Location))
			fmt.Fprintf(&b, "<tsl:OtherInformation><tsl:TSLType>%s</tsl:TSLType></tsl:OtherInformation>", e(p.Type))
			fmt.Fprintf(&b, "<tsl:OtherInformation><tsl:SchemeOperatorName>%s</tsl:SchemeOperatorName></tsl:OtherInformation>", name("Operator "+p.Territory))
			fmt.Fprintf(&b, "<tsl:OtherInformation><tsl:SchemeTerritory>%s</tsl:SchemeTerritory></tsl:OtherInformation>", e(p.Territory))
			fmt.Fprintf(&b, "<tsl:OtherInformation><ns3:MimeType>%s</ns3:MimeType></tsl:OtherInformation>", e(p.MimeType))
			b.WriteString("</tsl:AdditionalInformation></tsl:OtherTSLPointer>\n")
		}
		b.WriteString("    </tsl:PointersToOtherTSL>\n")
	}
	fmt.Fprintf(&b, "    <tsl:ListIssueDateTime>%s</tsl:ListIssueDateTime>\n", l.Issue.UTC().Format(time.RFC3339))
	if l.NextUpdate.IsZero() {
		b.WriteString("    <tsl:NextUpdate/>\n")
	} else {
		fmt.Fprintf(&b, "    <tsl:NextUpdate><tsl:dateTime>%s</tsl:dateTime></tsl:NextUpdate>\n", l.NextUpdate.UTC().Format(time.RFC3339))
	}
	b.WriteString("  </tsl:SchemeInformation>\n")
	if len(l.Providers) > 0 {
		b.WriteString("  <tsl:TrustServiceProviderList>\n")
		for _, p := range l.Providers {
			fmt.Fprintf(&b, "    <tsl:TrustServiceProvider><tsl:TSPInformation><tsl:TSPName>%s</tsl:TSPName></tsl:TSPInformation><tsl:TSPServices>\n", name(p.Name))
			for _, s := range p.Services {
				fmt.Fprintf(&b, "      <tsl:TSPService><tsl:ServiceInformation><tsl:ServiceTypeIdentifier>%s</tsl:ServiceTypeIdentifier>", e(s.Type))
				fmt.Fprintf(&b, "<tsl:ServiceName>%s</tsl:ServiceName><tsl:ServiceDigitalIdentity>%s</tsl:ServiceDigitalIdentity>", name(s.Name), certs(s.Certs))
				fmt.Fprintf(&b, "<tsl:ServiceStatus>%s</tsl:ServiceStatus><tsl:StatusStartingTime>%s</tsl:StatusStartingTime>", e(s.Status), l.Issue.Add(-24*time.Hour).UTC().Format(time.RFC3339))
				if len(s.AdditionalInfo) > 0 {
					b.WriteString("<tsl:ServiceInformationExtensions>")
					for _, ai := range s.AdditionalInfo {
						fmt.Fprintf(&b, `<tsl:Extension Critical="false"><tsl:AdditionalServiceInformation><tsl:URI xml:lang="en">%s</tsl:URI></tsl:AdditionalServiceInformation></tsl:Extension>`, e(ai))
					}
					b.WriteString("</tsl:ServiceInformationExtensions>")
				}
				b.WriteString("</tsl:ServiceInformation></tsl:TSPService>\n")
			}
			b.WriteString("    </tsl:TSPServices></tsl:TrustServiceProvider>\n")
		}
		b.WriteString("  </tsl:TrustServiceProviderList>\n")
	}
	b.WriteString("</tsl:TrustServiceStatusList>\n")
	return []byte(b.String())
}

// Signer is a list signer: a self-signed certificate, its key and the
// signature method it uses.
type Signer struct {
	Cert   *x509.Certificate
	Key    crypto.Signer
	Method string
	// C14N is the canonicalisation xmlsec1 uses (default exclusive C14N).
	C14N string
}

// NewSigner makes a signer for method with a fresh key and a self-signed
// certificate valid from 400 days ago for a year from now. RSA keys come from testpki's
// per-process cache; n picks one.
func NewSigner(t testing.TB, cn, method string, n int) *Signer {
	t.Helper()
	var key crypto.Signer
	switch method {
	case RSASHA256, RSASHA512, RSAPSS256, RSAPSS384:
		key = testpki.RSAKey(t, 2048, n)
	case ECDSASHA256:
		key = ecKey(t, elliptic.P256())
	case ECDSASHA384, ECDSASHA512:
		key = ecKey(t, elliptic.P384())
	default:
		t.Fatalf("unknown method %s", method)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Test scheme operator"}, Country: []string{"EU"}},
		NotBefore:    time.Now().Add(-400 * 24 * time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &Signer{Cert: cert, Key: key, Method: method}
}

func ecKey(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (s *Signer) hash() crypto.Hash {
	switch s.Method {
	case RSASHA512, ECDSASHA512:
		return crypto.SHA512
	case RSAPSS384, ECDSASHA384:
		return crypto.SHA384
	}
	return crypto.SHA256
}

const (
	xadesNS     = "http://uri.etsi.org/01903/v1.3.2#"
	sha256URI   = "http://www.w3.org/2001/04/xmlenc#sha256"
	excC14N     = "http://www.w3.org/2001/10/xml-exc-c14n#"
	envelopedTr = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
)

// Sign signs the unsigned list doc the way the EU lists are signed: an
// enveloped ds:Signature as the root's last child, exclusive C14N, a
// reference to the whole document and one to XAdES SignedProperties.
func (s *Signer) Sign(t testing.TB, doc []byte) []byte {
	t.Helper()
	d := etree.NewDocument()
	if err := d.ReadFromBytes(doc); err != nil {
		t.Fatal(err)
	}
	root := d.Root()
	sig := root.CreateElement("ds:Signature")
	sig.CreateAttr("xmlns:ds", dsig.Namespace)
	sig.CreateAttr("Id", "sig-1")
	si := sig.CreateElement("ds:SignedInfo")
	si.CreateElement("ds:CanonicalizationMethod").CreateAttr("Algorithm", excC14N)
	si.CreateElement("ds:SignatureMethod").CreateAttr("Algorithm", s.Method)
	ref1 := si.CreateElement("ds:Reference")
	ref1.CreateAttr("Id", "r-1")
	ref1.CreateAttr("URI", "")
	trs := ref1.CreateElement("ds:Transforms")
	trs.CreateElement("ds:Transform").CreateAttr("Algorithm", envelopedTr)
	trs.CreateElement("ds:Transform").CreateAttr("Algorithm", excC14N)
	ref1.CreateElement("ds:DigestMethod").CreateAttr("Algorithm", sha256URI)
	dv1 := ref1.CreateElement("ds:DigestValue")
	ref2 := si.CreateElement("ds:Reference")
	ref2.CreateAttr("Type", "http://uri.etsi.org/01903#SignedProperties")
	ref2.CreateAttr("URI", "#xades-sig-1")
	ref2.CreateElement("ds:Transforms").CreateElement("ds:Transform").CreateAttr("Algorithm", excC14N)
	ref2.CreateElement("ds:DigestMethod").CreateAttr("Algorithm", sha256URI)
	dv2 := ref2.CreateElement("ds:DigestValue")
	sv := sig.CreateElement("ds:SignatureValue")
	sig.CreateElement("ds:KeyInfo").CreateElement("ds:X509Data").CreateElement("ds:X509Certificate").SetText(base64.StdEncoding.EncodeToString(s.Cert.Raw))
	qp := sig.CreateElement("ds:Object").CreateElement("xades:QualifyingProperties")
	qp.CreateAttr("xmlns:xades", xadesNS)
	qp.CreateAttr("Target", "#sig-1")
	sp := qp.CreateElement("xades:SignedProperties")
	sp.CreateAttr("Id", "xades-sig-1")
	ssp := sp.CreateElement("xades:SignedSignatureProperties")
	ssp.CreateElement("xades:SigningTime").SetText(time.Now().UTC().Format(time.RFC3339))
	cd := ssp.CreateElement("xades:SigningCertificateV2").CreateElement("xades:Cert").CreateElement("xades:CertDigest")
	cd.CreateElement("ds:DigestMethod").CreateAttr("Algorithm", sha256URI)
	certSum := sha256.Sum256(s.Cert.Raw)
	cd.CreateElement("ds:DigestValue").SetText(base64.StdEncoding.EncodeToString(certSum[:]))

	// The whole document without the signature.
	whole := root.Copy()
	whole.RemoveChildAt(len(whole.Child) - 1)
	dv1.SetText(digest(t, whole))
	dv2.SetText(digest(t, detach(t, sp)))

	c14n, err := dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("").Canonicalize(detach(t, si))
	if err != nil {
		t.Fatal(err)
	}
	h := s.hash().New()
	h.Write(c14n)
	sv.SetText(base64.StdEncoding.EncodeToString(s.signDigest(t, h.Sum(nil))))
	out, err := d.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func detach(t testing.TB, el *etree.Element) *etree.Element {
	ctx, err := etreeutils.NSBuildParentContext(el)
	if err != nil {
		t.Fatal(err)
	}
	out, err := etreeutils.NSDetatch(ctx, el)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func digest(t testing.TB, el *etree.Element) string {
	c, err := dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("").Canonicalize(el)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(c)
	return base64.StdEncoding.EncodeToString(sum[:])
}

func (s *Signer) signDigest(t testing.TB, hashed []byte) []byte {
	switch s.Method {
	case RSAPSS256, RSAPSS384:
		sig, err := rsa.SignPSS(rand.Reader, s.Key.(*rsa.PrivateKey), s.hash(), hashed, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		if err != nil {
			t.Fatal(err)
		}
		return sig
	case ECDSASHA256, ECDSASHA384, ECDSASHA512:
		k := s.Key.(*ecdsa.PrivateKey)
		r, ss, err := ecdsa.Sign(rand.Reader, k, hashed)
		if err != nil {
			t.Fatal(err)
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		ss.FillBytes(out[size:])
		return out
	}
	sig, err := s.Key.Sign(rand.Reader, hashed, s.hash())
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// SignXmlsec signs doc with xmlsec1 (skipping the test where it is not
// installed): an independent implementation of XML-DSig and C14N.
func (s *Signer) SignXmlsec(t testing.TB, doc []byte) []byte {
	t.Helper()
	bin, err := exec.LookPath("xmlsec1")
	if err != nil {
		t.Skip("xmlsec1 not installed (Debian package xmlsec1): the independent signer is skipped")
	}
	algo := map[string]string{RSASHA256: RSASHA256, RSASHA512: RSASHA512, ECDSASHA256: ECDSASHA256, ECDSASHA384: ECDSASHA384, ECDSASHA512: ECDSASHA512}[s.Method]
	if algo == "" {
		t.Fatalf("xmlsec1 1.2 cannot sign with %s", s.Method)
	}
	digestURI := sha256URI
	c14n := s.C14N
	if c14n == "" {
		c14n = excC14N
	}
	tmpl := `<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#" Id="sig-x"><ds:SignedInfo>` +
		`<ds:CanonicalizationMethod Algorithm="` + c14n + `"/><ds:SignatureMethod Algorithm="` + algo + `"/>` +
		`<ds:Reference URI=""><ds:Transforms><ds:Transform Algorithm="` + envelopedTr + `"/><ds:Transform Algorithm="` + c14n + `"/></ds:Transforms>` +
		`<ds:DigestMethod Algorithm="` + digestURI + `"/><ds:DigestValue/></ds:Reference></ds:SignedInfo>` +
		`<ds:SignatureValue/><ds:KeyInfo><ds:X509Data/></ds:KeyInfo></ds:Signature>`
	end := bytes.LastIndex(doc, []byte("</tsl:TrustServiceStatusList>"))
	if end < 0 {
		t.Fatal("not a rendered list")
	}
	withTmpl := append(append(append([]byte{}, doc[:end]...), tmpl...), doc[end:]...)

	dir := t.TempDir()
	in := filepath.Join(dir, "in.xml")
	keyFile := filepath.Join(dir, "key.pem")
	certFile := filepath.Join(dir, "cert.pem")
	out := filepath.Join(dir, "out.xml")
	pkcs8, err := x509.MarshalPKCS8PrivateKey(s.Key)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		in:       withTmpl,
		keyFile:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
		certFile: testpki.CertPEM(s.Cert),
	} {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "--sign", "--privkey-pem", keyFile+","+certFile, "--output", out, in)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("xmlsec1 --sign: %v\n%s", err, msg)
	}
	signed, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// Server serves documents from memory and counts the requests per path.
type Server struct {
	*httptest.Server
	mu    sync.Mutex
	docs  map[string][]byte
	hits  map[string]int
	fails map[string]int
}

// NewServer starts a document server, closed when the test ends.
func NewServer(t testing.TB) *Server {
	s := &Server{docs: map[string][]byte{}, hits: map[string]int{}, fails: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		doc, ok := s.docs[r.URL.Path]
		s.hits[r.URL.Path]++
		status := s.fails[r.URL.Path]
		s.mu.Unlock()
		if status != 0 {
			w.WriteHeader(status)
			return
		}
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/xml")
		_, _ = w.Write(doc)
	}))
	t.Cleanup(s.Close)
	return s
}

// Put serves doc at path.
func (s *Server) Put(path string, doc []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.docs[path] = doc
}

// Fail answers status at path (0 serves the document again).
func (s *Server) Fail(path string, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fails[path] = status
}

// Hits returns how often path was requested.
func (s *Server) Hits(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

// Scenario is a LOTL with two national lists: EL (Greece) with a granted
// QTSP listed for web and eseals and a withdrawn one, and CY (Cyprus) with a
// QTSP granted for eseals only.
type Scenario struct {
	Server *Server
	// LOTLSigner signs the LOTL; ELSigner and CYSigner the national lists.
	LOTLSigner, ELSigner, CYSigner *Signer
	// GrantedCA issues QWACs and QSEALs; WithdrawnCA's service was
	// withdrawn; ESealCA is granted for eseals only.
	GrantedCA, WithdrawnCA, ESealCA *testpki.CA
	// SignersFile is a PEM file with the LOTL signer certificate.
	SignersFile string
}

// Paths on the server.
const (
	LOTLPath = "/lotl.xml"
	ELPath   = "/EL-TSL.xml"
	CYPath   = "/CY-TSL.xml"
)

// NewScenario makes the signers and CAs and publishes sequence 1 of every
// list, signed in Go (LOTL RSA-SHA256, EL RSA-PSS, CY ECDSA-P256).
func NewScenario(t testing.TB) *Scenario {
	t.Helper()
	s := &Scenario{
		Server:      NewServer(t),
		LOTLSigner:  NewSigner(t, "Test LOTL signer", RSASHA256, 0),
		ELSigner:    NewSigner(t, "Test EL scheme operator", RSAPSS256, 1),
		CYSigner:    NewSigner(t, "Test CY scheme operator", ECDSASHA256, 0),
		GrantedCA:   testpki.NewCA(t, "Granted QTSP Qualified CA"),
		WithdrawnCA: testpki.NewCA(t, "Withdrawn QTSP Qualified CA"),
		ESealCA:     testpki.NewCA(t, "ESeal QTSP Qualified CA"),
	}
	s.SignersFile = filepath.Join(t.TempDir(), "lotl-signers.pem")
	if err := os.WriteFile(s.SignersFile, testpki.CertPEM(s.LOTLSigner.Cert), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Server.Put(LOTLPath, s.LOTLSigner.Sign(t, s.LOTL(1).XML()))
	s.Server.Put(ELPath, s.ELSigner.Sign(t, s.EL(1).XML()))
	s.Server.Put(CYPath, s.CYSigner.Sign(t, s.CY(1).XML()))
	return s
}

// URL returns the server URL of path.
func (s *Scenario) URL(path string) string { return s.Server.URL + path }

func window(seq int) (time.Time, time.Time) {
	issue := time.Now().Add(-time.Hour).Truncate(time.Second).Add(time.Duration(seq) * time.Second)
	return issue, issue.Add(180 * 24 * time.Hour)
}

// LOTL returns sequence seq of the LOTL, pointing at EL and CY (XML and
// PDF pointers) and at itself.
func (s *Scenario) LOTL(seq int) *List {
	issue, next := window(seq)
	return &List{
		Type: TypeLOTL, Territory: "EU", Seq: seq, Issue: issue, NextUpdate: next,
		Pointers: []Pointer{
			{Location: s.URL(LOTLPath), Territory: "EU", Type: TypeLOTL, MimeType: MimeXML, Certs: []*x509.Certificate{s.LOTLSigner.Cert}},
			{Location: s.URL(ELPath), Territory: "EL", Type: TypeGeneric, MimeType: MimeXML, Certs: []*x509.Certificate{s.ELSigner.Cert}},
			{Location: s.URL("/EL-TSL.pdf"), Territory: "EL", Type: TypeGeneric, MimeType: MimePDF, Certs: []*x509.Certificate{s.ELSigner.Cert}},
			{Location: s.URL(CYPath), Territory: "CY", Type: TypeGeneric, MimeType: MimeXML, Certs: []*x509.Certificate{s.CYSigner.Cert}},
		},
	}
}

// EL returns sequence seq of the Greek list.
func (s *Scenario) EL(seq int) *List {
	issue, next := window(seq)
	return &List{
		Type: TypeGeneric, Territory: "EL", Seq: seq, Issue: issue, NextUpdate: next,
		Providers: []Provider{
			{Name: "Granted QTSP S.A.", Services: []Service{{
				Name: "Granted QTSP Qualified CA", Type: CAQC, Status: Granted,
				AdditionalInfo: []string{ForWeb, ForESeals}, Certs: []*x509.Certificate{s.GrantedCA.Cert},
			}}},
			{Name: "Withdrawn QTSP S.A.", Services: []Service{{
				Name: "Withdrawn QTSP Qualified CA", Type: CAQC, Status: Withdrawn,
				AdditionalInfo: []string{ForWeb, ForESeals}, Certs: []*x509.Certificate{s.WithdrawnCA.Cert},
			}}},
		},
	}
}

// CY returns sequence seq of the Cypriot list.
func (s *Scenario) CY(seq int) *List {
	issue, next := window(seq)
	return &List{
		Type: TypeGeneric, Territory: "CY", Seq: seq, Issue: issue, NextUpdate: next,
		Providers: []Provider{
			{Name: "ESeal QTSP Ltd", Services: []Service{{
				Name: "ESeal QTSP Qualified CA", Type: CAQC, Status: Granted,
				AdditionalInfo: []string{ForESeals}, Certs: []*x509.Certificate{s.ESealCA.Cert},
			}}},
		},
	}
}

package tsl

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
	"github.com/russellhaering/goxmldsig/etreeutils"
	"github.com/russellhaering/goxmldsig/types"
)

// XML signature algorithm identifiers beyond those goxmldsig names.
const (
	// RSA-PSS with MGF1 and a salt as long as the digest (RFC 6931 2.3.10).
	RSAPSSSHA256SignatureMethod = "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1"
	RSAPSSSHA384SignatureMethod = "http://www.w3.org/2007/05/xmldsig-more#sha384-rsa-MGF1"
	RSAPSSSHA512SignatureMethod = "http://www.w3.org/2007/05/xmldsig-more#sha512-rsa-MGF1"

	envelopedTransform = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
)

// signatureMethod is how a SignatureMethod URI verifies a SignatureValue.
type signatureMethod struct {
	hash crypto.Hash
	kind string // "rsa", "rsa-pss" or "ecdsa"
}

// signatureMethods are the accepted SignatureMethod algorithms: RSA PKCS#1
// v1.5, RSA-PSS and ECDSA with SHA-2. SHA-1 is refused.
var signatureMethods = map[string]signatureMethod{
	dsig.RSASHA256SignatureMethod:   {crypto.SHA256, "rsa"},
	dsig.RSASHA384SignatureMethod:   {crypto.SHA384, "rsa"},
	dsig.RSASHA512SignatureMethod:   {crypto.SHA512, "rsa"},
	RSAPSSSHA256SignatureMethod:     {crypto.SHA256, "rsa-pss"},
	RSAPSSSHA384SignatureMethod:     {crypto.SHA384, "rsa-pss"},
	RSAPSSSHA512SignatureMethod:     {crypto.SHA512, "rsa-pss"},
	dsig.ECDSASHA256SignatureMethod: {crypto.SHA256, "ecdsa"},
	dsig.ECDSASHA384SignatureMethod: {crypto.SHA384, "ecdsa"},
	dsig.ECDSASHA512SignatureMethod: {crypto.SHA512, "ecdsa"},
}

// digestMethods are the accepted Reference DigestMethod algorithms.
var digestMethods = map[string]crypto.Hash{
	"http://www.w3.org/2001/04/xmlenc#sha256":       crypto.SHA256,
	"http://www.w3.org/2001/04/xmldsig-more#sha384": crypto.SHA384,
	"http://www.w3.org/2001/04/xmlenc#sha512":       crypto.SHA512,
}

// Verified is a document whose enveloped signature checked out.
type Verified struct {
	// Signed is the canonical form of the signed document without its
	// signature: exactly the bytes that the digest covers. Parse these, not
	// the original document, so that nothing unsigned is ever read.
	Signed []byte
	// Signer is the allowed certificate whose key made the signature.
	Signer *x509.Certificate
	// SignatureMethod is the SignatureMethod algorithm URI.
	SignatureMethod string
}

// VerifyEnveloped checks the enveloped XML signature of doc against the
// certificates in signers, which come from configuration or a trusted
// pointer, never from the document. The signature must be a ds:Signature
// child of the root element, with a reference to the whole document (URI ""
// or the root's Id) that applies the enveloped-signature transform; every
// other reference (such as the XAdES SignedProperties) must resolve to a
// unique element and match its digest.
//
// Canonicalisation, namespace handling and the Signature structure come from
// goxmldsig; the SignatureValue is verified here because goxmldsig knows no
// RSA-PSS and expects ASN.1 ECDSA signatures where XML-DSig 1.1 uses r||s.
func VerifyEnveloped(doc []byte, signers []*x509.Certificate) (*Verified, error) {
	if len(signers) == 0 {
		return nil, errors.New("no signer certificates to verify against")
	}
	root, err := parseDocument(doc)
	if err != nil {
		return nil, err
	}
	sigEl, sigCtx, err := findEnvelopedSignature(root)
	if err != nil {
		return nil, err
	}
	canonicalSignedInfo, err := canonicalSignedInfo(sigEl, sigCtx)
	if err != nil {
		return nil, err
	}
	sigValue, err := signatureValue(sigEl, sigCtx)
	if err != nil {
		return nil, err
	}

	// The SignedInfo that decides what is checked is the one parsed back
	// from the canonical bytes, the bytes the signature covers.
	var si types.SignedInfo
	if err := xml.Unmarshal(canonicalSignedInfo, &si); err != nil {
		return nil, fmt.Errorf("reading canonical SignedInfo: %w", err)
	}
	method, ok := signatureMethods[si.SignatureMethod.Algorithm]
	if !ok {
		return nil, fmt.Errorf("signature method %q is not accepted", si.SignatureMethod.Algorithm)
	}
	h := method.hash.New()
	h.Write(canonicalSignedInfo)
	hashed := h.Sum(nil)
	var signer *x509.Certificate
	var lastErr error
	for _, cert := range signers {
		if lastErr = verifySignatureValue(cert.PublicKey, method, hashed, sigValue); lastErr == nil {
			signer = cert
			break
		}
	}
	if signer == nil {
		return nil, fmt.Errorf("signature does not verify with any of the %d allowed signer certificates (last: %v)", len(signers), lastErr)
	}

	signed, err := checkReferences(root, sigEl, si.References)
	if err != nil {
		return nil, err
	}
	return &Verified{Signed: signed, Signer: signer, SignatureMethod: si.SignatureMethod.Algorithm}, nil
}

// parseDocument reads doc into an element tree, refusing DTDs.
func parseDocument(doc []byte) (*etree.Element, error) {
	d := etree.NewDocument()
	if err := d.ReadFromBytes(doc); err != nil {
		return nil, fmt.Errorf("parsing XML: %w", err)
	}
	for _, tok := range d.Child {
		if _, ok := tok.(*etree.Directive); ok {
			return nil, errors.New("XML document type declarations are not allowed")
		}
	}
	root := d.Root()
	if root == nil {
		return nil, errors.New("XML document has no root element")
	}
	return root, nil
}

// findEnvelopedSignature returns the single ds:Signature child of root and
// the namespace context around it.
func findEnvelopedSignature(root *etree.Element) (*etree.Element, etreeutils.NSContext, error) {
	var sigEl *etree.Element
	var sigCtx etreeutils.NSContext
	n := 0
	err := etreeutils.NSFindChildrenIterateCtx(etreeutils.NewDefaultNSContext(), root, dsig.Namespace, dsig.SignatureTag,
		func(ctx etreeutils.NSContext, el *etree.Element) error {
			n++
			sigEl, sigCtx = el, ctx
			return nil
		})
	if err != nil {
		return nil, sigCtx, fmt.Errorf("looking for the signature: %w", err)
	}
	switch n {
	case 0:
		return nil, sigCtx, errors.New("document is not signed: no ds:Signature under the root element")
	case 1:
	default:
		return nil, sigCtx, fmt.Errorf("document has %d signatures under its root element, expected one", n)
	}
	inner, err := sigCtx.SubContext(sigEl)
	if err != nil {
		return nil, sigCtx, err
	}
	return sigEl, inner, nil
}

// oneChild returns the only child of el in the XML-DSig namespace named tag.
func oneChild(ctx etreeutils.NSContext, el *etree.Element, tag string) (*etree.Element, etreeutils.NSContext, error) {
	var found *etree.Element
	var foundCtx etreeutils.NSContext
	n := 0
	// ctx is the context inside el; NSFindChildrenIterateCtx wants the one
	// around it, and only uses it to look prefixes up, so the inner one works.
	err := etreeutils.NSFindChildrenIterateCtx(ctx, el, dsig.Namespace, tag, func(c etreeutils.NSContext, child *etree.Element) error {
		n++
		found, foundCtx = child, c
		return nil
	})
	if err != nil {
		return nil, foundCtx, err
	}
	if n != 1 {
		return nil, foundCtx, fmt.Errorf("signature has %d ds:%s elements, expected one", n, tag)
	}
	return found, foundCtx, nil
}

// canonicalSignedInfo canonicalises the SignedInfo with the method it
// names.
func canonicalSignedInfo(sigEl *etree.Element, sigCtx etreeutils.NSContext) ([]byte, error) {
	si, siCtx, err := oneChild(sigCtx, sigEl, dsig.SignedInfoTag)
	if err != nil {
		return nil, err
	}
	cm, _, err := oneChild(mustSub(siCtx, si), si, dsig.CanonicalizationMethodTag)
	if err != nil {
		return nil, err
	}
	c14n, err := canonicalizer(cm.SelectAttrValue(dsig.AlgorithmAttr, ""), "")
	if err != nil {
		return nil, err
	}
	out, err := canonicalize(c14n, si, siCtx)
	if err != nil {
		return nil, fmt.Errorf("canonicalising SignedInfo: %w", err)
	}
	return out, nil
}

// mustSub returns the context inside el, or ctx when el declares something
// invalid (the caller then fails on its own lookups).
func mustSub(ctx etreeutils.NSContext, el *etree.Element) etreeutils.NSContext {
	sub, err := ctx.SubContext(el)
	if err != nil {
		return ctx
	}
	return sub
}

// signatureValue decodes the SignatureValue.
func signatureValue(sigEl *etree.Element, sigCtx etreeutils.NSContext) ([]byte, error) {
	sv, _, err := oneChild(sigCtx, sigEl, dsig.SignatureValueTag)
	if err != nil {
		return nil, err
	}
	v, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(sv.Text()), ""))
	if err != nil || len(v) == 0 {
		return nil, errors.New("SignatureValue is not base64")
	}
	return v, nil
}

// canonicalizer returns goxmldsig's canonicaliser for an algorithm URI.
func canonicalizer(algorithm, prefixList string) (dsig.Canonicalizer, error) {
	switch dsig.AlgorithmID(algorithm) {
	case dsig.CanonicalXML10ExclusiveAlgorithmId:
		return dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList(prefixList), nil
	case dsig.CanonicalXML10ExclusiveWithCommentsAlgorithmId:
		return dsig.MakeC14N10ExclusiveWithCommentsCanonicalizerWithPrefixList(prefixList), nil
	case dsig.CanonicalXML10RecAlgorithmId:
		return dsig.MakeC14N10RecCanonicalizer(), nil
	case dsig.CanonicalXML10WithCommentsAlgorithmId:
		return dsig.MakeC14N10WithCommentsCanonicalizer(), nil
	case dsig.CanonicalXML11AlgorithmId:
		return dsig.MakeC14N11Canonicalizer(), nil
	case dsig.CanonicalXML11WithCommentsAlgorithmId:
		return dsig.MakeC14N11WithCommentsCanonicalizer(), nil
	}
	return nil, fmt.Errorf("canonicalisation method %q is not supported", algorithm)
}

// canonicalize serialises el, which sits in the namespace context ctx.
// Exclusive canonicalisation works on a detached copy carrying the
// in-scope declarations (it keeps only those visibly used); the inclusive
// ones read the ancestors themselves and copy el. An element without a
// parent is the private copy of the whole document, canonicalised in
// place: NSDetatch would add nothing and stops at 1000 elements, a limit
// meant for SAML messages that national lists exceed many times.
func canonicalize(c dsig.Canonicalizer, el *etree.Element, ctx etreeutils.NSContext) ([]byte, error) {
	switch c.Algorithm() {
	case dsig.CanonicalXML10ExclusiveAlgorithmId, dsig.CanonicalXML10ExclusiveWithCommentsAlgorithmId:
		if el.Parent() == nil {
			return c.Canonicalize(el)
		}
		detached, err := etreeutils.NSDetatch(ctx, el)
		if err != nil {
			return nil, err
		}
		return c.Canonicalize(detached)
	}
	return c.Canonicalize(el)
}

// verifySignatureValue checks sig over hashed with pub.
func verifySignatureValue(pub crypto.PublicKey, m signatureMethod, hashed, sig []byte) error {
	switch m.kind {
	case "rsa":
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return errors.New("certificate key is not RSA")
		}
		return rsa.VerifyPKCS1v15(k, m.hash, hashed, sig)
	case "rsa-pss":
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return errors.New("certificate key is not RSA")
		}
		return rsa.VerifyPSS(k, m.hash, hashed, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: m.hash})
	case "ecdsa":
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return errors.New("certificate key is not ECDSA")
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) == 2*size {
			// XML-DSig 1.1: the big-endian r and s, each padded to the
			// curve's size.
			r := new(big.Int).SetBytes(sig[:size])
			s := new(big.Int).SetBytes(sig[size:])
			if ecdsa.Verify(k, hashed, r, s) {
				return nil
			}
			return errors.New("ECDSA signature does not verify")
		}
		// Some signers (goxmldsig among them) write an ASN.1 signature.
		var rs struct{ R, S *big.Int }
		if rest, err := asn1.Unmarshal(sig, &rs); err == nil && len(rest) == 0 && ecdsa.VerifyASN1(k, hashed, sig) {
			return nil
		}
		return errors.New("ECDSA signature does not verify")
	}
	return fmt.Errorf("unknown signature kind %q", m.kind)
}

// checkReferences verifies the digest of every reference and returns the
// canonical bytes of the whole-document one.
func checkReferences(root, sigEl *etree.Element, refs []types.Reference) ([]byte, error) {
	if len(refs) == 0 {
		return nil, errors.New("SignedInfo has no Reference")
	}
	rootID := idOf(root)
	var signed []byte
	for i, ref := range refs {
		wholeDocument := ref.URI == "" || (rootID != "" && ref.URI == "#"+rootID)
		out, err := dereference(root, sigEl, ref, wholeDocument)
		if err != nil {
			return nil, fmt.Errorf("reference %d (URI %q): %w", i+1, ref.URI, err)
		}
		hash, ok := digestMethods[ref.DigestAlgo.Algorithm]
		if !ok {
			return nil, fmt.Errorf("reference %d: digest method %q is not accepted", i+1, ref.DigestAlgo.Algorithm)
		}
		want, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(ref.DigestValue), ""))
		if err != nil {
			return nil, fmt.Errorf("reference %d: DigestValue is not base64", i+1)
		}
		h := hash.New()
		h.Write(out)
		if subtle.ConstantTimeCompare(h.Sum(nil), want) != 1 {
			return nil, fmt.Errorf("reference %d (URI %q): digest does not match: the signed content was changed", i+1, ref.URI)
		}
		if wholeDocument && signed == nil {
			signed = out
		}
	}
	if signed == nil {
		return nil, errors.New("no reference covers the whole document")
	}
	return signed, nil
}

// dereference applies the transforms of ref to what it points at.
func dereference(root, sigEl *etree.Element, ref types.Reference, wholeDocument bool) ([]byte, error) {
	var target *etree.Element
	var ctx etreeutils.NSContext
	if wholeDocument {
		// A copy of the document without the signature: the enveloped
		// transform is required, and applied below.
		target = root.Copy()
		ctx = etreeutils.NewDefaultNSContext()
	} else {
		if !strings.HasPrefix(ref.URI, "#") || len(ref.URI) < 2 {
			return nil, errors.New("only same-document references are followed")
		}
		el, err := uniqueByID(root, ref.URI[1:])
		if err != nil {
			return nil, err
		}
		target = el
		if ctx, err = etreeutils.NSBuildParentContext(el); err != nil {
			return nil, err
		}
	}

	var c14n dsig.Canonicalizer
	enveloped := false
	for _, tr := range ref.Transforms.Transforms {
		if tr.Algorithm == envelopedTransform {
			if !wholeDocument || enveloped {
				return nil, errors.New("unexpected enveloped-signature transform")
			}
			if !removeChild(target, indexOfChild(root, sigEl)) {
				return nil, errors.New("signature to remove not found")
			}
			enveloped = true
			continue
		}
		if c14n != nil {
			return nil, errors.New("more than one canonicalisation transform")
		}
		prefixList := ""
		if tr.InclusiveNamespaces != nil {
			prefixList = tr.InclusiveNamespaces.PrefixList
		}
		var err error
		if c14n, err = canonicalizer(tr.Algorithm, prefixList); err != nil {
			return nil, fmt.Errorf("transform: %w", err)
		}
	}
	if wholeDocument && !enveloped {
		return nil, errors.New("the whole-document reference lacks the enveloped-signature transform")
	}
	if c14n == nil {
		// A node-set becomes octets through inclusive C14N 1.0 (XML-DSig
		// 4.4.3.2); comments are dropped for same-document references.
		c14n = dsig.MakeC14N10RecCanonicalizer()
	}
	if wholeDocument && (c14n.Algorithm() == dsig.CanonicalXML10ExclusiveWithCommentsAlgorithmId ||
		c14n.Algorithm() == dsig.CanonicalXML10WithCommentsAlgorithmId || c14n.Algorithm() == dsig.CanonicalXML11WithCommentsAlgorithmId) &&
		ref.URI == "" {
		return nil, errors.New("URI=\"\" excludes comments; a with-comments transform is not accepted")
	}
	return canonicalize(c14n, target, ctx)
}

// idOf returns the Id attribute of el (Id, ID or id, unprefixed).
func idOf(el *etree.Element) string {
	for _, a := range el.Attr {
		if a.Space == "" && (a.Key == "Id" || a.Key == "ID" || a.Key == "id") {
			return a.Value
		}
	}
	return ""
}

// uniqueByID finds the one element whose Id is id; a duplicate Id is an
// attempt to make the checked and the used element differ.
func uniqueByID(root *etree.Element, id string) (*etree.Element, error) {
	var found *etree.Element
	n := 0
	var walk func(el *etree.Element)
	walk = func(el *etree.Element) {
		if idOf(el) == id {
			n++
			found = el
		}
		for _, c := range el.ChildElements() {
			walk(c)
		}
	}
	walk(root)
	switch n {
	case 0:
		return nil, fmt.Errorf("no element with Id %q", id)
	case 1:
		return found, nil
	}
	return nil, fmt.Errorf("%d elements have Id %q", n, id)
}

func indexOfChild(parent, child *etree.Element) int {
	for i, c := range parent.Child {
		if c == child {
			return i
		}
	}
	return -1
}

// removeChild removes the i-th token of el if it is an element.
func removeChild(el *etree.Element, i int) bool {
	if i < 0 || i >= len(el.Child) {
		return false
	}
	c, ok := el.Child[i].(*etree.Element)
	if !ok {
		return false
	}
	el.RemoveChild(c)
	return true
}

// certificateEqual reports whether a and b are the same certificate.
func certificateEqual(a, b *x509.Certificate) bool {
	return a != nil && b != nil && bytes.Equal(a.Raw, b.Raw)
}

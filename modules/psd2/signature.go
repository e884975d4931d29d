package psd2

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/bankedge/bankedge/modules/psd2/certheader"
	"github.com/bankedge/bankedge/modules/psd2/httpsig"
)

// signatureCertificate decodes and verifies TPP-Signature-Certificate, and
// checks that it is not revoked.
func (h *QSEAL) signatureCertificate(r *http.Request) (*verifiedCert, *rejection) {
	vc, rej := h.decodeSignatureCertificate(r)
	if rej != nil {
		return nil, rej
	}
	if rej := h.verifier.checkRevocation(r.Context(), vc); rej != nil {
		rej.Path = headerSignatureCert
		return nil, rej
	}
	return vc, nil
}

func (h *QSEAL) decodeSignatureCertificate(r *http.Request) (*verifiedCert, *rejection) {
	value := header(r, keySignatureCert)
	if value == "" {
		return nil, rejectPath(CertificateMissing, headerSignatureCert, "TPP-Signature-Certificate header is missing")
	}
	now := h.verifier.now()
	if vc := h.verifier.lookupHeader(value, now); vc != nil {
		h.verifier.meterLookup(true)
		return vc, nil
	}
	buf := derPool.Get().(*[]byte)
	defer derPool.Put(buf)
	der, err := certheader.AppendDecode((*buf)[:0], value)
	*buf = der[:0]
	if err != nil {
		return nil, rejectPath(CertificateInvalid, headerSignatureCert, "TPP-Signature-Certificate cannot be decoded: "+err.Error())
	}
	sum := sha256Sum(der)
	if vc := h.verifier.lookup(sum, now); vc != nil {
		h.verifier.meterLookup(true)
		h.verifier.storeHeader(value, vc)
		return vc, nil
	}
	h.verifier.meterLookup(false)
	// Parse a copy: the decode buffer goes back to the pool, the cached
	// certificate stays.
	cert, err := x509.ParseCertificate(bytes.Clone(der))
	if err != nil {
		return nil, rejectPath(CertificateInvalid, headerSignatureCert, "TPP-Signature-Certificate is not a valid certificate")
	}
	vc, rej := h.verifier.verify(cert, nil, sum)
	if rej != nil {
		rej.Path = headerSignatureCert
		return nil, rej
	}
	h.verifier.storeHeader(value, vc)
	return vc, nil
}

// checkKeyID checks that the Signature's keyId names the QSEAL.
func (h *QSEAL) checkKeyID(sig *httpsig.Signature, qseal *verifiedCert) *rejection {
	if qseal.keyIDMatches(sig.KeyID) {
		return nil
	}
	keyID, err := httpsig.ParseKeyID(sig.KeyID)
	if err != nil {
		return rejectPath(SignatureInvalid, headerSignature, err.Error())
	}
	if h.profile.KeyIDIssuer && keyID.Issuer == "" {
		return rejectPath(SignatureInvalid, headerSignature, "keyId must be SN=<serial>,CA=<issuer DN>")
	}
	if err := keyID.Matches(qseal.cert); err != nil {
		return rejectPath(SignatureInvalid, headerSignature, "keyId does not name the TPP-Signature-Certificate: "+err.Error())
	}
	// A copy, so that only this slow path allocates.
	keyIDCopy := sig.KeyID
	qseal.keyID.Store(&keyIDCopy)
	return nil
}

// verifySignature checks the signature over the signed headers with the
// QSEAL's key.
func (h *QSEAL) verifySignature(r *http.Request, sig *httpsig.Signature, alg httpsig.Algorithm, qseal *verifiedCert) *rejection {
	buf := derPool.Get().(*[]byte)
	defer derPool.Put(buf)
	signing, err := httpsig.AppendSigningString((*buf)[:0], sig.Headers, func(name string) (string, bool) {
		return headerValue(r, name)
	})
	*buf = signing[:0]
	if err != nil {
		return rejectPath(SignatureInvalid, headerSignature, err.Error())
	}
	msg := signing
	if h.profile.SignBase64 {
		msgBuf := derPool.Get().(*[]byte)
		defer derPool.Put(msgBuf)
		msg = base64.StdEncoding.AppendEncode((*msgBuf)[:0], signing)
		*msgBuf = msg[:0]
	}
	if err := qseal.sigKey.Verify(alg, msg, sig.Signature); err != nil {
		text := err.Error()
		if errors.Is(err, httpsig.ErrVerification) {
			// Say what was expected, which is most often the cause:
			// the TPP signed with another profile's conventions.
			text += " (" + h.profile.DescribeSignature(alg, sig.Headers) + ")"
		}
		return rejectPath(SignatureInvalid, headerSignature, text)
	}
	return nil
}

// headerValue returns a header as it enters a signing string: several
// values joined by ", ", and the pseudo-header (request-target).
func headerValue(r *http.Request, name string) (string, bool) {
	switch name {
	case pseudoRequestTarget:
		return strings.ToLower(r.Method) + " " + r.RequestURI, true
	case "host":
		return r.Host, r.Host != ""
	}
	values := r.Header[canonicalKey(name)]
	switch len(values) {
	case 0:
		return "", false
	case 1:
		return values[0], true
	}
	return strings.Join(values, ", "), true
}

// canonicalKey maps the lower-case names of signed headers to header keys;
// the usual ones come from a table, so that no request pays for
// canonicalising them.
func canonicalKey(name string) string {
	switch name {
	case "digest":
		return "Digest"
	case "x-request-id":
		return "X-Request-Id"
	case "date":
		return "Date"
	case "psu-id":
		return "Psu-Id"
	case "psu-corporate-id":
		return "Psu-Corporate-Id"
	case "tpp-redirect-uri":
		return "Tpp-Redirect-Uri"
	}
	return textproto.CanonicalMIMEHeaderKey(name)
}

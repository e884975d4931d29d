package httpsig

import "strings"

// DescribeDigest says, for error messages, what the profile's Digest holds
// when computed with alg, e.g. "profile piraeus: SHA-256 of the minified
// JSON body (or of the body as sent), hex, base64", so that a TPP whose
// digest does not match learns which convention the gateway expects.
func (p Profile) DescribeDigest(alg DigestAlgorithm) string {
	var b strings.Builder
	b.WriteString("profile ")
	b.WriteString(p.Name)
	b.WriteString(": ")
	b.WriteString(alg.Name)
	if p.CompactJSON {
		b.WriteString(" of the minified JSON body (or of the body as sent)")
	} else {
		b.WriteString(" of the body as sent")
	}
	if p.DigestEncoding == DigestHex {
		b.WriteString(", lower-case hex")
	}
	b.WriteString(", base64")
	return b.String()
}

// DescribeSignature says, for error messages, what the profile signs with
// alg over headers, e.g. "profile piraeus: rsa-sha256 over the base64 of
// the signing string of digest x-request-id".
func (p Profile) DescribeSignature(alg Algorithm, headers []string) string {
	var b strings.Builder
	b.WriteString("profile ")
	b.WriteString(p.Name)
	b.WriteString(": ")
	b.WriteString(alg.Name)
	b.WriteString(" with the TPP-Signature-Certificate key over ")
	if p.SignBase64 {
		b.WriteString("the base64 of ")
	}
	b.WriteString("the signing string of ")
	b.WriteString(strings.Join(headers, " "))
	b.WriteString(", one \"name: value\" line each, joined by \\n")
	return b.String()
}

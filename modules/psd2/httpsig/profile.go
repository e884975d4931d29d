package httpsig

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Algorithm is a signature algorithm of the Signature header.
type Algorithm struct {
	Name string
	Hash crypto.Hash
}

// The algorithms PSD2 banks accept: RSASSA-PKCS1-v1_5 with SHA-256 or SHA-512.
var (
	RSASHA256 = Algorithm{"rsa-sha256", crypto.SHA256}
	RSASHA512 = Algorithm{"rsa-sha512", crypto.SHA512}
)

// ErrAlgorithm marks an algorithm that is not supported.
var ErrAlgorithm = errors.New("unsupported signature algorithm")

// ParseAlgorithm returns the algorithm named name, case-insensitively.
func ParseAlgorithm(name string) (Algorithm, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "rsa-sha256":
		return RSASHA256, nil
	case "rsa-sha512":
		return RSASHA512, nil
	}
	return Algorithm{}, fmt.Errorf("%w %q (want rsa-sha256 or rsa-sha512)", ErrAlgorithm, name)
}

// Profile is a bank's flavour of request signing.
type Profile struct {
	Name string
	// DigestEncoding is how the Digest header writes the body hash.
	DigestEncoding DigestEncoding
	// CompactJSON also accepts a digest computed over the body with JSON
	// whitespace removed; Piraeus tells TPPs to hash the minified body.
	CompactJSON bool
	// SignBase64 signs the base64 text of the signing string (Piraeus)
	// instead of the signing string itself.
	SignBase64 bool
	// KeyIDIssuer requires keyId in the form SN=<serial>,CA=<issuer DN>.
	KeyIDIssuer bool
	// RequiredHeaders must all be signed.
	RequiredHeaders []string
	// ExactHeaders requires the signed headers to be exactly RequiredHeaders.
	ExactHeaders bool
	// ConditionalHeaders must be signed whenever the request carries them.
	ConditionalHeaders []string
}

// The two profiles the gateway knows.
var (
	Piraeus = Profile{
		Name:            "piraeus",
		DigestEncoding:  DigestHex,
		CompactJSON:     true,
		SignBase64:      true,
		RequiredHeaders: []string{"digest", "x-request-id"},
		ExactHeaders:    true,
	}
	BerlinGroup = Profile{
		Name:               "berlingroup",
		DigestEncoding:     DigestRaw,
		KeyIDIssuer:        true,
		RequiredHeaders:    []string{"digest", "x-request-id"},
		ConditionalHeaders: []string{"psu-id", "psu-corporate-id", "tpp-redirect-uri"},
	}
)

// ProfileByName returns the named built-in profile.
func ProfileByName(name string) (Profile, error) {
	switch strings.ToLower(name) {
	case "piraeus":
		return Piraeus, nil
	case "berlingroup", "berlin-group", "bg":
		return BerlinGroup, nil
	}
	return Profile{}, fmt.Errorf("unknown signature profile %q (want piraeus or berlingroup)", name)
}

// ErrHeaders marks a signed-header list that breaks the profile.
var ErrHeaders = errors.New("signed headers do not follow the profile")

// CheckHeaders checks the signed-header list against the profile. present
// reports whether the request carries a header.
func (p Profile) CheckHeaders(signed []string, present func(name string) bool) error {
	for i, h := range signed {
		if slices.Contains(signed[:i], h) {
			return fmt.Errorf("%w: %q is listed twice", ErrHeaders, h)
		}
	}
	for _, h := range p.RequiredHeaders {
		if !slices.Contains(signed, h) {
			return fmt.Errorf("%w: %q must be signed", ErrHeaders, h)
		}
	}
	if p.ExactHeaders && len(signed) != len(p.RequiredHeaders) {
		return fmt.Errorf("%w: must be exactly %q", ErrHeaders, strings.Join(p.RequiredHeaders, " "))
	}
	for _, h := range p.ConditionalHeaders {
		if present(h) && !slices.Contains(signed, h) {
			return fmt.Errorf("%w: %q is present and must be signed", ErrHeaders, h)
		}
	}
	return nil
}

// ErrMissingHeader marks a signed header that the request does not carry.
var ErrMissingHeader = errors.New("signed header missing from the request")

// AppendSigningString appends the signing string for headers to dst: one
// "name: value" line per header, in order, joined by "\n" with no trailing
// newline. value returns a header's value (several values already joined by
// ", ") and whether it is present.
func AppendSigningString(dst []byte, headers []string, value func(name string) (string, bool)) ([]byte, error) {
	for i, h := range headers {
		v, ok := value(h)
		if !ok {
			return dst, fmt.Errorf("%w: %q", ErrMissingHeader, h)
		}
		if i > 0 {
			dst = append(dst, '\n')
		}
		dst = append(dst, h...)
		dst = append(dst, ": "...)
		dst = append(dst, strings.TrimSpace(v)...)
	}
	return dst, nil
}

// Message returns the bytes the profile signs for a signing string.
func (p Profile) Message(signingString []byte) []byte {
	if !p.SignBase64 {
		return signingString
	}
	return base64.StdEncoding.AppendEncode(make([]byte, 0, base64.StdEncoding.EncodedLen(len(signingString))), signingString)
}

// ErrVerification marks a signature that does not verify.
var ErrVerification = errors.New("signature does not verify")

// checkHash refuses an Algorithm without a usable hash, such as the zero
// value, on which crypto.Hash.New would panic.
func checkHash(alg Algorithm) error {
	if !alg.Hash.Available() {
		return fmt.Errorf("%w %q: no hash function", ErrAlgorithm, alg.Name)
	}
	return nil
}

// Sign signs msg with key and returns the base64 text of the signature.
// The key must be RSA: the algorithms are RSASSA-PKCS1-v1_5.
func Sign(key crypto.Signer, alg Algorithm, msg []byte) (string, error) {
	// An ECDSA signer would otherwise sign happily and the header would
	// carry an ECDSA signature under an rsa-* algorithm name.
	if _, ok := key.Public().(*rsa.PublicKey); !ok {
		return "", fmt.Errorf("%w: %s needs an RSA key, got %T", ErrAlgorithm, alg.Name, key.Public())
	}
	if err := checkHash(alg); err != nil {
		return "", err
	}
	h := alg.Hash.New()
	h.Write(msg)
	sig, err := key.Sign(rand.Reader, h.Sum(nil), alg.Hash)
	if err != nil {
		return "", fmt.Errorf("signing: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

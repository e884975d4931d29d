package httpsig

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
)

// MaxDigestLen bounds the Digest header.
const MaxDigestLen = 2 << 10

// ErrDigestFormat marks a Digest header that cannot be parsed.
var ErrDigestFormat = errors.New("malformed Digest header")

// DigestEncoding says how a hash is written after "ALG=".
type DigestEncoding int

const (
	// DigestRaw is RFC 3230 and the Berlin Group: base64 of the raw hash.
	DigestRaw DigestEncoding = iota
	// DigestHex is Piraeus Bank: base64 of the lower-case hex text of the hash.
	DigestHex
)

func (e DigestEncoding) String() string {
	if e == DigestHex {
		return "hex"
	}
	return "raw"
}

// DigestAlgorithm is a hash algorithm accepted in a Digest header.
type DigestAlgorithm struct {
	Name string // canonical token, e.g. "SHA-256"
	Hash crypto.Hash
}

// New returns a new hash of this algorithm.
func (a DigestAlgorithm) New() hash.Hash {
	if a.Hash == crypto.SHA512 {
		return sha512.New()
	}
	return sha256.New()
}

// The algorithms PSD2 banks accept.
var (
	SHA256 = DigestAlgorithm{"SHA-256", crypto.SHA256}
	SHA512 = DigestAlgorithm{"SHA-512", crypto.SHA512}
)

// DigestValue is one "alg=value" element of a Digest header.
type DigestValue struct {
	// Algorithm is the token as sent; Supported tells whether it is known.
	Algorithm string
	Supported bool
	Alg       DigestAlgorithm
	// Value is the encoded hash as sent.
	Value string
	// decoded holds the base64-decoded value of a supported algorithm,
	// decodedLen bytes of it, without allocating; a value longer than any
	// digest in either encoding is in long instead.
	decoded    [maxDecodedDigest]byte
	decodedLen int
	long       []byte
}

// bytes returns the decoded value.
func (d *DigestValue) bytes() []byte {
	if d.long != nil {
		return d.long
	}
	return d.decoded[:d.decodedLen]
}

// maxDecodedDigest is the longest decoded value that can match: the hex
// text of a SHA-512 hash.
const maxDecodedDigest = 2 * sha512.Size

// ParseDigest parses a Digest header: one or more comma-separated
// "algorithm=value" pairs. Algorithm tokens are case-insensitive (RFC 3230;
// some banks send "sha-256"). It fails if no pair names a supported
// algorithm.
func ParseDigest(v string) ([]DigestValue, error) {
	return AppendDigest(nil, v)
}

// AppendDigest is ParseDigest appending to dst: with room in dst (a local
// array, say) it does not allocate.
func AppendDigest(dst []DigestValue, v string) ([]DigestValue, error) {
	if len(v) > MaxDigestLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrDigestFormat, MaxDigestLen)
	}
	out := dst[:0]
	supported := false
	for rest := v; rest != ""; {
		var part string
		part, rest, _ = strings.Cut(rest, ",")
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, value, ok := strings.Cut(part, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" || value == "" {
			return nil, fmt.Errorf("%w: %q is not algorithm=value", ErrDigestFormat, part)
		}
		out = append(out, DigestValue{Algorithm: name, Value: value})
		dv := &out[len(out)-1]
		switch {
		case strings.EqualFold(name, "SHA-256"):
			dv.Alg, dv.Supported = SHA256, true
		case strings.EqualFold(name, "SHA-512"):
			dv.Alg, dv.Supported = SHA512, true
		}
		if dv.Supported {
			if err := dv.decode(value); err != nil {
				return nil, fmt.Errorf("%w: %s value is not base64", ErrDigestFormat, name)
			}
			supported = true
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrDigestFormat)
	}
	if !supported {
		return nil, fmt.Errorf("%w: no SHA-256 or SHA-512 value", ErrDigestFormat)
	}
	return out, nil
}

// decode decodes the base64 value into d.decoded. The text is copied to
// the stack first: converted to []byte for the decoder it would be copied
// to the heap.
func (d *DigestValue) decode(value string) error {
	const maxText = (maxDecodedDigest + 2) / 3 * 4
	if len(value) > maxText {
		long, err := base64.StdEncoding.DecodeString(value)
		d.long = long
		return err
	}
	var text [maxText]byte
	var raw [maxText / 4 * 3]byte
	n, err := base64.StdEncoding.Decode(raw[:], text[:copy(text[:], value)])
	if err != nil {
		return err
	}
	if n > len(d.decoded) {
		d.long = bytes.Clone(raw[:n])
		return nil
	}
	d.decodedLen = copy(d.decoded[:], raw[:n])
	return nil
}

// Matches reports whether the value encodes sum in the given encoding. The
// comparison is on decoded bytes and in constant time. A value of an
// unsupported algorithm never matches.
func (d DigestValue) Matches(sum []byte, enc DigestEncoding) bool {
	// Without this, an unsupported value (nothing decoded) or a zero
	// DigestValue would "match" an empty sum.
	if !d.Supported || len(sum) == 0 {
		return false
	}
	decoded := d.bytes()
	if enc == DigestHex {
		// Hex decoding makes the comparison case-insensitive, which the
		// lower-case rule of Piraeus does not forbid us to be.
		var room [sha512.Size]byte
		raw := room[:]
		if n := hex.DecodedLen(len(decoded)); n > len(raw) {
			raw = make([]byte, n)
		}
		n, err := hex.Decode(raw, decoded)
		if err != nil {
			return false
		}
		decoded = raw[:n]
	}
	return len(decoded) == len(sum) && subtle.ConstantTimeCompare(decoded, sum) == 1
}

// FormatDigest renders a Digest header value for sum.
func FormatDigest(alg DigestAlgorithm, sum []byte, enc DigestEncoding) string {
	if enc == DigestHex {
		return alg.Name + "=" + base64.StdEncoding.EncodeToString([]byte(hex.EncodeToString(sum)))
	}
	return alg.Name + "=" + base64.StdEncoding.EncodeToString(sum)
}

// Sum hashes body with alg.
func Sum(alg DigestAlgorithm, body []byte) []byte {
	return AppendSum(nil, alg, body)
}

// AppendSum appends the hash of body to dst, without allocating when dst
// has room.
func AppendSum(dst []byte, alg DigestAlgorithm, body []byte) []byte {
	if alg.Hash == crypto.SHA512 {
		sum := sha512.Sum512(body)
		return append(dst, sum[:]...)
	}
	sum := sha256.Sum256(body)
	return append(dst, sum[:]...)
}

// Package certheader decodes a certificate that a client or a proxy put in an
// HTTP header, in every form found in the field:
//
//   - base64 DER on one line (Piraeus, Caddy's certificate_der_base64,
//     HAProxy's ssl_c_der,base64);
//   - PEM, with or without the BEGIN/END lines, whose newlines arrive as
//     spaces or tabs once folded into a header (nginx $ssl_client_cert);
//   - URL-encoded PEM (nginx $ssl_client_escaped_cert);
//   - the RFC 9440 Client-Cert form, base64 DER between colons.
package certheader

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// MaxLen bounds the header value; real certificates are 1–3 KB of base64.
const MaxLen = 32 << 10

// Errors returned by Decode.
var (
	ErrEmpty    = errors.New("empty certificate header")
	ErrTooLarge = errors.New("certificate header too large")
	ErrEncoding = errors.New("certificate header is not base64 DER, PEM or RFC 9440")
)

const (
	pemBegin = "-----BEGIN CERTIFICATE-----"
	pemEnd   = "-----END CERTIFICATE-----"
)

// Decode returns the DER bytes of the certificate in v. It does not parse the
// certificate; it only checks that the bytes start like a DER SEQUENCE.
func Decode(v string) ([]byte, error) {
	return AppendDecode(nil, v)
}

// AppendDecode appends the DER bytes of the certificate in v to dst, so that
// callers on a hot path can reuse a buffer.
func AppendDecode(dst []byte, v string) ([]byte, error) {
	if len(v) > MaxLen {
		return dst, ErrTooLarge
	}
	v = strings.TrimSpace(v)
	if v == "" {
		return dst, ErrEmpty
	}
	if strings.IndexByte(v, '%') >= 0 {
		// Form encoding (url.QueryEscape and the like) writes a space as '+'
		// and a '+' as %2B, while path encoding and nginx keep '+' for '+'.
		// Taking a '+' literally in form-encoded PEM breaks the armour
		// ("BEGIN+CERTIFICATE") and corrupts the base64, so an escaped plus
		// or a plus in the armour selects form decoding.
		unescape := url.PathUnescape
		if strings.Contains(v, "%2B") || strings.Contains(v, "%2b") || strings.Contains(v, "+CERTIFICATE-----") {
			unescape = url.QueryUnescape
		}
		unescaped, err := unescape(v)
		if err != nil {
			return dst, fmt.Errorf("%w: bad URL encoding", ErrEncoding)
		}
		v = strings.TrimSpace(unescaped)
	}
	if len(v) >= 2 && v[0] == ':' && v[len(v)-1] == ':' {
		v = v[1 : len(v)-1]
	}
	if i := strings.Index(v, pemBegin); i >= 0 {
		v = v[i+len(pemBegin):]
		j := strings.Index(v, pemEnd)
		if j < 0 {
			return dst, fmt.Errorf("%w: PEM without END line", ErrEncoding)
		}
		v = v[:j]
	}
	if needsCleaning(v) {
		v = stripWhitespace(v)
	}
	if v == "" {
		return dst, ErrEmpty
	}
	enc := base64.StdEncoding
	if len(v)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	if strings.ContainsAny(v, "-_") {
		enc = base64.URLEncoding
		if len(v)%4 != 0 {
			enc = base64.RawURLEncoding
		}
	}
	return appendDER(dst, enc, v)
}

// appendDER appends the base64 text v, decoded with enc, to dst, and
// checks that the bytes start like a DER SEQUENCE.
func appendDER(dst []byte, enc *base64.Encoding, v string) ([]byte, error) {
	start := len(dst)
	out, err := enc.AppendDecode(dst, []byte(v))
	if err != nil {
		return dst, fmt.Errorf("%w: %v", ErrEncoding, err)
	}
	if der := out[start:]; len(der) < 2 || der[0] != 0x30 {
		return dst, fmt.Errorf("%w: decoded bytes are not a DER SEQUENCE", ErrEncoding)
	}
	return out, nil
}

func needsCleaning(v string) bool {
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case ' ', '\t', '\r', '\n':
			return true
		}
	}
	return false
}

func stripWhitespace(v string) string {
	var b strings.Builder
	b.Grow(len(v))
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case ' ', '\t', '\r', '\n':
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

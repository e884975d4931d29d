// Package httpsig implements the request signatures that PSD2 banks use with
// QSEAL certificates: the draft-cavage "Signature" header, the RFC 3230
// "Digest" header, the keyId forms of the Berlin Group and of Piraeus Bank,
// and the signing string. It has no HTTP server dependency so that it can be
// tested and fuzzed alone, and it is used both to verify (the gateway) and to
// sign (the TPP command line).
package httpsig

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxSignatureLen bounds the Signature header. An RSA-4096 signature is 684
// base64 characters; keyIds with a full issuer DN stay well under 1 KB.
const MaxSignatureLen = 8 << 10

// ErrFormat marks a Signature header that does not follow the grammar.
var ErrFormat = errors.New("malformed Signature header")

// Signature holds the parameters of a Signature header. Parameter names are
// matched case-insensitively; unknown parameters are ignored, as
// draft-cavage-http-signatures asks.
type Signature struct {
	KeyID     string
	Algorithm string
	// Headers lists the signed header names, lower-cased, in signing order.
	Headers []string
	// Signature is the base64 text of the signature value.
	Signature string
}

// ParseSignature parses a Signature header value: a comma-separated list of
// name=value parameters, where values are quoted strings (or, leniently,
// tokens) and optional whitespace may surround "," and "=". Values are
// trimmed, so the Piraeus examples' keyId=" 6AA3…" parse. Typographic quotes
// (U+201C, U+201D), which the Piraeus documentation prints and TPPs copy,
// are treated as ASCII quotes. A parameter given twice is an error.
func ParseSignature(v string) (Signature, error) {
	return ParseSignatureWith(v, nil)
}

// ParseSignatureWith is ParseSignature storing the signed header names in
// the backing array of headers while it has room, so that a caller that
// passes a local array parses without allocating.
func ParseSignatureWith(v string, headers []string) (Signature, error) {
	sig := Signature{Headers: headers[:0]}
	if len(v) > MaxSignatureLen {
		return sig, fmt.Errorf("%w: longer than %d bytes", ErrFormat, MaxSignatureLen)
	}
	if !utf8.ValidString(v) {
		return sig, fmt.Errorf("%w: not valid UTF-8", ErrFormat)
	}
	var seen [4]bool
	var headersSet bool
	p := parser{s: v}
	for {
		p.skipSpace()
		if p.done() {
			break
		}
		name, err := p.token()
		if err != nil {
			return sig, err
		}
		p.skipSpace()
		if !p.consume('=') {
			return sig, fmt.Errorf("%w: expected '=' after %q", ErrFormat, name)
		}
		p.skipSpace()
		value, err := p.value()
		if err != nil {
			return sig, fmt.Errorf("%w (parameter %q)", err, name)
		}
		value = strings.TrimSpace(value)
		idx := -1
		// Names are tokens, ASCII: EqualFold is ToLower without its copy.
		switch {
		case strings.EqualFold(name, "keyid"):
			idx, sig.KeyID = 0, value
		case strings.EqualFold(name, "algorithm"):
			idx, sig.Algorithm = 1, value
		case strings.EqualFold(name, "headers"):
			idx, headersSet = 2, true
			// ToLower returns a lower-case value as is.
			for name := range strings.FieldsSeq(strings.ToLower(value)) {
				sig.Headers = append(sig.Headers, name)
			}
		case strings.EqualFold(name, "signature"):
			idx, sig.Signature = 3, value
		}
		if idx >= 0 {
			if seen[idx] {
				return sig, fmt.Errorf("%w: parameter %q given twice", ErrFormat, name)
			}
			seen[idx] = true
		}
		p.skipSpace()
		if p.done() {
			break
		}
		if !p.consume(',') {
			return sig, fmt.Errorf("%w: expected ',' after parameter %q", ErrFormat, name)
		}
	}
	switch {
	case sig.KeyID == "":
		return sig, fmt.Errorf("%w: keyId is missing", ErrFormat)
	case sig.Signature == "":
		return sig, fmt.Errorf("%w: signature is missing", ErrFormat)
	case headersSet && len(sig.Headers) == 0:
		return sig, fmt.Errorf("%w: headers is empty", ErrFormat)
	}
	return sig, nil
}

// String renders the header value in the compact form banks document.
// Values are escaped so that ParseSignature gives them back, and an empty
// algorithm or header list is left out rather than rendered as "", which
// ParseSignature refuses for headers.
func (s Signature) String() string {
	var b strings.Builder
	b.WriteString(`keyId=`)
	writeQuoted(&b, s.KeyID)
	if s.Algorithm != "" {
		b.WriteString(`,algorithm=`)
		writeQuoted(&b, s.Algorithm)
	}
	if len(s.Headers) > 0 {
		b.WriteString(`,headers=`)
		writeQuoted(&b, strings.Join(s.Headers, " "))
	}
	b.WriteString(`,signature=`)
	writeQuoted(&b, s.Signature)
	return b.String()
}

// writeQuoted writes v as a quoted string, escaping '"' and '\'. The
// typographic quotes that ParseSignature also takes as delimiters are
// escaped too: a backslash before their first byte is a valid quoted-pair
// (obs-text) and keeps the parser from ending the string there.
func writeQuoted(b *strings.Builder, v string) {
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '"' || c == '\\' || strings.HasPrefix(v[i:], "\u201c") || strings.HasPrefix(v[i:], "\u201d") {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
}

type parser struct {
	s string
	i int
}

func (p *parser) done() bool { return p.i >= len(p.s) }

func (p *parser) skipSpace() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *parser) consume(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func (p *parser) token() (string, error) {
	start := p.i
	for p.i < len(p.s) && isTokenChar(p.s[p.i]) {
		p.i++
	}
	if p.i == start {
		return "", fmt.Errorf("%w: expected a parameter name at offset %d", ErrFormat, start)
	}
	return p.s[start:p.i], nil
}

// quoteAt reports the width of an opening or closing quote at p.i: an ASCII
// quote, or a typographic double quote.
func (p *parser) quoteAt() int {
	if p.i >= len(p.s) {
		return 0
	}
	if p.s[p.i] == '"' {
		return 1
	}
	r, size := utf8.DecodeRuneInString(p.s[p.i:])
	if r == '\u201c' || r == '\u201d' {
		return size
	}
	return 0
}

func (p *parser) value() (string, error) {
	if w := p.quoteAt(); w > 0 {
		p.i += w
		// Fast path: a plain value (no escape, no typographic quote, no
		// control character) up to an ASCII quote is returned as a slice
		// of the header, without copying.
		for j := p.i; j < len(p.s); j++ {
			c := p.s[j]
			if c == '"' {
				v := p.s[p.i:j]
				p.i = j + 1
				return v, nil
			}
			if c == '\\' || c >= 0x80 || c < 0x20 && c != '\t' || c == 0x7f {
				break
			}
		}
		var b strings.Builder
		for {
			if p.done() {
				return "", fmt.Errorf("%w: unterminated quoted string", ErrFormat)
			}
			if w := p.quoteAt(); w > 0 {
				p.i += w
				return b.String(), nil
			}
			c := p.s[p.i]
			if c == '\\' {
				p.i++
				if p.done() {
					return "", fmt.Errorf("%w: dangling escape", ErrFormat)
				}
				c = p.s[p.i]
			}
			// RFC 9110 quoted-pair does not allow control characters either:
			// an escaped CR, LF or NUL would otherwise reach the keyId and
			// the logs.
			if c < 0x20 && c != '\t' || c == 0x7f {
				return "", fmt.Errorf("%w: control character in quoted string", ErrFormat)
			}
			b.WriteByte(c)
			p.i++
		}
	}
	// Token values are allowed by RFC 7235 auth-param; base64 '=' padding
	// and '/' are not token characters, so accept them too.
	start := p.i
	for p.i < len(p.s) && (isTokenChar(p.s[p.i]) || p.s[p.i] == '/' || p.s[p.i] == '=') {
		p.i++
	}
	if p.i == start {
		return "", fmt.Errorf("%w: expected a value at offset %d", ErrFormat, start)
	}
	return p.s[start:p.i], nil
}

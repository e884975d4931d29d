package certheader

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// The RFC 9440 header fields a TLS-terminating proxy fills in.
const (
	// ClientCertField carries the client's end-entity certificate.
	ClientCertField = "Client-Cert"
	// ClientCertChainField carries the rest of the chain the client sent.
	ClientCertChainField = "Client-Cert-Chain"
)

// MaxChain bounds the certificates of a Client-Cert-Chain.
const MaxChain = 10

// AppendClientCert appends to dst the DER certificate of an RFC 9440
// Client-Cert field value: a Structured Field (RFC 8941) Item that is a Byte
// Sequence, ":" base64 ":". Parameters are allowed and ignored, as RFC 8941
// asks of unknown ones. Unlike Decode it takes no other form: the field is
// written by a proxy, and anything else is a misconfiguration to report.
func AppendClientCert(dst []byte, v string) ([]byte, error) {
	if len(v) > MaxLen {
		return dst, ErrTooLarge
	}
	p := sfParser{s: strings.Trim(v, " \t")}
	if p.s == "" {
		return dst, ErrEmpty
	}
	out, err := p.certificate(dst)
	if err != nil {
		return dst, err
	}
	if !p.done() {
		return dst, fmt.Errorf("%w: Client-Cert is not a single byte sequence", ErrEncoding)
	}
	return out, nil
}

// ClientCertChain decodes an RFC 9440 Client-Cert-Chain field value (its
// field lines joined with ", "): a Structured Field List of Byte Sequences,
// each a DER certificate, at most MaxChain of them. An empty value is an
// empty chain.
func ClientCertChain(v string) ([][]byte, error) {
	if len(v) > MaxLen*MaxChain {
		return nil, ErrTooLarge
	}
	p := sfParser{s: strings.Trim(v, " \t")}
	var chain [][]byte
	for !p.done() {
		if len(chain) == MaxChain {
			return nil, fmt.Errorf("%w: Client-Cert-Chain has more than %d certificates", ErrEncoding, MaxChain)
		}
		der, err := p.certificate(nil)
		if err != nil {
			return nil, err
		}
		chain = append(chain, der)
		p.skipOWS()
		if p.done() {
			break
		}
		if !p.consume(',') {
			return nil, fmt.Errorf("%w: Client-Cert-Chain members must be separated by commas", ErrEncoding)
		}
		p.skipOWS()
		if p.done() {
			return nil, fmt.Errorf("%w: Client-Cert-Chain ends with a comma", ErrEncoding)
		}
	}
	return chain, nil
}

// sfParser reads RFC 8941 structured field values, as much of them as the
// two certificate fields need.
type sfParser struct {
	s string
	i int
}

func (p *sfParser) done() bool { return p.i >= len(p.s) }

func (p *sfParser) peek() byte {
	if p.done() {
		return 0
	}
	return p.s[p.i]
}

func (p *sfParser) consume(c byte) bool {
	if p.peek() == c && !p.done() {
		p.i++
		return true
	}
	return false
}

func (p *sfParser) skipSP() {
	for p.peek() == ' ' {
		p.i++
	}
}

func (p *sfParser) skipOWS() {
	for c := p.peek(); c == ' ' || c == '\t'; c = p.peek() {
		p.i++
	}
}

// certificate reads a Byte Sequence with its parameters and appends its
// bytes, which must start like a DER SEQUENCE, to dst.
func (p *sfParser) certificate(dst []byte) ([]byte, error) {
	if p.peek() != ':' {
		return dst, fmt.Errorf("%w: a certificate field holds a byte sequence (:base64:)", ErrEncoding)
	}
	b64, err := p.byteSequence()
	if err != nil {
		return dst, err
	}
	if err := p.parameters(); err != nil {
		return dst, err
	}
	// RFC 8941 asks parsers not to fail on missing padding.
	enc := base64.StdEncoding
	if len(b64)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	return appendDER(dst, enc, b64)
}

// byteSequence reads ":" base64 ":" and returns the base64 text.
func (p *sfParser) byteSequence() (string, error) {
	p.i++ // ':'
	end := strings.IndexByte(p.s[p.i:], ':')
	if end < 0 {
		return "", fmt.Errorf("%w: byte sequence without its closing colon", ErrEncoding)
	}
	b64 := p.s[p.i : p.i+end]
	for i := 0; i < len(b64); i++ {
		if c := b64[i]; !isAlnum(c) && c != '+' && c != '/' && c != '=' {
			return "", fmt.Errorf("%w: byte sequence holds %q, not base64", ErrEncoding, c)
		}
	}
	if b64 == "" {
		return "", ErrEmpty
	}
	p.i += end + 1
	return b64, nil
}

// parameters skips ";key[=value]" parameters, checking their syntax.
func (p *sfParser) parameters() error {
	for p.consume(';') {
		p.skipSP()
		if c := p.peek(); !('a' <= c && c <= 'z' || c == '*') {
			return fmt.Errorf("%w: bad parameter key", ErrEncoding)
		}
		for c := p.peek(); 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.' || c == '*'; c = p.peek() {
			p.i++
		}
		if p.consume('=') {
			if err := p.bareItem(); err != nil {
				return err
			}
		}
	}
	return nil
}

// bareItem skips a parameter value: an integer or decimal, a string, a
// token, a byte sequence or a boolean.
func (p *sfParser) bareItem() error {
	c := p.peek()
	switch {
	case c == '-' || '0' <= c && c <= '9':
		p.consume('-')
		digits, frac, dot := 0, 0, false
		for c := p.peek(); '0' <= c && c <= '9' || c == '.' && !dot; c = p.peek() {
			switch {
			case c == '.':
				dot = true
			case dot:
				frac++
			default:
				digits++
			}
			p.i++
		}
		if digits == 0 || dot && (frac == 0 || frac > 3 || digits > 12) || digits > 15 {
			return fmt.Errorf("%w: bad number in a parameter", ErrEncoding)
		}
	case c == '"':
		p.i++
		for {
			if p.done() {
				return fmt.Errorf("%w: unterminated string in a parameter", ErrEncoding)
			}
			c := p.s[p.i]
			p.i++
			switch {
			case c == '"':
				return nil
			case c == '\\':
				if e := p.peek(); e != '"' && e != '\\' {
					return fmt.Errorf("%w: bad escape in a parameter", ErrEncoding)
				}
				p.i++
			case c < 0x20 || c > 0x7e:
				return fmt.Errorf("%w: control character in a parameter", ErrEncoding)
			}
		}
	case c == '*' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
		for c := p.peek(); isTchar(c) || c == ':' || c == '/'; c = p.peek() {
			p.i++
		}
	case c == ':':
		_, err := p.byteSequence()
		return err
	case c == '?':
		p.i++
		if !p.consume('0') && !p.consume('1') {
			return fmt.Errorf("%w: bad boolean in a parameter", ErrEncoding)
		}
	default:
		return fmt.Errorf("%w: bad parameter value", ErrEncoding)
	}
	return nil
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// isTchar reports an RFC 9110 token character.
func isTchar(c byte) bool {
	return isAlnum(c) || c != 0 && strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

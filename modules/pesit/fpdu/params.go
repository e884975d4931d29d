package fpdu

import (
	"encoding/binary"
	"fmt"
	"iter"
	"strings"
)

// MaxValueLen is the longest parameter value an LI can describe (the 0xFF
// escape carries a 2-byte length).
const MaxValueLen = 0xFFFF

// Param is one PI or PGI unit. Decoded Values alias the input bytes. For a
// PGI, Value holds the encoded nested PI units; iterate them with Children.
type Param struct {
	Code  byte
	Value []byte

	// err records a construction failure in PIUint or PGI, which have no
	// error result; AppendFPDU reports it.
	err error
}

// PI returns a parameter with the given code and value. The value is not
// copied.
func PI(code byte, value []byte) Param { return Param{Code: code, Value: value} }

// PIString returns a C-type parameter holding s as is (no padding).
func PIString(code byte, s string) Param { return Param{Code: code, Value: []byte(s)} }

// PIByte returns a one-byte (S or M type) parameter.
func PIByte(code byte, v byte) Param { return Param{Code: code, Value: []byte{v}} }

// PIUint returns an N-type parameter: v in big-endian, in the fewest bytes
// that hold it but at least minLen (up to 8). minLen lets callers match
// fixed-width fields some peers expect, such as a 3-byte PI 27.
func PIUint(code byte, v uint64, minLen int) Param {
	n := 1
	for x := v >> 8; x != 0; x >>= 8 {
		n++
	}
	n = max(n, min(minLen, 8))
	b := make([]byte, n)
	for i := n - 1; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
	return Param{Code: code, Value: b}
}

// PGI returns a parameter group holding children, encoded in the order
// given. Children must be PIs in strictly ascending code order; otherwise
// the failure is reported by AppendFPDU.
func PGI(code byte, children ...Param) Param {
	p := Param{Code: code}
	if !IsGroup(code) {
		p.err = fmt.Errorf("building PGI %d: not a group code: %w", code, ErrMalformed)
		return p
	}
	prev := -1
	for _, c := range children {
		if c.err != nil {
			p.err = fmt.Errorf("building PGI %d: %w", code, c.err)
			return p
		}
		if IsGroup(c.Code) {
			p.err = fmt.Errorf("building PGI %d: nested PGI %d: %w", code, c.Code, ErrMalformed)
			return p
		}
		if int(c.Code) <= prev {
			p.err = fmt.Errorf("building PGI %d: PI %d after PI %d: %w", code, c.Code, prev, ErrOrder)
			return p
		}
		prev = int(c.Code)
		var err error
		if p.Value, err = appendUnit(p.Value, c.Code, c.Value); err != nil {
			p.err = fmt.Errorf("building PGI %d: %w", code, err)
			return p
		}
	}
	return p
}

// IsGroup reports whether p is a PGI.
func (p Param) IsGroup() bool { return IsGroup(p.Code) }

// Children iterates the PI units nested in a PGI's value.
func (p Param) Children() ParamIter { return NewParamIter(p.Value) }

// Uint decodes an N-type (unsigned big-endian) value. Leading zero bytes are
// accepted because Connect:Express sends them (PI 13 as 00 24 cb).
func (p Param) Uint() (uint64, error) {
	v := p.Value
	if len(v) == 0 {
		return 0, fmt.Errorf("decoding PI %d as number: empty value: %w", p.Code, ErrMalformed)
	}
	for len(v) > 8 && v[0] == 0 {
		v = v[1:]
	}
	if len(v) > 8 {
		return 0, fmt.Errorf("decoding PI %d as number: %d significant bytes: %w", p.Code, len(v), ErrTooLarge)
	}
	var x uint64
	for _, c := range v {
		x = x<<8 | uint64(c)
	}
	return x, nil
}

// Trimmed returns the value without trailing blanks: for C-type values they
// are not significant, and an all-blank value means "absent". The result
// aliases Value.
func (p Param) Trimmed() []byte {
	v := p.Value
	for len(v) > 0 && v[len(v)-1] == ' ' {
		v = v[:len(v)-1]
	}
	return v
}

// Text returns the value as a string without trailing blanks (C type).
func (p Param) Text() string { return string(p.Trimmed()) }

// String formats the unit for logs: PI12="FILE", PI13=24cb, PGI9{…}. The
// value of PI 5 is never shown.
func (p Param) String() string {
	var sb strings.Builder
	writeParam(&sb, p)
	return sb.String()
}

// GoString makes %#v print the redacted String form, so PI 5 cannot leak
// through it either.
func (p Param) GoString() string { return "fpdu.Param{" + p.String() + "}" }

func writeParam(sb *strings.Builder, p Param) {
	if p.IsGroup() {
		fmt.Fprintf(sb, "PGI%d{", p.Code)
		it := p.Children()
		it.AllowEmpty = true
		for i := 0; it.Next(); i++ {
			if i > 0 {
				sb.WriteByte(' ')
			}
			writeParam(sb, it.Param())
		}
		if it.Err() != nil {
			sb.WriteString("<malformed>")
		}
		sb.WriteByte('}')
		return
	}
	fmt.Fprintf(sb, "PI%d=", p.Code)
	switch {
	case p.Code == PIAccessControl:
		fmt.Fprintf(sb, "<redacted %d bytes>", len(p.Value))
	case printable(p.Value):
		fmt.Fprintf(sb, "%q", p.Value)
	default:
		fmt.Fprintf(sb, "%x", p.Value)
	}
}

func printable(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < 0x20 || c > 0x7E {
			return false
		}
	}
	return true
}

// ParamIter walks the parameter units of an FPDU body or PGI value without
// allocating. It checks only the unit structure (LI and bounds); Decode
// also checks code order. Use it like bufio.Scanner:
//
//	it := fpdu.NewParamIter(body)
//	for it.Next() {
//		p := it.Param()
//		…
//	}
//	if err := it.Err(); err != nil { … }
type ParamIter struct {
	// AllowEmpty accepts LI = 0. The spec forbids it; only recordings
	// re-serialised by PeSIT Wizard contain it (empty PGIs). Set it before
	// the first call to Next.
	AllowEmpty bool

	rest []byte
	off  int
	cur  Param
	raw  []byte
	err  error
}

// NewParamIter returns an iterator over the units in body.
func NewParamIter(body []byte) ParamIter { return ParamIter{rest: body} }

// Next advances to the next unit and reports whether there is one. It
// returns false at the end of the input or on the first error.
func (it *ParamIter) Next() bool {
	if it.err != nil || len(it.rest) == 0 {
		return false
	}
	b := it.rest
	if len(b) < 2 {
		it.err = fmt.Errorf("decoding parameter at offset %d: no LI: %w", it.off, ErrTruncated)
		return false
	}
	code, n, hl := b[0], int(b[1]), 2
	if n == 0xFF {
		if len(b) < 4 {
			it.err = fmt.Errorf("decoding PI %d at offset %d: long LI cut short: %w", code, it.off, ErrTruncated)
			return false
		}
		n, hl = int(binary.BigEndian.Uint16(b[2:])), 4
	}
	if n == 0 && !it.AllowEmpty {
		it.err = fmt.Errorf("decoding PI %d at offset %d: LI is 0: %w", code, it.off, ErrMalformed)
		return false
	}
	if hl+n > len(b) {
		it.err = fmt.Errorf("decoding PI %d at offset %d: value of %d bytes exceeds the %d left: %w",
			code, it.off, n, len(b)-hl, ErrTruncated)
		return false
	}
	end := hl + n
	it.cur = Param{Code: code, Value: b[hl:end:end]}
	it.raw = b[:end:end]
	it.rest = b[end:]
	it.off += end
	return true
}

// Param returns the current unit. Its Value aliases the input.
func (it *ParamIter) Param() Param { return it.cur }

// Raw returns the current unit's encoded bytes (code, LI, value) as they
// appear in the input, so a rewriter can copy them unchanged.
func (it *ParamIter) Raw() []byte { return it.raw }

// Err returns the error that stopped the iteration, if any.
func (it *ParamIter) Err() error { return it.err }

// Params is a range-over-func form of ParamIter (strict: LI = 0 is an
// error). After an error it yields a zero Param with the error and stops.
func Params(body []byte) iter.Seq2[Param, error] {
	return func(yield func(Param, error) bool) {
		it := NewParamIter(body)
		for it.Next() {
			if !yield(it.Param(), nil) {
				return
			}
		}
		if err := it.Err(); err != nil {
			yield(Param{}, err)
		}
	}
}

// checkParams validates the units of body: structure, strictly ascending
// codes, and, at top level (group == 0), the same for each PGI's content.
// It returns the number of units.
func checkParams(body []byte, allowEmpty bool, group byte) (int, error) {
	it := NewParamIter(body)
	it.AllowEmpty = allowEmpty
	prev, n := -1, 0
	for it.Next() {
		p := it.Param()
		n++
		if int(p.Code) <= prev {
			if int(p.Code) == prev {
				return 0, fmt.Errorf("PI %d repeated: %w", p.Code, ErrOrder)
			}
			return 0, fmt.Errorf("PI %d after PI %d: %w", p.Code, prev, ErrOrder)
		}
		prev = int(p.Code)
		if !p.IsGroup() {
			continue
		}
		if group != 0 {
			return 0, fmt.Errorf("PGI %d nested in PGI %d: %w", p.Code, group, ErrMalformed)
		}
		if _, err := checkParams(p.Value, allowEmpty, p.Code); err != nil {
			return 0, fmt.Errorf("in PGI %d: %w", p.Code, err)
		}
	}
	return n, it.Err()
}

// appendUnit encodes one [code][LI][value] unit, using the 0xFF escape for
// values of 255 bytes or more.
func appendUnit(dst []byte, code byte, value []byte) ([]byte, error) {
	n := len(value)
	switch {
	case n == 0:
		return dst, fmt.Errorf("encoding PI %d: empty value (LI 0 is invalid): %w", code, ErrMalformed)
	case n > MaxValueLen:
		return dst, fmt.Errorf("encoding PI %d: %d-byte value: %w", code, n, ErrTooLarge)
	case n < 0xFF:
		dst = append(dst, code, byte(n))
	default:
		dst = append(dst, code, 0xFF, byte(n>>8), byte(n))
	}
	return append(dst, value...), nil
}

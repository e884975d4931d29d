package fpdu

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// FPDU is a decoded frame. Params and Data alias the decoded bytes.
type FPDU struct {
	Header
	// Params are the top-level units in wire order (control FPDUs).
	Params []Param
	// Data is the content of a data FPDU (DTF*), or, in lenient mode only,
	// the bare 3-byte diagnostic of an ISO-session style ABORT.
	Data []byte
}

// DecodeOptions selects how strictly Decode checks its input. The zero
// value is strict, as live peers require.
type DecodeOptions struct {
	// Lenient accepts what replayed recordings contain but live peers must
	// not send: LI = 0 (the empty PGIs of frames re-serialised by PeSIT
	// Wizard), and an ABORT whose 3-byte body is a bare diagnostic (the
	// ISO-session form of the 1989 spec), returned in Data.
	Lenient bool
}

// Decode decodes one complete FPDU strictly; see DecodeOptions.Decode.
func Decode(b []byte) (FPDU, error) { return DecodeOptions{}.Decode(b) }

// Decode decodes one complete FPDU: LTM must equal len(b), the type must be
// known, and parameters must be well formed, in strictly ascending code
// order at top level and inside each PGI (violations wrap ErrOrder). Data
// FPDUs are not interpreted: see ArticleIter.
func (o DecodeOptions) Decode(b []byte) (FPDU, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return FPDU{}, fmt.Errorf("decoding FPDU: %w", err)
	}
	switch {
	case int(h.Length) > len(b):
		return FPDU{}, fmt.Errorf("decoding %v: LTM %d exceeds the %d bytes given: %w", h.Type, h.Length, len(b), ErrTruncated)
	case int(h.Length) < len(b):
		return FPDU{}, fmt.Errorf("decoding %v: LTM %d but %d bytes given: %w", h.Type, h.Length, len(b), ErrMalformed)
	}
	f := FPDU{Header: h}
	body := b[HeaderLen:]
	if h.Type.IsData() || (o.Lenient && h.Type == TypeAbort && len(body) == 3) {
		if len(body) > 0 {
			f.Data = body
		}
		return f, nil
	}
	n, err := checkParams(body, o.Lenient, 0)
	if err != nil {
		return FPDU{}, fmt.Errorf("decoding %v: %w", h.Type, err)
	}
	if n > 0 {
		f.Params = make([]Param, 0, n)
		it := NewParamIter(body)
		it.AllowEmpty = o.Lenient
		for it.Next() {
			f.Params = append(f.Params, it.Param())
		}
	}
	return f, nil
}

// Get returns the unit with the given code, searching the top level first
// and then the content of each PGI.
func (f *FPDU) Get(code byte) (Param, bool) {
	for _, p := range f.Params {
		if p.Code == code {
			return p, true
		}
	}
	for _, p := range f.Params {
		if !p.IsGroup() {
			continue
		}
		it := p.Children()
		it.AllowEmpty = true // already validated by Decode
		for it.Next() {
			if it.Param().Code == code {
				return it.Param(), true
			}
		}
	}
	return Param{}, false
}

// Diag returns the diagnostic of the FPDU: PI 2, or the bare diagnostic of
// a leniently decoded ABORT. It wraps ErrMissing when there is none.
func (f *FPDU) Diag() (Diag, error) {
	if p, ok := f.Get(PIDiagnostic); ok {
		return ParseDiag(p.Value)
	}
	if f.Type == TypeAbort && len(f.Data) == 3 {
		return ParseDiag(f.Data)
	}
	return Diag{}, fmt.Errorf("%v has no PI 2: %w", f.Type, ErrMissing)
}

// Append re-encodes f (header with a recomputed LTM, Params, then Data) and
// appends it to dst.
func (f *FPDU) Append(dst []byte) ([]byte, error) {
	return appendFrame(dst, f.Type, f.DstID, f.SrcID, f.Data, f.Params)
}

// String formats the FPDU for logs, with PI 5 redacted and data shown only
// by its size.
func (f FPDU) String() string {
	var sb strings.Builder
	sb.WriteString(f.Header.String())
	for _, p := range f.Params {
		sb.WriteByte(' ')
		writeParam(&sb, p)
	}
	if f.Data != nil {
		fmt.Fprintf(&sb, " data=%dB", len(f.Data))
	}
	return sb.String()
}

// GoString makes %#v print the redacted String form.
func (f FPDU) GoString() string { return "fpdu.FPDU{" + f.String() + "}" }

// AppendFPDU encodes a control FPDU and appends it to dst. params must be
// in strictly ascending code order (ErrOrder otherwise), as must the
// content of each PGI; values of 255 bytes or more get the 0xFF long LI.
// LTM is computed. On error dst is returned unchanged.
func AppendFPDU(dst []byte, t Type, dstID, srcID byte, params ...Param) ([]byte, error) {
	if t.IsData() && len(params) > 0 {
		return dst, fmt.Errorf("encoding %v: data FPDUs carry no parameters: %w", t, ErrMalformed)
	}
	return appendFrame(dst, t, dstID, srcID, nil, params)
}

func appendFrame(dst []byte, t Type, dstID, srcID byte, data []byte, params []Param) ([]byte, error) {
	if !t.Known() {
		return dst, fmt.Errorf("encoding %v: %w", t, ErrUnknownType)
	}
	start := len(dst)
	out := append(dst, 0, 0, t.Phase(), t.Code(), dstID, srcID)
	prev := -1
	for _, p := range params {
		if p.err != nil {
			return dst, fmt.Errorf("encoding %v: %w", t, p.err)
		}
		if int(p.Code) <= prev {
			return dst, fmt.Errorf("encoding %v: PI %d after PI %d: %w", t, p.Code, prev, ErrOrder)
		}
		prev = int(p.Code)
		if p.IsGroup() {
			// PGI values may come from PI() rather than PGI(), so check them here.
			if _, err := checkParams(p.Value, false, p.Code); err != nil {
				return dst, fmt.Errorf("encoding %v: in PGI %d: %w", t, p.Code, err)
			}
		}
		var err error
		if out, err = appendUnit(out, p.Code, p.Value); err != nil {
			return dst, fmt.Errorf("encoding %v: %w", t, err)
		}
	}
	out = append(out, data...)
	n := len(out) - start
	if n > MaxFPDULen {
		return dst, fmt.Errorf("encoding %v: %d bytes: %w", t, n, ErrTooLarge)
	}
	binary.BigEndian.PutUint16(out[start:], uint16(n))
	return out, nil
}

// AppendData encodes a data FPDU (DTF, DTFDA, DTFMA or DTFFA) carrying data
// as is, with ID.SRC = 0, and appends it to dst.
func AppendData(dst []byte, t Type, dstID byte, data []byte) ([]byte, error) {
	if !t.IsData() {
		return dst, fmt.Errorf("encoding %v as data FPDU: %w", t, ErrMalformed)
	}
	return appendFrame(dst, t, dstID, 0, data, nil)
}

// AppendDTF encodes a mono-article DTF (ID.SRC = 0) and appends it to dst.
func AppendDTF(dst []byte, dstID byte, data []byte) ([]byte, error) {
	return AppendData(dst, TypeDTF, dstID, data)
}

// AppendArticles encodes a DTF holding the given articles and appends it to
// dst. Two or more articles make a multi-article DTF: ID.SRC = N and each
// article is preceded by its 2-byte length. A single article makes a plain
// mono-article DTF, since N = 1 is not a valid multi-article count.
func AppendArticles(dst []byte, dstID byte, articles ...[]byte) ([]byte, error) {
	switch n := len(articles); {
	case n == 0:
		return dst, fmt.Errorf("encoding DTF: no article: %w", ErrMalformed)
	case n == 1:
		return AppendDTF(dst, dstID, articles[0])
	case n > 0xFF:
		return dst, fmt.Errorf("encoding DTF: %d articles exceed ID.SRC: %w", n, ErrTooLarge)
	}
	start := len(dst)
	out := append(dst, 0, 0, TypeDTF.Phase(), TypeDTF.Code(), dstID, byte(len(articles)))
	for _, a := range articles {
		if len(out)-start+2+len(a) > MaxFPDULen {
			return dst, fmt.Errorf("encoding DTF of %d articles: %w", len(articles), ErrTooLarge)
		}
		out = append(out, byte(len(a)>>8), byte(len(a)))
		out = append(out, a...)
	}
	binary.BigEndian.PutUint16(out[start:], uint16(len(out)-start))
	return out, nil
}

// ArticleIter walks the articles of a data FPDU without allocating. A DTF
// with ID.SRC = N > 1 holds N length-prefixed articles; any other data
// FPDU holds one article or article segment, its whole content.
type ArticleIter struct {
	rest  []byte
	n, i  int
	multi bool
	cur   []byte
	err   error
}

// NewArticleIter returns an iterator over the articles in the content of
// the data FPDU whose header is h.
func NewArticleIter(h Header, data []byte) ArticleIter {
	it := ArticleIter{rest: data, n: 1}
	if h.Type == TypeDTF && h.SrcID > 1 {
		it.multi, it.n = true, int(h.SrcID)
	}
	return it
}

// Articles returns an iterator over the articles of f.
func (f *FPDU) Articles() ArticleIter { return NewArticleIter(f.Header, f.Data) }

// Next advances to the next article. It returns false after the last one
// or on error; a multi-article DTF whose content does not hold exactly N
// articles is an error.
func (it *ArticleIter) Next() bool {
	if it.err != nil || it.i >= it.n {
		if it.err == nil && it.multi && len(it.rest) > 0 {
			it.err = fmt.Errorf("splitting DTF: %d bytes after article %d: %w", len(it.rest), it.n, ErrMalformed)
		}
		return false
	}
	it.i++
	if !it.multi {
		it.cur, it.rest = it.rest, nil
		return true
	}
	if len(it.rest) < 2 {
		it.err = fmt.Errorf("splitting DTF: article %d of %d: no length: %w", it.i, it.n, ErrTruncated)
		return false
	}
	l := int(binary.BigEndian.Uint16(it.rest))
	if 2+l > len(it.rest) {
		it.err = fmt.Errorf("splitting DTF: article %d of %d: %d bytes but %d left: %w", it.i, it.n, l, len(it.rest)-2, ErrTruncated)
		return false
	}
	it.cur, it.rest = it.rest[2:2+l:2+l], it.rest[2+l:]
	return true
}

// Article returns the current article; it aliases the FPDU content.
func (it *ArticleIter) Article() []byte { return it.cur }

// Err returns the error that stopped the iteration, if any.
func (it *ArticleIter) Err() error { return it.err }

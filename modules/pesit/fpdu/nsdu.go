package fpdu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Framing is how FPDUs are delimited on a byte stream (reference §2.9).
type Framing int

const (
	// FramingAuto detects the framing from the first FPDU of the stream and
	// keeps it for the rest of the connection.
	FramingAuto Framing = iota
	// FramingPrefixed precedes every NSDU with a 2-byte big-endian length
	// that does not count itself. Mandatory on plain TCP; TLS with
	// Connect:Express TCPIP_HEADER=Y.
	FramingPrefixed
	// FramingRaw sends FPDUs back to back, delimited by their own LTM. TLS
	// with Connect:Express TCPIP_HEADER=N.
	FramingRaw
)

var framingNames = [...]string{FramingAuto: "auto", FramingPrefixed: "prefixed", FramingRaw: "raw"}

// String returns "auto", "prefixed" or "raw".
func (f Framing) String() string {
	if f >= 0 && int(f) < len(framingNames) {
		return framingNames[f]
	}
	return fmt.Sprintf("Framing(%d)", int(f))
}

// MarshalText implements encoding.TextMarshaler, for configuration files.
func (f Framing) MarshalText() ([]byte, error) {
	if f < 0 || int(f) >= len(framingNames) {
		return nil, fmt.Errorf("marshalling framing %d: %w", int(f), ErrMalformed)
	}
	return []byte(framingNames[f]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler: "auto", "prefixed" or
// "raw"; the empty string means auto.
func (f *Framing) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*f = FramingAuto
		return nil
	}
	for i, n := range framingNames {
		if string(b) == n {
			*f = Framing(i)
			return nil
		}
	}
	return fmt.Errorf("unknown framing %q (want auto, prefixed or raw): %w", b, ErrMalformed)
}

// readBufSize holds the largest unit (2-byte prefix + 65535-byte NSDU) and
// is large enough that a proxy reads in big chunks.
const readBufSize = 64<<10 + 2

// Reader reads NSDUs and FPDUs from a stream.
//
// It works at the NSDU level: ReadNSDU returns one network data unit, i.e.
// one FPDU or several concatenated ones, without its prefix. With raw
// framing there are no NSDU boundaries on the wire, so each FPDU is its
// own NSDU. A proxy re-frames faithfully by writing each NSDU it reads
// with AppendNSDU. Next is the FPDU-level view of the same stream: it
// returns the FPDUs of the current NSDU one by one, and More reports
// whether the current NSDU has any left. The two can be mixed: ReadNSDU
// returns what Next has not yet consumed of the current NSDU.
//
// Every NSDU is validated before it is returned: known FPDU types, LTM ≥ 6,
// LTMs that add up exactly to the NSDU length, and concatenation only of
// data FPDUs, DTF.END and SYN. Returned slices alias an internal 64 KiB
// buffer and stay valid until the next call on the Reader; in steady state
// the Reader does not allocate. Errors are sticky; a stream that ends
// mid-unit yields io.ErrUnexpectedEOF, one that ends between units io.EOF.
// CRC mode (PI 1 = 1) is not supported.
type Reader struct {
	rd      io.Reader
	buf     []byte
	initial int // size of the first buffer; 0 for readBufSize
	r, w    int // buf[r:w] is read but not consumed
	framing Framing
	max     int
	cur     []byte // FPDUs of the current NSDU not yet returned by Next
	err     error
}

// NewReader returns a Reader over rd using framing f (FramingAuto to
// detect it). The maximum NSDU size defaults to 65535.
func NewReader(rd io.Reader, f Framing) *Reader {
	return &Reader{rd: rd, framing: f, max: MaxFPDULen}
}

// NewReaderSize is NewReader with a first buffer of size bytes (at least
// what a pre-connection and the largest CONNECT Detect accepts need), for
// a server that must not spend 64 KiB on a connection before it is
// authenticated. The buffer grows to 64 KiB when a unit needs it, or on
// Grow.
func NewReaderSize(rd io.Reader, f Framing, size int) *Reader {
	r := NewReader(rd, f)
	r.initial = min(max(size, MaxConnectLen+2+PreConnectionLen+2), readBufSize)
	return r
}

// Grow gives the Reader its full 64 KiB buffer, keeping what is buffered.
func (r *Reader) Grow() {
	if len(r.buf) >= readBufSize {
		return
	}
	nb := make([]byte, readBufSize)
	r.w = copy(nb, r.buf[r.r:r.w])
	r.buf, r.r = nb, 0
}

// SetMaxSize sets the largest NSDU (prefixed) or FPDU (raw) the Reader
// accepts; larger ones fail with ErrTooLarge. n is clamped to [6, 65535].
// A server may lower it to the PI 25 it negotiated.
func (r *Reader) SetMaxSize(n int) { r.max = min(max(n, HeaderLen), MaxFPDULen) }

// Framing returns the framing in use: FramingAuto until it is detected.
func (r *Reader) Framing() Framing { return r.framing }

// Buffered returns the bytes read from the underlying reader that belong to
// NSDUs not yet returned, so that a proxy handing the connection over to a
// plain copy can forward them first. It excludes FPDUs of the current NSDU
// still pending for Next.
func (r *Reader) Buffered() []byte { return r.buf[r.r:r.w] }

// More reports whether the current NSDU has FPDUs that Next has not
// returned yet.
func (r *Reader) More() bool { return len(r.cur) > 0 }

// Next returns the next FPDU of the stream.
func (r *Reader) Next() ([]byte, error) {
	if len(r.cur) == 0 {
		nsdu, err := r.ReadNSDU()
		if err != nil {
			return nil, err
		}
		r.cur = nsdu
	}
	n := binary.BigEndian.Uint16(r.cur) // validated by ReadNSDU
	f := r.cur[:n:n]
	r.cur = r.cur[n:]
	return f, nil
}

// ReadNSDU returns the next NSDU without its prefix: one FPDU or several
// concatenated ones. If Next has consumed only part of the current NSDU, it
// returns the rest of it instead.
func (r *Reader) ReadNSDU() ([]byte, error) {
	if len(r.cur) > 0 {
		b := r.cur
		r.cur = nil
		return b, nil
	}
	if r.err != nil {
		return nil, r.err
	}
	b, err := r.readNSDU()
	if err != nil {
		r.err = err
		return nil, err
	}
	return b, nil
}

func (r *Reader) readNSDU() ([]byte, error) {
	if r.framing == FramingAuto {
		if err := r.fill(HeaderLen); err != nil {
			return nil, err
		}
		f, err := detectFraming(r.buf[r.r:r.w])
		if err != nil {
			return nil, err
		}
		r.framing = f
	}
	if err := r.fill(2); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(r.buf[r.r:]))
	if r.framing == FramingRaw {
		if n < HeaderLen {
			return nil, fmt.Errorf("reading FPDU: LTM %d below %d: %w", n, HeaderLen, ErrMalformed)
		}
		if n > r.max {
			return nil, fmt.Errorf("reading FPDU: LTM %d above maximum %d: %w", n, r.max, ErrTooLarge)
		}
		// Check the header before waiting for the body, so garbage fails
		// at once instead of stalling until a timeout.
		if err := r.fill(HeaderLen); err != nil {
			return nil, unexpected(err)
		}
		if _, err := ParseHeader(r.buf[r.r:r.w]); err != nil {
			return nil, fmt.Errorf("reading FPDU: %w", err)
		}
		if err := r.fill(n); err != nil {
			return nil, unexpected(err)
		}
		b := r.buf[r.r : r.r+n : r.r+n]
		r.r += n
		return b, nil
	}
	switch {
	case n == 0:
		return nil, fmt.Errorf("reading NSDU: length 0: %w", ErrMalformed)
	case n > r.max:
		return nil, fmt.Errorf("reading NSDU: length %d above maximum %d: %w", n, r.max, ErrTooLarge)
	case n < HeaderLen:
		return nil, fmt.Errorf("reading NSDU: length %d cannot hold an FPDU: %w", n, ErrMalformed)
	}
	if err := r.fill(2 + HeaderLen); err != nil {
		return nil, unexpected(err)
	}
	if _, err := ParseHeader(r.buf[r.r+2 : r.w]); err != nil {
		return nil, fmt.Errorf("reading NSDU: %w", err)
	}
	if err := r.fill(2 + n); err != nil {
		return nil, unexpected(err)
	}
	b := r.buf[r.r+2 : r.r+2+n : r.r+2+n]
	if err := checkNSDU(b); err != nil {
		return nil, err
	}
	r.r += 2 + n
	return b, nil
}

// unexpected turns io.EOF inside a unit into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// checkNSDU validates the FPDUs packed in one NSDU.
func checkNSDU(b []byte) error {
	var first Type
	for off, i := 0, 0; off < len(b); i++ {
		h, err := ParseHeader(b[off:])
		if errors.Is(err, ErrTruncated) {
			return fmt.Errorf("reading NSDU: %d stray bytes after FPDU %d: %w", len(b)-off, i, ErrMalformed)
		}
		if err != nil {
			return fmt.Errorf("reading NSDU: FPDU %d at offset %d: %w", i+1, off, err)
		}
		if int(h.Length) > len(b)-off {
			return fmt.Errorf("reading NSDU: %v at offset %d: LTM %d exceeds the %d bytes left: %w",
				h.Type, off, h.Length, len(b)-off, ErrMalformed)
		}
		if i == 0 {
			first = h.Type
		} else if !first.Concatenable() || !h.Type.Concatenable() {
			return fmt.Errorf("reading NSDU: %v concatenated after %v: %w", h.Type, first, ErrMalformed)
		}
		off += int(h.Length)
	}
	return nil
}

// detectFraming decides the framing from the first 6 bytes of a stream.
// A prefixed stream reads LL LL MM MM P T with MM ≤ LL and (P, T) a known
// type; a raw one LL LL P T. The prefixed reading is tried first: for a
// raw FPDU to pass it, its type bytes would have to form an LTM ≤ its own
// length, and connection and file phases (0x40, 0xC0) make that ≥ 16384.
func detectFraming(b []byte) (Framing, error) {
	l := binary.BigEndian.Uint16(b)
	ltm := binary.BigEndian.Uint16(b[2:])
	if ltm >= HeaderLen && ltm <= l && MakeType(b[4], b[5]).Known() {
		return FramingPrefixed, nil
	}
	if l >= HeaderLen && MakeType(b[2], b[3]).Known() {
		return FramingRaw, nil
	}
	return FramingAuto, fmt.Errorf("detecting framing: first bytes % x are neither a prefixed nor a raw FPDU: %w", b[:HeaderLen], ErrMalformed)
}

var errInsideNSDU = errors.New("pesit: reader is inside an NSDU; drain it with ReadNSDU first")

// Peek returns the next n stream bytes without consuming them, reading
// more if needed. It does not interpret framing, so it suits the
// pre-connection, which is not an FPDU. If the stream ends first it returns
// io.EOF (nothing left) or io.ErrUnexpectedEOF.
func (r *Reader) Peek(n int) ([]byte, error) {
	if len(r.cur) > 0 {
		return nil, errInsideNSDU
	}
	if n > readBufSize {
		return nil, fmt.Errorf("peeking %d bytes: %w", n, ErrTooLarge)
	}
	if err := r.fill(n); err != nil {
		return nil, err
	}
	return r.buf[r.r : r.r+n], nil
}

// Discard consumes the next n stream bytes, e.g. a pre-connection read
// with Peek.
func (r *Reader) Discard(n int) error {
	if _, err := r.Peek(n); err != nil {
		return err
	}
	r.r += n
	return nil
}

// Detect classifies the start of the stream with the package-level Detect,
// reading only as many bytes as it needs, without consuming any. When it
// finds a CONNECT and the framing is FramingAuto, the detected framing is
// kept for the rest of the stream. Call it before the first ReadNSDU/Next
// and again after discarding a pre-connection.
func (r *Reader) Detect() (Detection, error) {
	for {
		d, err := Detect(r.buf[r.r:r.w])
		if !errors.Is(err, ErrNeedMore) {
			if err == nil && d.Kind == KindConnect && r.framing == FramingAuto {
				r.framing = FramingRaw
				if d.Prefixed {
					r.framing = FramingPrefixed
				}
			}
			return d, err
		}
		if len(r.cur) > 0 {
			return Detection{}, errInsideNSDU
		}
		if err := r.fill(d.Need); err != nil {
			return Detection{}, err
		}
	}
}

// fill makes sure at least n unconsumed bytes are buffered, reading as
// much as the buffer holds. It returns io.EOF only if the stream ended
// with nothing buffered, io.ErrUnexpectedEOF if it ended with fewer than
// n bytes.
func (r *Reader) fill(n int) error {
	if r.w-r.r >= n {
		return nil
	}
	switch {
	case r.buf == nil && r.initial > 0 && n <= r.initial:
		r.buf = make([]byte, r.initial)
	case len(r.buf) < n:
		r.Grow()
	}
	if r.r == r.w {
		r.r, r.w = 0, 0 // nothing to keep: read into the whole buffer
	}
	if r.r+n > len(r.buf) {
		copy(r.buf, r.buf[r.r:r.w])
		r.w -= r.r
		r.r = 0
	}
	for empty := 0; r.w-r.r < n; {
		m, err := r.rd.Read(r.buf[r.w:])
		if m < 0 || m > len(r.buf)-r.w {
			return fmt.Errorf("reading stream: invalid count %d from Read", m)
		}
		r.w += m
		if r.w-r.r >= n {
			return nil
		}
		switch {
		case err == io.EOF && r.w == r.r:
			return io.EOF
		case err == io.EOF:
			return io.ErrUnexpectedEOF
		case err != nil:
			return err
		case m == 0:
			if empty++; empty >= 100 {
				return io.ErrNoProgress
			}
		}
	}
	return nil
}

// AppendNSDU appends one NSDU holding the given FPDUs to dst, with the
// 2-byte prefix when f is FramingPrefixed, or as bare FPDUs when it is
// FramingRaw. Each FPDU must be complete (LTM = its length) and several
// FPDUs may share an NSDU only if they are all data FPDUs, DTF.END or
// SYN. On error dst is returned unchanged.
func AppendNSDU(dst []byte, f Framing, fpdus ...[]byte) ([]byte, error) {
	if f != FramingPrefixed && f != FramingRaw {
		return dst, fmt.Errorf("writing NSDU: framing %v: %w", f, ErrMalformed)
	}
	if len(fpdus) == 0 {
		return dst, fmt.Errorf("writing NSDU: no FPDU: %w", ErrMalformed)
	}
	total := 0
	for i, b := range fpdus {
		h, err := ParseHeader(b)
		if err != nil {
			return dst, fmt.Errorf("writing NSDU: FPDU %d: %w", i+1, err)
		}
		if int(h.Length) != len(b) {
			return dst, fmt.Errorf("writing NSDU: %v has LTM %d but %d bytes: %w", h.Type, h.Length, len(b), ErrMalformed)
		}
		if len(fpdus) > 1 && !h.Type.Concatenable() {
			return dst, fmt.Errorf("writing NSDU: %v cannot be concatenated: %w", h.Type, ErrMalformed)
		}
		total += len(b)
	}
	if f == FramingPrefixed {
		if total > MaxFPDULen {
			return dst, fmt.Errorf("writing NSDU: %d bytes: %w", total, ErrTooLarge)
		}
		dst = append(dst, byte(total>>8), byte(total))
	}
	for _, b := range fpdus {
		dst = append(dst, b...)
	}
	return dst, nil
}

package fpdu

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Detection errors.
var (
	// ErrNeedMore means Detect cannot decide yet; Detection.Need says how
	// many bytes in total it needs.
	ErrNeedMore = errors.New("pesit: need more bytes to decide")
	// ErrNotPeSIT means the bytes certainly do not start a PeSIT stream.
	ErrNotPeSIT = errors.New("pesit: not a PeSIT stream")
)

// MaxConnectLen bounds the CONNECT FPDU Detect is willing to read. A real
// CONNECT is under 400 bytes (ids of 24, PI 5 of 16, PI 99 of 254), so a
// larger LTM means this is not PeSIT.
const MaxConnectLen = 4096

// Kind is what a PeSIT stream starts with.
type Kind int

// Kinds of stream start.
const (
	KindUnknown       Kind = iota
	KindConnect            // a CONNECT FPDU
	KindPreConnection      // the 24-byte EBCDIC pre-connection string
)

// String returns "connect", "pre-connection" or "unknown".
func (k Kind) String() string {
	switch k {
	case KindConnect:
		return "connect"
	case KindPreConnection:
		return "pre-connection"
	}
	return "unknown"
}

// Detection is the result of Detect.
type Detection struct {
	Kind     Kind
	Prefixed bool // the unit carries the 2-byte NSDU length prefix
	// Need is, on success, the length of the detected unit including its
	// prefix (so b[:Need] is the pre-connection or the CONNECT NSDU); with
	// ErrNeedMore, the total number of bytes Detect needs to go on. It never
	// exceeds what a real peer sends before waiting for an answer.
	Need int
}

// Detect classifies the first bytes of a connection for a protocol
// matcher, without state. It recognises:
//
//	D7 C5 E2 C9 E3 40 …        pre-connection, 24 bytes
//	00 18 D7 C5 E2 C9 …        prefixed pre-connection, 26 bytes
//	LL LL 40 20 …              raw CONNECT of LTM LL LL
//	LL LL LL LL 40 20 …        prefixed CONNECT (prefix = LTM)
//
// For confidence it requires the whole unit: a pre-connection must parse,
// and a CONNECT (LTM ≤ MaxConnectLen) must decode strictly with PI 3, 4
// and 6 present. It returns ErrNeedMore with Detection.Need set when b is
// too short to decide, and an error wrapping ErrNotPeSIT when b cannot
// start a PeSIT stream.
func Detect(b []byte) (Detection, error) {
	need := 0
	var cause error
	for _, prefixed := range [2]bool{false, true} {
		for _, kind := range [2]Kind{KindPreConnection, KindConnect} {
			d, n, err := detectOne(b, kind, prefixed)
			switch {
			case err != nil:
				cause = err
			case n > 0:
				if need == 0 || n < need {
					need = n
				}
			default:
				return d, nil
			}
		}
	}
	if need > 0 {
		return Detection{Need: need}, ErrNeedMore
	}
	if cause != nil {
		return Detection{}, fmt.Errorf("%w: %w", ErrNotPeSIT, cause)
	}
	return Detection{}, ErrNotPeSIT
}

// errNoMatch rules a candidate out on its fixed bytes.
var errNoMatch = errors.New("first bytes do not match")

// detectOne tests one candidate. It returns need > 0 if the candidate is
// still possible but needs that many bytes, an error if it is ruled out,
// and otherwise a detection.
func detectOne(b []byte, kind Kind, prefixed bool) (Detection, int, error) {
	off := 0
	if prefixed {
		off = 2
	}
	var size int // unit length including the prefix, once known
	if kind == KindPreConnection {
		size = off + PreConnectionLen
		if prefixed && !consistent(b, 0, []byte{0, PreConnectionLen}) {
			return Detection{}, 0, errNoMatch
		}
		if !consistent(b, off, preConnectionTag[:HeaderLen-off]) {
			return Detection{}, 0, errNoMatch
		}
	} else {
		if len(b) >= 1 && int(b[0])<<8 > MaxConnectLen {
			return Detection{}, 0, errNoMatch // decide on one byte where we can
		}
		if len(b) >= 2 {
			if l := binary.BigEndian.Uint16(b); l < HeaderLen || l > MaxConnectLen {
				return Detection{}, 0, errNoMatch
			}
		}
		if prefixed && !consistent(b, 2, b[:min(len(b), 2)]) {
			return Detection{}, 0, errNoMatch
		}
		if !consistent(b, off+2, []byte{PhaseConnection, TypeConnect.Code()}) {
			return Detection{}, 0, errNoMatch
		}
		if len(b) >= 2 {
			size = off + int(binary.BigEndian.Uint16(b))
		}
	}
	// Every candidate's fixed bytes end by offset 6; waiting for 6 bytes is
	// safe because any PeSIT first unit is longer.
	if len(b) < HeaderLen {
		return Detection{}, HeaderLen, nil
	}
	if len(b) < size {
		return Detection{}, size, nil
	}
	if kind == KindPreConnection {
		if _, _, err := ParsePreConnection(b[:size]); err != nil {
			return Detection{}, 0, err
		}
	} else if err := checkConnect(b[off:size]); err != nil {
		return Detection{}, 0, err
	}
	return Detection{Kind: kind, Prefixed: prefixed, Need: size}, 0, nil
}

// consistent reports whether the bytes of b from off agree with pat as far
// as b goes.
func consistent(b []byte, off int, pat []byte) bool {
	for i, c := range pat {
		if off+i >= len(b) {
			return true
		}
		if b[off+i] != c {
			return false
		}
	}
	return true
}

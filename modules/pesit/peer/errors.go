package peer

import (
	"errors"
	"fmt"

	"github.com/bankedge/bankedge/modules/pesit/fpdu"
)

// Sentinel errors, for errors.Is.
var (
	// ErrProtocol means the peer broke the PeSIT rules (undecodable FPDU,
	// wrong connection ids, FPDU out of sequence). The local side has sent
	// ABORT 3-311 and closed the connection.
	ErrProtocol = errors.New("pesit: protocol error")
	// ErrCountMismatch means the two sides disagree on the byte or article
	// count of a transfer (PI 27/28).
	ErrCountMismatch = errors.New("pesit: byte or article count mismatch")
	// ErrClosed means the Client can no longer be used: it was closed,
	// released, or a previous error broke the connection.
	ErrClosed = errors.New("pesit: connection closed")
	// ErrShortSource means Send's source ended before the announced size.
	ErrShortSource = errors.New("pesit: source shorter than its size")
)

// RefusedError is a refusal by the peer: RCONNECT, a negative ACK (PI 2 ≠
// 0), a DTF.END or IDT carrying a diagnostic, NAK0 or ABORT. Callers tell
// "the partner said no, fix the request" from transport failures with
// errors.As.
type RefusedError struct {
	// FPDU is the refusing FPDU type; zero (with NAK set) for a refused
	// pre-connection, which is not an FPDU.
	FPDU fpdu.Type
	// NAK reports a pre-connection answered NAK0.
	NAK bool
	// Diag is PI 2 of the refusal.
	Diag fpdu.Diag
	// Message is PI 99 (or PI 29), if the peer sent one, so operators see
	// the peer's own explanation.
	Message string
}

// Error renders e.g. "pesit: ACK_SELECT refused: 2-205 file not found".
func (e *RefusedError) Error() string {
	if e.NAK {
		return "pesit: pre-connection refused (NAK0)"
	}
	s := fmt.Sprintf("pesit: %v refused: %v %s", e.FPDU, e.Diag, e.Diag.Text())
	if e.Message != "" {
		s += fmt.Sprintf(" (%q)", e.Message)
	}
	return s
}

// refusal builds a RefusedError from a decoded FPDU carrying a diagnostic.
func refusal(f *fpdu.FPDU, d fpdu.Diag) *RefusedError {
	e := &RefusedError{FPDU: f.Type, Diag: d}
	if p, ok := f.Get(fpdu.PIFreeMessage); ok {
		e.Message = p.Text()
	} else if p, ok := f.Get(fpdu.PIDiagComplement); ok {
		e.Message = p.Text()
	}
	return e
}

// protoErr wraps ErrProtocol with a reason.
func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

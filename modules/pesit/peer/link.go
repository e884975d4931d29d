package peer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/bankedge/bankedge/modules/pesit/fpdu"
)

// link is the framed byte stream shared by both roles: it writes NSDUs in
// the connection's framing and keeps a deadline on every blocking call.
type link struct {
	conn    net.Conn
	rd      *fpdu.Reader
	framing fpdu.Framing // FramingPrefixed or FramingRaw once known
	timeout time.Duration

	localID, peerID byte // header ids: ours and the peer's connection id

	ctl []byte // scratch for control FPDUs

	mu        sync.Mutex // guards deadline changes against cancellation
	cancelled bool
	armedAt   time.Time // last time the deadline was pushed forward
}

func newLink(conn net.Conn, f fpdu.Framing, timeout time.Duration) *link {
	return &link{conn: conn, rd: fpdu.NewReader(conn, f), framing: f, timeout: timeout, ctl: make([]byte, 0, 512)}
}

// errCancelled is returned once the context of the running call is done.
var errCancelled = errors.New("pesit: cancelled")

// watch makes ctx cancellation interrupt any blocking I/O on the link, by
// moving the deadline into the past. The returned stop must be called.
func (l *link) watch(ctx context.Context) (stop func() bool) {
	return context.AfterFunc(ctx, func() {
		l.mu.Lock()
		l.cancelled = true
		_ = l.conn.SetDeadline(time.Unix(1, 0))
		l.mu.Unlock()
	})
}

// arm pushes the read and write deadlines timeout into the future.
func (l *link) arm() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cancelled {
		return errCancelled
	}
	now := time.Now()
	l.armedAt = now
	return l.conn.SetDeadline(now.Add(l.timeout))
}

// refresh is arm for the data path: it touches the deadline only when a
// sixteenth of the timeout has passed, so bulk transfers do not pay for a
// timer update per NSDU while an idle peer is still caught in time.
func (l *link) refresh() error {
	if time.Since(l.armedAt) < l.timeout/16 {
		return nil
	}
	return l.arm()
}

// interrupt unblocks a writer stuck on a peer that stopped reading; used
// when the peer has already sent ABORT or broken the protocol.
func (l *link) interrupt() { _ = l.conn.SetWriteDeadline(time.Unix(1, 0)) }

// next reads the next FPDU under a fresh deadline. The slice aliases the
// reader's buffer and is valid until the next read.
func (l *link) next() ([]byte, error) {
	if err := l.arm(); err != nil {
		return nil, err
	}
	return l.rd.Next()
}

// send writes one control FPDU as its own NSDU.
func (l *link) send(t fpdu.Type, params ...fpdu.Param) error {
	dst, src := l.peerID, byte(0)
	if t.Phase() == fpdu.PhaseConnection {
		src = l.localID
	}
	return l.sendIDs(t, dst, src, params...)
}

// sendIDs is send with explicit header ids (CONNECT, RCONNECT).
func (l *link) sendIDs(t fpdu.Type, dst, src byte, params ...fpdu.Param) error {
	b := l.ctl[:0]
	if l.framing == fpdu.FramingPrefixed {
		b = append(b, 0, 0)
	}
	b, err := fpdu.AppendFPDU(b, t, dst, src, params...)
	if err != nil {
		return fmt.Errorf("encoding %v: %w", t, err)
	}
	if l.framing == fpdu.FramingPrefixed {
		binary.BigEndian.PutUint16(b, uint16(len(b)-2))
	}
	l.ctl = b[:0]
	if err := l.arm(); err != nil {
		return err
	}
	_, err = l.conn.Write(b)
	return err
}

// writeRaw writes bytes that are already framed.
func (l *link) writeRaw(b []byte) error {
	if err := l.arm(); err != nil {
		return err
	}
	_, err := l.conn.Write(b)
	return err
}

// abort sends ABORT with d, best effort and briefly, then closes the
// connection: after an ABORT nothing else may be sent.
func (l *link) abort(d fpdu.Diag) {
	l.mu.Lock()
	if !l.cancelled {
		_ = l.conn.SetWriteDeadline(time.Now().Add(min(l.timeout, 2*time.Second)))
	}
	l.mu.Unlock()
	b := l.ctl[:0]
	if l.framing == fpdu.FramingPrefixed {
		b = append(b, 0, 0)
	}
	b, err := fpdu.AppendFPDU(b, fpdu.TypeAbort, l.peerID, l.localID, d.Param())
	if err == nil && l.framing != fpdu.FramingAuto {
		if l.framing == fpdu.FramingPrefixed {
			binary.BigEndian.PutUint16(b, uint16(len(b)-2))
		}
		_, _ = l.conn.Write(b)
	}
	_ = l.conn.Close()
}

// syncNumber reads PI 20 from a SYN or ACK(SYN); a bad one is a protocol
// error of the peer.
func syncNumber(b []byte) (uint32, error) {
	n, err := fpdu.ParseSyncNumber(b)
	if err != nil {
		return 0, protoErr("%v", err)
	}
	return n, nil
}

// getUint returns the numeric value of PI code in f, with ok = false when
// absent.
func getUint(f *fpdu.FPDU, code byte) (v uint64, ok bool, err error) {
	p, ok := f.Get(code)
	if !ok {
		return 0, false, nil
	}
	v, err = p.Uint()
	if err != nil {
		return 0, true, fmt.Errorf("PI %d: %w", code, err)
	}
	return v, true, nil
}

// diagOf returns PI 2 of f, DiagOK when it is absent.
func diagOf(f *fpdu.FPDU) (fpdu.Diag, error) {
	p, ok := f.Get(fpdu.PIDiagnostic)
	if !ok {
		return fpdu.DiagOK, nil
	}
	return fpdu.ParseDiag(p.Value)
}

// pi99 builds a PI 99 free-text parameter, clipped to its 254 bytes.
func pi99(s string) fpdu.Param {
	if len(s) > 254 {
		s = s[:254]
	}
	return fpdu.PIString(fpdu.PIFreeMessage, s)
}

// isTimeout reports a deadline expiry.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

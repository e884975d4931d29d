package pesit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"go.uber.org/zap"

	"github.com/bankedge/bankedge/modules/pesit/fpdu"
)

// downScanner follows the upstream's byte stream as it goes to the
// partner, in whatever chunks the proxy writes: it parses every FPDU header,
// collects control FPDUs whole for the audit trail, counts data, and
// re-frames when the partner and the upstream use different framings.
type downScanner struct {
	s *session
	// prefixed is the upstream's framing; reframe is set when the partner's
	// differs.
	prefixed, reframe bool
	nsduLeft          int
	hdr               [8]byte
	hdrN              int
	left              int // bytes left in the current FPDU
	capturing         bool
	capture           []byte
	// swallow counts the bytes of the upstream's answer to the gateway's
	// pre-connection, which the partner must not see.
	swallow int
	preBuf  []byte
	broken  bool // the upstream's stream could not be parsed; pass it through
	scratch []byte
	bufs    net.Buffers
}

func (d *downScanner) init(s *session) {
	d.s = s
	d.prefixed = s.upPrefixed
	d.reframe = s.upPrefixed != s.clientPrefixed
}

// Write takes the upstream's bytes for the partner.
func (s *session) Write(p []byte) (int, error) {
	s.touch()
	d := &s.down
	if d.swallow == 0 && !d.reframe {
		d.scan(p, false)
		if err := s.writeClient(p); err != nil {
			return 0, err
		}
		s.bytesOut.Add(int64(len(p)))
		return len(p), nil
	}
	d.bufs, d.scratch = d.bufs[:0], d.scratch[:0]
	d.scan(p, true)
	s.wmu.Lock()
	_ = s.client.SetWriteDeadline(time.Now().Add(time.Duration(s.h.IdleTimeout)))
	n, err := d.bufs.WriteTo(s.client)
	s.wmu.Unlock()
	s.bytesOut.Add(n)
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// scan walks p. When build is set, it also collects in d.bufs what the
// partner must receive.
func (d *downScanner) scan(p []byte, build bool) {
	for len(p) > 0 {
		if d.swallow > 0 {
			n := min(len(p), d.swallow)
			d.preBuf = append(d.preBuf, p[:n]...)
			d.swallow -= n
			p = p[n:]
			if d.swallow == 0 {
				d.preConnectionAnswer()
			}
			continue
		}
		if d.broken {
			d.emit(p, build)
			return
		}
		if d.left > 0 {
			n := min(len(p), d.left)
			if d.capturing {
				d.capture = append(d.capture, p[:n]...)
			}
			d.emit(p[:n], build)
			d.left -= n
			p = p[n:]
			if d.left == 0 && d.capturing {
				d.control()
			}
			continue
		}
		need := fpdu.HeaderLen
		if d.prefixed && d.nsduLeft == 0 {
			need += 2
		}
		n := min(len(p), need-d.hdrN)
		copy(d.hdr[d.hdrN:], p[:n])
		if !d.reframe {
			// Header bytes go on as they come. Held back until the header
			// is whole, the first part of a header split across two
			// writes would be lost when the second takes the fast path
			// of Write (after the pre-connection answer, for instance).
			d.emit(p[:n], build)
		}
		d.hdrN += n
		p = p[n:]
		if d.hdrN < need {
			continue
		}
		d.hdrN = 0
		hdr := d.hdr[:fpdu.HeaderLen]
		if need == fpdu.HeaderLen+2 {
			d.nsduLeft = int(binary.BigEndian.Uint16(d.hdr[:2]))
			hdr = d.hdr[2:need]
		}
		h, err := fpdu.ParseHeader(hdr)
		if err != nil || d.prefixed && int(h.Length) > d.nsduLeft {
			d.s.h.logger.Warn("cannot follow the upstream's PeSIT stream; passing it through unparsed",
				zap.String("partner", d.s.partner.PartnerID), zap.Error(errors.Join(err, fmt.Errorf("FPDU length %d, NSDU left %d", h.Length, d.nsduLeft))))
			d.broken = true
			if d.reframe {
				d.emitCopy(hdr, build)
			}
			continue
		}
		if d.prefixed {
			d.nsduLeft -= int(h.Length)
		}
		if d.reframe && !d.prefixed {
			var pre [2]byte
			binary.BigEndian.PutUint16(pre[:], h.Length)
			d.emitCopy(pre[:], build)
		}
		if d.reframe {
			d.emitCopy(hdr, build)
		}
		d.left = int(h.Length) - fpdu.HeaderLen
		d.capturing = !h.Type.IsData()
		if d.capturing {
			d.capture = append(d.capture[:0], hdr...)
		} else {
			d.s.countData(h, false)
		}
		if d.left == 0 && d.capturing {
			d.control()
		}
	}
}

// emit adds a slice of the proxy's buffer to the output; the proxy keeps
// it valid until Write returns.
func (d *downScanner) emit(b []byte, build bool) {
	if build && len(b) > 0 {
		d.bufs = append(d.bufs, b)
	}
}

// emitCopy adds bytes that live in the scanner, which are copied to
// scratch so that later headers do not overwrite them.
func (d *downScanner) emitCopy(b []byte, build bool) {
	if !build {
		return
	}
	start := len(d.scratch)
	d.scratch = append(d.scratch, b...)
	d.bufs = append(d.bufs, d.scratch[start:len(d.scratch):len(d.scratch)])
}

// preConnectionAnswer reads the upstream's ACK0 or NAK0.
func (d *downScanner) preConnectionAnswer() {
	ans := d.preBuf
	if d.prefixed && len(ans) >= 2 {
		ans = ans[2:]
	}
	ok, err := fpdu.ParsePreConnectionAnswer(ans)
	switch {
	case err != nil:
		d.s.preAck <- fmt.Errorf("upstream answered the gateway's pre-connection with something else: %w", err)
	case !ok:
		d.s.preAck <- errors.New("upstream refused the gateway's pre-connection (NAK0)")
	default:
		d.s.preAck <- nil
	}
}

// control handles a control FPDU of the upstream.
func (d *downScanner) control() {
	s := d.s
	f, err := fpdu.DecodeOptions{Lenient: true}.Decode(d.capture)
	if err != nil {
		s.h.logger.Warn("malformed FPDU from the upstream", zap.String("partner", s.partner.PartnerID), zap.Error(err))
		return
	}
	switch f.Type {
	case fpdu.TypeAConnect:
		s.mu.Lock()
		s.serverID = f.SrcID
		s.mu.Unlock()
		s.answered.Store(true)
	case fpdu.TypeRConnect:
		s.answered.Store(true)
		diag, _ := f.Diag()
		s.meter.end(diag)
		s.auditConnect("refused by the upstream", diag, paramText(&f, fpdu.PIFreeMessage), "")
		s.mu.Lock()
		s.ended = true
		s.mu.Unlock()
	case fpdu.TypeAckCreate, fpdu.TypeAckSelect:
		diag, _ := f.Diag()
		s.mu.Lock()
		x := s.xfer
		if x != nil && !diag.OK() {
			s.xfer = nil
		}
		if x != nil && f.Type == fpdu.TypeAckSelect {
			if id := paramUint(&f, fpdu.PITransferID); id != 0 {
				x.id = id
			}
		}
		s.mu.Unlock()
		if x != nil {
			outcome := "accepted"
			if !diag.OK() {
				outcome = "refused by the upstream"
			}
			s.auditTransfer(x, outcome, diag, paramText(&f, fpdu.PIFreeMessage))
		}
	case fpdu.TypeAckTransEnd:
		diag, _ := f.Diag()
		s.mu.Lock()
		x := s.xfer
		if x != nil {
			x.transEnd = &diag
		}
		s.mu.Unlock()
		if x != nil {
			s.auditTransEnd(x, diag, paramUint(&f, fpdu.PIByteCount), paramUint(&f, fpdu.PIArticleCount))
		}
	case fpdu.TypeAckCRF:
		diag, _ := f.Diag()
		s.mu.Lock()
		if x := s.xfer; x != nil {
			x.crf = &diag
		}
		s.mu.Unlock()
	case fpdu.TypeAckDeselect:
		s.endTransfer(outcomeIncomplete, fpdu.DiagOK, "deselected without TRANS.END")
	case fpdu.TypeRelConf:
		s.mu.Lock()
		diag := s.releaseDiag
		s.mu.Unlock()
		s.meter.end(diag)
		s.endTransfer(outcomeIncomplete, diag, "released without TRANS.END")
		s.endWith("pesit.release", zap.String("diagnostic", diag.String()))
	case fpdu.TypeAbort:
		diag, _ := f.Diag()
		s.meter.end(diag)
		s.endTransfer(outcomeAborted, diag, "aborted by the upstream")
		s.endWith("pesit.abort", zap.String("by", "upstream"), zap.String("diagnostic", diag.String()))
	}
}

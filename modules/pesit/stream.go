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

// errSessionEnded stops the proxy after the gateway has ended the session
// itself (ABORT sent to the partner).
var errSessionEnded = errors.New("pesit session ended by the gateway")

// Read gives the next bytes for the upstream. It reads the partner in large
// chunks, parses every FPDU header, checks control FPDUs whole, and passes
// data FPDUs through with one copy, into the proxy's buffer.
func (s *session) Read(p []byte) (int, error) {
	for {
		if len(s.out) > 0 {
			n := copy(p, s.out)
			s.out = s.out[n:]
			return n, nil
		}
		if s.connect != nil {
			// The gateway's own pre-connection went first; the CONNECT
			// follows once the upstream accepted it.
			select {
			case err := <-s.preAck:
				if s.fatal.Load() {
					// CloseWrite has refused the partner already.
					return 0, errSessionEnded
				}
				if err != nil {
					s.refuseConnect(fpdu.ReasonNetworkIncident, err.Error())
					s.fatal.Store(true)
					return 0, err
				}
			case <-time.After(time.Duration(s.h.ConnectTimeout)):
				s.refuseConnect(fpdu.ReasonNetworkIncident, "upstream did not answer the gateway's pre-connection")
				s.fatal.Store(true)
				return 0, errSessionEnded
			}
			s.out, s.connect = s.connect, nil
			continue
		}
		if s.pass > 0 {
			if s.inR == s.inW {
				// Nothing buffered: read the data straight into the proxy's
				// buffer, so that data bytes are never copied by the
				// gateway.
				n, err := s.readDirect(p[:min(len(p), s.pass)])
				s.pass -= n
				if n > 0 {
					return n, nil
				}
				return 0, s.readError(err)
			}
			n := min(len(p), s.pass, s.inW-s.inR)
			copy(p, s.in[s.inR:s.inR+n])
			s.inR += n
			s.pass -= n
			return n, nil
		}
		if s.fatal.Load() {
			return 0, errSessionEnded
		}
		if err := s.nextUnit(); err != nil {
			return 0, err
		}
	}
}

// readError turns a partner read error into the end of the proxy's
// upstream stream, answering the partner where the protocol wants it.
func (s *session) readError(err error) error {
	switch {
	case errors.Is(err, errSessionEnded):
	case isTimeout(err):
		s.abort(fpdu.ReasonIdleTimeout, "idle timeout")
		s.fatal.Store(true)
	case errors.Is(err, fpdu.ErrTooLarge), errors.Is(err, fpdu.ErrMalformed):
		s.protocolError(err)
	default:
		s.partnerGone.Store(true)
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// protocolError answers a malformed FPDU from the partner with ABORT 3-311
// and closes the partner's connection, which ends the proxy on both sides.
func (s *session) protocolError(err error) {
	if s.fatal.Swap(true) {
		return
	}
	s.abort(fpdu.ReasonProtocolError, err.Error())
	_ = s.client.Close()
}

// nextUnit parses the partner's next FPDU and decides what the upstream
// gets: it sets s.pass (and s.out for prefixes), or answers the partner
// itself.
func (s *session) nextUnit() error {
	prefix := 0
	if s.clientPrefixed && s.nsduLeft == 0 {
		prefix = 2
	}
	if err := s.fill(prefix + fpdu.HeaderLen); err != nil {
		return s.readError(err)
	}
	if prefix == 2 {
		s.nsduLeft = int(binary.BigEndian.Uint16(s.in[s.inR:]))
		if s.nsduLeft < fpdu.HeaderLen || s.nsduLeft > s.h.MaxFPDUSize {
			return s.malformed(fmt.Errorf("NSDU length %d: %w", s.nsduLeft, fpdu.ErrMalformed))
		}
	}
	h, err := fpdu.ParseHeader(s.in[s.inR+prefix:])
	if err != nil {
		return s.malformed(err)
	}
	ltm := int(h.Length)
	switch {
	case ltm > s.h.MaxFPDUSize:
		return s.malformed(fmt.Errorf("FPDU of %d bytes, more than max_fpdu_size %d: %w", ltm, s.h.MaxFPDUSize, fpdu.ErrTooLarge))
	case s.clientPrefixed && ltm > s.nsduLeft:
		return s.malformed(fmt.Errorf("FPDU of %d bytes in an NSDU with %d left: %w", ltm, s.nsduLeft, fpdu.ErrMalformed))
	case s.clientPrefixed && !h.Type.Concatenable() && (prefix == 0 || ltm != s.nsduLeft):
		return s.malformed(fmt.Errorf("%v shares an NSDU: %w", h.Type, fpdu.ErrMalformed))
	}
	forward := true
	if h.Type.IsData() {
		s.countData(h, true)
	} else {
		if err := s.fill(prefix + ltm); err != nil {
			return s.readError(err)
		}
		f, err := fpdu.Decode(s.in[s.inR+prefix : s.inR+prefix+ltm])
		if err != nil {
			return s.malformed(err)
		}
		if forward, err = s.fromPartner(&f); err != nil {
			return err
		}
	}
	if s.clientPrefixed {
		s.nsduLeft -= ltm
	}
	switch {
	case !forward:
		s.inR += prefix + ltm
	case s.upPrefixed && s.clientPrefixed:
		s.pass = prefix + ltm
	case s.upPrefixed:
		binary.BigEndian.PutUint16(s.prefixBuf[:], uint16(ltm))
		s.out = s.prefixBuf[:]
		s.pass = ltm
	default:
		s.inR += prefix
		s.pass = ltm
	}
	return nil
}

func (s *session) malformed(err error) error {
	s.protocolError(err)
	return err
}

// fromPartner applies the gateway's rules to a control FPDU of the partner
// and records it for the audit trail. It reports whether to forward it.
func (s *session) fromPartner(f *fpdu.FPDU) (bool, error) {
	switch f.Type {
	case fpdu.TypeConnect, fpdu.TypeAConnect, fpdu.TypeRConnect, fpdu.TypeRelConf:
		return false, s.malformed(fmt.Errorf("%v from the partner in an open session: %w", f.Type, fpdu.ErrMalformed))
	case fpdu.TypeCreate, fpdu.TypeSelect:
		return s.checkTransfer(f), nil
	case fpdu.TypeTransEnd:
		s.mu.Lock()
		if x := s.xfer; x != nil {
			x.claimedBytes, x.hasClaim = paramUint(f, fpdu.PIByteCount), true
			x.claimedArticles = paramUint(f, fpdu.PIArticleCount)
		}
		s.mu.Unlock()
	case fpdu.TypeRelease:
		s.mu.Lock()
		s.releaseDiag, _ = f.Diag()
		s.mu.Unlock()
	case fpdu.TypeAbort:
		diag, _ := f.Diag()
		s.meter.end(diag)
		s.endTransfer(outcomeAborted, diag, "aborted by the partner")
		s.endWith("pesit.abort", zap.String("by", "partner"), zap.String("diagnostic", diag.String()))
	}
	return true, nil
}

// checkTransfer decides a CREATE or SELECT. A refused one is answered with
// a negative ACK from the gateway and never reaches the upstream; the
// partner may go on with another transfer or release.
func (s *session) checkTransfer(f *fpdu.FPDU) bool {
	write := f.Type == fpdu.TypeCreate
	file, names := fileName(f)
	x := &transfer{
		write:   write,
		file:    file,
		label:   paramText(f, fpdu.PIFileLabel),
		id:      paramUint(f, fpdu.PITransferID),
		restart: paramUint(f, fpdu.PIRestart) == 1,
		started: time.Now(),
	}
	var why string
	switch {
	case !s.partner.AllowsAccess(write):
		why = fmt.Sprintf("access type %s does not allow %s", s.partner.AccessType, map[bool]string{true: "writing (CREATE)", false: "reading (SELECT)"}[write])
	case names > 1:
		why = "the file name (PI 12) is given more than once"
	case !s.partner.AllowsFile(x.file):
		why = fmt.Sprintf("file %q is not in the partner's allowed files", x.file)
	}
	if why == "" {
		// A transfer the upstream never closed (no ACK(DESELECT) seen)
		// ends here, before the next one.
		s.endTransfer(outcomeIncomplete, fpdu.DiagOK, "a new transfer began without DESELECT")
		s.mu.Lock()
		s.xfer = x
		s.mu.Unlock()
		return true
	}
	diag := fpdu.NewDiag(fpdu.ReasonTransferRefused)
	params := []fpdu.Param{diag.Param()}
	ackType := fpdu.TypeAckCreate
	if write {
		if p, ok := f.Get(fpdu.PITransferID); ok {
			params = append(params, p)
		}
	} else {
		ackType = fpdu.TypeAckSelect
		for _, p := range f.Params {
			if p.Code == fpdu.PGIFileID || p.Code == fpdu.PITransferID {
				params = append(params, p)
			}
		}
	}
	if p, ok := f.Get(fpdu.PIMaxEntitySize); ok {
		params = append(params, p)
	}
	params = append(params, fpdu.PIString(fpdu.PIFreeMessage, truncate("refused by the gateway: "+why, 254)))
	if fp, err := fpdu.AppendFPDU(nil, ackType, s.clientID, 0, params...); err == nil {
		_ = s.writeClient(s.frameClient(fp))
	}
	s.auditTransfer(x, "refused by the gateway", diag, why)
	return false
}

// fileName returns the file name (PI 12) of a CREATE or SELECT, the one of
// PGI 9 (where the upstream reads it) if there are several, and how many
// PI 12 units the FPDU carries. Decode accepts a PI 12 at top level or in
// another PGI too; f.Get would return that one first, so a partner could
// show the gateway an allowed name and the upstream another.
func fileName(f *fpdu.FPDU) (name string, n int) {
	for _, p := range f.Params {
		if p.Code == fpdu.PIFileName {
			if n == 0 {
				name = p.Text()
			}
			n++
			continue
		}
		if !p.IsGroup() {
			continue
		}
		it := p.Children()
		it.AllowEmpty = true // already validated by Decode
		for it.Next() {
			if it.Param().Code == fpdu.PIFileName {
				if n == 0 || p.Code == fpdu.PGIFileID {
					name = it.Param().Text()
				}
				n++
			}
		}
	}
	return name, n
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func paramText(f *fpdu.FPDU, code byte) string {
	if p, ok := f.Get(code); ok {
		return p.Text()
	}
	return ""
}

func paramUint(f *fpdu.FPDU, code byte) uint64 {
	if p, ok := f.Get(code); ok {
		v, _ := p.Uint()
		return v
	}
	return 0
}

// countData adds a data FPDU to the current transfer's counts, in the
// direction the transfer goes: PI 27 counts data bytes without the 2-byte
// article lengths of multi-article DTFs, PI 28 counts articles, a
// segmented article once.
func (s *session) countData(h fpdu.Header, fromPartner bool) {
	body := uint64(h.Length) - fpdu.HeaderLen
	var articles uint64
	switch h.Type {
	case fpdu.TypeDTF:
		articles = 1
		if h.SrcID > 1 {
			articles = uint64(h.SrcID)
			body -= min(body, 2*articles)
		}
	case fpdu.TypeDTFFA:
		articles = 1
	}
	s.mu.Lock()
	if x := s.xfer; x != nil && x.write == fromPartner {
		x.seenBytes += body
		x.seenArticles += articles
		s.meter.data(x.write, body)
	}
	s.mu.Unlock()
}

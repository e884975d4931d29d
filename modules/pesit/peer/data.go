package peer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bankedge/bankedge/modules/pesit/fpdu"
)

// Buffer sizes of the data path. Large reads and writes keep the syscall
// count per GiB low; the buffers are pooled so a transfer allocates none
// of them in steady state.
const (
	chunkSize = 1 << 20   // read-ahead of the sender's source
	batchSize = 256 << 10 // outgoing NSDUs collected before one Write
	sinkSize  = 256 << 10 // received data collected before one Write
)

var (
	chunkPool = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}
	batchPool = sync.Pool{New: func() any {
		b := make([]byte, 0, batchSize+2*(fpdu.MaxFPDULen+2))
		return &b
	}}
	sinkPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, sinkSize) }}
)

// minEntitySize is the smallest PI 25 accepted: a data FPDU must carry at
// least a few bytes, and a SYN or DTF.END must fit in one NSDU.
const minEntitySize = 16

// dataParams are the negotiated parameters of one data phase.
type dataParams struct {
	peer     byte   // ID.DST of the data-phase FPDUs we send
	entity   int    // PI 25: largest NSDU (prefixed) or FPDU (raw)
	article  int    // the sender's article size
	interval int64  // sync interval in bytes; 0 = no sync points
	window   int    // unacknowledged SYNs allowed; 0 = SYNs are not acknowledged
	base     uint32 // restart point: the first SYN is base+1
}

// stride is the distance in bytes between two sync points for a sync
// interval and an article size: the largest multiple of the article size
// not above the interval. Sync point n sits at byte n × stride.
func stride(intervalKB uint16, article int) int64 {
	if intervalKB == 0 || article <= 0 {
		return 0
	}
	iv := int64(intervalKB) * 1024
	a := min(int64(article), iv)
	return iv / a * a
}

// xferStats counts what one data phase moved.
type xferStats struct {
	bytes    uint64 // data bytes, without multi-article length prefixes
	articles uint64 // a segmented article counts once
	syncs    uint32 // sync points passed in this data phase
	lastSync uint32 // last sync point passed (the base if none)
	// syncOffset is the file offset of lastSync as the receiver saw it
	// (receiver only; the sender computes it from the stride).
	syncOffset int64
}

// peerFrame is what the sender's read goroutine hands back: the first
// FPDU that is not an ACK(SYN), or the read error.
type peerFrame struct {
	b   []byte
	err error
}

// errPeerStopped means the peer sent something other than ACK(SYN) while
// we were still sending data (typically ABORT); join returns it.
var errPeerStopped = errors.New("pesit: peer interrupted the data phase")

// sender streams a file as DTF FPDUs. Its read goroutine consumes the
// ACK(SYN)s so that acknowledgements never wait for the writer.
type sender struct {
	l   *link
	p   dataParams
	st  xferStats
	buf *[]byte
	out []byte

	prefix int  // 2 with FramingPrefixed, else 0
	multi  bool // two articles fit in one DTF: pack multi-article DTFs
	nsdu   int  // start of the open NSDU in out, -1 if none
	dtf    int  // start of the open multi-article DTF in out, -1 if none
	nart   int  // articles in the open DTF
	since  int64

	sent    atomic.Uint32 // last SYN number sent
	acked   atomic.Uint32 // last SYN number acknowledged
	ending  atomic.Bool   // DTF.END is on its way: other FPDUs are expected now
	ackc    chan struct{}
	endc    chan peerFrame
	result  *peerFrame
	started bool
}

func newSender(l *link, p dataParams) *sender {
	s := &sender{l: l, p: p, nsdu: -1, dtf: -1, ackc: make(chan struct{}, 1), endc: make(chan peerFrame, 1)}
	if l.framing == fpdu.FramingPrefixed {
		s.prefix = 2
	}
	s.multi = fpdu.HeaderLen+2*(2+p.article) <= p.entity
	s.sent.Store(p.base)
	s.acked.Store(p.base)
	s.buf = batchPool.Get().(*[]byte)
	s.out = (*s.buf)[:0]
	return s
}

// start launches the read goroutine; join must be called afterwards.
func (s *sender) start() {
	s.started = true
	go s.readLoop()
}

func (s *sender) readLoop() {
	for {
		b, err := s.l.rd.Next()
		if err != nil {
			s.endc <- peerFrame{err: err}
			return
		}
		if fpdu.MakeType(b[2], b[3]) != fpdu.TypeAckSyn {
			s.endc <- peerFrame{b: b}
			return
		}
		n, err := syncNumber(b)
		if err == nil && (b[4] != s.l.localID || b[5] != 0) {
			err = protoErr("ACK(SYN) with ids %d/%d", b[4], b[5])
		}
		if err == nil && (n <= s.acked.Load() || n > s.sent.Load()) {
			err = protoErr("ACK(SYN) %d outside the window (%d acknowledged, %d sent)", n, s.acked.Load(), s.sent.Load())
		}
		if err != nil {
			s.endc <- peerFrame{err: err}
			return
		}
		s.acked.Store(n)
		select {
		case s.ackc <- struct{}{}:
		default:
		}
	}
}

// join waits for the read goroutine and returns what ended it. Callers
// that stop early must close the connection first so the read returns.
func (s *sender) join() peerFrame {
	if s.buf != nil {
		*s.buf = s.out[:0]
		batchPool.Put(s.buf)
		s.buf, s.out = nil, nil
	}
	if s.result == nil {
		if !s.started {
			return peerFrame{err: errPeerStopped}
		}
		r := <-s.endc
		s.result = &r
	}
	return *s.result
}

// pump sends the articles of src and the DTF.END, and flushes. It returns
// errPeerStopped when the peer interrupted (join tells what it sent), a
// write error, or a source error (the caller then aborts).
func (s *sender) pump(src *chunkReader) error {
	for {
		a, err := src.next(s.p.article)
		if err != nil {
			return errSource{err}
		}
		if len(a) == 0 {
			break
		}
		if s.p.interval > 0 && s.since > 0 && s.since+int64(len(a)) > s.p.interval && s.sent.Load() < fpdu.MaxSyncNumber {
			if err := s.syncPoint(); err != nil {
				return err
			}
		}
		if err := s.article(a); err != nil {
			return err
		}
		s.since += int64(len(a))
		s.st.bytes += uint64(len(a))
		s.st.articles++
	}
	s.closeDTF()
	if err := s.reserve(11); err != nil {
		return err
	}
	d := fpdu.DiagOK.Bytes()
	s.out = append(s.out, 0, 11, fpdu.TypeDTFEnd.Phase(), fpdu.TypeDTFEnd.Code(), s.p.peer, 0, fpdu.PIDiagnostic, 3, d[0], d[1], d[2])
	s.closeNSDU()
	s.ending.Store(true)
	return s.flush()
}

// article appends one article: into the open multi-article DTF if it
// fits, as a mono-article DTF, or segmented when larger than an FPDU.
func (s *sender) article(a []byte) error {
	maxData := s.p.entity - fpdu.HeaderLen
	switch {
	case len(a) > maxData:
		s.closeNSDU()
		for off := 0; off < len(a); {
			n := min(maxData, len(a)-off)
			t := fpdu.TypeDTFMA
			if off == 0 {
				t = fpdu.TypeDTFDA
			} else if off+n == len(a) {
				t = fpdu.TypeDTFFA
			}
			if err := s.open(); err != nil {
				return err
			}
			s.out = s.appendDataHeader(s.out, t, fpdu.HeaderLen+n, 0)
			s.out = append(s.out, a[off:off+n]...)
			s.closeNSDU()
			off += n
		}
		return nil
	case !s.multi:
		s.closeNSDU()
		if err := s.open(); err != nil {
			return err
		}
		s.out = s.appendDataHeader(s.out, fpdu.TypeDTF, fpdu.HeaderLen+len(a), 0)
		s.out = append(s.out, a...)
		s.closeNSDU()
		return nil
	}
	if s.dtf >= 0 && (len(s.out)-s.nsdu-s.prefix+2+len(a) > s.p.entity || s.nart == 255) {
		s.closeNSDU()
	}
	if s.dtf < 0 {
		if s.nsdu >= 0 && len(s.out)-s.nsdu-s.prefix+fpdu.HeaderLen+2+len(a) > s.p.entity {
			s.closeNSDU()
		}
		if s.nsdu < 0 {
			if err := s.open(); err != nil {
				return err
			}
		}
		s.dtf = len(s.out)
		s.out = append(s.out, 0, 0, 0, 0, 0, 0)
		s.nart = 0
	}
	s.out = append(s.out, byte(len(a)>>8), byte(len(a)))
	s.out = append(s.out, a...)
	s.nart++
	return nil
}

func (s *sender) appendDataHeader(b []byte, t fpdu.Type, ltm int, src byte) []byte {
	return append(b, byte(ltm>>8), byte(ltm), t.Phase(), t.Code(), s.p.peer, src)
}

// closeDTF finishes the open multi-article DTF: ID.SRC = N, or, for a
// single article, a mono-article DTF without the length prefix.
func (s *sender) closeDTF() {
	if s.dtf < 0 {
		return
	}
	src := byte(s.nart)
	if s.nart == 1 {
		copy(s.out[s.dtf+fpdu.HeaderLen:], s.out[s.dtf+fpdu.HeaderLen+2:])
		s.out = s.out[:len(s.out)-2]
		src = 0
	}
	s.appendDataHeader(s.out[s.dtf:s.dtf], fpdu.TypeDTF, len(s.out)-s.dtf, src)
	s.dtf = -1
}

// open starts an NSDU, flushing first if the batch could not hold a
// whole one.
func (s *sender) open() error {
	if cap(s.out)-len(s.out) < s.prefix+s.p.entity {
		if err := s.flush(); err != nil {
			return err
		}
	}
	s.nsdu = len(s.out)
	if s.prefix > 0 {
		s.out = append(s.out, 0, 0)
	}
	return nil
}

// closeNSDU finishes the open NSDU and writes its length prefix.
func (s *sender) closeNSDU() {
	s.closeDTF()
	if s.nsdu < 0 {
		return
	}
	if s.prefix > 0 {
		binary.BigEndian.PutUint16(s.out[s.nsdu:], uint16(len(s.out)-s.nsdu-2))
	}
	s.nsdu = -1
}

// reserve makes room for a concatenable control FPDU of n bytes: in the
// open NSDU when it fits (PeSIT allows SYN and DTF.END after data), else
// in a new one.
func (s *sender) reserve(n int) error {
	s.closeDTF()
	if s.nsdu >= 0 && len(s.out)-s.nsdu-s.prefix+n <= s.p.entity {
		return nil
	}
	s.closeNSDU()
	return s.open()
}

// syncPoint sends the next SYN once the window allows it.
func (s *sender) syncPoint() error {
	s.closeDTF()
	n := s.sent.Load() + 1
	if s.p.window > 0 {
		for n-s.acked.Load() > uint32(s.p.window) {
			s.closeNSDU()
			if err := s.flush(); err != nil {
				return err
			}
			select {
			case <-s.ackc:
			case r := <-s.endc:
				s.result = &r
				return errPeerStopped
			}
		}
	}
	if err := s.reserve(fpdu.SyncLen(n)); err != nil {
		return err
	}
	s.sent.Store(n)
	s.out = fpdu.AppendSync(s.out, fpdu.TypeSyn, s.p.peer, n)
	s.closeNSDU()
	s.since = 0
	s.st.syncs++
	return nil
}

// stats returns the counts; lastSync is the last acknowledged sync point,
// or the last one sent when the window is 0 and nobody acknowledges.
func (s *sender) stats() xferStats {
	st := s.st
	st.lastSync = s.acked.Load()
	if s.p.window == 0 {
		st.lastSync = s.sent.Load()
	}
	return st
}

// flush writes the batch, unless the peer has already interrupted.
func (s *sender) flush() error {
	if len(s.out) == 0 {
		return nil
	}
	select {
	case r := <-s.endc:
		s.result = &r
		return errPeerStopped
	default:
	}
	if err := s.l.refresh(); err != nil {
		return err
	}
	_, err := s.l.conn.Write(s.out)
	s.out = s.out[:0]
	return err
}

// chunkReader reads exactly `remaining` bytes from r in large chunks and
// hands them out as articles.
type chunkReader struct {
	r         io.Reader
	buf       *[]byte
	lo, hi    int
	remaining int64 // bytes not yet read from r
}

func newChunkReader(r io.Reader, n int64) *chunkReader {
	return &chunkReader{r: r, buf: chunkPool.Get().(*[]byte), remaining: n}
}

func (c *chunkReader) release() {
	if c.buf != nil {
		chunkPool.Put(c.buf)
		c.buf = nil
	}
}

// next returns up to n bytes (n unless the end is reached; empty at the
// end). The slice is valid until the next call.
func (c *chunkReader) next(n int) ([]byte, error) {
	buf := *c.buf
	if c.hi-c.lo < n && c.remaining > 0 {
		if c.lo > 0 {
			c.hi = copy(buf, buf[c.lo:c.hi])
			c.lo = 0
		}
		for empty := 0; c.hi < n && c.remaining > 0; {
			m := int(min(int64(len(buf)-c.hi), c.remaining))
			k, err := c.r.Read(buf[c.hi : c.hi+m])
			if k < 0 || k > m {
				return nil, io.ErrShortBuffer
			}
			c.hi += k
			c.remaining -= int64(k)
			switch {
			case err == io.EOF && c.remaining > 0:
				return nil, ErrShortSource
			case err == io.EOF:
			case err != nil:
				return nil, err
			case k == 0:
				if empty++; empty > 100 {
					return nil, io.ErrNoProgress
				}
			}
		}
	}
	n = min(n, c.hi-c.lo)
	a := buf[c.lo : c.lo+n]
	c.lo += n
	return a, nil
}

// receiver consumes a data phase: DTF*, SYN and finally DTF.END.
type receiver struct {
	l      *link
	p      dataParams
	w      *bufio.Writer
	offset int64 // file offset of the next byte, restart offset included
	// limit, when positive, is the offset the data must not go beyond;
	// overLimit is then the error.
	limit     int64
	overLimit *limitError
	st        xferStats
	ack       []byte
	// onSync runs at each sync point, after the data before it has been
	// written out, before it is acknowledged.
	onSync func(n uint32, offset int64) error
}

func newReceiver(l *link, p dataParams, dst io.Writer, offset int64) *receiver {
	w := sinkPool.Get().(*bufio.Writer)
	w.Reset(dst)
	return &receiver{l: l, p: p, w: w, offset: offset, st: xferStats{lastSync: p.base, syncOffset: offset}, ack: make([]byte, 0, 16)}
}

func (r *receiver) release() {
	if r.w != nil {
		r.w.Reset(nil)
		sinkPool.Put(r.w)
		r.w = nil
	}
}

// errSource marks a failure of the sender's local source, as opposed to
// the connection.
type errSource struct{ err error }

func (e errSource) Error() string { return "reading the file to send: " + e.err.Error() }
func (e errSource) Unwrap() error { return e.err }

// stop ends a data phase the sender could not finish: after a source
// error it aborts (and closes); after a connection error it gives the
// peer a moment to explain (its ABORT may be waiting in the socket) before
// join. It returns what join returns.
func (s *sender) stop(perr error) peerFrame {
	var se errSource
	switch {
	case errors.Is(perr, errPeerStopped):
	case errors.As(perr, &se):
		s.l.abort(fpdu.NewDiag(fpdu.ReasonIOError))
	default:
		_ = s.l.conn.SetReadDeadline(time.Now().Add(time.Second))
	}
	return s.join()
}

// limitError stops a write that would make its file larger than the
// server allows; diag goes into the ABORT.
type limitError struct {
	diag fpdu.Diag
	msg  string
}

func (e *limitError) Error() string { return e.msg }

// errSinkWrite marks a failure of the local destination, as opposed to the
// connection.
type errSinkWrite struct{ err error }

func (e errSinkWrite) Error() string { return "writing received data: " + e.err.Error() }
func (e errSinkWrite) Unwrap() error { return e.err }

// run consumes data-phase FPDUs until one that ends the phase (DTF.END,
// IDT, ABORT), which it returns undecoded; the caller handles it. The
// received data is flushed to the destination before it returns.
func (r *receiver) run() ([]byte, error) {
	inSeg := false
	last := r.p.base
	for {
		if err := r.l.refresh(); err != nil {
			return nil, err
		}
		b, err := r.l.rd.Next()
		if err != nil {
			return nil, err
		}
		t := fpdu.MakeType(b[2], b[3])
		switch t {
		case fpdu.TypeAbort:
			return b, r.flush()
		case fpdu.TypeDTF, fpdu.TypeDTFDA, fpdu.TypeDTFMA, fpdu.TypeDTFFA, fpdu.TypeSyn, fpdu.TypeDTFEnd, fpdu.TypeIDT:
		default:
			return nil, protoErr("%v during the data phase", t)
		}
		if b[4] != r.l.localID || (b[5] != 0 && t != fpdu.TypeDTF) {
			return nil, protoErr("%v with ids %d/%d", t, b[4], b[5])
		}
		switch t {
		case fpdu.TypeDTF:
			if inSeg {
				return nil, protoErr("DTF inside a segmented article")
			}
			h := fpdu.Header{Type: t, SrcID: b[5]}
			it := fpdu.NewArticleIter(h, b[fpdu.HeaderLen:])
			for it.Next() {
				if err := r.write(it.Article()); err != nil {
					return nil, err
				}
				r.st.articles++
			}
			if it.Err() != nil {
				return nil, protoErr("%v", it.Err())
			}
		case fpdu.TypeDTFDA, fpdu.TypeDTFMA, fpdu.TypeDTFFA:
			if inSeg != (t != fpdu.TypeDTFDA) {
				return nil, protoErr("%v out of sequence", t)
			}
			if err := r.write(b[fpdu.HeaderLen:]); err != nil {
				return nil, err
			}
			inSeg = t != fpdu.TypeDTFFA
			if !inSeg {
				r.st.articles++
			}
		case fpdu.TypeSyn:
			if inSeg {
				return nil, protoErr("SYN inside a segmented article")
			}
			n, err := syncNumber(b)
			if err != nil {
				return nil, err
			}
			if n != last+1 {
				return nil, protoErr("SYN %d after sync point %d", n, last)
			}
			if err := r.flush(); err != nil {
				return nil, err
			}
			if r.onSync != nil {
				if err := r.onSync(n, r.offset); err != nil {
					return nil, err
				}
			}
			last = n
			r.st.syncs++
			r.st.lastSync, r.st.syncOffset = n, r.offset
			if r.p.window > 0 {
				if err := r.sendAck(n); err != nil {
					return nil, err
				}
			}
		default: // DTF.END, IDT
			if inSeg && t == fpdu.TypeDTFEnd {
				return nil, protoErr("DTF.END inside a segmented article")
			}
			return b, r.flush()
		}
	}
}

func (r *receiver) write(a []byte) error {
	if r.limit > 0 && r.offset+int64(len(a)) > r.limit {
		return r.overLimit
	}
	if _, err := r.w.Write(a); err != nil {
		return errSinkWrite{err}
	}
	r.offset += int64(len(a))
	r.st.bytes += uint64(len(a))
	return nil
}

func (r *receiver) flush() error {
	if err := r.w.Flush(); err != nil {
		return errSinkWrite{err}
	}
	return nil
}

func (r *receiver) sendAck(n uint32) error {
	b := r.ack[:0]
	if r.l.framing == fpdu.FramingPrefixed {
		b = append(b, 0, byte(fpdu.SyncLen(n)))
	}
	b = fpdu.AppendSync(b, fpdu.TypeAckSyn, r.p.peer, n)
	r.ack = b
	_, err := r.l.conn.Write(b)
	return err
}

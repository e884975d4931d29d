package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/bankedge/bankedge/modules/pesit/fpdu"
)

// Defaults applied to zero option values.
const (
	// DefaultSyncIntervalKB is the proposed sync interval: 1 MiB. With the
	// default window 4 MiB may be unacknowledged, enough for 200 MB/s over
	// a 20 ms round trip, while a restart repeats at most 1 MiB.
	DefaultSyncIntervalKB = 1024
	// DefaultSyncWindow is the proposed number of unacknowledged SYNs.
	DefaultSyncWindow = 4
	// DefaultArticleSize is the article size of Send and of the server's
	// reads (PI 32).
	DefaultArticleSize = 4096
	// DefaultMaxEntitySize is the proposed PI 25, the largest the 2-byte
	// field allows.
	DefaultMaxEntitySize = 65535
	// DefaultTimeout bounds each exchange with the peer.
	DefaultTimeout = 60 * time.Second
)

// clientID is the requester's connection id X. One connection has one
// PeSIT connection, so a constant does; 1 is what PeSIT Wizard uses.
const clientID = 1

// Access is the access type proposed in CONNECT (PI 22). Its zero value
// proposes mixed access, so one connection can both Send and Fetch; the
// constants are not the wire values.
type Access byte

// Access types.
const (
	AccessMixed Access = iota // PI 22 = 2: Send and Fetch
	AccessWrite               // PI 22 = 0: Send only
	AccessRead                // PI 22 = 1: Fetch only
)

// pi22 returns the wire value.
func (a Access) pi22() byte {
	switch a {
	case AccessWrite:
		return 0
	case AccessRead:
		return 1
	}
	return 2
}

// ConnectOptions configure a requester connection. Zero values select the
// documented defaults.
type ConnectOptions struct {
	// RequesterID and ServerID are PI 3 and PI 4: 1-24 printable ASCII
	// characters, sent as given (not padded).
	RequesterID, ServerID string
	// Password is PI 5: blank-padded to 8 bytes when shorter, sent in full
	// up to the 16 bytes PI 5 holds (bytes 9-16 then ask the server to
	// change the password: PeSIT has no longer passwords). Empty sends no
	// PI 5.
	Password string
	// Access is PI 22 (default AccessMixed).
	Access Access
	// SyncIntervalKB is the proposed sync interval (PI 7 bytes 1-2);
	// 0 selects DefaultSyncIntervalKB. The smaller of the two proposals
	// wins, and restarts need sync points.
	SyncIntervalKB uint16
	// NoSync proposes no sync points at all (sends no PI 7): transfers
	// then cannot be restarted.
	NoSync bool
	// SyncWindow is the proposed acknowledgement window (PI 7 byte 3);
	// 0 selects DefaultSyncWindow.
	SyncWindow byte
	// Resync proposes PI 23 = 1. This package never sends RESYN and
	// refuses a received one; the option exists for peers that insist.
	Resync bool
	// Framing is fpdu.FramingPrefixed (also chosen by the zero value
	// FramingAuto; required on plain TCP) or fpdu.FramingRaw (TLS with
	// Connect:Express TCPIP_HEADER=N). A requester cannot detect it.
	Framing fpdu.Framing
	// PreConnection sends the 24-byte EBCDIC pre-connection before
	// CONNECT and requires ACK0, for peers configured to expect it.
	PreConnection bool
	// PreConnectionID and PreConnectionPassword (each at most 8
	// characters) default to RequesterID and Password.
	PreConnectionID, PreConnectionPassword string
	// MaxEntitySize is the proposed PI 25 (default 65535; at least 16).
	MaxEntitySize uint16
	// Timeout bounds every exchange and every stall of the data flow
	// (default DefaultTimeout).
	Timeout time.Duration
}

func (o ConnectOptions) withDefaults() (ConnectOptions, error) {
	for _, id := range [2]string{o.RequesterID, o.ServerID} {
		if len(id) == 0 || len(id) > fpdu.MaxIDLen || !printableASCII(id) {
			return o, fmt.Errorf("pesit: identifier %q must be 1-%d printable ASCII characters", id, fpdu.MaxIDLen)
		}
	}
	if len(o.Password) > fpdu.MaxPI5Len {
		return o, fmt.Errorf("pesit: password of %d characters: PI 5 holds at most %d", len(o.Password), fpdu.MaxPI5Len)
	}
	if o.SyncIntervalKB == 0 {
		o.SyncIntervalKB = DefaultSyncIntervalKB
	}
	if o.SyncWindow == 0 {
		o.SyncWindow = DefaultSyncWindow
	}
	if o.NoSync {
		o.SyncIntervalKB, o.SyncWindow = 0, 0
	}
	switch o.Framing {
	case fpdu.FramingAuto:
		o.Framing = fpdu.FramingPrefixed
	case fpdu.FramingPrefixed, fpdu.FramingRaw:
	default:
		return o, fmt.Errorf("pesit: framing %v", o.Framing)
	}
	if o.MaxEntitySize == 0 {
		o.MaxEntitySize = DefaultMaxEntitySize
	}
	if o.MaxEntitySize < minEntitySize {
		return o, fmt.Errorf("pesit: max entity size %d below %d", o.MaxEntitySize, minEntitySize)
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.PreConnection {
		if o.PreConnectionID == "" {
			o.PreConnectionID = o.RequesterID
		}
		if o.PreConnectionPassword == "" {
			o.PreConnectionPassword = o.Password
		}
		if len(o.PreConnectionID) > 8 || len(o.PreConnectionPassword) > 8 {
			return o, errors.New("pesit: the pre-connection identifier and password hold at most 8 characters; set PreConnectionID/PreConnectionPassword")
		}
	}
	return o, nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7E {
			return false
		}
	}
	return true
}

// Client is a PeSIT requester on one connection. Its methods serialise
// themselves; transfers run one after the other. After a transport error,
// a cancelled context, a protocol error or an ABORT the Client is broken
// and every method returns an error wrapping ErrClosed; a refusal by
// negative ACK leaves it usable.
type Client struct {
	mu   sync.Mutex
	l    *link
	opts ConnectOptions
	x, y byte
	// Negotiated in ACONNECT.
	syncKB uint16
	window byte
	err    error // sticky: set once the connection is unusable
}

// NewClient runs the pre-connection (if asked) and CONNECT/ACONNECT on
// conn, which the caller has dialled (TCP, or TLS with the handshake done
// or pending). On failure it closes conn; a refusal is a *RefusedError.
func NewClient(conn net.Conn, opts ConnectOptions) (*Client, error) {
	o, err := opts.withDefaults()
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	c := &Client{l: newLink(conn, o.Framing, o.Timeout), opts: o, x: clientID}
	c.l.localID = clientID
	if err := c.connect(); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return c, nil
}

func (c *Client) connect() error {
	o := c.opts
	if o.PreConnection {
		b, err := fpdu.AppendPreConnection(nil, o.PreConnectionID, o.PreConnectionPassword, o.Framing == fpdu.FramingPrefixed)
		if err != nil {
			return fmt.Errorf("pesit: %w", err)
		}
		if err := c.l.writeRaw(b); err != nil {
			return fmt.Errorf("pesit: sending pre-connection: %w", err)
		}
		n := 4
		p, err := c.l.rd.Peek(2)
		if err == nil && p[0] == 0 && p[1] == 4 {
			n = 6 // the answer carries the NSDU prefix
		}
		if err == nil {
			p, err = c.l.rd.Peek(n)
		}
		if err != nil {
			return fmt.Errorf("pesit: reading pre-connection answer: %w", err)
		}
		ack, err := fpdu.ParsePreConnectionAnswer(p)
		if err != nil {
			return fmt.Errorf("pesit: %w", err)
		}
		if !ack {
			return &RefusedError{NAK: true}
		}
		_ = c.l.rd.Discard(n)
	}
	cn := fpdu.Connect{
		SrcID: c.x, RequesterID: o.RequesterID, ServerID: o.ServerID, Version: fpdu.VersionE,
		AccessType: o.Access.pi22(), HasAccessType: true, Resync: o.Resync,
	}
	if o.Password != "" {
		cn.Password, cn.HasPassword = fpdu.PadPassword(o.Password), true
	}
	if o.SyncIntervalKB > 0 {
		cn.SyncInterval, cn.SyncWindow, cn.HasSync = o.SyncIntervalKB, o.SyncWindow, true
	}
	b, err := cn.Append(nil)
	if err == nil {
		b, err = fpdu.AppendNSDU(nil, o.Framing, b)
	}
	if err != nil {
		return fmt.Errorf("pesit: encoding CONNECT: %w", err)
	}
	if err := c.l.writeRaw(b); err != nil {
		return fmt.Errorf("pesit: sending CONNECT: %w", err)
	}
	b, err = c.l.next()
	if err != nil {
		return fmt.Errorf("pesit: waiting for ACONNECT: %w", err)
	}
	f, err := fpdu.Decode(b)
	if err != nil {
		return fmt.Errorf("%w: answer to CONNECT: %v", ErrProtocol, err)
	}
	switch f.Type {
	case fpdu.TypeRConnect, fpdu.TypeAbort:
		d, _ := f.Diag()
		return refusal(&f, d)
	case fpdu.TypeAConnect:
	default:
		return protoErr("%v in answer to CONNECT", f.Type)
	}
	if f.DstID != c.x || f.SrcID == 0 {
		return protoErr("ACONNECT with ids %d/%d", f.DstID, f.SrcID)
	}
	c.y = f.SrcID
	c.l.peerID = c.y
	if v, ok, err := getUint(&f, fpdu.PIVersion); err != nil || (ok && v != fpdu.VersionE) {
		return protoErr("ACONNECT version %d", v)
	}
	if p, ok := f.Get(fpdu.PISyncPoints); ok && o.SyncIntervalKB > 0 {
		if len(p.Value) != 3 {
			return protoErr("ACONNECT PI 7 of %d bytes", len(p.Value))
		}
		c.syncKB = min(uint16(p.Value[0])<<8|uint16(p.Value[1]), o.SyncIntervalKB)
		c.window = min(p.Value[2], o.SyncWindow)
		if c.syncKB == 0 {
			c.window = 0
		}
	}
	return nil
}

// TransferOptions tune one transfer.
type TransferOptions struct {
	// TransferID is PI 13 (24 bits). Send picks a random non-zero one
	// when 0; Fetch sends 0 and the server assigns it. A restart must
	// pass the id of the interrupted transfer (Result.TransferID).
	TransferID uint32
	// ArticleSize is Send's article size (default 4096, at most 65535 and
	// at most the sync interval). Articles larger than the entity size
	// minus 6 travel segmented (DTFDA/DTFMA/DTFFA).
	ArticleSize int
	// Restart resumes an interrupted transfer: CREATE or SELECT with
	// PI 15 = 1 and the same TransferID. Send resumes where the server
	// says (ACK(WRITE) PI 18) and seeks src there itself.
	Restart bool
	// RestartPoint is, for a Fetch restart, the last sync point the
	// caller has fully written (Result.LastSync of the interrupted Fetch).
	// If dst is an io.Seeker, Fetch seeks it to the matching offset (and
	// truncates it there when it has a Truncate(int64) error method, like
	// *os.File); otherwise dst must already be positioned there.
	RestartPoint uint32
	// RestartOffset, when non-zero, is the offset the caller expects for
	// RestartPoint (Result.LastSyncOffset, the offset at which the sync
	// point actually arrived); Fetch refuses to resume if the negotiated
	// sync interval and article size place the point elsewhere, as a
	// server that spaces its sync points differently would.
	RestartOffset int64
	// Label is PI 37, sent in CREATE (PGI 30); at most 80 characters.
	Label string
}

// Result describes a transfer, also a failed one.
type Result struct {
	// TransferID is the PI 13 of the transfer: what a restart must pass.
	TransferID uint32
	// Bytes and Articles were moved in this session (after the restart
	// point): the PI 27/28 both sides agreed on.
	Bytes, Articles uint64
	// SyncPoints is the number of sync points passed in this session.
	SyncPoints uint32
	// RestartPoint and RestartOffset are where this session started: the
	// sync point granted by the server (Send) or requested (Fetch), and
	// its byte offset. Zero for a transfer from the beginning.
	RestartPoint  uint32
	RestartOffset int64
	// LastSync and LastSyncOffset are the last sync point confirmed in
	// this session (acknowledged by the server for Send; written to dst
	// and acknowledged for Fetch) and its offset. After a failed Fetch,
	// restart from there.
	LastSync       uint32
	LastSyncOffset int64
}

// begin locks the client and arms cancellation for one operation.
func (c *Client) begin(ctx context.Context) (end func(*error), err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: %w", ErrClosed, c.err)
	}
	if err := ctx.Err(); err != nil {
		c.mu.Unlock()
		return nil, err
	}
	stop := c.l.watch(ctx)
	return func(errp *error) {
		stop()
		if *errp != nil && ctx.Err() != nil {
			c.breakWith(context.Cause(ctx))
			*errp = fmt.Errorf("pesit: %w (%v)", context.Cause(ctx), *errp)
		}
		c.mu.Unlock()
	}, nil
}

// breakWith marks the client unusable and closes the connection.
func (c *Client) breakWith(err error) {
	if c.err == nil {
		c.err = err
	}
	_ = c.l.conn.Close()
}

// fail handles a transport error: the connection is gone.
func (c *Client) fail(err error) error {
	c.breakWith(err)
	return fmt.Errorf("pesit: %w", err)
}

// protocol aborts the connection with 3-311 (3-318 for bad parameters).
func (c *Client) protocol(err error) error {
	d := fpdu.NewDiag(fpdu.ReasonProtocolError)
	if errors.Is(err, fpdu.ErrMissing) {
		d = fpdu.NewDiag(fpdu.ReasonBadParameter)
	}
	if !errors.Is(err, ErrProtocol) {
		err = fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	c.l.abort(d)
	c.breakWith(err)
	return err
}

// call sends a control FPDU and waits for its answer.
func (c *Client) call(t, want fpdu.Type, params ...fpdu.Param) (fpdu.FPDU, error) {
	if err := c.l.send(t, params...); err != nil {
		return fpdu.FPDU{}, c.fail(err)
	}
	b, err := c.l.next()
	if err != nil {
		return fpdu.FPDU{}, c.fail(err)
	}
	return c.check(b, want)
}

// check decodes an answer: ABORT breaks the client, an unexpected FPDU is
// a protocol error, a negative ACK a *RefusedError (client still usable).
func (c *Client) check(b []byte, want fpdu.Type) (fpdu.FPDU, error) {
	f, err := fpdu.Decode(b)
	if err != nil {
		return f, c.protocol(err)
	}
	if f.Type == fpdu.TypeAbort {
		d, _ := f.Diag()
		e := refusal(&f, d)
		c.breakWith(e)
		return f, e
	}
	if f.Type != want {
		return f, c.protocol(protoErr("got %v, want %v", f.Type, want))
	}
	if f.DstID != c.x || f.SrcID != 0 {
		return f, c.protocol(protoErr("%v with ids %d/%d", f.Type, f.DstID, f.SrcID))
	}
	d, err := diagOf(&f)
	if err != nil {
		return f, c.protocol(err)
	}
	if !d.OK() {
		return f, refusal(&f, d)
	}
	return f, nil
}

// isRefusal reports a negative ACK, after which the connection is usable.
func (c *Client) isRefusal(err error) bool {
	var re *RefusedError
	return c.err == nil && errors.As(err, &re)
}

// Unwinding steps after a refusal or failure in the middle of a transfer.
const (
	stageSelected = iota + 1 // CREATE/SELECT accepted: DESELECT
	stageOpen                // ORF accepted: CRF, DESELECT
)

// unwind closes what is open, best effort: CRF with d, then DESELECT.
func (c *Client) unwind(stage int, d fpdu.Diag) {
	if c.err != nil {
		return
	}
	if stage >= stageOpen {
		if _, err := c.call(fpdu.TypeCRF, fpdu.TypeAckCRF, d.Param()); err != nil && !c.isRefusal(err) {
			return
		}
	}
	_, _ = c.call(fpdu.TypeDeselect, fpdu.TypeAckDeselect, fpdu.DiagOK.Param())
}

// closeFile runs CRF and DESELECT at the end of a transfer.
func (c *Client) closeFile(d fpdu.Diag) error {
	if _, err := c.call(fpdu.TypeCRF, fpdu.TypeAckCRF, d.Param()); err != nil {
		if c.isRefusal(err) {
			c.unwind(stageSelected, d)
		}
		return err
	}
	_, err := c.call(fpdu.TypeDeselect, fpdu.TypeAckDeselect, fpdu.DiagOK.Param())
	return err
}

// newTransferID returns a random non-zero 24-bit PI 13. Random ids make
// the collisions that Axway reports as "204 file exists" unlikely.
func newTransferID() uint32 { return 1 + rand.Uint32N(0xFFFFFE) }

// articleSize applies the default and the limits to a requested size.
func (c *Client) articleSize(n int) int {
	if n <= 0 {
		n = DefaultArticleSize
	}
	n = min(n, 0xFFFF)
	if c.syncKB > 0 {
		n = min(n, int(c.syncKB)*1024)
	}
	return n
}

// Send writes src (size bytes; a negative size is measured with Seek) to
// the server as the file name: CREATE, ORF, WRITE, the data with sync
// points, DTF.END, TRANS.END, CRF, DESELECT.
func (c *Client) Send(ctx context.Context, name string, src io.ReadSeeker, size int64, opts TransferOptions) (res Result, err error) {
	end, err := c.begin(ctx)
	if err != nil {
		return res, err
	}
	defer end(&err)
	if err := checkRequestName(name, opts.Label); err != nil {
		return res, err
	}
	if size < 0 {
		if size, err = src.Seek(0, io.SeekEnd); err != nil {
			return res, fmt.Errorf("pesit: measuring the source: %w", err)
		}
	}
	tid, err := transferID(opts, true)
	if err != nil {
		return res, err
	}
	res.TransferID = tid
	art := c.articleSize(opts.ArticleSize)
	attrs := []fpdu.Param{fpdu.PIByte(fpdu.PIArticleFormat, 0x80), fpdu.PIUint(fpdu.PIArticleLength, uint64(art), 2)}
	if opts.Label != "" {
		attrs = append(attrs, fpdu.PIString(fpdu.PIFileLabel, opts.Label))
	}
	params := []fpdu.Param{
		fpdu.PGI(fpdu.PGIFileID, fpdu.PIUint(fpdu.PIFileType, 0, 1), fpdu.PIString(fpdu.PIFileName, name)),
		fpdu.PIUint(fpdu.PITransferID, uint64(tid), 1),
	}
	if opts.Restart {
		params = append(params, fpdu.PIByte(fpdu.PIRestart, 1))
	}
	params = append(params,
		fpdu.PIByte(fpdu.PIDataCode, 2), // binary: the bytes are stored as sent
		fpdu.PIByte(fpdu.PIPriority, 0),
		fpdu.PIUint(fpdu.PIMaxEntitySize, uint64(c.opts.MaxEntitySize), 2),
		fpdu.PGI(fpdu.PGILogicalAttrs, attrs...),
		fpdu.PGI(fpdu.PGIPhysicalAttrs, fpdu.PIByte(fpdu.PISpaceUnit, 0), fpdu.PIUint(fpdu.PIMaxSpace, uint64((size+1023)/1024), 1)),
		fpdu.PGI(fpdu.PGIHistoricAttrs, fpdu.PIString(fpdu.PICreationDate, time.Now().Format(dateLayout))),
	)
	f, err := c.call(fpdu.TypeCreate, fpdu.TypeAckCreate, params...)
	if err != nil {
		return res, err
	}
	entity, err := c.entity(&f)
	if err != nil {
		return res, err
	}
	if _, err := c.call(fpdu.TypeORF, fpdu.TypeAckORF); err != nil {
		if c.isRefusal(err) {
			c.unwind(stageSelected, fpdu.NewDiag(fpdu.ReasonPrematureStop))
		}
		return res, err
	}
	if f, err = c.call(fpdu.TypeWrite, fpdu.TypeAckWrite); err != nil {
		if c.isRefusal(err) {
			c.unwind(stageOpen, fpdu.NewDiag(fpdu.ReasonPrematureStop))
		}
		return res, err
	}
	point, _, err := getUint(&f, fpdu.PIRestartPoint)
	if err != nil {
		return res, c.protocol(err)
	}
	st := stride(c.syncKB, art)
	offset := int64(point) * st
	switch {
	case point > 0 && !opts.Restart:
		return res, c.protocol(protoErr("ACK(WRITE) restart point %d for a new transfer", point))
	case point > fpdu.MaxSyncNumber || (point > 0 && st == 0) || offset > size:
		return res, c.protocol(protoErr("ACK(WRITE) restart point %d beyond the file", point))
	}
	if _, err := src.Seek(offset, io.SeekStart); err != nil {
		c.l.abort(fpdu.NewDiag(fpdu.ReasonIOError))
		return res, c.fail(fmt.Errorf("seeking the source to %d: %w", offset, err))
	}
	res.RestartPoint, res.RestartOffset = uint32(point), offset
	res.LastSync, res.LastSyncOffset = uint32(point), offset

	s := newSender(c.l, dataParams{peer: c.y, entity: entity, article: art, interval: st, window: int(c.window), base: uint32(point)})
	cr := newChunkReader(src, size-offset)
	s.start()
	perr := s.pump(cr)
	cr.release()
	if perr == nil {
		stt := s.stats()
		perr = c.l.send(fpdu.TypeTransEnd, fpdu.PIUint(fpdu.PIByteCount, stt.bytes, 1), fpdu.PIUint(fpdu.PIArticleCount, stt.articles, 1))
	}
	var pf peerFrame
	if perr != nil {
		pf = s.stop(perr)
	} else {
		pf = s.join()
	}
	stt := s.stats()
	res.Bytes, res.Articles, res.SyncPoints = stt.bytes, stt.articles, stt.syncs
	res.LastSync, res.LastSyncOffset = stt.lastSync, int64(stt.lastSync)*st
	if pf.b != nil && fpdu.MakeType(pf.b[2], pf.b[3]) == fpdu.TypeAbort {
		_, err := c.check(pf.b, fpdu.TypeAckTransEnd) // the peer's ABORT explains the failure
		return res, err
	}
	if perr != nil && !errors.Is(perr, errPeerStopped) {
		return res, c.fail(perr)
	}
	if pf.err != nil {
		if errors.Is(pf.err, ErrProtocol) {
			return res, c.protocol(pf.err)
		}
		return res, c.fail(pf.err)
	}
	if t := fpdu.MakeType(pf.b[2], pf.b[3]); t == fpdu.TypeIDT {
		return res, c.interrupted(pf.b)
	} else if perr != nil {
		return res, c.protocol(protoErr("%v during the data phase", t))
	}
	if f, err = c.check(pf.b, fpdu.TypeAckTransEnd); err != nil {
		if c.isRefusal(err) {
			c.unwind(stageOpen, fpdu.NewDiag(fpdu.ReasonWrongCount))
		}
		return res, err
	}
	if err := c.checkCounts(&f, stt); err != nil {
		c.unwind(stageOpen, fpdu.NewDiag(fpdu.ReasonWrongCount))
		return res, err
	}
	return res, c.closeFile(fpdu.DiagOK)
}

// interrupted answers an IDT received in the data phase and closes the
// file; the transfer can be restarted later.
func (c *Client) interrupted(b []byte) error {
	f, err := fpdu.Decode(b)
	if err != nil || f.DstID != c.x {
		return c.protocol(protoErr("bad IDT"))
	}
	d, _ := diagOf(&f)
	if err := c.l.send(fpdu.TypeAckIDT); err != nil {
		return c.fail(err)
	}
	c.unwind(stageOpen, d)
	return refusal(&f, d)
}

// checkCounts compares the peer's PI 27/28 with ours.
func (c *Client) checkCounts(f *fpdu.FPDU, st xferStats) error {
	for _, x := range [2]struct {
		code byte
		want uint64
	}{{fpdu.PIByteCount, st.bytes}, {fpdu.PIArticleCount, st.articles}} {
		v, ok, err := getUint(f, x.code)
		if err != nil {
			return c.protocol(err)
		}
		if ok && v != x.want {
			return fmt.Errorf("%w: peer counted %s = %d, we counted %d", ErrCountMismatch, fpdu.ParamName(x.code), v, x.want)
		}
	}
	return nil
}

// entity returns the negotiated PI 25 from ACK(CREATE) or ACK(SELECT).
func (c *Client) entity(f *fpdu.FPDU) (int, error) {
	v, ok, err := getUint(f, fpdu.PIMaxEntitySize)
	if err != nil {
		return 0, c.protocol(err)
	}
	e := int(c.opts.MaxEntitySize)
	if ok {
		e = min(e, int(v))
	}
	if e < minEntitySize {
		return 0, c.protocol(protoErr("PI 25 = %d", e))
	}
	return e, nil
}

// transferID validates or picks PI 13.
func transferID(o TransferOptions, create bool) (uint32, error) {
	switch {
	case o.TransferID > 0xFFFFFF:
		return 0, fmt.Errorf("pesit: transfer id %d exceeds 24 bits", o.TransferID)
	case o.Restart && o.TransferID == 0:
		return 0, errors.New("pesit: a restart needs the transfer id of the interrupted transfer")
	case o.TransferID == 0 && create:
		return newTransferID(), nil
	}
	return o.TransferID, nil
}

// checkRequestName rejects names no server can accept, before any I/O.
func checkRequestName(name, label string) error {
	if len(name) == 0 || len(name) > maxNameLen {
		return fmt.Errorf("pesit: file name of %d bytes, want 1-%d", len(name), maxNameLen)
	}
	if len(label) > 80 {
		return fmt.Errorf("pesit: label of %d bytes, want at most 80", len(label))
	}
	return nil
}

// truncater is implemented by *os.File.
type truncater interface{ Truncate(size int64) error }

// Fetch reads the file name from the server into dst: SELECT, ORF, READ,
// the data with acknowledged sync points, TRANS.END, CRF, DESELECT. On
// failure the Result tells how far dst is good (LastSync, LastSyncOffset).
func (c *Client) Fetch(ctx context.Context, name string, dst io.Writer, opts TransferOptions) (res Result, err error) {
	end, err := c.begin(ctx)
	if err != nil {
		return res, err
	}
	defer end(&err)
	if err := checkRequestName(name, ""); err != nil {
		return res, err
	}
	tid, err := transferID(opts, false)
	if err != nil {
		return res, err
	}
	if !opts.Restart && opts.RestartPoint != 0 {
		return res, errors.New("pesit: RestartPoint without Restart")
	}
	params := []fpdu.Param{
		fpdu.PGI(fpdu.PGIFileID, fpdu.PIUint(fpdu.PIFileType, 0, 1), fpdu.PIString(fpdu.PIFileName, name)),
		fpdu.PIUint(fpdu.PITransferID, uint64(tid), 1),
		fpdu.PIByte(fpdu.PIRequestedAttrs, 0xE0),
	}
	if opts.Restart {
		params = append(params, fpdu.PIByte(fpdu.PIRestart, 1))
	}
	params = append(params, fpdu.PIByte(fpdu.PIPriority, 0), fpdu.PIUint(fpdu.PIMaxEntitySize, uint64(c.opts.MaxEntitySize), 2))
	f, err := c.call(fpdu.TypeSelect, fpdu.TypeAckSelect, params...)
	if err != nil {
		return res, err
	}
	entity, err := c.entity(&f)
	if err != nil {
		return res, err
	}
	v, ok, err := getUint(&f, fpdu.PITransferID)
	if err != nil || !ok || v == 0 || v > 0xFFFFFF || (opts.Restart && uint32(v) != tid) {
		return res, c.protocol(protoErr("ACK(SELECT) transfer id %d", v))
	}
	res.TransferID = uint32(v)
	art, _, err := getUint(&f, fpdu.PIArticleLength)
	if err != nil {
		return res, c.protocol(err)
	}
	point := opts.RestartPoint
	st := stride(c.syncKB, int(art))
	offset := int64(point) * st
	if point > 0 && (st == 0 || (opts.RestartOffset != 0 && offset != opts.RestartOffset)) {
		c.unwind(stageSelected, fpdu.NewDiag(fpdu.ReasonRestartNegotiation))
		return res, fmt.Errorf("pesit: cannot resume at sync point %d: with a sync interval of %d KB and articles of %d bytes it sits at byte %d, not %d",
			point, c.syncKB, art, offset, opts.RestartOffset)
	}
	if _, err := c.call(fpdu.TypeORF, fpdu.TypeAckORF); err != nil {
		if c.isRefusal(err) {
			c.unwind(stageSelected, fpdu.NewDiag(fpdu.ReasonPrematureStop))
		}
		return res, err
	}
	if point > 0 {
		if err := positionSink(dst, offset); err != nil {
			c.unwind(stageOpen, fpdu.NewDiag(fpdu.ReasonIOError))
			return res, err
		}
	}
	res.RestartPoint, res.RestartOffset = point, offset
	res.LastSync, res.LastSyncOffset = point, offset
	if _, err := c.call(fpdu.TypeRead, fpdu.TypeAckRead, fpdu.PIUint(fpdu.PIRestartPoint, uint64(point), 1)); err != nil {
		if c.isRefusal(err) {
			c.unwind(stageOpen, fpdu.NewDiag(fpdu.ReasonPrematureStop))
		}
		return res, err
	}

	r := newReceiver(c.l, dataParams{peer: c.y, entity: entity, interval: st, window: int(c.window), base: point}, dst, offset)
	c.l.rd.SetMaxSize(entity)
	tb, rerr := r.run()
	c.l.rd.SetMaxSize(fpdu.MaxFPDULen)
	r.release()
	res.Bytes, res.Articles, res.SyncPoints = r.st.bytes, r.st.articles, r.st.syncs
	res.LastSync, res.LastSyncOffset = r.st.lastSync, r.st.syncOffset
	var sinkErr errSinkWrite
	switch {
	case errors.As(rerr, &sinkErr):
		c.l.abort(fpdu.NewDiag(fpdu.ReasonIOError))
		return res, c.fail(rerr)
	case errors.Is(rerr, ErrProtocol):
		return res, c.protocol(rerr)
	case rerr != nil:
		return res, c.fail(rerr)
	}
	switch fpdu.MakeType(tb[2], tb[3]) {
	case fpdu.TypeAbort:
		_, err := c.check(tb, fpdu.TypeDTFEnd)
		return res, err
	case fpdu.TypeIDT:
		return res, c.interrupted(tb)
	}
	f, err = fpdu.Decode(tb)
	if err != nil {
		return res, c.protocol(err)
	}
	endDiag, err := diagOf(&f)
	if err != nil {
		return res, c.protocol(err)
	}
	f, err = c.call(fpdu.TypeTransEnd, fpdu.TypeAckTransEnd,
		fpdu.PIUint(fpdu.PIByteCount, r.st.bytes, 1), fpdu.PIUint(fpdu.PIArticleCount, r.st.articles, 1))
	if err != nil {
		if c.isRefusal(err) {
			c.unwind(stageOpen, fpdu.DiagOK)
		}
		return res, err
	}
	if !endDiag.OK() {
		c.unwind(stageOpen, endDiag)
		return res, &RefusedError{FPDU: fpdu.TypeDTFEnd, Diag: endDiag}
	}
	if err := c.checkCounts(&f, r.st); err != nil {
		c.unwind(stageOpen, fpdu.NewDiag(fpdu.ReasonWrongCount))
		return res, err
	}
	return res, c.closeFile(fpdu.DiagOK)
}

// positionSink moves a restarted Fetch's destination to offset.
func positionSink(dst io.Writer, offset int64) error {
	s, ok := dst.(io.Seeker)
	if !ok {
		return nil // documented: the caller positioned it
	}
	if t, ok := dst.(truncater); ok {
		if err := t.Truncate(offset); err != nil {
			return fmt.Errorf("pesit: truncating the destination to %d: %w", offset, err)
		}
	}
	if _, err := s.Seek(offset, io.SeekStart); err != nil {
		return fmt.Errorf("pesit: seeking the destination to %d: %w", offset, err)
	}
	return nil
}

// Release ends the PeSIT connection (RELEASE, RELCONF) and closes it.
func (c *Client) Release() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return fmt.Errorf("%w: %w", ErrClosed, c.err)
	}
	defer c.breakWith(ErrClosed)
	if err := c.l.send(fpdu.TypeRelease, fpdu.DiagOK.Param()); err != nil {
		return fmt.Errorf("pesit: sending RELEASE: %w", err)
	}
	b, err := c.l.next()
	if err != nil {
		return fmt.Errorf("pesit: waiting for RELCONF: %w", err)
	}
	f, err := fpdu.Decode(b)
	if err != nil {
		return fmt.Errorf("%w: answer to RELEASE: %v", ErrProtocol, err)
	}
	switch {
	case f.Type == fpdu.TypeAbort:
		d, _ := f.Diag()
		return refusal(&f, d)
	case f.Type != fpdu.TypeRelConf || f.DstID != c.x || f.SrcID != c.y:
		return protoErr("%v with ids %d/%d in answer to RELEASE", f.Type, f.DstID, f.SrcID)
	}
	return nil
}

// Close closes the connection without RELEASE. It is safe to call after
// Release and more than once.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = ErrClosed
		return c.l.conn.Close()
	}
	_ = c.l.conn.Close()
	return nil
}

// dateLayout is the PeSIT D type, AAMMJJhhmmss.
const dateLayout = "060102150405"

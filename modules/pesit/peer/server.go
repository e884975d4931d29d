package peer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/bankedge/bankedge/modules/pesit/fpdu"
)

// DefaultIdleTimeout is the server's idle timer (PeSIT Td, at least 5
// minutes).
const DefaultIdleTimeout = 5 * time.Minute

// DefaultConnectTimeout bounds the pre-connection and CONNECT of a new
// connection: a peer that has not identified itself gets less time than
// one in a session.
const DefaultConnectTimeout = 30 * time.Second

// busyWait is how long a CREATE waits for the same transfer to finish on
// another connection, typically the dead connection of the attempt it
// restarts, before it is refused with 2-207.
const busyWait = 2 * time.Second

// Server is a PeSIT server that stores received files in Root and serves
// files from it. Configure it, then call ServeConn for each accepted
// connection, concurrently if needed. A Server must not be copied after
// its first use.
type Server struct {
	// ServerID is the PI 4 this server answers to; CONNECTs for any other
	// id (or every CONNECT, if empty) get RCONNECT 3-301.
	ServerID string
	// Root is the directory of files. Nothing outside it is touched.
	Root string
	// Authenticate decides on a CONNECT after the server id, version and
	// parameter checks. nil accepts every requester; a non-nil Diag
	// refuses with RCONNECT carrying it (3-304 for a bad password).
	Authenticate func(ctx context.Context, c fpdu.Connect, remote net.Addr) *fpdu.Diag
	// Framing is fpdu.FramingAuto (default: detected per connection) or
	// forces one framing; a connection in the other framing is closed.
	Framing fpdu.Framing
	// MaxEntitySize caps the PI 25 negotiation (default 65535).
	MaxEntitySize uint16
	// SyncIntervalKB and SyncWindow cap the PI 7 negotiation; the smaller
	// value wins. 0 leaves the requester's proposal as it is.
	SyncIntervalKB uint16
	SyncWindow     byte
	// IdleTimeout bounds the wait for the requester's next FPDU and any
	// stall of the data flow (default DefaultIdleTimeout).
	IdleTimeout time.Duration
	// ConnectTimeout bounds each wait for the pre-connection and the
	// CONNECT, when shorter than IdleTimeout (default
	// DefaultConnectTimeout).
	ConnectTimeout time.Duration
	// NameFromLabel stores and serves files under PI 37 (the file label)
	// when a CREATE carries one, as Axway and SecureTransport peers send
	// the real file name there and a logical name in PI 12.
	NameFromLabel bool
	// Logger receives one entry per connection and per transfer. PI 5 is
	// never logged. nil logs nothing.
	Logger *zap.Logger
	// Connected, when set, is called with the connection once its CONNECT
	// is accepted (ACONNECT sent): the end of its pre-authentication phase.
	Connected func(conn net.Conn)
	// RequesterDirs keeps each requester's files apart: a connection sees
	// only Root/<PI 3>, created on its first CONNECT, so that a requester
	// can neither read, overwrite nor resume another's files. A PI 3 that
	// cannot be a file name (see the package documentation) is refused
	// with RCONNECT 3-318.
	RequesterDirs bool
	// MaxFileSize, when positive, caps a received file: a CREATE
	// announcing more (PI 42) is refused with 2-219, and a transfer that
	// goes beyond is aborted with 2-219 and its partial file removed.
	MaxFileSize int64
	// Quota, when positive, caps the bytes a requester's directory holds,
	// partial files included (with RequesterDirs; otherwise Root's): a
	// CREATE when it is full is refused with 2-206, and a transfer that
	// would overflow it is aborted with 2-206 and its partial file
	// removed. It is checked against the directory as it is when the file
	// is opened, so concurrent writes of one requester may overrun it by
	// what they write at once.
	Quota int64
	// Locks reserves the temporary files of writes in progress. Servers
	// that share a Root must share it, or two connections could write the
	// same temporary file; nil gives the Server its own.
	Locks *WriteLocks

	newID func() byte // connection id Y; tests fix it to replay recordings

	locksOnce sync.Once
}

// WriteLocks reserves the temporary files of writes in progress, by
// requester directory and file name. The zero value is ready to use.
type WriteLocks struct {
	mu     sync.Mutex
	active map[string]chan struct{}
}

func (s *Server) locks() *WriteLocks {
	s.locksOnce.Do(func() {
		if s.Locks == nil {
			s.Locks = new(WriteLocks)
		}
	})
	return s.Locks
}

// ServeConn runs one PeSIT connection to its end and closes conn. It
// returns nil after an orderly RELEASE, the peer's refusal (*RefusedError)
// after an ABORT, and otherwise what broke the connection. Cancelling ctx
// closes the connection.
func (s *Server) ServeConn(ctx context.Context, conn net.Conn) (err error) {
	defer conn.Close()
	log := s.Logger
	if log == nil {
		log = zap.NewNop()
	}
	idle := s.IdleTimeout
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	connect := s.ConnectTimeout
	if connect <= 0 {
		connect = DefaultConnectTimeout
	}
	ss := &session{s: s, ctx: ctx, l: newLink(conn, s.Framing, min(connect, idle)), log: log.With(zap.Stringer("remote", conn.RemoteAddr()))}
	ss.idle = idle
	// Until the CONNECT is accepted, a few KiB, not the 64 KiB of a
	// transfer: an unauthenticated peer must cost little.
	ss.l.rd = fpdu.NewReaderSize(conn, s.Framing, 0)
	stop := ss.l.watch(ctx)
	defer stop()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", errInternal, r)
			ss.log.Error("pesit session panic", zap.Any("panic", r))
		}
	}()
	err = ss.run()
	if ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	return err
}

// Transfer stages, in protocol order.
const (
	stSelected = iota + 1 // ACK(CREATE) or ACK(SELECT) sent
	stOpen                // ACK(ORF) sent
	stData                // data phase over, waiting for TRANS.END
	stEnded               // ACK(TRANS.END) sent
	stClosed              // ACK(CRF) sent
)

// transfer is the file selected on a connection.
type transfer struct {
	write         bool
	name, label   string
	tid           uint32
	restart       bool
	entity        int
	article       int // PI 32: declared by the requester (write) or ours (read)
	stage         int
	file          *os.File
	size          int64 // read: the file size at SELECT
	modTime       time.Time
	part, state   string
	hasState      bool // a restart state exists for this transfer
	stateFile     *stateFile
	stateSeq      uint64 // last slot sequence of a resumed state
	good          bool   // write: data and counts are right, commit at CRF
	discard       bool   // write: the data is wrong, drop it
	committed     bool
	st            xferStats
	restartPoint  uint32
	restartOffset int64
	endDiag       fpdu.Diag
	release       func()
	start         time.Time
	limit         int64 // write: the largest size the file may reach, 0 for none
	overLimit     *limitError
}

// session is the server side of one connection.
type session struct {
	s    *Server
	ctx  context.Context
	idle time.Duration // the link's timeout once the CONNECT is accepted
	l    *link
	log  *zap.Logger
	// root is the requester's directory (Server.RequesterDirs) or Root;
	// dir is its name in Root, "" for Root itself.
	root      *os.Root
	dir       string
	requester string
	access    byte
	syncKB    uint16
	window    byte
	xfer      *transfer
}

// errInternal reports a recovered panic: a bug, never the peer's fault.
var errInternal = errors.New("pesit: internal error")

// errIdle ends a session whose requester went silent.
var errIdle = errors.New("pesit: idle timeout")

func (ss *session) run() error {
	if err := ss.handshake(); err != nil {
		return err
	}
	defer ss.root.Close()
	defer ss.endTransfer("connection lost")
	var pending []byte
	for {
		b := pending
		pending = nil
		if b == nil {
			var err error
			if b, err = ss.l.next(); err != nil {
				if isTimeout(err) && ss.ctx.Err() == nil {
					ss.l.abort(fpdu.NewDiag(fpdu.ReasonIdleTimeout))
					return errIdle
				}
				if errors.Is(err, fpdu.ErrMalformed) || errors.Is(err, fpdu.ErrUnknownType) || errors.Is(err, fpdu.ErrTooLarge) {
					return ss.protocol(err)
				}
				return err
			}
		}
		f, err := fpdu.Decode(b)
		if err != nil {
			return ss.protocol(err)
		}
		next, done, err := ss.dispatch(&f)
		if err != nil || done {
			return err
		}
		pending = next
	}
}

// protocol aborts with 3-311, or 3-318 for a missing or illegal parameter.
func (ss *session) protocol(err error) error {
	d := fpdu.NewDiag(fpdu.ReasonProtocolError)
	if errors.Is(err, fpdu.ErrMissing) || errors.Is(err, errBadParam) {
		d = fpdu.NewDiag(fpdu.ReasonBadParameter)
	}
	ss.log.Warn("pesit protocol error", zap.Error(err), zap.Stringer("diag", d))
	ss.l.abort(d)
	if !errors.Is(err, ErrProtocol) {
		err = fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	return err
}

// errBadParam marks a mandatory PI absent or illegal (diagnostic 318).
var errBadParam = errors.New("pesit: mandatory PI absent or illegal")

func badParam(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadParam, fmt.Sprintf(format, args...))
}

// handshake answers the pre-connection and the CONNECT.
func (ss *session) handshake() error {
	l := ss.l
	if err := l.arm(); err != nil {
		return err
	}
	d, err := l.rd.Detect()
	if err == nil && d.Kind == fpdu.KindPreConnection {
		b, _ := l.rd.Peek(d.Need)
		id, _, _ := fpdu.ParsePreConnection(b) // Detect has validated it
		_ = l.rd.Discard(d.Need)
		ss.log.Debug("pesit pre-connection", zap.String("id", id), zap.Bool("prefixed", d.Prefixed))
		if err := l.writeRaw(fpdu.AppendPreConnectionAnswer(nil, true, d.Prefixed)); err != nil {
			return err
		}
		d, err = l.rd.Detect()
		if err == nil && d.Kind != fpdu.KindConnect {
			err = fmt.Errorf("%w: second pre-connection", fpdu.ErrNotPeSIT)
		}
	}
	if err != nil {
		return ss.badStart(err)
	}
	framing := fpdu.FramingRaw
	if d.Prefixed {
		framing = fpdu.FramingPrefixed
	}
	if ss.s.Framing != fpdu.FramingAuto && ss.s.Framing != framing {
		ss.log.Warn("pesit framing mismatch", zap.Stringer("configured", ss.s.Framing), zap.Stringer("detected", framing))
		return fmt.Errorf("%w: %v framing on a %v listener", ErrProtocol, framing, ss.s.Framing)
	}
	l.framing = framing
	b, err := l.rd.Next()
	if err != nil {
		return err
	}
	cn, err := fpdu.ParseConnect(b)
	l.peerID, l.localID = b[5], 0
	if err != nil {
		return ss.rconnect(fpdu.ReasonBadParameter, "malformed CONNECT", err)
	}
	ss.log = ss.log.With(zap.String("requester", cn.RequesterID), zap.String("server", cn.ServerID), zap.Uint8("access", cn.AccessType))
	if tc, ok := l.conn.(interface{ ConnectionState() tls.ConnectionState }); ok {
		if pc := tc.ConnectionState().PeerCertificates; len(pc) > 0 {
			ss.log = ss.log.With(zap.String("tls_subject", pc[0].Subject.String()))
		}
	}
	switch {
	case cn.SrcID == 0:
		return ss.rconnect(fpdu.ReasonBadParameter, "connection id 0", nil)
	case cn.ServerID != ss.s.ServerID || ss.s.ServerID == "":
		return ss.rconnect(fpdu.ReasonUnknownID, "unknown server id", nil)
	case cn.Version != fpdu.VersionE:
		return ss.rconnect(fpdu.ReasonVersionUnsupported, "version E only", nil)
	case cn.CRC:
		return ss.rconnect(fpdu.ReasonNegotiationFailure, "CRC not supported", nil)
	case cn.RequesterID == "":
		return ss.rconnect(fpdu.ReasonBadParameter, "empty requester id", nil)
	case !cn.HasAccessType || cn.AccessType > 2:
		return ss.rconnect(fpdu.ReasonBadParameter, "PI 22 absent or illegal", nil)
	}
	if ss.s.Authenticate != nil {
		if dg := ss.s.Authenticate(ss.ctx, cn, l.conn.RemoteAddr()); dg != nil && !dg.OK() {
			return ss.rconnectDiag(*dg, "not authorised", nil)
		}
	}
	root, err := ss.openRoot(cn.RequesterID)
	if err != nil {
		if errors.Is(err, errBadRequesterDir) {
			return ss.rconnect(fpdu.ReasonBadParameter, err.Error(), nil)
		}
		return ss.rconnect(fpdu.ReasonLocalCongestion, "storage unavailable", err)
	}
	ss.root = root
	ss.requester, ss.access = cn.RequesterID, cn.AccessType
	if cn.HasSync && cn.SyncInterval > 0 {
		ss.syncKB, ss.window = cn.SyncInterval, cn.SyncWindow
		if c := ss.s.SyncIntervalKB; c > 0 && c < ss.syncKB {
			ss.syncKB = c
		}
		if c := ss.s.SyncWindow; c > 0 && c < ss.window {
			ss.window = c
		}
	}
	if ss.s.newID != nil {
		l.localID = ss.s.newID()
	}
	for l.localID == 0 {
		l.localID = byte(rand.Uint32())
	}
	params := []fpdu.Param{
		fpdu.PIByte(fpdu.PIVersion, fpdu.VersionE),
		fpdu.PI(fpdu.PISyncPoints, []byte{byte(ss.syncKB >> 8), byte(ss.syncKB), ss.window}),
	}
	if cn.Resync {
		params = append(params, fpdu.PIByte(fpdu.PIResync, 0)) // RESYN is not supported
	}
	l.timeout = ss.idle
	if err := l.sendIDs(fpdu.TypeAConnect, l.peerID, l.localID, params...); err != nil {
		root.Close()
		return err
	}
	ss.log.Info("pesit connection accepted", zap.Uint16("sync_kb", ss.syncKB), zap.Uint8("sync_window", ss.window))
	l.rd.Grow()
	if ss.s.Connected != nil {
		ss.s.Connected(l.conn)
	}
	return nil
}

var errBadRequesterDir = errors.New("the requester id (PI 3) cannot name a directory")

// openRoot opens the directory the requester's files live in.
func (ss *session) openRoot(requester string) (*os.Root, error) {
	root, err := os.OpenRoot(ss.s.Root)
	if err != nil || !ss.s.RequesterDirs {
		return root, err
	}
	defer root.Close()
	if checkName(requester) != nil {
		return nil, errBadRequesterDir
	}
	if err := root.Mkdir(requester, 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	if fi, err := root.Lstat(requester); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory: %w", requester, errNotRegular)
	}
	ss.dir = requester
	return root.OpenRoot(requester)
}

// badStart handles a stream that does not start like PeSIT: if it looks
// like a CONNECT header, refuse it with 3-318, else just close.
func (ss *session) badStart(err error) error {
	b := ss.l.rd.Buffered()
	switch {
	case len(b) >= 6 && b[2] == fpdu.PhaseConnection && b[3] == fpdu.TypeConnect.Code():
		ss.l.framing, ss.l.peerID = fpdu.FramingRaw, b[5]
	case len(b) >= 8 && b[4] == fpdu.PhaseConnection && b[5] == fpdu.TypeConnect.Code():
		ss.l.framing, ss.l.peerID = fpdu.FramingPrefixed, b[7]
	default:
		ss.log.Debug("pesit: not a PeSIT stream", zap.Error(err))
		return err
	}
	return ss.rconnect(fpdu.ReasonBadParameter, "malformed CONNECT", err)
}

func (ss *session) rconnect(reason uint16, msg string, cause error) error {
	return ss.rconnectDiag(fpdu.NewDiag(reason), msg, cause)
}

func (ss *session) rconnectDiag(d fpdu.Diag, msg string, cause error) error {
	ss.log.Warn("pesit connection refused", zap.Stringer("diag", d), zap.String("reason", msg), zap.NamedError("cause", cause))
	_ = ss.l.sendIDs(fpdu.TypeRConnect, ss.l.peerID, 0, d.Param(), pi99(msg))
	return &RefusedError{FPDU: fpdu.TypeRConnect, Diag: d, Message: msg}
}

// dispatch handles one FPDU. next is an FPDU already read that the loop
// must handle next; done ends the session.
func (ss *session) dispatch(f *fpdu.FPDU) (next []byte, done bool, err error) {
	x := ss.xfer
	if f.Type == fpdu.TypeAbort {
		d, _ := f.Diag()
		ss.log.Warn("pesit requester aborted", zap.Stringer("diag", d))
		if x != nil {
			x.endDiag = d
		}
		_ = ss.l.conn.Close()
		return nil, true, refusal(f, d)
	}
	if f.Type == fpdu.TypeRelease {
		if f.DstID != ss.l.localID || f.SrcID != ss.l.peerID {
			return nil, true, ss.protocol(protoErr("RELEASE with ids %d/%d", f.DstID, f.SrcID))
		}
		ss.endTransfer("released")
		err := ss.l.send(fpdu.TypeRelConf)
		ss.log.Info("pesit connection released")
		return nil, true, err
	}
	if f.Type.Phase() != fpdu.PhaseFile || f.DstID != ss.l.localID || f.SrcID != 0 {
		return nil, true, ss.protocol(protoErr("%v with ids %d/%d", f.Type, f.DstID, f.SrcID))
	}
	stage := 0
	if x != nil {
		stage = x.stage
	}
	switch {
	case f.Type == fpdu.TypeCreate && stage == 0:
		return nil, false, ss.create(f)
	case f.Type == fpdu.TypeSelect && stage == 0:
		return nil, false, ss.selectFile(f)
	case f.Type == fpdu.TypeORF && stage == stSelected:
		return nil, false, ss.open(f)
	case f.Type == fpdu.TypeWrite && stage == stOpen && x.write:
		return nil, false, ss.receive()
	case f.Type == fpdu.TypeRead && stage == stOpen && !x.write:
		return ss.sendFile(f)
	case f.Type == fpdu.TypeTransEnd && stage == stData:
		return nil, false, ss.transEnd(f)
	case f.Type == fpdu.TypeCRF && (stage == stOpen || stage == stEnded):
		return nil, false, ss.closeFile(f)
	case f.Type == fpdu.TypeDeselect && (stage == stSelected || stage == stClosed):
		ss.endTransfer("deselected")
		return nil, false, ss.l.send(fpdu.TypeAckDeselect, fpdu.DiagOK.Param())
	case f.Type == fpdu.TypeMsg || f.Type == fpdu.TypeMsgFM:
		return nil, false, ss.l.send(fpdu.TypeAckMsg, fpdu.NewDiag(fpdu.ReasonMessageRefused).Param(), pi99("messages are not supported"))
	case f.Type == fpdu.TypeMsgDM || f.Type == fpdu.TypeMsgMM:
		return nil, false, nil // answered at MSGFM
	}
	return nil, true, ss.protocol(protoErr("%v unexpected here", f.Type))
}

// refuse answers a file-phase request negatively; the connection goes on.
func (ss *session) refuse(t fpdu.Type, reason uint16, msg string) error {
	d := fpdu.NewDiag(reason)
	ss.log.Info("pesit request refused", zap.Stringer("fpdu", t), zap.Stringer("diag", d), zap.String("reason", msg))
	return ss.l.send(t, d.Param(), pi99(msg))
}

// fileRequest extracts what CREATE and SELECT have in common.
func (ss *session) fileRequest(f *fpdu.FPDU) (name string, tid uint32, restart bool, entity int, err error) {
	p, ok := f.Get(fpdu.PIFileName)
	if !ok {
		return "", 0, false, 0, badParam("%v without PI 12", f.Type)
	}
	name = p.Text()
	v, ok, err := getUint(f, fpdu.PITransferID)
	if err != nil || !ok || v > 0xFFFFFF {
		return "", 0, false, 0, badParam("%v PI 13 absent or illegal", f.Type)
	}
	tid = uint32(v)
	r, _, err := getUint(f, fpdu.PIRestart)
	if err != nil || r > 1 {
		return "", 0, false, 0, badParam("%v PI 15 illegal", f.Type)
	}
	e, ok, err := getUint(f, fpdu.PIMaxEntitySize)
	if err != nil || !ok {
		return "", 0, false, 0, badParam("%v PI 25 absent or illegal", f.Type)
	}
	limit := uint64(ss.s.MaxEntitySize)
	if limit == 0 {
		limit = DefaultMaxEntitySize
	}
	entity = int(max(min(e, limit), 0))
	if entity < minEntitySize {
		return "", 0, false, 0, badParam("%v PI 25 = %d", f.Type, e)
	}
	return name, tid, r == 1, entity, nil
}

func (ss *session) create(f *fpdu.FPDU) error {
	name, tid, restart, entity, err := ss.fileRequest(f)
	if err == nil && tid == 0 {
		err = badParam("CREATE with PI 13 = 0")
	}
	if err != nil {
		return ss.protocol(err)
	}
	label := ""
	if p, ok := f.Get(fpdu.PIFileLabel); ok {
		label = p.Text()
		if ss.s.NameFromLabel && label != "" {
			name = label
		}
	}
	art, _, err := getUint(f, fpdu.PIArticleLength)
	if err != nil {
		return ss.protocol(badParam("PI 32: %v", err))
	}
	if ss.access == 1 {
		return ss.refuse(fpdu.TypeAckCreate, fpdu.ReasonTransferRefused, "connection opened for reading only")
	}
	if err := checkName(name); err != nil {
		return ss.refuse(fpdu.TypeAckCreate, fpdu.ReasonTransferRefused, err.Error())
	}
	if fi, err := ss.root.Lstat(name); err == nil && fi.IsDir() {
		return ss.refuse(fpdu.TypeAckCreate, fpdu.ReasonCannotOpen, "a directory has this name")
	}
	if ss.s.MaxFileSize > 0 {
		// PI 42 counts KiB unless PI 41 says articles.
		unit, _, _ := getUint(f, fpdu.PISpaceUnit)
		if kb, ok, err := getUint(f, fpdu.PIMaxSpace); err == nil && ok && unit == 0 && kb > uint64(ss.s.MaxFileSize+1023)/1024 {
			return ss.refuse(fpdu.TypeAckCreate, fpdu.ReasonSpaceExhausted, fmt.Sprintf("files are limited to %d bytes", ss.s.MaxFileSize))
		}
	}
	if ss.s.Quota > 0 {
		if used, err := dirUsage(ss.root); err != nil || used >= ss.s.Quota {
			return ss.refuse(fpdu.TypeAckCreate, fpdu.ReasonDiskQuota, "the requester's quota is used up")
		}
	}
	part, state := tempNames(name, tid)
	release, ok := ss.s.locks().acquire(ss.dir + "/" + part)
	if !ok {
		return ss.refuse(fpdu.TypeAckCreate, fpdu.ReasonFileBusy, "the same transfer is in progress")
	}
	ss.xfer = &transfer{
		write: true, name: name, label: label, tid: tid, restart: restart, entity: entity, article: int(min(art, 0xFFFF)),
		stage: stSelected, part: part, state: state, release: release, start: time.Now(),
	}
	return ss.l.send(fpdu.TypeAckCreate, fpdu.DiagOK.Param(), fpdu.PIUint(fpdu.PIMaxEntitySize, uint64(entity), 2))
}

// readArticleSize is the article size of the files the server sends.
func (ss *session) readArticleSize() int {
	a := DefaultArticleSize
	if ss.syncKB > 0 {
		a = min(a, int(ss.syncKB)*1024)
	}
	return a
}

func (ss *session) selectFile(f *fpdu.FPDU) error {
	name, tid, restart, entity, err := ss.fileRequest(f)
	if err == nil && restart && tid == 0 {
		err = badParam("restarted SELECT with PI 13 = 0")
	}
	if err != nil {
		return ss.protocol(err)
	}
	if ss.access == 0 {
		return ss.refuse(fpdu.TypeAckSelect, fpdu.ReasonTransferRefused, "connection opened for writing only")
	}
	if err := checkName(name); err != nil {
		return ss.refuse(fpdu.TypeAckSelect, fpdu.ReasonTransferRefused, err.Error())
	}
	file, fi, err := openRegular(ss.root, name)
	if err != nil {
		return ss.refuse(fpdu.TypeAckSelect, fpdu.ReasonFileNotFound, "no such file")
	}
	if !restart || tid == 0 {
		tid = 1 + rand.Uint32N(0xFFFFFE)
	}
	x := &transfer{
		name: name, tid: tid, restart: restart, entity: entity, article: ss.readArticleSize(),
		stage: stSelected, file: file, size: fi.Size(), modTime: fi.ModTime(), start: time.Now(), release: func() {},
	}
	ss.xfer = x
	return ss.l.send(fpdu.TypeAckSelect,
		fpdu.DiagOK.Param(),
		fpdu.PGI(fpdu.PGIFileID, fpdu.PIUint(fpdu.PIFileType, 0, 1), fpdu.PIString(fpdu.PIFileName, name)),
		fpdu.PIUint(fpdu.PITransferID, uint64(tid), 1),
		fpdu.PIUint(fpdu.PIMaxEntitySize, uint64(entity), 2),
		fpdu.PGI(fpdu.PGILogicalAttrs, fpdu.PIByte(fpdu.PIArticleFormat, 0x80), fpdu.PIUint(fpdu.PIArticleLength, uint64(x.article), 2)),
		fpdu.PGI(fpdu.PGIPhysicalAttrs, fpdu.PIUint(fpdu.PIMaxSpace, uint64((x.size+1023)/1024), 1)),
		fpdu.PGI(fpdu.PGIHistoricAttrs, fpdu.PIString(fpdu.PICreationDate, x.modTime.UTC().Format(dateLayout))),
	)
}

func (ss *session) open(f *fpdu.FPDU) error {
	x := ss.xfer
	var params []fpdu.Param
	if p, ok := f.Get(fpdu.PICompression); ok && len(p.Value) > 0 && p.Value[0] != 0 {
		params = append(params, fpdu.PI(fpdu.PICompression, []byte{0, 0})) // no compression
	}
	if x.write {
		if err := ss.openPart(); err != nil {
			ss.log.Warn("pesit cannot open file", zap.String("file", x.part), zap.Error(err))
			return ss.refuse(fpdu.TypeAckORF, fpdu.ReasonCannotOpen, "cannot open the file")
		}
		if err := ss.setLimit(); err != nil {
			ss.log.Warn("pesit cannot measure the requester's directory", zap.Error(err))
			return ss.refuse(fpdu.TypeAckORF, fpdu.ReasonCannotOpen, "cannot open the file")
		}
	}
	x.stage = stOpen
	return ss.l.send(fpdu.TypeAckORF, append([]fpdu.Param{fpdu.DiagOK.Param()}, params...)...)
}

// openPart opens the temporary file of a write, resuming from the restart
// state when the CREATE asked for a restart and the state matches.
func (ss *session) openPart() error {
	x := ss.xfer
	if x.restart {
		st, ok := loadState(ss.root, x.state)
		if ok && st.Requester == ss.requester && st.Name == x.name && st.TransferID == x.tid &&
			st.SyncKB == ss.syncKB && st.Article == x.article && st.SyncPoint > 0 && st.SyncPoint <= fpdu.MaxSyncNumber {
			f, err := openNoFollow(ss.root, x.part, os.O_RDWR)
			if err == nil {
				fi, err := f.Stat()
				if err == nil && fi.Size() >= st.Offset {
					if err = f.Truncate(st.Offset); err == nil {
						_, err = f.Seek(st.Offset, io.SeekStart)
					}
					if err == nil {
						x.file, x.hasState, x.stateSeq = f, true, st.Seq
						x.restartPoint, x.restartOffset = st.SyncPoint, st.Offset
						return nil
					}
				}
				_ = f.Close()
			}
		}
		ss.log.Info("pesit restart not possible, starting from the beginning", zap.String("file", x.name), zap.Uint32("transfer_id", x.tid))
	}
	if err := ss.root.Remove(x.state); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := openNoFollow(ss.root, x.part, os.O_RDWR|os.O_CREATE)
	if err != nil {
		return err
	}
	x.file = f
	return nil
}

// setLimit sets how large the file being written may grow: MaxFileSize,
// and the room left in the requester's directory under Quota (the
// partial file, at its restart offset, already counts there).
func (ss *session) setLimit() error {
	x := ss.xfer
	if m := ss.s.MaxFileSize; m > 0 {
		x.limit = m
		x.overLimit = &limitError{fpdu.NewDiag(fpdu.ReasonSpaceExhausted), fmt.Sprintf("file larger than %d bytes", m)}
	}
	if q := ss.s.Quota; q > 0 {
		used, err := dirUsage(ss.root)
		if err != nil {
			return err
		}
		if room := x.restartOffset + max(q-used, 0); x.limit == 0 || room < x.limit {
			x.limit = room
			x.overLimit = &limitError{fpdu.NewDiag(fpdu.ReasonDiskQuota), fmt.Sprintf("quota of %d bytes exceeded", q)}
		}
	}
	return nil
}

// receive answers WRITE and consumes the data phase of a write.
func (ss *session) receive() error {
	x := ss.xfer
	if err := ss.l.send(fpdu.TypeAckWrite, fpdu.DiagOK.Param(), fpdu.PIUint(fpdu.PIRestartPoint, uint64(x.restartPoint), 1)); err != nil {
		return err
	}
	r := newReceiver(ss.l, dataParams{peer: ss.l.peerID, entity: x.entity, window: int(ss.window), base: x.restartPoint}, x.file, x.restartOffset)
	r.limit, r.overLimit = x.limit, x.overLimit
	defer r.release()
	st := restartState{Requester: ss.requester, Name: x.name, TransferID: x.tid, SyncKB: ss.syncKB, Article: x.article}
	r.onSync = func(n uint32, offset int64) error {
		if x.stateFile == nil {
			sf, err := openStateFile(ss.root, x.state, x.hasState, x.stateSeq)
			if err != nil {
				return errSinkWrite{err}
			}
			x.stateFile = sf
		}
		st.SyncPoint, st.Offset = n, offset
		if err := x.stateFile.save(&st); err != nil {
			return errSinkWrite{err}
		}
		x.hasState = true
		return nil
	}
	ss.l.rd.SetMaxSize(x.entity)
	tb, err := r.run()
	ss.l.rd.SetMaxSize(fpdu.MaxFPDULen)
	x.st = r.st
	if err != nil {
		return ss.dataError(err)
	}
	return ss.endOfData(tb)
}

// dataError ends the session after a failed data phase.
func (ss *session) dataError(err error) error {
	var sinkErr errSinkWrite
	var over *limitError
	switch {
	case errors.As(err, &over):
		ss.log.Warn("pesit file refused: over its limit", zap.String("file", ss.xfer.name), zap.Error(err))
		ss.xfer.discard = true
		ss.l.abort(over.diag)
		return err
	case errors.As(err, &sinkErr):
		ss.log.Warn("pesit file I/O error", zap.Error(err))
		ss.l.abort(fpdu.NewDiag(fpdu.ReasonIOError))
		return err
	case errors.Is(err, ErrProtocol), errors.Is(err, fpdu.ErrMalformed), errors.Is(err, fpdu.ErrUnknownType), errors.Is(err, fpdu.ErrTooLarge):
		return ss.protocol(err)
	case isTimeout(err) && ss.ctx.Err() == nil:
		ss.l.abort(fpdu.NewDiag(fpdu.ReasonIdleTimeout))
		return errIdle
	}
	return err
}

// endOfData handles the FPDU that ended a data phase: DTF.END, IDT or
// ABORT.
func (ss *session) endOfData(b []byte) error {
	x := ss.xfer
	f, err := fpdu.Decode(b)
	if err != nil {
		return ss.protocol(err)
	}
	d, err := f.Diag()
	if err != nil && f.Type != fpdu.TypeIDT {
		return ss.protocol(badParam("%v without PI 2", f.Type))
	}
	switch f.Type {
	case fpdu.TypeAbort:
		x.endDiag = d
		ss.log.Warn("pesit requester aborted", zap.Stringer("diag", d))
		return refusal(&f, d)
	case fpdu.TypeIDT:
		x.endDiag, x.stage = d, stOpen
		return ss.l.send(fpdu.TypeAckIDT)
	}
	x.endDiag, x.stage = d, stData
	return nil
}

// sendFile answers READ and streams the file. It returns the FPDU that
// followed the data (TRANS.END normally) for the main loop.
func (ss *session) sendFile(f *fpdu.FPDU) ([]byte, bool, error) {
	x := ss.xfer
	point, _, err := getUint(f, fpdu.PIRestartPoint)
	if err != nil || point > fpdu.MaxSyncNumber {
		return nil, true, ss.protocol(badParam("READ PI 18 illegal"))
	}
	st := stride(ss.syncKB, x.article)
	offset := int64(point) * st
	if point > 0 && (st == 0 || offset > x.size) {
		return nil, false, ss.refuse(fpdu.TypeAckRead, fpdu.ReasonRestartNegotiation, "restart point beyond the end of the file")
	}
	if _, err := x.file.Seek(offset, io.SeekStart); err != nil {
		return nil, false, ss.refuse(fpdu.TypeAckRead, fpdu.ReasonIOError, "cannot position the file")
	}
	x.restartPoint, x.restartOffset = uint32(point), offset
	if err := ss.l.send(fpdu.TypeAckRead, fpdu.DiagOK.Param()); err != nil {
		return nil, true, err
	}
	s := newSender(ss.l, dataParams{peer: ss.l.peerID, entity: x.entity, article: x.article, interval: st, window: int(ss.window), base: uint32(point)})
	cr := newChunkReader(x.file, x.size-offset)
	s.start()
	perr := s.pump(cr)
	cr.release()
	var pf peerFrame
	if perr != nil {
		pf = s.stop(perr)
	} else {
		pf = s.join()
	}
	x.st = s.stats()
	var se errSource
	if errors.As(perr, &se) {
		ss.log.Warn("pesit file I/O error", zap.Error(perr))
		return nil, true, perr
	}
	if pf.b != nil && fpdu.MakeType(pf.b[2], pf.b[3]) == fpdu.TypeAbort {
		err := ss.endOfData(pf.b)
		return nil, true, err
	}
	if perr != nil && !errors.Is(perr, errPeerStopped) {
		return nil, true, perr
	}
	if pf.err != nil {
		return nil, true, ss.dataError(pf.err)
	}
	t := fpdu.MakeType(pf.b[2], pf.b[3])
	switch {
	case t == fpdu.TypeAbort || t == fpdu.TypeIDT:
		err := ss.endOfData(pf.b)
		return nil, err != nil, err
	case perr != nil:
		return nil, true, ss.protocol(protoErr("%v during the data phase", t))
	}
	x.stage = stData
	return pf.b, false, nil
}

// transEnd checks the requester's counts against ours and answers.
func (ss *session) transEnd(f *fpdu.FPDU) error {
	x := ss.xfer
	d := fpdu.DiagOK
	for _, c := range [2]struct {
		code byte
		have uint64
	}{{fpdu.PIByteCount, x.st.bytes}, {fpdu.PIArticleCount, x.st.articles}} {
		v, ok, err := getUint(f, c.code)
		if err != nil {
			return ss.protocol(badParam("TRANS.END: %v", err))
		}
		if ok && v != c.have {
			d = fpdu.NewDiag(fpdu.ReasonWrongCount)
			ss.log.Warn("pesit count mismatch", zap.String("file", x.name), zap.String("count", fpdu.ParamName(c.code)),
				zap.Uint64("requester", v), zap.Uint64("server", c.have))
		}
	}
	x.stage = stEnded
	if x.write {
		x.good = d.OK() && x.endDiag.OK()
		x.discard = !d.OK()
	}
	return ss.l.send(fpdu.TypeAckTransEnd, d.Param(),
		fpdu.PIUint(fpdu.PIByteCount, x.st.bytes, 1), fpdu.PIUint(fpdu.PIArticleCount, x.st.articles, 1))
}

// closeFile answers CRF; for a good write it renames the temporary file
// to its final name.
func (ss *session) closeFile(f *fpdu.FPDU) error {
	x := ss.xfer
	d, err := diagOf(f)
	if err != nil {
		return ss.protocol(badParam("CRF: %v", err))
	}
	x.stage = stClosed
	if !x.write || !x.good || !d.OK() {
		ss.closeHandle()
		return ss.l.send(fpdu.TypeAckCRF, fpdu.DiagOK.Param())
	}
	if err := ss.commit(); err != nil {
		ss.log.Warn("pesit cannot store file", zap.String("file", x.name), zap.Error(err))
		x.good, x.discard = false, true
		return ss.refuse(fpdu.TypeAckCRF, fpdu.ReasonCannotClose, "cannot store the file")
	}
	return ss.l.send(fpdu.TypeAckCRF, fpdu.DiagOK.Param())
}

func (ss *session) commit() error {
	x := ss.xfer
	err := x.file.Close()
	x.file = nil
	ss.closeHandle()
	if err != nil {
		return err
	}
	if err := ss.root.Rename(x.part, x.name); err != nil {
		return err
	}
	x.committed = true
	if x.hasState {
		_ = ss.root.Remove(x.state)
	}
	return nil
}

func (ss *session) closeHandle() {
	x := ss.xfer
	if x == nil {
		return
	}
	if x.file != nil {
		_ = x.file.Close()
		x.file = nil
	}
	if x.stateFile != nil {
		_ = x.stateFile.close()
		x.stateFile = nil
	}
}

// endTransfer forgets the current transfer, logs it, and removes the
// temporary files of a write unless they can serve a restart.
func (ss *session) endTransfer(outcome string) {
	x := ss.xfer
	if x == nil {
		return
	}
	ss.closeHandle()
	if x.write && !x.committed && (x.discard || !x.hasState) {
		_ = ss.root.Remove(x.part)
		_ = ss.root.Remove(x.state)
	}
	x.release()
	ss.xfer = nil
	dir := "read"
	if x.write {
		dir = "write"
	}
	ss.log.Info("pesit transfer",
		zap.String("direction", dir), zap.String("file", x.name), zap.String("label", x.label),
		zap.Uint32("transfer_id", x.tid), zap.Bool("restart", x.restart),
		zap.Uint32("restart_point", x.restartPoint), zap.Int64("restart_offset", x.restartOffset),
		zap.Uint64("bytes", x.st.bytes), zap.Uint64("articles", x.st.articles), zap.Uint32("sync_points", x.st.syncs),
		zap.Bool("complete", x.committed || (!x.write && x.stage >= stEnded)), zap.Stringer("end_diag", x.endDiag),
		zap.String("outcome", outcome), zap.Duration("duration", time.Since(x.start)),
	)
}

// tryAcquire reserves key if nobody holds it.
func (w *WriteLocks) tryAcquire(key string) (release func(), ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, busy := w.active[key]; busy {
		return nil, false
	}
	if w.active == nil {
		w.active = make(map[string]chan struct{})
	}
	ch := make(chan struct{})
	w.active[key] = ch
	return func() {
		w.mu.Lock()
		delete(w.active, key)
		w.mu.Unlock()
		close(ch)
	}, true
}

// acquire reserves a write's temporary file for one connection, waiting
// up to busyWait for another connection to let it go.
func (w *WriteLocks) acquire(key string) (release func(), ok bool) {
	deadline := time.Now().Add(busyWait)
	for {
		if release, ok := w.tryAcquire(key); ok {
			return release, true
		}
		w.mu.Lock()
		ch, busy := w.active[key]
		w.mu.Unlock()
		if !busy {
			continue
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return nil, false
		}
		t := time.NewTimer(wait)
		select {
		case <-ch:
			t.Stop()
		case <-t.C:
			return nil, false
		}
	}
}

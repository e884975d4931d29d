// Command pesitsink is a PeSIT server that accepts uploads and throws the
// data away, for the *-sink paths of bench/pesit.sh. The PeSIT server of
// the project (pesit_server) writes every upload to a fresh file, and on
// tmpfs allocating those pages costs more CPU than the whole network path;
// the sink takes that cost out, so that an upload through the gateway is
// bounded by the gateway and the requester, not by the receiving disk.
//
//	pesitsink -listen 127.0.0.1:6000
//	pesitsink -listen 127.0.0.1:6000 -tls-listen 127.0.0.1:6001 -cert C -key K -ca CA
//
// It speaks the write side of PeSIT E with the project's codec
// (modules/pesit/fpdu) and answers what modules/pesit/peer's server
// answers: CONNECT/ACONNECT (PI 6, PI 7 negotiated down, PI 23 = 0), CREATE
// (PI 25 capped at 65535), ORF (no compression), WRITE (restart point 0),
// the data phase (every FPDU header checked by fpdu.Reader, articles
// counted, SYN numbers checked and acknowledged in the window), DTF.END,
// TRANS.END (counts compared and returned), CRF, DESELECT and RELEASE.
// SELECT (downloads) is refused with 2-205. Anything out of order or
// malformed gets ABORT 3-311 (3-318 for a bad parameter) and the
// connection is closed; a stream that is not PeSIT is closed at once.
// Each finished transfer is logged on stderr as
//
//	pesitsink: received NAME bytes=N articles=A syncs=S seconds=T mbps=M ok=true
//
// The sink checks no password and accepts every server id unless
// -server-id is set. With -tls-listen, clients must present a certificate
// signed by -ca when -ca is given.
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"time"

	"github.com/bankedge/bankedge/modules/pesit/fpdu"
)

var (
	serverID = flag.String("server-id", "", "PI 4 to answer to (empty: any)")
	readBuf  = flag.Int("readbuf", 1<<20, "socket read buffer in bytes under the FPDU reader (0: read straight into the reader's 64 KiB)")
	idle     = flag.Duration("idle", time.Minute, "idle timeout: an ABORT 3-313 after this long without a byte")
	maxSync  = flag.Uint("sync-kb", 0, "cap on the PI 7 sync interval in KB (0: the requester's proposal)")
	maxWin   = flag.Uint("sync-window", 0, "cap on the PI 7 window (0: the requester's proposal)")
	verbose  = flag.Bool("v", false, "log every refused or broken connection, also those that are not PeSIT")
)

func main() {
	listen := flag.String("listen", "", "plain TCP address")
	tlsListen := flag.String("tls-listen", "", "TLS address (needs -cert and -key)")
	cert := flag.String("cert", "", "server certificate (PEM)")
	key := flag.String("key", "", "server key (PEM)")
	ca := flag.String("ca", "", "CA that must sign client certificates (PEM; empty: none asked)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("pesitsink: ")
	if *listen == "" && *tlsListen == "" {
		log.Fatal("need -listen or -tls-listen")
	}
	if *serverID != "" && len(*serverID) > fpdu.MaxIDLen {
		log.Fatalf("-server-id longer than %d", fpdu.MaxIDLen)
	}
	errc := make(chan error, 2)
	if *listen != "" {
		l, err := net.Listen("tcp", *listen)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(l.Addr())
		go func() { errc <- serve(l) }()
	}
	if *tlsListen != "" {
		cfg, err := tlsConfig(*cert, *key, *ca)
		if err != nil {
			log.Fatal(err)
		}
		l, err := tls.Listen("tcp", *tlsListen, cfg)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(l.Addr())
		go func() { errc <- serve(l) }()
	}
	log.Fatal(<-errc)
}

func tlsConfig(cert, key, ca string) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no certificate", ca)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

func serve(l net.Listener) error {
	for {
		c, err := l.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		go func() {
			s := newSession(c)
			err := s.run()
			_ = c.Close()
			switch {
			case err == nil:
			case errors.Is(err, errNotPeSIT) && !*verbose:
			default:
				log.Printf("%v: %v", c.RemoteAddr(), err)
			}
		}()
	}
}

// Transfer stages, as in modules/pesit/peer/server.go.
const (
	stNone     = iota
	stSelected // ACK(CREATE) sent
	stOpen     // ACK(ORF) sent
	stData     // DTF.END received, waiting for TRANS.END
	stEnded    // ACK(TRANS.END) sent
	stClosed   // ACK(CRF) sent
)

const minEntity = 16 // smallest PI 25 accepted, as the peer package

type session struct {
	conn    net.Conn
	rd      *fpdu.Reader
	framing fpdu.Framing
	local   byte // our connection id Y
	peer    byte // the requester's X
	access  byte
	syncKB  uint16
	window  byte
	armed   time.Time
	ctl     []byte

	stage    int
	name     string
	entity   int
	bytes    uint64
	articles uint64
	syncs    uint32
	start    time.Time
	endDiag  fpdu.Diag
}

func newSession(c net.Conn) *session {
	var r io.Reader = c
	if *readBuf > 0 {
		r = bufio.NewReaderSize(c, *readBuf)
	}
	return &session{conn: c, rd: fpdu.NewReader(r, fpdu.FramingAuto), local: 1, ctl: make([]byte, 0, 512)}
}

var (
	errNotPeSIT = errors.New("closed without an answer")
	errProtocol = errors.New("protocol error")
	errBadParam = errors.New("mandatory PI absent or illegal")
)

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errProtocol, fmt.Sprintf(format, args...))
}

func badParam(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadParam, fmt.Sprintf(format, args...))
}

// arm pushes the deadline; refresh does it at most every idle/16, for the
// data path.
func (s *session) arm() {
	s.armed = time.Now()
	_ = s.conn.SetDeadline(s.armed.Add(*idle))
}

func (s *session) refresh() {
	if time.Since(s.armed) >= *idle/16 {
		s.arm()
	}
}

func (s *session) run() error {
	if err := s.handshake(); err != nil {
		return err
	}
	for {
		s.arm()
		b, err := s.rd.Next()
		if err != nil {
			return s.readFailed(err)
		}
		f, err := fpdu.Decode(b)
		if err != nil {
			return s.protocol(err)
		}
		done, err := s.dispatch(&f)
		if err != nil || done {
			return err
		}
	}
}

// readFailed turns a read error into the session's end: ABORT 3-313 on
// idleness, 3-311 on garbage, nothing on a lost connection.
func (s *session) readFailed(err error) error {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		s.abort(fpdu.NewDiag(fpdu.ReasonIdleTimeout))
		return fmt.Errorf("idle for %v", *idle)
	case errors.Is(err, fpdu.ErrMalformed), errors.Is(err, fpdu.ErrUnknownType), errors.Is(err, fpdu.ErrTooLarge), errors.Is(err, fpdu.ErrTruncated):
		return s.protocol(err)
	case s.stage != stNone && s.stage != stClosed:
		return fmt.Errorf("connection lost in the middle of %s: %w", s.name, err)
	}
	return fmt.Errorf("connection lost without RELEASE: %w", err)
}

// protocol aborts with 3-311, or 3-318 for a missing or illegal parameter.
func (s *session) protocol(err error) error {
	d := fpdu.NewDiag(fpdu.ReasonProtocolError)
	if errors.Is(err, fpdu.ErrMissing) || errors.Is(err, errBadParam) {
		d = fpdu.NewDiag(fpdu.ReasonBadParameter)
	}
	s.abort(d)
	return fmt.Errorf("aborted with %v: %w", d, err)
}

// abort sends ABORT, best effort and briefly, and closes.
func (s *session) abort(d fpdu.Diag) {
	if s.framing != fpdu.FramingAuto {
		_ = s.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
		_ = s.sendIDs(fpdu.TypeAbort, s.peer, s.local, d.Param())
	}
	_ = s.conn.Close()
}

// send writes a control FPDU as its own NSDU; ID.SRC is ours only in the
// connection phase.
func (s *session) send(t fpdu.Type, params ...fpdu.Param) error {
	src := byte(0)
	if t.Phase() == fpdu.PhaseConnection {
		src = s.local
	}
	return s.sendIDs(t, s.peer, src, params...)
}

func (s *session) sendIDs(t fpdu.Type, dst, src byte, params ...fpdu.Param) error {
	b := s.ctl[:0]
	if s.framing == fpdu.FramingPrefixed {
		b = append(b, 0, 0)
	}
	b, err := fpdu.AppendFPDU(b, t, dst, src, params...)
	if err != nil {
		return fmt.Errorf("encoding %v: %w", t, err)
	}
	if s.framing == fpdu.FramingPrefixed {
		binary.BigEndian.PutUint16(b, uint16(len(b)-2))
	}
	s.ctl = b[:0]
	_, err = s.conn.Write(b)
	return err
}

func pi99(msg string) fpdu.Param { return fpdu.PIString(fpdu.PIFreeMessage, msg) }

// handshake answers the optional pre-connection and the CONNECT.
func (s *session) handshake() error {
	s.arm()
	d, err := s.rd.Detect()
	if err == nil && d.Kind == fpdu.KindPreConnection {
		_ = s.rd.Discard(d.Need)
		if _, err := s.conn.Write(fpdu.AppendPreConnectionAnswer(nil, true, d.Prefixed)); err != nil {
			return err
		}
		if d, err = s.rd.Detect(); err == nil && d.Kind != fpdu.KindConnect {
			err = errors.New("second pre-connection")
		}
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: the peer closed before CONNECT", errNotPeSIT)
		}
		// What looks like a CONNECT header gets RCONNECT 3-318, as from
		// the peer package's server; anything else is closed without a word.
		switch b := s.rd.Buffered(); {
		case len(b) >= 6 && b[2] == fpdu.PhaseConnection && b[3] == fpdu.TypeConnect.Code():
			s.framing, s.peer = fpdu.FramingRaw, b[5]
		case len(b) >= 8 && b[4] == fpdu.PhaseConnection && b[5] == fpdu.TypeConnect.Code():
			s.framing, s.peer = fpdu.FramingPrefixed, b[7]
		default:
			return fmt.Errorf("%w: %v", errNotPeSIT, err)
		}
		return s.rconnect(fpdu.ReasonBadParameter, "malformed CONNECT: "+err.Error())
	}
	s.framing = fpdu.FramingRaw
	if d.Prefixed {
		s.framing = fpdu.FramingPrefixed
	}
	b, err := s.rd.Next()
	if err != nil {
		return fmt.Errorf("%w: %v", errNotPeSIT, err)
	}
	s.peer = b[5]
	cn, err := fpdu.ParseConnect(b)
	if err != nil {
		return s.rconnect(fpdu.ReasonBadParameter, "malformed CONNECT: "+err.Error())
	}
	switch {
	case cn.SrcID == 0:
		return s.rconnect(fpdu.ReasonBadParameter, "connection id 0")
	case *serverID != "" && cn.ServerID != *serverID:
		return s.rconnect(fpdu.ReasonUnknownID, "unknown server id")
	case cn.Version != fpdu.VersionE:
		return s.rconnect(fpdu.ReasonVersionUnsupported, "version E only")
	case cn.CRC:
		return s.rconnect(fpdu.ReasonNegotiationFailure, "CRC not supported")
	case cn.RequesterID == "":
		return s.rconnect(fpdu.ReasonBadParameter, "empty requester id")
	case !cn.HasAccessType || cn.AccessType > 2:
		return s.rconnect(fpdu.ReasonBadParameter, "PI 22 absent or illegal")
	}
	s.access = cn.AccessType
	if cn.HasSync && cn.SyncInterval > 0 {
		s.syncKB, s.window = cn.SyncInterval, cn.SyncWindow
		if c := uint16(min(*maxSync, 0xFFFF)); c > 0 && c < s.syncKB {
			s.syncKB = c
		}
		if c := byte(min(*maxWin, 0xFF)); c > 0 && c < s.window {
			s.window = c
		}
	}
	params := []fpdu.Param{
		fpdu.PIByte(fpdu.PIVersion, fpdu.VersionE),
		fpdu.PI(fpdu.PISyncPoints, []byte{byte(s.syncKB >> 8), byte(s.syncKB), s.window}),
	}
	if cn.Resync {
		params = append(params, fpdu.PIByte(fpdu.PIResync, 0))
	}
	return s.sendIDs(fpdu.TypeAConnect, s.peer, s.local, params...)
}

func (s *session) rconnect(reason uint16, msg string) error {
	d := fpdu.NewDiag(reason)
	_ = s.sendIDs(fpdu.TypeRConnect, s.peer, 0, d.Param(), pi99(msg))
	return fmt.Errorf("CONNECT refused with %v: %s", d, msg)
}

// refuse answers a file-phase request negatively; the connection goes on.
func (s *session) refuse(t fpdu.Type, reason uint16, msg string) error {
	return s.send(t, fpdu.NewDiag(reason).Param(), pi99(msg))
}

func (s *session) dispatch(f *fpdu.FPDU) (done bool, err error) {
	switch f.Type {
	case fpdu.TypeAbort:
		d, _ := f.Diag()
		return true, fmt.Errorf("requester aborted with %v", d)
	case fpdu.TypeRelease:
		if f.DstID != s.local || f.SrcID != s.peer {
			return true, s.protocol(protoErr("RELEASE with ids %d/%d", f.DstID, f.SrcID))
		}
		if s.stage != stNone {
			s.log("released")
		}
		return true, s.send(fpdu.TypeRelConf)
	}
	if f.Type.Phase() != fpdu.PhaseFile || f.DstID != s.local || f.SrcID != 0 {
		return true, s.protocol(protoErr("%v with ids %d/%d", f.Type, f.DstID, f.SrcID))
	}
	switch {
	case f.Type == fpdu.TypeCreate && s.stage == stNone:
		return false, s.create(f)
	case f.Type == fpdu.TypeSelect && s.stage == stNone:
		return false, s.refuse(fpdu.TypeAckSelect, fpdu.ReasonFileNotFound, "this server only accepts uploads")
	case f.Type == fpdu.TypeORF && s.stage == stSelected:
		var params []fpdu.Param
		if p, ok := f.Get(fpdu.PICompression); ok && len(p.Value) > 0 && p.Value[0] != 0 {
			params = append(params, fpdu.PI(fpdu.PICompression, []byte{0, 0}))
		}
		s.stage = stOpen
		return false, s.send(fpdu.TypeAckORF, append([]fpdu.Param{fpdu.DiagOK.Param()}, params...)...)
	case f.Type == fpdu.TypeWrite && s.stage == stOpen:
		return s.receive()
	case f.Type == fpdu.TypeTransEnd && s.stage == stData:
		return false, s.transEnd(f)
	case f.Type == fpdu.TypeCRF && (s.stage == stOpen || s.stage == stEnded):
		if _, err := diag(f); err != nil {
			return true, s.protocol(badParam("CRF: %v", err))
		}
		s.stage = stClosed
		return false, s.send(fpdu.TypeAckCRF, fpdu.DiagOK.Param())
	case f.Type == fpdu.TypeDeselect && (s.stage == stSelected || s.stage == stClosed):
		s.log("deselected")
		s.stage = stNone
		return false, s.send(fpdu.TypeAckDeselect, fpdu.DiagOK.Param())
	case f.Type == fpdu.TypeMsg || f.Type == fpdu.TypeMsgFM:
		return false, s.refuse(fpdu.TypeAckMsg, fpdu.ReasonMessageRefused, "messages are not supported")
	case f.Type == fpdu.TypeMsgDM || f.Type == fpdu.TypeMsgMM:
		return false, nil
	}
	return true, s.protocol(protoErr("%v unexpected here", f.Type))
}

func (s *session) create(f *fpdu.FPDU) error {
	p, ok := f.Get(fpdu.PIFileName)
	if !ok {
		return s.protocol(badParam("CREATE without PI 12"))
	}
	tid, ok, err := getUint(f, fpdu.PITransferID)
	if err != nil || !ok || tid == 0 || tid > 0xFFFFFF {
		return s.protocol(badParam("CREATE PI 13 absent or illegal"))
	}
	if r, _, err := getUint(f, fpdu.PIRestart); err != nil || r > 1 {
		return s.protocol(badParam("CREATE PI 15 illegal"))
	}
	e, ok, err := getUint(f, fpdu.PIMaxEntitySize)
	if err != nil || !ok || e < minEntity {
		return s.protocol(badParam("CREATE PI 25 absent or illegal"))
	}
	if _, _, err := getUint(f, fpdu.PIArticleLength); err != nil {
		return s.protocol(badParam("PI 32: %v", err))
	}
	if s.access == 1 {
		return s.refuse(fpdu.TypeAckCreate, fpdu.ReasonTransferRefused, "connection opened for reading only")
	}
	s.name, s.entity = p.Text(), int(min(e, fpdu.MaxFPDULen))
	s.bytes, s.articles, s.syncs, s.endDiag = 0, 0, 0, fpdu.DiagOK
	s.stage, s.start = stSelected, time.Now()
	return s.send(fpdu.TypeAckCreate, fpdu.DiagOK.Param(), fpdu.PIUint(fpdu.PIMaxEntitySize, uint64(s.entity), 2))
}

// receive answers WRITE and consumes the data phase: it reads every FPDU,
// checks its header and ids, walks the articles of each DTF, checks and
// acknowledges the sync points, and drops the data.
func (s *session) receive() (bool, error) {
	if err := s.send(fpdu.TypeAckWrite, fpdu.DiagOK.Param(), fpdu.PIUint(fpdu.PIRestartPoint, 0, 1)); err != nil {
		return true, err
	}
	s.rd.SetMaxSize(s.entity)
	defer s.rd.SetMaxSize(fpdu.MaxFPDULen)
	inSeg := false
	var last uint32
	ack := make([]byte, 0, 16)
	for {
		s.refresh()
		b, err := s.rd.Next()
		if err != nil {
			return true, s.readFailed(err)
		}
		t := fpdu.MakeType(b[2], b[3])
		switch t {
		case fpdu.TypeDTF, fpdu.TypeDTFDA, fpdu.TypeDTFMA, fpdu.TypeDTFFA, fpdu.TypeSyn, fpdu.TypeDTFEnd, fpdu.TypeIDT, fpdu.TypeAbort:
		default:
			return true, s.protocol(protoErr("%v during the data phase", t))
		}
		if t != fpdu.TypeAbort && (b[4] != s.local || (b[5] != 0 && t != fpdu.TypeDTF)) {
			return true, s.protocol(protoErr("%v with ids %d/%d", t, b[4], b[5]))
		}
		switch t {
		case fpdu.TypeDTF:
			if inSeg {
				return true, s.protocol(protoErr("DTF inside a segmented article"))
			}
			it := fpdu.NewArticleIter(fpdu.Header{Type: t, SrcID: b[5]}, b[fpdu.HeaderLen:])
			for it.Next() {
				s.bytes += uint64(len(it.Article()))
				s.articles++
			}
			if err := it.Err(); err != nil {
				return true, s.protocol(protoErr("%v", err))
			}
		case fpdu.TypeDTFDA, fpdu.TypeDTFMA, fpdu.TypeDTFFA:
			if inSeg != (t != fpdu.TypeDTFDA) {
				return true, s.protocol(protoErr("%v out of sequence", t))
			}
			s.bytes += uint64(len(b) - fpdu.HeaderLen)
			inSeg = t != fpdu.TypeDTFFA
			if !inSeg {
				s.articles++
			}
		case fpdu.TypeSyn:
			if inSeg {
				return true, s.protocol(protoErr("SYN inside a segmented article"))
			}
			n, err := fpdu.ParseSyncNumber(b)
			if err != nil {
				return true, s.protocol(badParam("%v", err))
			}
			if n != last+1 {
				return true, s.protocol(protoErr("SYN %d after sync point %d", n, last))
			}
			last = n
			s.syncs++
			if s.window > 0 {
				ack = ack[:0]
				if s.framing == fpdu.FramingPrefixed {
					ack = append(ack, 0, 0)
				}
				ack = fpdu.AppendSync(ack, fpdu.TypeAckSyn, s.peer, n)
				if s.framing == fpdu.FramingPrefixed {
					binary.BigEndian.PutUint16(ack, uint16(len(ack)-2))
				}
				if _, err := s.conn.Write(ack); err != nil {
					return true, err
				}
			}
		default: // DTF.END, IDT, ABORT
			if inSeg && t == fpdu.TypeDTFEnd {
				return true, s.protocol(protoErr("DTF.END inside a segmented article"))
			}
			f, err := fpdu.Decode(b)
			if err != nil {
				return true, s.protocol(err)
			}
			d, err := f.Diag()
			switch {
			case t == fpdu.TypeAbort:
				return true, fmt.Errorf("requester aborted %s with %v", s.name, d)
			case t == fpdu.TypeIDT:
				s.endDiag, s.stage = d, stOpen
				return false, s.send(fpdu.TypeAckIDT)
			case err != nil:
				return true, s.protocol(badParam("DTF.END without PI 2"))
			}
			s.endDiag, s.stage = d, stData
			return false, nil
		}
	}
}

// transEnd compares the requester's counts with ours and answers.
func (s *session) transEnd(f *fpdu.FPDU) error {
	d := fpdu.DiagOK
	for _, c := range [2]struct {
		code byte
		have uint64
	}{{fpdu.PIByteCount, s.bytes}, {fpdu.PIArticleCount, s.articles}} {
		v, ok, err := getUint(f, c.code)
		if err != nil {
			return s.protocol(badParam("TRANS.END: %v", err))
		}
		if ok && v != c.have {
			d = fpdu.NewDiag(fpdu.ReasonWrongCount)
			log.Printf("%v: %s: requester counted %s = %d, sink %d", s.conn.RemoteAddr(), s.name, fpdu.ParamName(c.code), v, c.have)
		}
	}
	if !d.OK() {
		s.endDiag = d
	}
	s.stage = stEnded
	return s.send(fpdu.TypeAckTransEnd, d.Param(),
		fpdu.PIUint(fpdu.PIByteCount, s.bytes, 1), fpdu.PIUint(fpdu.PIArticleCount, s.articles, 1))
}

// log reports the transfer that ends.
func (s *session) log(outcome string) {
	secs := time.Since(s.start).Seconds()
	log.Printf("received %s bytes=%d articles=%d syncs=%d seconds=%.3f mbps=%.1f ok=%t outcome=%s",
		s.name, s.bytes, s.articles, s.syncs, secs, float64(s.bytes)/1e6/secs, s.stage == stClosed && s.endDiag.OK(), outcome)
}

func getUint(f *fpdu.FPDU, code byte) (uint64, bool, error) {
	p, ok := f.Get(code)
	if !ok {
		return 0, false, nil
	}
	v, err := p.Uint()
	if err != nil {
		return 0, true, fmt.Errorf("PI %d: %w", code, err)
	}
	return v, true, nil
}

// diag returns PI 2, DiagOK when absent.
func diag(f *fpdu.FPDU) (fpdu.Diag, error) {
	p, ok := f.Get(fpdu.PIDiagnostic)
	if !ok {
		return fpdu.DiagOK, nil
	}
	return fpdu.ParseDiag(p.Value)
}

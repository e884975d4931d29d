package pesit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mholt/caddy-l4/layer4"
	"go.uber.org/zap"

	"github.com/bankedge/bankedge/modules/ca/registry"
	"github.com/bankedge/bankedge/modules/guard"
	"github.com/bankedge/bankedge/modules/pesit/fpdu"
)

// inBufSize holds the largest unit (a 2-byte prefix and a 65535-byte
// NSDU) twice over, so that reads from the partner are large. It is
// allocated once the partner is authenticated; before, the session holds
// only what the pre-connection and CONNECT need (preAuthBufSize).
const inBufSize = 256 << 10

// preAuthBufSize holds a prefixed pre-connection and the largest CONNECT
// the detector accepts.
const preAuthBufSize = fpdu.MaxConnectLen + 2 + 64

// session is one partner connection. It is the net.Conn that the next
// handler (caddy-l4's proxy) reads and writes: Read yields the partner's
// bytes for the upstream, Write takes the upstream's bytes for the partner.
type session struct {
	h      *Handler
	cx     *layer4.Connection
	client net.Conn
	start  time.Time

	remote     string
	tlsSubject string
	// deadline bounds the pre-connection, CONNECT and authentication.
	deadline time.Time
	partner  registry.Partner
	accepted bool
	// releaseSlot gives back the partner's maxConnections slot.
	releaseSlot func()

	// Framing towards the partner and towards the upstream.
	clientPrefixed, upPrefixed bool
	clientID                   byte // X, the partner's connection id

	// Partner → upstream.
	in        []byte
	inR, inW  int
	out       []byte // bytes injected before the partner's: CONNECT, prefixes
	pass      int    // partner bytes to pass through verbatim
	nsduLeft  int    // bytes left in the partner's current NSDU (prefixed)
	prefixBuf [2]byte
	preAck    chan error // closed or fed when the upstream answers the gateway's pre-connection
	connect   []byte     // the CONNECT to send once the upstream pre-connection is accepted

	// Upstream → partner.
	wmu  sync.Mutex
	down downScanner

	// Accounting, shared by both directions.
	mu           sync.Mutex
	serverID     byte // Y, from ACONNECT
	answered     atomic.Bool
	ended        bool
	bytesIn      atomic.Int64
	bytesOut     atomic.Int64
	lastActivity atomic.Int64
	xfer         *transfer
	releaseDiag  fpdu.Diag
	fatal        atomic.Bool
	// partnerGone is set when a read from the partner failed other than by
	// the idle timeout: EOF or a broken connection.
	partnerGone atomic.Bool
	meter       sessionMeter
}

func newSession(h *Handler, cx *layer4.Connection) *session {
	s := &session{
		h:      h,
		cx:     cx,
		client: cx.Conn,
		start:  time.Now(),
		remote: remoteIP(cx.RemoteAddr()),
		in:     make([]byte, max(preAuthBufSize, len(cx.MatchingBytes()))),
	}
	if st := tlsState(cx); st != nil && len(st.PeerCertificates) > 0 {
		s.tlsSubject = st.PeerCertificates[0].Subject.String()
	}
	s.touch()
	return s
}

func (s *session) touch() { s.lastActivity.Store(time.Now().UnixNano()) }

// accept reads the partner's pre-connection and CONNECT and decides. It
// returns false when the session must end (it has answered and logged).
func (s *session) accept() bool {
	// The router prefetched the first bytes while matching; take them
	// first, from the connection that holds them.
	if n := len(s.cx.MatchingBytes()); n > 0 {
		if _, err := io.ReadFull(s.cx, s.in[:n]); err != nil {
			return false
		}
		s.inW = n
	}
	s.deadline = s.start.Add(time.Duration(s.h.ConnectTimeout))
	if gd, ok := guard.PreAuthDeadline(s.client, unwrapL4); ok && gd.Add(-guardMargin).Before(s.deadline) {
		// The listener closes unauthenticated connections at gd: end
		// first, with the diagnostic the partner is owed.
		s.deadline = gd.Add(-guardMargin)
	}
	_ = s.client.SetReadDeadline(s.deadline)
	defer s.client.SetReadDeadline(time.Time{})
	for {
		d, err := s.detect()
		if err != nil {
			s.failAccept(err)
			return false
		}
		s.clientPrefixed = d.Prefixed
		s.upPrefixed = d.Prefixed
		if !s.h.sameFraming {
			s.upPrefixed = s.h.upstreamFraming == fpdu.FramingPrefixed
		}
		unit := s.in[s.inR : s.inR+d.Need]
		if d.Kind == fpdu.KindPreConnection {
			ok := s.answerPreConnection(unit, d.Prefixed)
			s.inR += d.Need
			if !ok {
				return false
			}
			continue
		}
		s.inR += d.Need
		if s.h.framing != fpdu.FramingAuto && d.Prefixed != (s.h.framing == fpdu.FramingPrefixed) {
			s.abort(fpdu.ReasonProtocolError, fmt.Sprintf("CONNECT framing does not match framing %s", s.h.Framing))
			return false
		}
		fp := unit
		if d.Prefixed {
			fp = unit[2:]
		}
		return s.acceptConnect(fp)
	}
}

// detect waits until the buffer starts with a whole pre-connection or
// CONNECT.
func (s *session) detect() (fpdu.Detection, error) {
	for {
		d, err := fpdu.Detect(s.in[s.inR:s.inW])
		switch {
		case err == nil:
			return d, nil
		case errors.Is(err, fpdu.ErrNeedMore):
			if err := s.fill(d.Need); err != nil {
				return d, err
			}
		default:
			return d, err
		}
	}
}

// failAccept ends a session that did not get as far as a valid CONNECT.
func (s *session) failAccept(err error) {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.abort(fpdu.ReasonTimerExpired, "no CONNECT within connect_timeout")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		s.auditConnect("refused", fpdu.Diag{}, "connection closed before CONNECT", "")
	default:
		s.abort(fpdu.ReasonProtocolError, "not a PeSIT pre-connection or CONNECT: "+err.Error())
	}
}

// answerPreConnection answers a partner's pre-connection itself: ACK0 when
// the identifier and password are those of an enabled partner, NAK0
// otherwise. It is never forwarded.
func (s *session) answerPreConnection(unit []byte, prefixed bool) bool {
	raw := unit
	if prefixed {
		raw = unit[2:]
	}
	id, password, err := fpdu.ParsePreConnection(raw)
	ok := err == nil
	reason := ""
	if ok {
		// A pre-connection has no way to say "call back later": a
		// temporary failure is a NAK0 too, with its reason audited.
		if _, refusal := s.authenticate(id, []string{password}, false); refusal != nil {
			ok, reason = false, refusal.why
		}
	} else {
		reason = err.Error()
	}
	answer := fpdu.AppendPreConnectionAnswer(nil, ok, prefixed)
	_ = s.writeClient(answer)
	fields := []zap.Field{zap.String("id", id), zap.String("remote_ip", s.remote), zap.String("tls_subject", s.tlsSubject)}
	if ok {
		s.h.audit.Info("pesit.preconnect", append(fields, zap.String("outcome", "ACK0"))...)
	} else {
		s.meter.endWith("nak0")
		s.h.audit.Info("pesit.preconnect", append(fields, zap.String("outcome", "NAK0"), zap.String("reason", reason))...)
	}
	return ok
}

// authRequest is what the registry checks. The client certificate is
// passed only if TLS verified it (client_auth mode require_and_verify, or
// verify_if_given with a certificate): a certificate binding must never be
// satisfied by a certificate anyone can make, as under mode require.
func (s *session) authRequest(id string, passwords []string) registry.AuthRequest {
	req := registry.AuthRequest{PartnerID: id, Passwords: passwords}
	if ip, err := netip.ParseAddr(s.remote); err == nil {
		req.RemoteIP = ip
	}
	if st := tlsState(s.cx); st != nil && len(st.PeerCertificates) > 0 && len(st.VerifiedChains) > 0 {
		req.ClientCert = st.PeerCertificates[0]
	}
	return req
}

// authRefusal is why an authentication attempt failed. A temporary one
// (a backend unreachable, no hash slot before the deadline) is answered
// with 3-322, "call back later", never with a diagnostic that would make
// the partner think its credentials are wrong.
type authRefusal struct {
	temporary bool
	why       string
	// known is set when the registry knows the partner id refused.
	known bool
}

// authenticate runs one authentication attempt (pre-connection or
// CONNECT) within the session's deadline: the failure throttle, the
// registry, then, for the CONNECT (ownCert), the certificate inventory: a
// pre-connection identifier need not be the partner the certificate
// belongs to, the CONNECT's requester must. Failures count against the
// id and the source address.
func (s *session) authenticate(id string, passwords []string, ownCert bool) (registry.Partner, *authRefusal) {
	h := s.h
	ctx, cancel := context.WithDeadline(context.Background(), s.deadline)
	defer cancel()
	window := time.Duration(h.AuthFailureWindow)
	var keys []string
	// counterDown is the failure counter's error: no failure can be
	// counted, so the registry verifies no password (only one its cache
	// holds lets the partner in: the counter and the storage share one
	// Redis) and every refusal is a temporary one that tells nothing
	// about the credentials.
	var counterDown error
	if h.MaxAuthFailures > 0 {
		keys = throttleKeys(id, s.remote)
		throttled, err := h.failures.Throttled(ctx, keys, h.MaxAuthFailures, window)
		if err != nil {
			counterDown, keys = err, nil
		}
		if throttled {
			return registry.Partner{}, &authRefusal{why: fmt.Sprintf(
				"throttled: %d failed authentications within %s for this partner id or source address", h.MaxAuthFailures, window)}
		}
	}
	req := s.authRequest(id, passwords)
	req.CachedOnly = counterDown != nil
	p, err := h.partners.AuthenticatePartner(ctx, req)
	if err == nil && ownCert {
		err = s.checkCertificateOwner(ctx, id)
	}
	var ae *registry.AuthError
	switch {
	case err == nil:
		return p, nil
	case counterDown != nil:
		return registry.Partner{}, &authRefusal{temporary: true, why: "authentication failure counter unavailable: " + counterDown.Error()}
	case errors.As(err, &ae):
		if keys != nil {
			if ferr := h.failures.Fail(ctx, keys, window); ferr != nil {
				return registry.Partner{}, &authRefusal{temporary: true, why: "authentication failure counter unavailable: " + ferr.Error()}
			}
		}
		return registry.Partner{}, &authRefusal{why: string(ae.Reason) + ": " + ae.Detail, known: ae.Reason != registry.ReasonUnknownPartner}
	case ctx.Err() != nil:
		return registry.Partner{}, &authRefusal{temporary: true, why: "authentication did not finish within connect_timeout: " + err.Error()}
	default:
		return registry.Partner{}, &authRefusal{temporary: true, why: "partner registry unavailable: " + err.Error()}
	}
}

// checkCertificateOwner refuses a TLS client certificate that the
// bankedge CA issued for another partner, or for anything but a partner's
// TLS client (a PSD2 QWAC or QSEAL, a server certificate): one CA issues
// them all, so chaining to it proves nothing about whose it is. The
// handshake proved possession of the key, so this holds whatever the
// client_auth mode. Certificates of other CAs are left to the binding.
func (s *session) checkCertificateOwner(ctx context.Context, id string) error {
	st := tlsState(s.cx)
	if st == nil || len(st.PeerCertificates) == 0 {
		return nil
	}
	cert := st.PeerCertificates[0]
	owner, purpose, issued, err := s.h.partners.CertificatePartner(ctx, cert)
	if err != nil || !issued {
		return err
	}
	if owner != id || purpose != "CLIENT" {
		return &registry.AuthError{Reason: registry.ReasonCertificateOtherPartner, Detail: fmt.Sprintf(
			"certificate %s of the bankedge CA was issued for partner %q with purpose %s, not for partner %q",
			strings.ToUpper(cert.SerialNumber.Text(16)), owner, purpose, id)}
	}
	return nil
}

// pi5Candidates are the forms a PI 5 password may take: the full value
// (some peers send passwords longer than 8 bytes whole) and the first 8
// bytes without their blank padding.
func pi5Candidates(pi5 []byte) []string {
	full := string(bytes.TrimRight(pi5, " "))
	first, _ := fpdu.PasswordFromPI5(pi5)
	if first == full {
		return []string{full}
	}
	return []string{full, first}
}

// acceptConnect authenticates a CONNECT and prepares it for the upstream.
func (s *session) acceptConnect(fp []byte) bool {
	c, err := fpdu.ParseConnect(fp)
	if err != nil {
		s.clientID = 0
		s.refuseConnect(fpdu.ReasonBadParameter, "malformed CONNECT: "+err.Error())
		return false
	}
	s.clientID = c.SrcID
	s.partner.PartnerID = c.RequesterID
	if c.ServerID != s.h.ServerID {
		s.refuseConnect(fpdu.ReasonUnknownID, fmt.Sprintf("unknown server id %q", c.ServerID))
		return false
	}
	if c.Version != fpdu.VersionE {
		s.refuseConnect(fpdu.ReasonVersionUnsupported, fmt.Sprintf("PeSIT version %d", c.Version))
		return false
	}
	if c.AccessType > 2 {
		s.refuseConnect(fpdu.ReasonBadParameter, fmt.Sprintf("access type (PI 22) %d", c.AccessType))
		return false
	}
	var passwords []string
	if c.HasPassword {
		passwords = pi5Candidates(c.Password)
	}
	p, refusal := s.authenticate(c.RequesterID, passwords, true)
	if refusal != nil && refusal.known {
		s.meter.named(c.RequesterID)
	}
	if refusal != nil {
		reason := fpdu.ReasonUnauthorized
		if refusal.temporary {
			reason = fpdu.ReasonCallLater
		}
		s.refuseConnect(reason, refusal.why)
		return false
	}
	s.partner = p
	s.meter.named(p.PartnerID)
	write, read := c.AccessType == 0 || c.AccessType == 2, c.AccessType == 1 || c.AccessType == 2
	if write && !p.AllowsAccess(true) || read && !p.AllowsAccess(false) {
		s.refuseConnect(fpdu.ReasonUnauthorized, fmt.Sprintf("access type %d not allowed for a %s partner", c.AccessType, p.AccessType))
		return false
	}
	if p.MaxConnections > 0 {
		ctx, cancel := context.WithDeadline(context.Background(), s.deadline)
		release, ok, err := s.h.limiter.Acquire(ctx, p.PartnerID, p.MaxConnections)
		cancel()
		switch {
		case err != nil:
			s.refuseConnect(fpdu.ReasonCallLater, "connection limiter unavailable: "+err.Error())
			return false
		case !ok:
			s.refuseConnect(fpdu.ReasonTooManyConnections, fmt.Sprintf("partner already has %d connections", p.MaxConnections))
			return false
		}
		s.releaseSlot = release
	}

	out := fp
	if uc := s.h.UpstreamCredentials; uc != nil {
		var pw []byte
		if uc.Password != "" {
			pw = fpdu.PadPassword(uc.Password)
		}
		repl := s.cx.Replacer()
		repl.Set("l4.pesit.partner_id", p.PartnerID)
		requester := repl.ReplaceAll(uc.RequesterID, "")
		if out, err = fpdu.RewriteConnect(nil, fp, requester, uc.ServerID, pw); err != nil {
			s.refuseConnect(fpdu.ReasonOtherConnection, "rewriting CONNECT: "+err.Error())
			return false
		}
	}
	s.connect = s.frameUp(out)
	if pc := s.h.UpstreamPreConnection; pc != nil {
		pre, err := fpdu.AppendPreConnection(nil, pc.ID, pc.Password, s.upPrefixed)
		if err != nil {
			s.refuseConnect(fpdu.ReasonOtherConnection, "gateway pre-connection: "+err.Error())
			return false
		}
		s.out = pre
		s.preAck = make(chan error, 1)
		s.down.swallow = 4
		if s.upPrefixed {
			s.down.swallow = 6
		}
	} else {
		s.out, s.connect = s.connect, nil
	}
	s.accepted = true
	s.meter.started(p.PartnerID)
	guard.Authenticate(s.client, unwrapL4)
	// Now, and only now, the buffer for large reads.
	in := make([]byte, inBufSize)
	s.inW = copy(in, s.in[s.inR:s.inW])
	s.in, s.inR = in, 0
	s.auditConnect("accepted", fpdu.DiagOK, "", c.ServerID)
	s.down.init(s)
	return true
}

// guardMargin is how long before a guarded listener's pre-authentication
// deadline the session gives up waiting, so that the partner hears why.
const guardMargin = 250 * time.Millisecond

// unwrapL4 lets guard see through caddy-l4's connection wrapper.
func unwrapL4(c net.Conn) net.Conn {
	if cx, ok := c.(*layer4.Connection); ok {
		return cx.Conn
	}
	return nil
}

// frameUp puts one FPDU in the upstream's framing.
func (s *session) frameUp(fp []byte) []byte {
	if !s.upPrefixed {
		return fp
	}
	out := make([]byte, 0, len(fp)+2)
	out = binary.BigEndian.AppendUint16(out, uint16(len(fp)))
	return append(out, fp...)
}

// frameClient puts one FPDU in the partner's framing.
func (s *session) frameClient(fp []byte) []byte {
	if !s.clientPrefixed {
		return fp
	}
	out := make([]byte, 0, len(fp)+2)
	out = binary.BigEndian.AppendUint16(out, uint16(len(fp)))
	return append(out, fp...)
}

// refuseConnect answers the CONNECT with RCONNECT and logs why.
func (s *session) refuseConnect(reason uint16, why string) {
	diag := fpdu.NewDiag(reason)
	s.meter.end(diag)
	fp, err := fpdu.AppendFPDU(nil, fpdu.TypeRConnect, s.clientID, 0, diag.Param())
	if err == nil {
		_ = s.writeClient(s.frameClient(fp))
	}
	s.auditConnect("refused", diag, why, "")
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
}

// abort sends ABORT with the reason to the partner and ends the session.
func (s *session) abort(reason uint16, why string) {
	diag := fpdu.NewDiag(reason)
	s.meter.end(diag)
	s.mu.Lock()
	y := s.serverID
	s.mu.Unlock()
	fp, err := fpdu.AppendFPDU(nil, fpdu.TypeAbort, s.clientID, y, diag.Param())
	if err == nil {
		_ = s.writeClient(s.frameClient(fp))
	}
	s.endTransfer(outcomeAborted, diag, "aborted by the gateway: "+why)
	s.h.audit.Info("pesit.abort", append(s.sessionFields(), zap.String("by", "gateway"), zap.String("diagnostic", diag.String()),
		zap.String("reason", why))...)
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
}

// writeClient writes to the partner; writes come from both directions'
// goroutines, so they are serialised.
func (s *session) writeClient(b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.client.SetWriteDeadline(time.Now().Add(time.Duration(s.h.IdleTimeout)))
	_, err := s.client.Write(b)
	return err
}

// fill reads from the partner until at least n bytes are buffered.
func (s *session) fill(n int) error {
	if n > len(s.in) {
		return fmt.Errorf("unit of %d bytes: %w", n, fpdu.ErrTooLarge)
	}
	for s.inW-s.inR < n {
		if s.inR == s.inW {
			s.inR, s.inW = 0, 0
		} else if len(s.in)-s.inR < n {
			s.inW = copy(s.in, s.in[s.inR:s.inW])
			s.inR = 0
		}
		if s.accepted {
			_ = s.client.SetReadDeadline(time.Now().Add(time.Duration(s.h.IdleTimeout)))
		}
		m, err := s.client.Read(s.in[s.inW:])
		s.inW += m
		if m > 0 {
			s.touch()
			s.bytesIn.Add(int64(m))
		}
		if err != nil {
			if s.inW-s.inR >= n {
				return nil
			}
			if errors.Is(err, os.ErrDeadlineExceeded) && s.accepted && s.recentlyActive() {
				// The upstream is sending (a long download without sync
				// points); the partner is quiet but the session is not idle.
				continue
			}
			return err
		}
	}
	return nil
}

// readDirect reads from the partner into p, with the idle rules of fill.
func (s *session) readDirect(p []byte) (int, error) {
	for {
		_ = s.client.SetReadDeadline(time.Now().Add(time.Duration(s.h.IdleTimeout)))
		n, err := s.client.Read(p)
		if n > 0 {
			s.touch()
			s.bytesIn.Add(int64(n))
			return n, nil
		}
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && s.recentlyActive() {
			continue
		}
		return 0, err
	}
}

// recentlyActive reports traffic in either direction within the idle
// timeout.
func (s *session) recentlyActive() bool {
	last := time.Unix(0, s.lastActivity.Load())
	return time.Since(last) < time.Duration(s.h.IdleTimeout)
}

func (s *session) upstreamAnswered() bool { return s.answered.Load() }

// finish logs the end of a session that ended without RELEASE or ABORT,
// and of its transfer, and releases its connection slot.
func (s *session) finish() {
	if s.releaseSlot != nil {
		s.releaseSlot()
	}
	s.mu.Lock()
	ended := s.ended
	s.ended = true
	s.mu.Unlock()
	// No-op when RELEASE or ABORT has ended the transfer already.
	s.endTransfer(outcomeInterrupted, fpdu.NewDiag(fpdu.ReasonNetworkIncident), "the connection closed during the transfer")
	if s.accepted && !ended {
		s.h.audit.Info("pesit.close", append(s.sessionFields(), zap.String("outcome", "closed without RELEASE"))...)
	}
	s.meter.finish(s.accepted)
}

// sessionFields are the fields every per-session audit line carries.
func (s *session) sessionFields() []zap.Field {
	return []zap.Field{
		zap.String("partner", s.partner.PartnerID),
		zap.String("remote_ip", s.remote),
		zap.Duration("duration", time.Since(s.start)),
		zap.Int64("bytes_in", s.bytesIn.Load()),
		zap.Int64("bytes_out", s.bytesOut.Load()),
	}
}

func (s *session) auditConnect(outcome string, diag fpdu.Diag, why, serverID string) {
	fields := []zap.Field{
		zap.String("partner", s.partner.PartnerID),
		zap.String("remote_ip", s.remote),
		zap.String("tls_subject", s.tlsSubject),
		zap.String("outcome", outcome),
		zap.String("diagnostic", diag.String()),
	}
	if serverID != "" {
		fields = append(fields, zap.String("server_id", serverID))
	}
	if st := tlsState(s.cx); st != nil && len(st.PeerCertificates) > 0 {
		sum := sha256.Sum256(st.PeerCertificates[0].Raw)
		fields = append(fields, zap.String("tls_fingerprint", hex.EncodeToString(sum[:])))
	}
	if why != "" {
		fields = append(fields, zap.String("reason", why))
	}
	s.h.audit.Info("pesit.connect", fields...)
}

// net.Conn for the next handler. Addresses and deadlines are the
// partner's connection's.

func (s *session) Close() error                       { return s.client.Close() }
func (s *session) LocalAddr() net.Addr                { return s.client.LocalAddr() }
func (s *session) RemoteAddr() net.Addr               { return s.client.RemoteAddr() }
func (s *session) SetDeadline(t time.Time) error      { return s.client.SetDeadline(t) }
func (s *session) SetReadDeadline(t time.Time) error  { return s.client.SetReadDeadline(t) }
func (s *session) SetWriteDeadline(t time.Time) error { return s.client.SetWriteDeadline(t) }

// CloseWrite is called by the proxy when the upstream has finished. If it
// never answered the CONNECT, the partner gets an RCONNECT, and if it left
// an open session (no RELEASE or ABORT) an ABORT 3-310, rather than a
// silent close; neither when the partner left first or the gateway has
// already ended the session.
func (s *session) CloseWrite() error {
	s.mu.Lock()
	ended := s.ended
	s.mu.Unlock()
	switch {
	case !s.answered.Load():
		if !s.fatal.Swap(true) {
			s.refuseConnect(fpdu.ReasonNetworkIncident, "upstream closed without answering the CONNECT")
			// Read may be waiting for the answer to the gateway's
			// pre-connection: it need not wait for connect_timeout.
			select {
			case s.preAck <- errSessionEnded:
			default:
			}
		}
	case !ended && !s.partnerGone.Load():
		if !s.fatal.Swap(true) {
			s.abort(fpdu.ReasonNetworkIncident, "upstream closed the session without RELEASE or ABORT")
		}
	}
	if cw, ok := s.client.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

var _ net.Conn = (*session)(nil)

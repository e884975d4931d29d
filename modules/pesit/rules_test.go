package pesit

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"github.com/mholt/caddy-l4/layer4"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/bankedge/bankedge/modules/ca/registry"
	"github.com/bankedge/bankedge/modules/pesit/fpdu"
)

// scriptConn is a partner that sends fixed bytes, then EOF, and records
// what the gateway writes back.
type scriptConn struct {
	in  *bytes.Reader
	out bytes.Buffer
	net.Conn
}

func (c *scriptConn) Read(p []byte) (int, error)       { return c.in.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error)      { return c.out.Write(p) }
func (c *scriptConn) Close() error                     { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }
func (c *scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (c *scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2} }

// scriptSession is a session whose partner sends in; audit lines go to the
// returned observer.
func scriptSession(t testing.TB, h *Handler, in []byte) (*session, *scriptConn, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.InfoLevel)
	h.ConnectTimeout, h.IdleTimeout, h.MaxFPDUSize = caddy.Duration(time.Minute), caddy.Duration(time.Minute), 65535
	h.logger, h.audit = zap.NewNop(), zap.New(core)
	if h.Framing == "" {
		h.Framing = "auto"
	}
	if err := h.framing.UnmarshalText([]byte(h.Framing)); err != nil {
		t.Fatal(err)
	}
	h.sameFraming = true
	client := &scriptConn{in: bytes.NewReader(in)}
	return newSession(h, layer4.WrapConnection(client, nil, zap.NewNop())), client, logs
}

// answer decodes the one FPDU the gateway sent, in prefixed framing.
func answer(t *testing.T, c *scriptConn) fpdu.FPDU {
	t.Helper()
	b, err := fpdu.NewReader(bytes.NewReader(c.out.Bytes()), fpdu.FramingPrefixed).Next()
	if err != nil {
		t.Fatalf("gateway answer % x: %v", c.out.Bytes(), err)
	}
	f, err := fpdu.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// connectNSDU is a prefixed CONNECT with PI 22 = access, refused before
// any authentication.
func connectNSDU(t *testing.T, access byte) []byte {
	t.Helper()
	return connectUnit(t, fpdu.Connect{SrcID: 1, RequesterID: "bad id!", ServerID: "BANKEDGE", Version: fpdu.VersionE, AccessType: access})
}

func connectUnit(t *testing.T, c fpdu.Connect) []byte {
	t.Helper()
	fp, err := c.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	unit, err := fpdu.AppendNSDU(nil, fpdu.FramingPrefixed, fp)
	if err != nil {
		t.Fatal(err)
	}
	return unit
}

// TestConfiguredFramingIsEnforced: with framing raw, a prefixed CONNECT is
// a protocol error (ABORT 3-311), not authenticated and forwarded.
func TestConfiguredFramingIsEnforced(t *testing.T) {
	s, c, _ := scriptSession(t, &Handler{ServerID: "BANKEDGE", Framing: "raw"}, connectNSDU(t, 0))
	if s.accept() {
		t.Fatal("accepted")
	}
	f := answer(t, c)
	d, _ := f.Diag()
	if f.Type != fpdu.TypeAbort || d.Reason != fpdu.ReasonProtocolError {
		t.Fatalf("got %v %v, want ABORT 3-311", f.Type, d)
	}
}

// TestIllegalAccessTypeRefused: PI 22 outside 0-2 gets RCONNECT 3-318.
func TestIllegalAccessTypeRefused(t *testing.T) {
	s, c, _ := scriptSession(t, &Handler{ServerID: "BANKEDGE"}, connectNSDU(t, 7))
	if s.accept() {
		t.Fatal("accepted")
	}
	f := answer(t, c)
	d, _ := f.Diag()
	if f.Type != fpdu.TypeRConnect || d.Reason != fpdu.ReasonBadParameter {
		t.Fatalf("got %v %v, want RCONNECT 3-318", f.Type, d)
	}
}

// TestAllowedFilesSeesPGI9Name: a CREATE whose PGI 9 names a forbidden
// file and which carries an allowed PI 12 at top level must be refused.
func TestAllowedFilesSeesPGI9Name(t *testing.T) {
	s, c, _ := scriptSession(t, &Handler{ServerID: "BANKEDGE"}, nil)
	s.clientPrefixed = true
	s.partner = registry.Partner{PartnerID: "P", AccessType: registry.AccessBoth, AllowedFiles: []string{"ALLOWED"}}
	build := func(params ...fpdu.Param) fpdu.FPDU {
		b, err := fpdu.AppendFPDU(nil, fpdu.TypeCreate, 5, 0, params...)
		if err != nil {
			t.Fatal(err)
		}
		f, err := fpdu.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	pgi9 := func(name string) fpdu.Param {
		return fpdu.PGI(fpdu.PGIFileID, fpdu.PIUint(fpdu.PIFileType, 0, 1), fpdu.PIString(fpdu.PIFileName, name))
	}
	ok := build(pgi9("ALLOWED"), fpdu.PIUint(fpdu.PITransferID, 1, 1))
	if !s.checkTransfer(&ok) {
		t.Fatal("allowed file refused")
	}
	smuggled := build(pgi9("SECRET"), fpdu.PIString(fpdu.PIFileName, "ALLOWED"), fpdu.PIUint(fpdu.PITransferID, 2, 1))
	if s.checkTransfer(&smuggled) {
		t.Fatal("CREATE of SECRET accepted through a top-level PI 12")
	}
	if f := answer(t, c); f.Type != fpdu.TypeAckCreate {
		t.Fatalf("got %v, want a negative ACK(CREATE)", f.Type)
	}
}

// TestConnectAuditHasServerID: the accepted CONNECT's audit line names the
// server id called (PI 4).
func TestConnectAuditHasServerID(t *testing.T) {
	s, _, logs := scriptSession(t, &Handler{ServerID: "BANKEDGE"}, nil)
	s.auditConnect("accepted", fpdu.DiagOK, "", "BANKEDGE")
	entries := logs.All()
	if len(entries) != 1 || entries[0].ContextMap()["server_id"] != "BANKEDGE" {
		t.Fatalf("audit %v lacks server_id", entries)
	}
}

var _ io.Reader = (*scriptConn)(nil)

// registryPartners is the bankedge app's Partners over a bare registry:
// no CA, so no certificate is ever one it issued.
type registryPartners struct{ r *registry.Registry }

func (p registryPartners) AuthenticatePartner(ctx context.Context, req registry.AuthRequest) (registry.Partner, error) {
	return p.r.Authenticate(ctx, req)
}

func (registryPartners) CertificatePartner(context.Context, *x509.Certificate) (string, string, bool, error) {
	return "", "", false, nil
}

// stuckPartners never answers before the caller gives up.
type stuckPartners struct{ registryPartners }

func (stuckPartners) AuthenticatePartner(ctx context.Context, _ registry.AuthRequest) (registry.Partner, error) {
	<-ctx.Done()
	return registry.Partner{}, ctx.Err()
}

var errBackendDown = errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")

type downCounter struct{}

func (downCounter) Throttled(context.Context, []string, int, time.Duration) (bool, error) {
	return false, errBackendDown
}
func (downCounter) Fail(context.Context, []string, time.Duration) error { return errBackendDown }

type downLimiter struct{}

func (downLimiter) Acquire(context.Context, string, int) (func(), bool, error) {
	return nil, false, errBackendDown
}

func connectFor(t *testing.T, id, password string) []byte {
	t.Helper()
	return connectUnit(t, fpdu.Connect{SrcID: 1, RequesterID: id, ServerID: "BANKEDGE", Password: fpdu.Secret(password), HasPassword: true,
		Version: fpdu.VersionE, AccessType: 2, HasAccessType: true})
}

// TestUnavailableBackendsAskToCallLater: when the failure counter or the
// connection limiter cannot answer (a shared store down), or the registry
// does not answer within connect_timeout, the partner gets RCONNECT 3-322
// ("call back later"), never an authentication refusal that would make it
// think its credentials are wrong, and never a hang.
func TestUnavailableBackendsAskToCallLater(t *testing.T) {
	reg := &registry.Registry{Storage: &certmagic.FileStorage{Path: t.TempDir()}}
	id, pw := "LIMITED", "Good-Pass1234!"
	if _, err := reg.Create(context.Background(), registry.Input{PartnerID: &id, Password: &pw, MaxConnections: ptrInt(1)}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		h    *Handler
	}{
		{"failure counter down", &Handler{partners: registryPartners{reg}, failures: downCounter{}, limiter: localConnections, MaxAuthFailures: 5}},
		{"connection limiter down", &Handler{partners: registryPartners{reg}, failures: localFailures, limiter: downLimiter{}, MaxAuthFailures: 5}},
		{"registry too slow", &Handler{partners: stuckPartners{}, failures: localFailures, limiter: localConnections, MaxAuthFailures: 5}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.h.ServerID, c.h.AuthFailureWindow = "BANKEDGE", caddy.Duration(time.Minute)
			s, conn, logs := scriptSession(t, c.h, connectFor(t, id, pw))
			c.h.ConnectTimeout = caddy.Duration(200 * time.Millisecond)
			start := time.Now()
			if s.accept() {
				t.Fatal("accepted")
			}
			if time.Since(start) > 5*time.Second {
				t.Fatalf("answered after %s", time.Since(start))
			}
			f := answer(t, conn)
			d, _ := f.Diag()
			if f.Type != fpdu.TypeRConnect || d.Reason != fpdu.ReasonCallLater {
				t.Fatalf("got %v %v, want RCONNECT 3-322", f.Type, d)
			}
			if e := logs.All(); len(e) != 1 || e[0].ContextMap()["diagnostic"] != "3-322" {
				t.Fatalf("audit: %v", e)
			}
		})
	}
}

func ptrInt(v int) *int { return &v }

// With the failure counter down (the shared store unreachable), a partner
// without maxConnections whose password this gateway's registry verified
// before still connects; the same partner with a wrong password, and one
// never verified here, get 3-322 (the registry verifies nothing for them:
// AuthRequest.CachedOnly, tested in the registry).
func TestCounterDownLetsCachedPartnersIn(t *testing.T) {
	reg := &registry.Registry{Storage: &certmagic.FileStorage{Path: t.TempDir()}}
	pw := "Good-Pass1234!"
	for _, id := range []string{"CACHED", "FRESH"} {
		if _, err := reg.Create(context.Background(), registry.Input{PartnerID: &id, Password: &pw}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := reg.Authenticate(context.Background(), registry.AuthRequest{PartnerID: "CACHED", Passwords: []string{pw}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id, password string
		accepted     bool
	}{
		{"CACHED", pw, true},
		{"CACHED", "Wrong-Pass1234!", false},
		{"FRESH", pw, false},
	} {
		h := &Handler{partners: registryPartners{reg}, failures: downCounter{}, limiter: localConnections, MaxAuthFailures: 5}
		h.ServerID, h.AuthFailureWindow = "BANKEDGE", caddy.Duration(time.Minute)
		s, conn, _ := scriptSession(t, h, connectFor(t, c.id, c.password))
		if got := s.accept(); got != c.accepted {
			t.Fatalf("%s with %s password: accepted %v, want %v", c.id, map[bool]string{true: "its", false: "another"}[c.password == pw], got, c.accepted)
		}
		if !c.accepted {
			f := answer(t, conn)
			if d, _ := f.Diag(); f.Type != fpdu.TypeRConnect || d.Reason != fpdu.ReasonCallLater {
				t.Fatalf("%s: got %v %v, want RCONNECT 3-322", c.id, f.Type, d)
			}
		}
	}
}

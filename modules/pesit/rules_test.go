package pesit

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
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
func scriptSession(t *testing.T, h *Handler, in []byte) (*session, *scriptConn, *observer.ObservedLogs) {
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

func connectNSDU(t *testing.T, access byte) []byte {
	t.Helper()
	// "bad id!" is not a valid partner id, so the registry answers without
	// storage: the test needs none.
	fp, err := fpdu.Connect{SrcID: 1, RequesterID: "bad id!", ServerID: "BANKEDGE", Version: fpdu.VersionE, AccessType: access}.Append(nil)
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
	s, c, _ := scriptSession(t, &Handler{ServerID: "BANKEDGE", Framing: "raw", registry: &registry.Registry{}}, connectNSDU(t, 0))
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
	s, c, _ := scriptSession(t, &Handler{ServerID: "BANKEDGE", registry: &registry.Registry{}}, connectNSDU(t, 7))
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

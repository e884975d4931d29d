package peer

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/bankedge/bankedge/modules/pesit/fpdu"
)

const testServerID = "PESITSRV"

// testServer is a Server listening on loopback, with its logs observed.
type testServer struct {
	*Server
	addr string
	logs *observer.ObservedLogs
	tls  *tls.Config // client side, nil for plain TCP

	mu    sync.Mutex
	errs  []error
	conns sync.WaitGroup
}

type serverOpt func(*testServer, *listenCfg)

type listenCfg struct {
	tls  *tls.Config
	wrap func(net.Conn) net.Conn
}

func withTLS(pki *testPKI) serverOpt {
	return func(ts *testServer, c *listenCfg) { c.tls, ts.tls = pki.server, pki.client }
}

func withWrap(w func(net.Conn) net.Conn) serverOpt {
	return func(_ *testServer, c *listenCfg) { c.wrap = w }
}

// startServer serves srv (Root defaults to a temp dir) on 127.0.0.1.
func startServer(t testing.TB, srv *Server, opts ...serverOpt) *testServer {
	t.Helper()
	if srv == nil {
		srv = &Server{}
	}
	if srv.ServerID == "" {
		srv.ServerID = testServerID
	}
	if srv.Root == "" {
		srv.Root = filepath.Join(t.TempDir(), "root")
		if err := os.Mkdir(srv.Root, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	core, logs := observer.New(zapcore.InfoLevel)
	if srv.Logger == nil {
		srv.Logger = zap.New(core)
	}
	ts := &testServer{Server: srv, logs: logs}
	var cfg listenCfg
	for _, o := range opts {
		o(ts, &cfg)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if cfg.wrap != nil {
				c = cfg.wrap(c)
			}
			if cfg.tls != nil {
				c = tls.Server(c, cfg.tls)
			}
			ts.conns.Add(1)
			go func() {
				defer ts.conns.Done()
				err := srv.ServeConn(ctx, c)
				ts.mu.Lock()
				ts.errs = append(ts.errs, err)
				ts.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		cancel()
		ts.conns.Wait()
	})
	return ts
}

// wait blocks until every accepted connection has been served.
func (ts *testServer) wait(t testing.TB) {
	t.Helper()
	ch := make(chan struct{})
	go func() { ts.conns.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("server sessions did not end")
	}
}

// dial opens a connection to the server, TLS if it has TLS.
func (ts *testServer) dial(t testing.TB) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	if ts.tls != nil {
		tc := tls.Client(c, ts.tls)
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		return tc
	}
	return c
}

func clientOpts(o ConnectOptions) ConnectOptions {
	if o.RequesterID == "" {
		o.RequesterID = "CLIENT1"
	}
	if o.ServerID == "" {
		o.ServerID = testServerID
	}
	if o.Password == "" {
		o.Password = "secret"
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	return o
}

// connect dials and runs NewClient.
func (ts *testServer) connect(t testing.TB, o ConnectOptions) *Client {
	t.Helper()
	c, err := NewClient(ts.dial(t), clientOpts(o))
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// transferLog returns the fields of the server's "pesit transfer" log
// entries for a file.
func (ts *testServer) transferLog(name string) []map[string]any {
	var out []map[string]any
	for _, e := range ts.logs.FilterMessage("pesit transfer").All() {
		m := e.ContextMap()
		if m["file"] == name {
			out = append(out, m)
		}
	}
	return out
}

// randomData returns n deterministic pseudo-random bytes.
func randomData(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

func sum(b []byte) [32]byte { return sha256.Sum256(b) }

func fileSum(t testing.TB, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

// listDir returns the names in dir.
func listDir(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// testPKI is an in-test ECDSA CA with a server and a client certificate.
type testPKI struct {
	server, client *tls.Config
}

var (
	pkiOnce sync.Once
	pki     *testPKI
	pkiErr  error
)

func newPKI(t testing.TB) *testPKI {
	t.Helper()
	pkiOnce.Do(func() { pki, pkiErr = makePKI() })
	if pkiErr != nil {
		t.Fatal(pkiErr)
	}
	return pki
}

func makePKI() (*testPKI, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "peer test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, ip bool) (tls.Certificate, error) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return tls.Certificate{}, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		if ip {
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			return tls.Certificate{}, err
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}, nil
	}
	srvCert, err := leaf(2, "pesit server", x509.ExtKeyUsageServerAuth, true)
	if err != nil {
		return nil, err
	}
	cliCert, err := leaf(3, "CLIENT1", x509.ExtKeyUsageClientAuth, false)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &testPKI{
		server: &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12},
		client: &tls.Config{Certificates: []tls.Certificate{cliCert}, RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12},
	}, nil
}

// rawPeer speaks raw FPDUs to a server, for protocol tests.
type rawPeer struct {
	t       testing.TB
	conn    net.Conn
	rd      *fpdu.Reader
	framing fpdu.Framing
	y       byte
}

func (ts *testServer) raw(t testing.TB, f fpdu.Framing) *rawPeer {
	c := ts.dial(t)
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawPeer{t: t, conn: c, rd: fpdu.NewReader(c, f), framing: f}
}

// send writes FPDUs as one NSDU.
func (p *rawPeer) send(fpdus ...[]byte) {
	p.t.Helper()
	b, err := fpdu.AppendNSDU(nil, p.framing, fpdus...)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.conn.Write(b); err != nil {
		p.t.Fatal(err)
	}
}

func mustFPDU(t testing.TB, typ fpdu.Type, dst, src byte, params ...fpdu.Param) []byte {
	t.Helper()
	b, err := fpdu.AppendFPDU(nil, typ, dst, src, params...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// recv reads and decodes the next FPDU.
func (p *rawPeer) recv() fpdu.FPDU {
	p.t.Helper()
	b, err := p.rd.Next()
	if err != nil {
		p.t.Fatalf("reading: %v", err)
	}
	f, err := fpdu.Decode(append([]byte(nil), b...))
	if err != nil {
		p.t.Fatal(err)
	}
	return f
}

// expect reads an FPDU of type want with diagnostic d.
func (p *rawPeer) expect(want fpdu.Type, d fpdu.Diag) fpdu.FPDU {
	p.t.Helper()
	f := p.recv()
	if f.Type != want {
		p.t.Fatalf("got %v, want %v", f, want)
	}
	if got, _ := diagOf(&f); got != d {
		p.t.Fatalf("%v: diagnostic %v, want %v", f, got, d)
	}
	return f
}

// connect runs CONNECT/ACONNECT with sync points off.
func (p *rawPeer) connect(access byte) {
	p.t.Helper()
	b, err := fpdu.Connect{SrcID: 7, RequesterID: "RAW", ServerID: testServerID, Version: 2, AccessType: access, HasAccessType: true}.Append(nil)
	if err != nil {
		p.t.Fatal(err)
	}
	p.send(b)
	f := p.expect(fpdu.TypeAConnect, fpdu.DiagOK)
	if f.DstID != 7 || f.SrcID == 0 {
		p.t.Fatalf("ACONNECT ids %d/%d", f.DstID, f.SrcID)
	}
	p.y = f.SrcID
}

// startWrite creates file name (transfer id, 4096-byte entities), opens it
// and starts writing: CREATE, ORF and WRITE, each acknowledged.
func (p *rawPeer) startWrite(name string, id uint64) {
	p.t.Helper()
	p.send(mustFPDU(p.t, fpdu.TypeCreate, p.y, 0, fpdu.PGI(fpdu.PGIFileID, fpdu.PIString(fpdu.PIFileName, name)),
		fpdu.PIUint(fpdu.PITransferID, id, 1), fpdu.PIUint(fpdu.PIMaxEntitySize, 4096, 2)))
	p.expect(fpdu.TypeAckCreate, fpdu.DiagOK)
	p.send(mustFPDU(p.t, fpdu.TypeORF, p.y, 0))
	p.expect(fpdu.TypeAckORF, fpdu.DiagOK)
	p.send(mustFPDU(p.t, fpdu.TypeWrite, p.y, 0))
	p.expect(fpdu.TypeAckWrite, fpdu.DiagOK)
}

// closed reports whether the server closed the connection (EOF) within d.
func (p *rawPeer) closed(d time.Duration) error {
	_ = p.conn.SetReadDeadline(time.Now().Add(d))
	var buf [256]byte
	for {
		_, err := p.conn.Read(buf[:])
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
			return nil
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return err
		}
		if err != nil {
			return nil // reset: closed as well
		}
	}
}

// countingConn closes the connection after `limit` bytes were written
// (or read, with reads set), simulating a network failure mid-transfer.
type countingConn struct {
	net.Conn
	limit int64
	reads bool
	n     int64
}

func (c *countingConn) Write(b []byte) (int, error) {
	if !c.reads {
		if c.n += int64(len(b)); c.n > c.limit {
			c.Conn.Close()
			return 0, net.ErrClosed
		}
	}
	return c.Conn.Write(b)
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if c.reads {
		if c.n += int64(n); c.n > c.limit {
			c.Conn.Close()
			return 0, net.ErrClosed
		}
	}
	return n, err
}

// tapConn records the bytes read from a connection.
type tapConn struct {
	net.Conn
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (c tapConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	c.buf.Write(b[:n])
	c.mu.Unlock()
	return n, err
}

func refused(t testing.TB, err error) *RefusedError {
	t.Helper()
	var re *RefusedError
	if !errors.As(err, &re) {
		t.Fatalf("error %v (%T) is not a *RefusedError", err, err)
	}
	return re
}

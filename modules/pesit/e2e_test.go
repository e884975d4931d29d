package pesit_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/bankedge/bankedge/internal/testcaddy"
	"github.com/bankedge/bankedge/modules/ca/authority"
	"github.com/bankedge/bankedge/modules/ca/registry"
	"github.com/bankedge/bankedge/modules/pesit/fpdu"
	"github.com/bankedge/bankedge/modules/pesit/peer"

	_ "github.com/bankedge/bankedge/modules/ca"
	_ "github.com/bankedge/bankedge/modules/pesit"
	_ "github.com/mholt/caddy-l4/layer4"
	_ "github.com/mholt/caddy-l4/modules/l4proxy"
	_ "github.com/mholt/caddy-l4/modules/l4subroute"
	_ "github.com/mholt/caddy-l4/modules/l4tls"
)

const (
	caPassphrase = "pesit-test-ca"
	gatewayID    = "GWSRV"
	goodPassword = "Good-Pass1234!"
)

// env is the gateway under test: a plain and a TLS listener with the pesit
// handler in front of a pesit_server, and a listener whose upstream is down.
type env struct {
	dir, files, auditLog       string
	plain, tls, down, upstream string
	throttled, tlsUnverified   string
	// bare is a PeSIT listener on plain tcp, not guard+tcp; http an
	// unguarded HTTP site. Both serve the descriptor exhaustion test.
	bare, http                       string
	ca                               *x509.Certificate
	tlsPartner, certBound, otherCert tls.Certificate
	// qwac is a PSD2 sandbox QWAC the CA issued, recorded for TLSPARTNER.
	qwac tls.Certificate
	// selfSigned has CN=certbound-partner and chains to nothing.
	selfSigned tls.Certificate
}

func partnerInput(id, password string, mod func(in *registry.Input)) registry.Input {
	in := registry.Input{PartnerID: &id, Password: &password}
	ips := []string{"127.0.0.1/32", "::1/128"}
	in.AllowedIPs = &ips
	if mod != nil {
		mod(&in)
	}
	return in
}

func ptr[T any](v T) *T { return &v }

// newEnv starts the gateway of prepareEnv in this process.
func newEnv(t *testing.T) *env {
	e, caddyfile := prepareEnv(t)
	testcaddy.Load(t, caddyfile)
	e.waitTLS(t)
	return e
}

// prepareEnv makes the partners and the CA in a new storage and returns
// the gateway's configuration. Its PeSIT listeners are guarded (guard+tcp)
// but for bare.
func prepareEnv(t *testing.T) (*env, string) {
	e := &env{dir: t.TempDir()}
	e.files = filepath.Join(e.dir, "files")
	e.auditLog = filepath.Join(e.dir, "audit.log")
	storageDir := filepath.Join(e.dir, "storage")
	storage := &certmagic.FileStorage{Path: storageDir}
	ctx := context.Background()

	// Partners and the CA go straight into the storage the gateway will use.
	reg := &registry.Registry{Storage: storage}
	old := &registry.Registry{Storage: storage, Now: func() time.Time { return time.Now().Add(-100 * 24 * time.Hour) }}
	for _, in := range []registry.Input{
		partnerInput("GOOD", goodPassword, nil),
		partnerInput("LEGACY", "test123", func(in *registry.Input) { in.PesitLegacyPassword = ptr(true) }),
		partnerInput("DISABLED", "Disabled-Pass1!", func(in *registry.Input) { in.Enabled = ptr(false) }),
		partnerInput("WRONGIP", goodPassword, func(in *registry.Input) { in.AllowedIPs = &[]string{"10.9.9.0/24"} }),
		partnerInput("READER", goodPassword, func(in *registry.Input) { in.AccessType = ptr("read"); in.AllowedFiles = &[]string{"REPORT*"} }),
		partnerInput("LIMITED", goodPassword, func(in *registry.Input) { in.MaxConnections = ptr(1) }),
		partnerInput("CERTBOUND", goodPassword, func(in *registry.Input) { in.CertificateBinding = ptr("CN=certbound-partner") }),
		partnerInput("TLSPARTNER", goodPassword, nil),
		partnerInput("THROTTLE", goodPassword, func(in *registry.Input) { in.AllowedIPs = &[]string{"127.0.0.0/8"} }),
		partnerInput("LOOPBACK", goodPassword, func(in *registry.Input) { in.AllowedIPs = &[]string{"127.0.0.0/8"} }),
	} {
		if _, err := reg.Create(ctx, in); err != nil {
			t.Fatalf("creating partner: %v", err)
		}
	}
	if _, err := old.Create(ctx, partnerInput("EXPIRED", goodPassword, nil)); err != nil {
		t.Fatal(err)
	}
	auth, _, err := authority.Open(ctx, authority.Config{Storage: storage, Passphrase: []byte(caPassphrase)}, true)
	if err != nil {
		t.Fatal(err)
	}
	e.ca = auth.Certificate()
	issue := func(cn, partnerID string) tls.Certificate {
		tmpl := &x509.Certificate{}
		tmpl.Subject.CommonName = cn
		key, cert, err := auth.Generate(ctx, authority.ECDSAP256, authority.Request{Template: tmpl, Purpose: authority.PurposeClient,
			Validity: 24 * time.Hour, PartnerID: partnerID})
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
	}
	e.tlsPartner, e.certBound = issue("tls-partner", "TLSPARTNER"), issue("certbound-partner", "CERTBOUND")
	// Issued for CERTBOUND, but with another CN than its binding.
	e.otherCert = issue("someone-else", "CERTBOUND")
	{
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: "PSDGR-BOG-123456"}, KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
		cert, err := auth.Issue(ctx, authority.Request{PublicKey: key.Public(), Template: tmpl, Purpose: authority.PurposeQWAC,
			Validity: 24 * time.Hour, PartnerID: "TLSPARTNER"})
		if err != nil {
			t.Fatal(err)
		}
		e.qwac = tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
		tmpl = &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "certbound-partner"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		e.selfSigned = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}

	port := func() string { return fmt.Sprint(testcaddy.FreePort(t)) }
	e.plain, e.tls, e.down, e.upstream = "127.0.0.1:"+port(), "127.0.0.1:"+port(), "127.0.0.1:"+port(), "127.0.0.1:"+port()
	// Listen on all of 127/8, for the tests that dial from other loopback
	// addresses.
	e.throttled, e.tlsUnverified = "127.0.0.1:"+port(), "127.0.0.1:"+port()
	e.bare, e.http = "127.0.0.1:"+port(), "127.0.0.1:"+port()
	closed := "127.0.0.1:" + port()
	https := port()
	// Every test dials from 127.0.0.1, so the failure throttle (shared by
	// the process) is as loose as it goes; TestAuthThrottle dials from
	// other loopback addresses.
	gateway := fmt.Sprintf(`pesit {
					server_id %s
					upstream_credentials INTSRV {l4.pesit.partner_id} gwpass12
					connect_timeout 2s
					idle_timeout 3s
					max_auth_failures 64
				}
				proxy %s`, gatewayID, e.upstream)
	caddyfile := testcaddy.Globals(storageDir, fmt.Sprintf(`
	listener_guard {
		pre_auth_timeout 3s
		max_pre_auth_per_ip 8
	}
	log pesitaudit {
		output file %s
		include bankedge.audit.pesit
		format json
	}
	bankedge {
		ca {
			key_passphrase %s
		}
	}
	layer4 {
		guard+tcp/%s {
			@pesit pesit
			route @pesit {
				%s
			}
		}
		tcp/%s {
			@pesit pesit
			route @pesit {
				%s
			}
		}
		guard+tcp/%s {
			route {
				tls {
					connection_policy {
						default_sni localhost
						client_auth {
							mode require_and_verify
							trust_pool bankedge
							# Wider than the default (CLIENT), which refuses
							# a QWAC in the handshake already: here the
							# handler's own check must refuse it.
							verifier bankedge {
								purposes CLIENT QWAC QSEAL
							}
						}
					}
				}
				subroute {
					@pesit pesit
					route @pesit {
						%s
					}
				}
			}
		}
		%s {
			@pesit pesit
			route @pesit {
				pesit {
					server_id %s
					max_auth_failures 64
				}
				proxy %s
			}
		}
		guard+tcp/:%s {
			@pesit pesit
			route @pesit {
				pesit {
					server_id %s
					upstream_credentials INTSRV {l4.pesit.partner_id} gwpass12
					max_auth_failures 3 1m
				}
				proxy %s
			}
		}
		guard+tcp/%s {
			route {
				tls {
					connection_policy {
						default_sni localhost
						client_auth {
							mode require
						}
					}
				}
				subroute {
					@pesit pesit
					route @pesit {
						%s
					}
				}
			}
		}
		guard+tcp/%s {
			route {
				pesit_server {
					root %s
					server_id INTSRV
					requester * gwpass12
					partial_max_age 1s
				}
			}
		}
	}`, e.auditLog, caPassphrase, e.plain, gateway, e.bare, gateway, e.tls, gateway, e.down, gatewayID, closed,
		strings.TrimPrefix(e.throttled, "127.0.0.1:"), gatewayID, e.upstream, e.tlsUnverified, gateway, e.upstream, e.files)) + fmt.Sprintf(`
https://localhost:%s {
	tls {
		issuer bankedge
	}
	respond "ok"
}
http://%s {
	respond "ok"
}
`, https, e.http)
	return e, caddyfile
}

// waitTLS waits for the layer4 TLS listener to have its certificate, which
// Caddy obtains from the bankedge issuer in the background.
func (e *env) waitTLS(t *testing.T) {
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		c, err := tls.Dial("tcp", e.tls, e.tlsConfig(e.tlsPartner))
		if err == nil {
			c.Close()
			return
		}
	}
	t.Fatal("the TLS listener never presented a certificate from the bankedge CA")
}

func (e *env) tlsConfig(cert tls.Certificate) *tls.Config {
	roots := x509.NewCertPool()
	roots.AddCert(e.ca)
	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost"}
	if cert.Certificate != nil {
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg
}

// client opens a requester session; over TLS when cert is given (or
// useTLS).
func (e *env) client(t *testing.T, addr string, opts peer.ConnectOptions, cert *tls.Certificate) (*peer.Client, error) {
	t.Helper()
	return e.clientFrom(t, "", addr, opts, cert)
}

// clientFrom is client dialing from the loopback address from ("" for
// any).
func (e *env) clientFrom(t *testing.T, from, addr string, opts peer.ConnectOptions, cert *tls.Certificate) (*peer.Client, error) {
	t.Helper()
	d := &net.Dialer{}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	var conn net.Conn
	var err error
	if cert != nil {
		conn, err = tls.DialWithDialer(d, "tcp", addr, e.tlsConfig(*cert))
	} else {
		conn, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	if opts.ServerID == "" {
		opts.ServerID = gatewayID
	}
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	c, err := peer.NewClient(conn, opts)
	if err != nil {
		conn.Close()
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c, nil
}

func randomFile(t *testing.T, dir string, size int) (string, [32]byte) {
	t.Helper()
	data := make([]byte, size)
	_, _ = rand.Read(data)
	p := filepath.Join(dir, fmt.Sprintf("src-%d", size))
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, sha256.Sum256(data)
}

func fileSum(t *testing.T, p string) [32]byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	_, _ = io.Copy(h, f)
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// refusal asserts that err is a PeSIT refusal with the given FPDU type and
// reason.
func refusal(t *testing.T, err error, typ fpdu.Type, reason uint16) {
	t.Helper()
	var re *peer.RefusedError
	if !errors.As(err, &re) {
		t.Fatalf("want %v %d refusal, got %v", typ, reason, err)
	}
	if re.FPDU != typ || re.Diag.Reason != reason {
		t.Fatalf("want %v with reason %d, got %v", typ, reason, re)
	}
}

func TestGateway(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	src := t.TempDir()

	transfer := func(t *testing.T, size int, addr string, cert *tls.Certificate, partner string, framing fpdu.Framing) {
		path, sum := randomFile(t, src, size)
		name := fmt.Sprintf("%s-%d.BIN", partner, size)
		c, err := e.client(t, addr, peer.ConnectOptions{RequesterID: partner, Password: goodPassword, Framing: framing}, cert)
		if err != nil {
			t.Fatal(err)
		}
		f, _ := os.Open(path)
		defer f.Close()
		res, err := c.Send(ctx, name, f, int64(size), peer.TransferOptions{})
		if err != nil {
			t.Fatalf("push: %v", err)
		}
		if res.Bytes != uint64(size) {
			t.Errorf("push moved %d bytes", res.Bytes)
		}
		if got := fileSum(t, filepath.Join(e.files, partner, name)); got != sum {
			t.Fatal("the file at the server differs from the one sent")
		}
		var out bytes.Buffer
		if _, err := c.Fetch(ctx, name, &out, peer.TransferOptions{}); err != nil {
			t.Fatalf("pull: %v", err)
		}
		if sha256.Sum256(out.Bytes()) != sum {
			t.Fatal("the file fetched differs from the one sent")
		}
		if err := c.Release(); err != nil {
			t.Fatalf("release: %v", err)
		}
	}

	t.Run("push and pull over TCP", func(t *testing.T) {
		for _, size := range []int{0, 1 << 20, 50 << 20} {
			transfer(t, size, e.plain, nil, "GOOD", fpdu.FramingPrefixed)
		}
	})
	t.Run("push and pull over mTLS with a partner certificate from the CA", func(t *testing.T) {
		for _, size := range []int{1 << 20, 50 << 20} {
			transfer(t, size, e.tls, &e.tlsPartner, "TLSPARTNER", fpdu.FramingPrefixed)
		}
		// TLS without the NSDU prefix (Connect:Express TCPIP_HEADER=N).
		transfer(t, 1<<20, e.tls, &e.tlsPartner, "TLSPARTNER", fpdu.FramingRaw)
		transfer(t, 4096, e.tls, &e.certBound, "CERTBOUND", fpdu.FramingRaw)
	})
	t.Run("legacy 8-character password", func(t *testing.T) {
		c, err := e.client(t, e.plain, peer.ConnectOptions{RequesterID: "LEGACY", Password: "test123"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.Release()
	})

	t.Run("refusals", func(t *testing.T) {
		cases := []struct {
			name   string
			addr   string
			opts   peer.ConnectOptions
			cert   *tls.Certificate
			typ    fpdu.Type
			reason uint16
		}{
			{"wrong password", e.plain, peer.ConnectOptions{RequesterID: "GOOD", Password: "Wrong-Pass123!"}, nil, fpdu.TypeRConnect, fpdu.ReasonUnauthorized},
			{"unknown partner", e.plain, peer.ConnectOptions{RequesterID: "NOBODY", Password: goodPassword}, nil, fpdu.TypeRConnect, fpdu.ReasonUnauthorized},
			{"disabled", e.plain, peer.ConnectOptions{RequesterID: "DISABLED", Password: "Disabled-Pass1!"}, nil, fpdu.TypeRConnect, fpdu.ReasonUnauthorized},
			{"expired password", e.plain, peer.ConnectOptions{RequesterID: "EXPIRED", Password: goodPassword}, nil, fpdu.TypeRConnect, fpdu.ReasonUnauthorized},
			{"wrong IP", e.plain, peer.ConnectOptions{RequesterID: "WRONGIP", Password: goodPassword}, nil, fpdu.TypeRConnect, fpdu.ReasonUnauthorized},
			{"certificate binding, no certificate", e.plain, peer.ConnectOptions{RequesterID: "CERTBOUND", Password: goodPassword}, nil, fpdu.TypeRConnect, fpdu.ReasonUnauthorized},
			{"certificate binding mismatch", e.tls, peer.ConnectOptions{RequesterID: "CERTBOUND", Password: goodPassword}, &e.otherCert, fpdu.TypeRConnect, fpdu.ReasonUnauthorized},
			{"wrong server id", e.plain, peer.ConnectOptions{RequesterID: "GOOD", Password: goodPassword, ServerID: "OTHER"}, nil, fpdu.TypeRConnect, fpdu.ReasonUnknownID},
			{"write access for a reader", e.plain, peer.ConnectOptions{RequesterID: "READER", Password: goodPassword, Access: peer.AccessWrite}, nil, fpdu.TypeRConnect, fpdu.ReasonUnauthorized},
			{"upstream down", e.down, peer.ConnectOptions{RequesterID: "GOOD", Password: goodPassword}, nil, fpdu.TypeRConnect, fpdu.ReasonNetworkIncident},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				_, err := e.client(t, c.addr, c.opts, c.cert)
				refusal(t, err, c.typ, c.reason)
			})
		}
	})

	t.Run("missing client certificate under NEED", func(t *testing.T) {
		conn, err := tls.Dial("tcp", e.tls, e.tlsConfig(tls.Certificate{}))
		if err == nil {
			// TLS 1.3 reports the refusal on the first read.
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("handshake without a client certificate: %v", err)
		}
	})

	t.Run("too many connections", func(t *testing.T) {
		first, err := e.client(t, e.plain, peer.ConnectOptions{RequesterID: "LIMITED", Password: goodPassword}, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.client(t, e.plain, peer.ConnectOptions{RequesterID: "LIMITED", Password: goodPassword}, nil)
		refusal(t, err, fpdu.TypeRConnect, fpdu.ReasonTooManyConnections)
		_ = first.Release()
		first.Close()
		// The slot comes back once the first session ended.
		var again *peer.Client
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if again, err = e.client(t, e.plain, peer.ConnectOptions{RequesterID: "LIMITED", Password: goodPassword}, nil); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("slot not released: %v", err)
		}
		_ = again.Release()
	})

	t.Run("file not allowed, then the session goes on", func(t *testing.T) {
		if err := os.MkdirAll(filepath.Join(e.files, "READER"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(e.files, "READER", "REPORT-1.TXT"), []byte("monthly report\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(e.files, "READER", "SECRET.TXT"), []byte("no"), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := e.client(t, e.plain, peer.ConnectOptions{RequesterID: "READER", Password: goodPassword, Access: peer.AccessRead}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		_, err = c.Fetch(ctx, "SECRET.TXT", &out, peer.TransferOptions{})
		refusal(t, err, fpdu.TypeAckSelect, fpdu.ReasonTransferRefused)
		if _, err := c.Fetch(ctx, "REPORT-1.TXT", &out, peer.TransferOptions{}); err != nil {
			t.Fatalf("allowed file after a refusal: %v", err)
		}
		if out.String() != "monthly report\n" {
			t.Fatalf("fetched %q", out.String())
		}
		if err := c.Release(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("pre-connection", func(t *testing.T) {
		// With the 2-byte prefix, over TCP.
		c, err := e.client(t, e.plain, peer.ConnectOptions{RequesterID: "LEGACY", Password: "test123", PreConnection: true}, nil)
		if err != nil {
			t.Fatalf("prefixed pre-connection: %v", err)
		}
		_ = c.Release()
		// Without it, over TLS with raw framing.
		c, err = e.client(t, e.tls, peer.ConnectOptions{RequesterID: "TLSPARTNER", Password: goodPassword, PreConnection: true,
			PreConnectionID: "LEGACY", PreConnectionPassword: "test123", Framing: fpdu.FramingRaw}, &e.tlsPartner)
		if err != nil {
			t.Fatalf("raw pre-connection: %v", err)
		}
		_ = c.Release()
		_, err = e.client(t, e.plain, peer.ConnectOptions{RequesterID: "LEGACY", Password: "test123", PreConnection: true, PreConnectionPassword: "wrong"}, nil)
		var re *peer.RefusedError
		if !errors.As(err, &re) || !re.NAK {
			t.Fatalf("wrong pre-connection password: %v", err)
		}
	})

	t.Run("garbage after CONNECT gets ABORT 3-311", func(t *testing.T) {
		conn, _ := rawConnect(t, e.plain, "GOOD", goodPassword)
		_, _ = conn.Write([]byte{0x00, 0x07, 0xAB, 0xCD, 0xEF, 0x01, 0x02, 0x03, 0x04})
		expectAbort(t, conn, fpdu.ReasonProtocolError)
	})

	t.Run("truncated FPDU then silence gets ABORT 3-313", func(t *testing.T) {
		conn, _ := rawConnect(t, e.plain, "GOOD", goodPassword)
		// A CREATE announcing 100 bytes, of which 10 arrive.
		_, _ = conn.Write([]byte{0x00, 0x64, 0x00, 0x64, 0xC0, 0x11, 0x05, 0x00, 0x09, 0x09})
		expectAbort(t, conn, fpdu.ReasonIdleTimeout)
	})

	t.Run("silent client is closed", func(t *testing.T) {
		conn, err := net.Dial("tcp", e.plain)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		start := time.Now()
		if _, err := conn.Read(make([]byte, 64)); err == nil || isTimeout(err) {
			t.Fatalf("a silent connection was not closed: %v", err)
		}
		if time.Since(start) > 8*time.Second {
			t.Fatalf("closed only after %s", time.Since(start))
		}
	})

	t.Run("not PeSIT is not proxied", func(t *testing.T) {
		conn, err := net.Dial("tcp", e.plain)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, _ = conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if n, err := conn.Read(make([]byte, 64)); n != 0 || err == nil || isTimeout(err) {
			t.Fatalf("HTTP on the PeSIT port got %d bytes, %v", n, err)
		}
	})

	t.Run("audit trail", func(t *testing.T) {
		data, err := os.ReadFile(e.auditLog)
		if err != nil {
			t.Fatal(err)
		}
		if os.Getenv("BANKEDGE_SHOW_AUDIT") != "" {
			t.Logf("audit log:\n%s", data)
		}
		for _, secret := range []string{goodPassword, "test123", "gwpass12", "Wrong-Pass123!", "Disabled-Pass1!"} {
			if bytes.Contains(data, []byte(secret)) {
				t.Fatalf("the audit log contains a password")
			}
		}
		events := e.auditEvents(t)
		find := func(event string, match func(m map[string]any) bool) map[string]any {
			for _, m := range events[event] {
				if match(m) {
					return m
				}
			}
			t.Errorf("no %s line matching", event)
			return nil
		}
		find("pesit.connect", func(m map[string]any) bool { return m["partner"] == "GOOD" && m["outcome"] == "accepted" })
		find("pesit.connect", func(m map[string]any) bool {
			return m["partner"] == "EXPIRED" && m["diagnostic"] == "3-304" && strings.Contains(fmt.Sprint(m["reason"]), "expired")
		})
		find("pesit.connect", func(m map[string]any) bool {
			return m["partner"] == "TLSPARTNER" && strings.Contains(fmt.Sprint(m["tls_subject"]), "tls-partner")
		})
		find("pesit.create", func(m map[string]any) bool {
			return m["file"] == "GOOD-1048576.BIN" && m["direction"] == "upload" && m["outcome"] == "accepted"
		})
		find("pesit.select", func(m map[string]any) bool { return m["file"] == "SECRET.TXT" && m["diagnostic"] == "2-226" })
		find("pesit.trans_end", func(m map[string]any) bool {
			return m["file"] == "GOOD-52428800.BIN" && m["bytes"] == float64(50<<20) && m["counts_match"] == true
		})
		find("pesit.release", func(m map[string]any) bool { return m["partner"] == "GOOD" && m["duration"] != nil })
		find("pesit.abort", func(m map[string]any) bool { return m["diagnostic"] == "3-311" })
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// rawConnect sends a CONNECT by hand and reads the ACONNECT, for tests
// that then misbehave; it returns the connection and the server's
// connection id.
func rawConnect(t *testing.T, addr, partner, password string) (net.Conn, byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fp, err := fpdu.Connect{SrcID: 1, RequesterID: partner, ServerID: gatewayID, Password: fpdu.Secret(password), HasPassword: true,
		Version: fpdu.VersionE, AccessType: 2, HasAccessType: true}.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	frame, _ := fpdu.AppendNSDU(nil, fpdu.FramingPrefixed, fp)
	if _, err := conn.Write(frame); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := fpdu.NewReader(conn, fpdu.FramingPrefixed)
	b, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	h, _ := fpdu.ParseHeader(b)
	if h.Type != fpdu.TypeAConnect {
		t.Fatalf("want ACONNECT, got %v", h.Type)
	}
	return conn, h.SrcID
}

// expectAbort reads the gateway's ABORT with the reason, then the close.
func expectAbort(t *testing.T, conn net.Conn, reason uint16) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	r := fpdu.NewReader(conn, fpdu.FramingPrefixed)
	b, err := r.Next()
	if err != nil {
		t.Fatalf("want ABORT, got %v", err)
	}
	f, err := fpdu.Decode(b)
	if err != nil || f.Type != fpdu.TypeAbort {
		t.Fatalf("want ABORT, got %v %v", f.Type, err)
	}
	if d, _ := f.Diag(); d.Reason != reason {
		t.Fatalf("ABORT with %v, want reason %d", d, reason)
	}
	if _, err := r.Next(); err == nil {
		t.Fatal("the connection stayed open after ABORT")
	}
}

// auditEvents reads the audit log as JSON lines grouped by message.
func (e *env) auditEvents(t *testing.T) map[string][]map[string]any {
	t.Helper()
	data, err := os.ReadFile(e.auditLog)
	if err != nil {
		t.Fatal(err)
	}
	events := map[string][]map[string]any{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			events[m["msg"].(string)] = append(events[m["msg"].(string)], m)
		}
	}
	return events
}

// waitAudit waits for an audit line of event that match accepts.
func (e *env) waitAudit(t *testing.T, event string, match func(m map[string]any) bool) map[string]any {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, m := range e.auditEvents(t)[event] {
			if match(m) {
				return m
			}
		}
	}
	t.Fatalf("no %s audit line matching", event)
	return nil
}

// TestPartnerHardening covers the hostile-traffic points on the wire:
// throttled failures, equal timing of refusals, and certificates that
// authenticate only the partner they were issued for, and only once TLS
// verified them.
func TestPartnerHardening(t *testing.T) {
	e := newEnv(t)

	t.Run("failed authentications are throttled per address", func(t *testing.T) {
		// Three failures from 127.0.0.5 (max_auth_failures 3), each for a
		// different partner id: the fourth attempt is refused although its
		// password is right, and costs no password hash.
		for _, id := range []string{"NOBODY1", "NOBODY2", "THROTTLE"} {
			_, err := e.clientFrom(t, "127.0.0.5", e.throttled, peer.ConnectOptions{RequesterID: id, Password: "Wrong-Pass123!"}, nil)
			refusal(t, err, fpdu.TypeRConnect, fpdu.ReasonUnauthorized)
		}
		_, err := e.clientFrom(t, "127.0.0.5", e.throttled, peer.ConnectOptions{RequesterID: "LOOPBACK", Password: goodPassword}, nil)
		refusal(t, err, fpdu.TypeRConnect, fpdu.ReasonUnauthorized)
		e.waitAudit(t, "pesit.connect", func(m map[string]any) bool {
			return m["partner"] == "LOOPBACK" && m["remote_ip"] == "127.0.0.5" && m["diagnostic"] == "3-304" &&
				strings.HasPrefix(fmt.Sprint(m["reason"]), "throttled")
		})
		// Another address is not affected.
		c, err := e.clientFrom(t, "127.0.0.6", e.throttled, peer.ConnectOptions{RequesterID: "LOOPBACK", Password: goodPassword}, nil)
		if err != nil {
			t.Fatalf("another address: %v", err)
		}
		_ = c.Release()
	})

	t.Run("failed authentications are throttled per partner id", func(t *testing.T) {
		// THROTTLE has had one failure (above); two more from other
		// addresses, and then its right password is refused everywhere.
		for _, from := range []string{"127.0.0.7", "127.0.0.8"} {
			_, err := e.clientFrom(t, from, e.throttled, peer.ConnectOptions{RequesterID: "THROTTLE", Password: "Wrong-Pass123!"}, nil)
			refusal(t, err, fpdu.TypeRConnect, fpdu.ReasonUnauthorized)
		}
		_, err := e.clientFrom(t, "127.0.0.9", e.throttled, peer.ConnectOptions{RequesterID: "THROTTLE", Password: goodPassword}, nil)
		refusal(t, err, fpdu.TypeRConnect, fpdu.ReasonUnauthorized)
		// The pre-connection is throttled too (NAK0, audited as such).
		_, err = e.clientFrom(t, "127.0.0.9", e.throttled, peer.ConnectOptions{RequesterID: "LOOPBACK", Password: goodPassword,
			PreConnection: true, PreConnectionID: "THROTTLE", PreConnectionPassword: "Pass1234"}, nil)
		var re *peer.RefusedError
		if !errors.As(err, &re) || !re.NAK {
			t.Fatalf("throttled pre-connection: %v", err)
		}
		e.waitAudit(t, "pesit.preconnect", func(m map[string]any) bool {
			return m["id"] == "THROTTLE" && m["outcome"] == "NAK0" && strings.HasPrefix(fmt.Sprint(m["reason"]), "throttled")
		})
	})

	t.Run("unknown partners cost as much as a wrong password", func(t *testing.T) {
		// Interleaved, medians: the registry spends a dummy hash with the
		// parameters of real ones (about 40 ms), where it answered an
		// unknown id in 0.2 ms.
		var known, unknown []time.Duration
		for range 5 {
			for _, id := range []string{"LOOPBACK", "NOSUCHPARTNER"} {
				start := time.Now()
				_, err := e.clientFrom(t, "127.0.0.10", e.plain, peer.ConnectOptions{RequesterID: id, Password: "Wrong-Pass123!"}, nil)
				refusal(t, err, fpdu.TypeRConnect, fpdu.ReasonUnauthorized)
				if id == "LOOPBACK" {
					known = append(known, time.Since(start))
				} else {
					unknown = append(unknown, time.Since(start))
				}
			}
		}
		median := func(d []time.Duration) time.Duration {
			sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
			return d[len(d)/2]
		}
		k, u := median(known), median(unknown)
		t.Logf("wrong password %s, unknown partner %s", k, u)
		if u < k/3 || u > 3*k {
			t.Fatalf("an unknown partner takes %s, a wrong password %s: the timing tells them apart", u, k)
		}
	})

	t.Run("a certificate of another partner is refused", func(t *testing.T) {
		// TLSPARTNER's certificate, with GOOD's right password.
		_, err := e.client(t, e.tls, peer.ConnectOptions{RequesterID: "GOOD", Password: goodPassword}, &e.tlsPartner)
		refusal(t, err, fpdu.TypeRConnect, fpdu.ReasonUnauthorized)
		e.waitAudit(t, "pesit.connect", func(m map[string]any) bool {
			return m["partner"] == "GOOD" && m["diagnostic"] == "3-304" &&
				strings.Contains(fmt.Sprint(m["reason"]), "certificate_other_partner") && strings.Contains(fmt.Sprint(m["reason"]), "TLSPARTNER")
		})
	})

	t.Run("a PSD2 QWAC of the same CA is refused", func(t *testing.T) {
		_, err := e.client(t, e.tls, peer.ConnectOptions{RequesterID: "TLSPARTNER", Password: goodPassword}, &e.qwac)
		refusal(t, err, fpdu.TypeRConnect, fpdu.ReasonUnauthorized)
		e.waitAudit(t, "pesit.connect", func(m map[string]any) bool {
			return m["partner"] == "TLSPARTNER" && strings.Contains(fmt.Sprint(m["reason"]), "purpose QWAC")
		})
	})

	t.Run("a certificate binding needs a certificate TLS verified", func(t *testing.T) {
		// mode require checks nothing: a self-signed certificate with the
		// bound CN completes the handshake but must not satisfy the
		// binding.
		cfg := e.tlsConfig(e.selfSigned)
		conn, err := tls.Dial("tcp", e.tlsUnverified, cfg)
		if err != nil {
			t.Fatal(err)
		}
		c, err := peer.NewClient(conn, peer.ConnectOptions{RequesterID: "CERTBOUND", Password: goodPassword, ServerID: gatewayID, Timeout: 10 * time.Second})
		if err == nil {
			c.Close()
		}
		refusal(t, err, fpdu.TypeRConnect, fpdu.ReasonUnauthorized)
		e.waitAudit(t, "pesit.connect", func(m map[string]any) bool {
			return m["partner"] == "CERTBOUND" && strings.Contains(fmt.Sprint(m["reason"]), "certificate_required")
		})
		// The same partner with its own certificate, verified, gets in.
		c2, err := e.client(t, e.tls, peer.ConnectOptions{RequesterID: "CERTBOUND", Password: goodPassword}, &e.certBound)
		if err != nil {
			t.Fatal(err)
		}
		_ = c2.Release()
	})
}

// stall opens a connection from the loopback address from and sends the
// first bytes of a TLS ClientHello, then nothing.
func stall(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil
	}
	t.Cleanup(func() { c.Close() })
	_, _ = c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03})
	return c
}

// closedWithin reports whether the gateway closed (or reset) c within d.
func closedWithin(c net.Conn, d time.Duration) bool {
	if c == nil {
		return true
	}
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	return !isTimeout(err)
}

// TestGuardedListeners: on guard+tcp listeners a stalled TLS handshake is
// closed after pre_auth_timeout (caddy-l4's tls handler has no deadline of
// its own), unauthenticated connections are capped per address, and an
// authenticated session is left alone past pre_auth_timeout.
func TestGuardedListeners(t *testing.T) {
	e := newEnv(t)

	t.Run("a stalled ClientHello is closed after pre_auth_timeout", func(t *testing.T) {
		start := time.Now()
		c := stall(t, "127.0.0.20", e.tls)
		if !closedWithin(c, 6*time.Second) {
			t.Fatal("a stalled handshake on the TLS listener is still open")
		}
		if d := time.Since(start); d < 2*time.Second {
			t.Fatalf("closed after %s, before pre_auth_timeout", d)
		}
	})

	t.Run("unauthenticated connections are capped per address", func(t *testing.T) {
		var held []net.Conn
		start := time.Now()
		for range 8 {
			held = append(held, stall(t, "127.0.0.21", e.tls))
		}
		if !closedWithin(stall(t, "127.0.0.21", e.tls), 2*time.Second) {
			t.Fatal("a ninth unauthenticated connection from one address was admitted")
		}
		// A partner from another address is served meanwhile.
		c, err := e.client(t, e.tls, peer.ConnectOptions{RequesterID: "TLSPARTNER", Password: goodPassword}, &e.tlsPartner)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.Release()
		if time.Since(start) < 2500*time.Millisecond { // else their deadline is near
			for _, h := range held {
				if closedWithin(h, 10*time.Millisecond) {
					t.Fatal("an admitted connection was closed before its deadline")
				}
			}
		}
	})

	t.Run("an authenticated session outlives pre_auth_timeout", func(t *testing.T) {
		c, err := e.client(t, e.plain, peer.ConnectOptions{RequesterID: "GOOD", Password: goodPassword}, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Transfers 1.8 s apart (idle_timeout is 3 s), the last past
		// pre_auth_timeout (3 s) on both the gateway's and the upstream's
		// guarded listeners.
		for i := range 3 {
			if i > 0 {
				time.Sleep(1800 * time.Millisecond)
			}
			data := []byte(fmt.Sprintf("transfer %d\n", i))
			if _, err := c.Send(context.Background(), fmt.Sprintf("LONG-%d.TXT", i), bytes.NewReader(data), int64(len(data)), peer.TransferOptions{}); err != nil {
				t.Fatalf("transfer %d: %v", i, err)
			}
		}
		if err := c.Release(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestListenersSurviveDescriptorExhaustion runs the gateway in a child
// process whose descriptor limit is low, exhausts it by holding
// connections to an unguarded HTTP site (as an attacker of the XS2A port
// would), connects to the PeSIT listeners meanwhile, lets go, and checks
// that the guarded PeSIT listeners and the HTTP site accept again. The
// bare tcp/ PeSIT listener is the control: caddy-l4 v0.1.2's accept loop
// returns on EMFILE, and it must be dead.
func TestListenersSurviveDescriptorExhaustion(t *testing.T) {
	if os.Getenv("BANKEDGE_FD_CHILD") != "" {
		t.Skip("child")
	}
	e, caddyfile := prepareEnv(t)
	cfgPath := filepath.Join(e.dir, "Caddyfile")
	if err := os.WriteFile(cfgPath, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(os.Args[0], "-test.run=^TestDescriptorExhaustionChild$")
	cmd.Env = append(os.Environ(), "BANKEDGE_FD_CHILD="+cfgPath)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_, _ = fmt.Fprintln(stdin, "quit")
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("child log:\n%s", stderr.String())
		}
	}()
	lines := bufio.NewScanner(stdout)
	for lines.Scan() && !strings.HasPrefix(lines.Text(), "ready") {
	}
	t.Log(lines.Text())
	e.waitTLS(t)

	pesitAccepts := func(addr string, cert *tls.Certificate, partner string, within time.Duration) error {
		var err error
		for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			var c *peer.Client
			c, err = e.client(t, addr, peer.ConnectOptions{RequesterID: partner, Password: goodPassword, Timeout: time.Second}, cert)
			if err == nil {
				_ = c.Release()
				return nil
			}
		}
		return err
	}
	if err := pesitAccepts(e.bare, nil, "GOOD", 5*time.Second); err != nil {
		t.Fatalf("before the attack: %v", err)
	}

	// The attack: connections to the HTTP site that send nothing, more
	// than the child has descriptors.
	var attack []net.Conn
	for range 200 {
		c, err := net.DialTimeout("tcp", e.http, time.Second)
		if err != nil {
			break
		}
		attack = append(attack, c)
	}
	// Partners knocking meanwhile: each accept loop meets EMFILE.
	for _, addr := range []string{e.plain, e.tls, e.bare} {
		for range 3 {
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				attack = append(attack, c)
			}
		}
	}
	time.Sleep(500 * time.Millisecond)
	for _, c := range attack {
		c.Close()
	}

	if err := pesitAccepts(e.plain, nil, "GOOD", 10*time.Second); err != nil {
		t.Errorf("the guarded TCP listener does not accept after the attack: %v", err)
	}
	if err := pesitAccepts(e.tls, &e.tlsPartner, "TLSPARTNER", 10*time.Second); err != nil {
		t.Errorf("the guarded TLS listener does not accept after the attack: %v", err)
	}
	// net/http backs off on EMFILE by itself.
	var httpErr error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var resp *http.Response
		if resp, httpErr = (&http.Client{Timeout: time.Second}).Get("http://" + e.http); httpErr == nil {
			resp.Body.Close()
			break
		}
	}
	if httpErr != nil {
		t.Errorf("the HTTP site does not accept after the attack: %v", httpErr)
	}
	if pesitAccepts(e.bare, nil, "GOOD", 2*time.Second) == nil {
		t.Error("the bare tcp/ listener survived: the child never ran out of descriptors, the test proves nothing")
	}
}

// TestDescriptorExhaustionChild is the gateway process of
// TestListenersSurviveDescriptorExhaustion.
func TestDescriptorExhaustionChild(t *testing.T) {
	cfg := os.Getenv("BANKEDGE_FD_CHILD")
	if cfg == "" {
		t.Skip("run by TestListenersSurviveDescriptorExhaustion")
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: 128, Max: 128}); err != nil {
		t.Fatal(err)
	}
	caddyfile, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	testcaddy.Load(t, string(caddyfile))
	fds, _ := os.ReadDir("/proc/self/fd")
	fmt.Printf("ready, %d descriptors open of 128\n", len(fds))
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() && in.Text() != "quit" {
	}
}

// breakingConn closes the connection once limit bytes were written: a
// network failure in the middle of an upload.
type breakingConn struct {
	net.Conn
	limit, n int
}

func (c *breakingConn) Write(b []byte) (int, error) {
	if c.n+len(b) > c.limit {
		c.Conn.Close()
		return 0, net.ErrClosed
	}
	c.n += len(b)
	return c.Conn.Write(b)
}

// interruptedUpload sends data as name through the gateway and breaks the
// connection halfway, after several sync points.
func (e *env) interruptedUpload(t *testing.T, addr, partner, name string, tid uint32, data []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := peer.NewClient(&breakingConn{Conn: conn, limit: len(data) / 2}, peer.ConnectOptions{RequesterID: partner, Password: goodPassword,
		ServerID: gatewayID, Timeout: 10 * time.Second, SyncIntervalKB: 16, SyncWindow: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Send(context.Background(), name, bytes.NewReader(data), int64(len(data)), peer.TransferOptions{TransferID: tid})
	if err == nil || res.LastSync == 0 {
		t.Fatalf("interrupted upload: %+v, %v", res, err)
	}
}

// TestPartnerFilesApart: behind the gateway, pesit_server keeps each
// partner's files, and restart states, apart; the upstream sees the
// partner's id in PI 3 and the gateway's password in PI 5.
func TestPartnerFilesApart(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	send := func(partner, name string, data []byte, opts peer.TransferOptions) (peer.Result, error) {
		c, err := e.client(t, e.plain, peer.ConnectOptions{RequesterID: partner, Password: goodPassword, SyncIntervalKB: 16, SyncWindow: 1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release()
		return c.Send(ctx, name, bytes.NewReader(data), int64(len(data)), opts)
	}
	mine, theirs := []byte("GOOD's payments\n"), []byte("LOOPBACK's payments\n")
	if _, err := send("GOOD", "SHARED.TXT", mine, peer.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	// LOOPBACK has no allowedFiles: it may name any file, but only its own.
	c, err := e.client(t, e.plain, peer.ConnectOptions{RequesterID: "LOOPBACK", Password: goodPassword}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	_, err = c.Fetch(ctx, "SHARED.TXT", &out, peer.TransferOptions{})
	refusal(t, err, fpdu.TypeAckSelect, fpdu.ReasonFileNotFound)
	_ = c.Release()
	if _, err := send("LOOPBACK", "SHARED.TXT", theirs, peer.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	for partner, want := range map[string][]byte{"GOOD": mine, "LOOPBACK": theirs} {
		if got, err := os.ReadFile(filepath.Join(e.files, partner, "SHARED.TXT")); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s's SHARED.TXT: %q, %v", partner, got, err)
		}
	}

	// GOOD's interrupted upload can be resumed by GOOD only.
	data := make([]byte, 512<<10)
	_, _ = rand.Read(data)
	e.interruptedUpload(t, e.plain, "GOOD", "RESUME.BIN", 0x4711, data)
	res, err := send("LOOPBACK", "RESUME.BIN", data, peer.TransferOptions{Restart: true, TransferID: 0x4711})
	if err != nil || res.RestartPoint != 0 {
		t.Fatalf("LOOPBACK restarting GOOD's transfer: %+v, %v", res, err)
	}
	var resumed peer.Result
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		// The upstream session of the broken connection may still hold
		// the transfer for a moment (2-207).
		resumed, err = send("GOOD", "RESUME.BIN", data, peer.TransferOptions{Restart: true, TransferID: 0x4711})
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || resumed.RestartPoint == 0 {
		t.Fatalf("GOOD resuming its transfer: %+v, %v", resumed, err)
	}
	if got, _ := os.ReadFile(filepath.Join(e.files, "GOOD", "RESUME.BIN")); !bytes.Equal(got, data) {
		t.Fatal("the resumed file differs")
	}

	// A partner's ABORT in the middle of an upload.
	conn, aconnectY := rawConnect(t, e.plain, "LOOPBACK", goodPassword)
	create, _ := fpdu.AppendFPDU(nil, fpdu.TypeCreate, 0, 0,
		fpdu.PGI(fpdu.PGIFileID, fpdu.PIUint(fpdu.PIFileType, 0, 1), fpdu.PIString(fpdu.PIFileName, "ABORTED.BIN")),
		fpdu.PIUint(fpdu.PITransferID, 0x99, 1), fpdu.PIUint(fpdu.PIMaxEntitySize, 4096, 2))
	rd := fpdu.NewReader(conn, fpdu.FramingPrefixed)
	create[4] = aconnectY
	frame, _ := fpdu.AppendNSDU(nil, fpdu.FramingPrefixed, create)
	_, _ = conn.Write(frame)
	if b, err := rd.Next(); err != nil || fpdu.MakeType(b[2], b[3]) != fpdu.TypeAckCreate {
		t.Fatalf("ACK(CREATE): %v", err)
	}
	abort, _ := fpdu.AppendFPDU(nil, fpdu.TypeAbort, aconnectY, 1, fpdu.NewDiag(fpdu.ReasonPrematureStop).Param())
	frame, _ = fpdu.AppendNSDU(nil, fpdu.FramingPrefixed, abort)
	_, _ = conn.Write(frame)

	// Every transfer has its outcome line.
	for file, want := range map[string]string{"SHARED.TXT": "completed", "ABORTED.BIN": "aborted"} {
		e.waitAudit(t, "pesit.transfer_end", func(m map[string]any) bool { return m["file"] == file && m["outcome"] == want })
	}
	e.waitAudit(t, "pesit.transfer_end", func(m map[string]any) bool {
		return m["file"] == "RESUME.BIN" && m["partner"] == "GOOD" && m["outcome"] == "interrupted" && m["bytes"].(float64) > 0
	})
	e.waitAudit(t, "pesit.transfer_end", func(m map[string]any) bool {
		return m["file"] == "RESUME.BIN" && m["partner"] == "GOOD" && m["outcome"] == "completed"
	})
}

// gatedReader serves data but blocks at gate until open is closed; it
// tells reached when it gets there.
type gatedReader struct {
	*bytes.Reader
	gate          int64
	reached, open chan struct{}
	once          sync.Once
}

func (g *gatedReader) Read(p []byte) (int, error) {
	pos := g.Size() - int64(g.Len())
	if pos >= g.gate {
		g.once.Do(func() { close(g.reached) })
		<-g.open
	} else if pos+int64(len(p)) > g.gate {
		p = p[:g.gate-pos]
	}
	return g.Reader.Read(p)
}

// TestReloadKeepsTransfers: a configuration reload cuts no transfer of
// pesit_server, the configuration loaded meanwhile honours the locks of
// the writes still running under the old one, and stale partial files go
// after partial_max_age.
func TestReloadKeepsTransfers(t *testing.T) {
	e, _ := prepareEnv(t)
	gw, up := "127.0.0.1:"+fmt.Sprint(testcaddy.FreePort(t)), "127.0.0.1:"+fmt.Sprint(testcaddy.FreePort(t))
	config := func(idle string) string {
		return testcaddy.Globals(filepath.Join(e.dir, "storage"), fmt.Sprintf(`
	bankedge {
		ca {
			key_passphrase %s
		}
	}
	layer4 {
		guard+tcp/%s {
			@pesit pesit
			route @pesit {
				pesit {
					server_id %s
					upstream_credentials INTSRV {l4.pesit.partner_id} gwpass12
					max_auth_failures 64
				}
				proxy %s
			}
		}
		guard+tcp/%s {
			route {
				pesit_server {
					root %s
					server_id INTSRV
					requester * gwpass12
					idle_timeout %s
					partial_max_age 2s
				}
			}
		}
	}`, caPassphrase, gw, gatewayID, up, up, e.files, idle))
	}
	testcaddy.Load(t, config("30s"))

	data := make([]byte, 4<<20)
	_, _ = rand.Read(data)
	src := &gatedReader{Reader: bytes.NewReader(data), gate: 1 << 20, reached: make(chan struct{}), open: make(chan struct{})}
	var openOnce sync.Once
	openGate := func() { openOnce.Do(func() { close(src.open) }) }
	first, err := e.client(t, gw, peer.ConnectOptions{RequesterID: "GOOD", Password: goodPassword, SyncIntervalKB: 64}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last first: the gate opens before the client closes.
	t.Cleanup(openGate)
	done := make(chan error, 1)
	go func() {
		_, err := first.Send(context.Background(), "BIG.BIN", src, int64(len(data)), peer.TransferOptions{TransferID: 0x5150})
		done <- err
	}()
	select {
	case <-src.reached:
	case err := <-done:
		t.Fatalf("upload ended early: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the upload never reached the gate")
	}

	testcaddy.Reload(t, config("31s"))
	// Under the new configuration, the same transfer restarted on another
	// connection must wait for the running one, not write over it.
	second, err := e.client(t, gw, peer.ConnectOptions{RequesterID: "GOOD", Password: goodPassword, SyncIntervalKB: 64}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = second.Send(context.Background(), "BIG.BIN", bytes.NewReader(data), int64(len(data)), peer.TransferOptions{Restart: true, TransferID: 0x5150})
	refusal(t, err, fpdu.TypeAckCreate, fpdu.ReasonFileBusy)

	openGate()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the upload running across the reload failed: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the upload running across the reload did not end")
	}
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(e.files, "GOOD", "BIG.BIN")); !bytes.Equal(got, data) {
		t.Fatal("the file uploaded across the reload differs")
	}

	// An interrupted upload's partial file goes after partial_max_age.
	e.interruptedUpload(t, gw, "LOOPBACK", "STALE.BIN", 0x77, data[:512<<10])
	dir := filepath.Join(e.files, "LOOPBACK")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		entries, _ := os.ReadDir(dir)
		if len(entries) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d partial files left after partial_max_age", len(entries))
		}
	}
}

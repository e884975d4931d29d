// Package testcaddy runs real Caddy configurations inside tests without
// touching the user's Caddy state: TestMain points the XDG directories at a
// temporary directory and resets the paths Caddy computed at start-up, and
// configurations are loaded with the admin endpoint off and persistence off.
package testcaddy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/certmagic"

	// The Caddyfile adapter and the standard modules, as in the binary.
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

// Main isolates Caddy's state in a temporary directory, runs the tests and
// stops whatever configuration is still running. Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testcaddy.Main(m)) }
func Main(m *testing.M) int {
	dir, err := os.MkdirTemp("", "bankedge-test-")
	if err != nil {
		panic(err)
	}
	for _, v := range []string{"XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"} {
		os.Setenv(v, filepath.Join(dir, strings.ToLower(strings.TrimPrefix(v, "XDG_"))))
	}
	// Caddy computed these at package initialisation, before TestMain.
	caddy.ConfigAutosavePath = filepath.Join(caddy.AppConfigDir(), "autosave.json")
	caddy.DefaultStorage = &certmagic.FileStorage{Path: caddy.AppDataDir()}
	code := m.Run()
	_ = caddy.Stop()
	os.RemoveAll(dir)
	return code
}

// FreePort returns a port that was free a moment ago for TCP and UDP on
// every interface, and that FreePort has not returned before in this
// process. It is taken below the kernel's ephemeral range: a port from that
// range can be taken, between the check and the test's bind, as the source
// port of any process's outgoing connection, and tests here run next to
// others that connect a lot.
func FreePort(t testing.TB) int {
	t.Helper()
	lo, hi := 10000, ephemeralStart()
	for range 1000 {
		port := lo + rand.IntN(hi-lo)
		if _, loaded := handedOut.LoadOrStore(port, true); loaded {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
		if err != nil {
			continue
		}
		l.Close()
		u, err := net.ListenPacket("udp", fmt.Sprintf(":%d", port))
		if err != nil {
			continue
		}
		u.Close()
		return port
	}
	t.Fatal("finding a free port: none found")
	return 0
}

// ephemeralStart is the first port of the kernel's ephemeral range.
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 11000 {
				return n
			}
		}
	}
	return 32768
}

// handedOut holds the ports FreePort returned.
var handedOut sync.Map

// Globals is the global options block every test configuration starts
// with: no admin endpoint, no autosave, no trust-store installation, storage
// in dir and no wait on reload.
func Globals(storageDir string, extra string) string {
	return "{\n\tadmin off\n\tpersist_config off\n\tskip_install_trust\n\tgrace_period 1ns\n\tauto_https disable_redirects\n" +
		"\tstorage file_system " + storageDir + "\n" + extra + "\n}\n"
}

// Adapt turns a Caddyfile into JSON, failing the test on any error or warning
// that says the configuration is wrong.
func Adapt(t testing.TB, caddyfile string) []byte {
	t.Helper()
	adapter := caddyconfig.GetAdapter("caddyfile")
	cfg, warnings, err := adapter.Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapting Caddyfile: %v\n%s", err, caddyfile)
	}
	for _, w := range warnings {
		t.Logf("adapt warning: %s", w.String())
	}
	return cfg
}

// Load adapts and runs a Caddyfile, waits until the listeners of a
// configuration stopped before it are closed (see Reload) and stops it when
// the test ends.
func Load(t testing.TB, caddyfile string) {
	t.Helper()
	cfg := Adapt(t, caddyfile)
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatalf("loading config: %v\n%s", err, caddyfile)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	WaitListenersSettled(t)
}

// LoadError adapts and loads a Caddyfile that must fail, and returns the
// error.
func LoadError(t testing.TB, caddyfile string) error {
	t.Helper()
	cfg := Adapt(t, caddyfile)
	err := caddy.Load(cfg, true)
	if err == nil {
		_ = caddy.Stop()
		t.Fatalf("config loaded but should have failed:\n%s", caddyfile)
	}
	return err
}

// WaitForCertificate waits until addr serves, for serverName, a
// certificate that chains to root: Caddy obtains a site's certificate in
// the background after a config is loaded.
func WaitForCertificate(t testing.TB, addr, serverName string, root *x509.Certificate) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(root)
	var err error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var conn *tls.Conn
		if conn, err = tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: serverName}); err == nil {
			conn.Close()
			return
		}
	}
	t.Fatalf("%s serves no certificate for %s from the CA: %v", addr, serverName, err)
}

// LoadFile adapts the Caddyfile at path and runs it, for a test binary
// that is re-executed as a gateway process of its own.
func LoadFile(path string) error {
	text, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(text, map[string]any{"filename": path})
	if err != nil {
		return err
	}
	return caddy.Load(cfg, true)
}

package clustere2e_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/mholt/caddy-l4/layer4"
	_ "github.com/mholt/caddy-l4/modules/l4proxy"
	_ "github.com/mholt/caddy-l4/modules/l4subroute"
	_ "github.com/mholt/caddy-l4/modules/l4tls"
	_ "github.com/pberkel/caddy-storage-redis"

	_ "github.com/bankedge/bankedge"
	"github.com/bankedge/bankedge/internal/testcaddy"
	"github.com/bankedge/bankedge/modules/cluster"
)

// The test binary doubles as a gateway: with BANKEDGE_E2E_GATEWAY naming a
// Caddyfile it runs it until its stdin closes (or it is killed), as the
// bankedge binary's run command would.
func TestMain(m *testing.M) {
	if path := os.Getenv("BANKEDGE_E2E_GATEWAY"); path != "" {
		os.Exit(runGateway(path))
	}
	os.Exit(testcaddy.Main(m))
}

// runGateway is the gateway process: BANKEDGE_E2E_LEASE ("ttl,renew")
// shortens the connection leases, so that a killed gateway's slots come
// back within the test.
func runGateway(path string) int {
	if lt := os.Getenv("BANKEDGE_E2E_LEASE"); lt != "" {
		ttl, renew, _ := strings.Cut(lt, ",")
		tm := cluster.DefaultTiming
		tm.LeaseTTL, _ = time.ParseDuration(ttl)
		tm.LeaseRenew, _ = time.ParseDuration(renew)
		cluster.SetTiming(tm)
	}
	if err := testcaddy.LoadFile(path); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = caddy.Stop()
	return 0
}

// process is a gateway process and its log.
type process struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	log    *logBuffer
	ready  chan struct{}
	exited chan struct{}
}

// startProcess runs the test binary as a gateway with the Caddyfile text;
// waitReady waits until its configuration is loaded.
func startProcess(t *testing.T, name, caddyfile string, env ...string) *process {
	t.Helper()
	dir := t.TempDir()
	path := dir + "/Caddyfile"
	if err := os.WriteFile(path, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append(env, "BANKEDGE_E2E_GATEWAY="+path,
		"XDG_DATA_HOME="+dir+"/data", "XDG_CONFIG_HOME="+dir+"/config", "GORACE=atexit_sleep_ms=0")...)
	p := &process{t: t, name: name, cmd: cmd, log: &logBuffer{}, ready: make(chan struct{}), exited: make(chan struct{})}
	cmd.Stderr = p.log
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "ready" {
				close(p.ready)
			}
		}
		_ = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() || testing.Verbose() {
			t.Logf("log of gateway %s:\n%s", name, p.log.String())
		}
	})
	return p
}

func (p *process) waitReady() {
	p.t.Helper()
	select {
	case <-p.ready:
	case <-p.exited:
		p.t.Fatalf("gateway %s exited at start:\n%s", p.name, p.log.String())
	case <-time.After(60 * time.Second):
		p.t.Fatalf("gateway %s not ready within a minute:\n%s", p.name, p.log.String())
	}
}

// stop ends the gateway gracefully (its stdin closes).
func (p *process) stop() {
	_ = p.stdin.Close()
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// kill9 kills the gateway as a crash would.
func (p *process) kill9() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatal(err)
	}
	<-p.exited
}

// logBuffer collects a gateway's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// mark returns the current end of the log, for since.
func (b *logBuffer) mark() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

// since returns the log lines written after mark.
func (b *logBuffer) since(mark int) []string {
	s := b.String()[mark:]
	return strings.Split(strings.TrimSpace(s), "\n")
}

package cluster_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/google/uuid"

	"github.com/bankedge/bankedge/internal/testcaddy"
	"github.com/bankedge/bankedge/modules/cluster"
	_ "github.com/pberkel/caddy-storage-redis"
)

// The test binary doubles as a second gateway: with BANKEDGE_CLUSTER_CHILD
// naming a Caddyfile it loads it and runs the commands it reads on stdin
// against the State of its cluster_probe app (see runChild).
func TestMain(m *testing.M) {
	if path := os.Getenv("BANKEDGE_CLUSTER_CHILD"); path != "" {
		os.Exit(runChild(path))
	}
	os.Exit(testcaddy.Main(m))
}

// probeApp is a Caddy app that takes the shared state of its configuration,
// as the bankedge modules do, so that tests reach it.
type probeApp struct {
	// Name identifies the probe in probes.
	Name string `json:"name"`
}

var probes sync.Map // name -> *cluster.State

func init() {
	caddy.RegisterModule(probeApp{})
	httpcaddyfile.RegisterGlobalOption("cluster_probe", func(d *caddyfile.Dispenser, _ any) (any, error) {
		d.Next()
		if !d.NextArg() {
			return nil, d.ArgErr()
		}
		return httpcaddyfile.App{Name: "cluster_probe", Value: caddyconfig.JSON(probeApp{Name: d.Val()}, nil)}, nil
	})
}

func (probeApp) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "cluster_probe", New: func() caddy.Module { return new(probeApp) }}
}

func (p *probeApp) Provision(ctx caddy.Context) error {
	s, err := cluster.From(ctx)
	if err != nil {
		return err
	}
	probes.Store(p.Name, s)
	return nil
}

func (*probeApp) Start() error { return nil }
func (*probeApp) Stop() error  { return nil }

// redisCaddyfile is a configuration on Redis storage with a probe.
func redisCaddyfile(addr, prefix, probe string) string {
	return fmt.Sprintf(`{
	admin off
	persist_config off
	storage redis {
		address %s
		key_prefix %s
	}
	cluster_probe %s
}
`, addr, prefix, probe)
}

// loadProbe loads a Caddyfile in this process and returns its probe's State.
func loadProbe(t *testing.T, caddyfileText, probe string) *cluster.State {
	t.Helper()
	probes.Delete(probe)
	testcaddy.Load(t, caddyfileText)
	v, ok := probes.Load(probe)
	if !ok {
		t.Fatalf("probe %s was not provisioned", probe)
	}
	return v.(*cluster.State)
}

// child is a second gateway process on the same Redis.
type child struct {
	t       *testing.T
	cmd     *exec.Cmd
	in      io.WriteCloser
	replies chan string
	events  chan string
	exited  chan struct{}
}

// startChild runs the test binary as a gateway with the Caddyfile text and
// the lease timing "ttl,renew" (empty for the default).
func startChild(t *testing.T, caddyfileText, leaseTiming string) *child {
	t.Helper()
	path := t.TempDir() + "/Caddyfile"
	if err := os.WriteFile(path, []byte(caddyfileText), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "BANKEDGE_CLUSTER_CHILD="+path, "BANKEDGE_CLUSTER_LEASE_TIMING="+leaseTiming,
		"XDG_DATA_HOME="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir())
	cmd.Stderr = &testWriter{t: t, prefix: "child: "}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{t: t, cmd: cmd, in: in, replies: make(chan string, 16), events: make(chan string, 64), exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "= "):
				c.replies <- line[2:]
			case strings.HasPrefix(line, "! "):
				c.events <- line[2:]
			}
		}
		close(c.exited)
	}()
	t.Cleanup(func() {
		_ = in.Close()
		select {
		case <-c.exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
		_ = cmd.Wait()
	})
	if got := c.do("ready"); got != "ready" {
		t.Fatalf("child did not start: %s", got)
	}
	return c
}

// do sends one command and returns the reply.
func (c *child) do(args ...string) string {
	c.t.Helper()
	if _, err := fmt.Fprintln(c.in, strings.Join(args, " ")); err != nil {
		c.t.Fatalf("child %v: %v", args, err)
	}
	select {
	case r := <-c.replies:
		return r
	case <-c.exited:
		c.t.Fatalf("child exited during %v", args)
	case <-time.After(15 * time.Second):
		c.t.Fatalf("child did not answer %v", args)
	}
	return ""
}

// kill9 kills the child as a crash would.
func (c *child) kill9() {
	c.t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatal(err)
	}
	<-c.exited
}

type testWriter struct {
	t      *testing.T
	prefix string
}

func (w *testWriter) Write(p []byte) (int, error) {
	if testing.Verbose() {
		w.t.Log(w.prefix + strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// runChild is the child's main: load the configuration, then answer one
// line per command line, "= reply", and print notifications as "! …".
func runChild(path string) int {
	if lt := os.Getenv("BANKEDGE_CLUSTER_LEASE_TIMING"); lt != "" {
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
	defer caddy.Stop()
	var state *cluster.State
	probes.Range(func(_, v any) bool { state = v.(*cluster.State); return false })

	var outMu sync.Mutex
	say := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	releases := map[string]func(){}
	ctx := context.Background()
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "ready":
			say("= ready")
		case "claim": // claim ORG UUID WINDOW
			window, _ := time.ParseDuration(f[3])
			fresh, err := state.Claim(ctx, f[1], uuid.MustParse(f[2]), window)
			switch {
			case err != nil:
				say("= error %v", errKind(err))
			case fresh:
				say("= fresh")
			default:
				say("= replay")
			}
		case "acquire": // acquire PARTNER LIMIT
			limit, _ := strconv.Atoi(f[2])
			release, ok, err := state.Acquire(ctx, f[1], limit)
			switch {
			case err != nil:
				say("= error %v", errKind(err))
			case ok:
				id := strconv.Itoa(len(releases) + 1)
				releases[id] = release
				say("= ok %s", id)
			default:
				say("= full")
			}
		case "release": // release ID
			releases[f[1]]()
			say("= released")
		case "fail": // fail SCOPE SUBJECT WINDOW
			window, _ := time.ParseDuration(f[3])
			n, err := state.IncrFailure(ctx, cluster.FailureKey{Scope: f[1], Subject: f[2]}, window)
			if err != nil {
				say("= error %v", errKind(err))
			} else {
				say("= %d", n)
			}
		case "publish": // publish TOPIC PAYLOAD
			if err := state.Publish(ctx, f[1], f[2]); err != nil {
				say("= error %v", errKind(err))
			} else {
				say("= ok")
			}
		case "subscribe": // subscribe TOPIC
			_, err := state.Subscribe(f[1], func(ev cluster.Event) {
				if ev.Resync {
					say("! resync %s", ev.Topic)
				} else {
					say("! %s %s", ev.Topic, ev.Payload)
				}
			})
			if err != nil {
				say("= error %v", err)
			} else {
				say("= ok")
			}
		default:
			say("= error unknown command %q", f[0])
		}
	}
	return 0
}

func errKind(err error) string {
	if errors.Is(err, cluster.ErrUnavailable) {
		return "unavailable"
	}
	return err.Error()
}

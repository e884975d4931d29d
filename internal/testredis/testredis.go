// Package testredis runs real redis-server processes for tests: one per test,
// on a free loopback port, in a temporary directory, with the append-only
// file on and fsynced at every write (appendfsync always), so that a test can
// stop it, kill it with SIGKILL, and restart it from its append-only file on
// the same port.
//
// Tests that call Start skip, saying why, where redis-server is not
// installed (Debian package redis-server).
package testredis

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bankedge/bankedge/internal/testcaddy"
)

// startTimeout bounds the wait for a started or restarted server to answer
// PING; loading a test's append-only file takes milliseconds.
const startTimeout = 10 * time.Second

// Server is one redis-server process owned by a test.
type Server struct {
	// Addr is host:port on 127.0.0.1.
	Addr string
	// Port is the TCP port, kept across restarts.
	Port int
	// Dir holds the append-only file and the log.
	Dir string
	// BusPort is the cluster bus port of a Redis Cluster node.
	BusPort int

	// argv are the redis-server arguments, kept for restarts.
	argv []string

	t       testing.TB
	binary  string
	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	stopped bool
}

// Binary returns the path of redis-server, or an error saying why the tests
// that need it skip.
func Binary() (string, error) {
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return "", errors.New("redis-server is not installed (Debian package redis-server); skipping the tests that need a real Redis")
	}
	return p, nil
}

// Start runs a new redis-server for t and stops it when t ends. It skips t
// when redis-server is absent.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, nil)
}

// start runs redis-server with the arguments args gives for the port and
// directory (dataArgs when nil).
func start(t testing.TB, args func(port int, dir string) []string) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Skip(err.Error())
	}
	s := &Server{t: t, binary: bin, Dir: t.TempDir()}
	// The port comes free from the kernel a moment before redis-server binds
	// it; another test may take it in between, so try a few.
	var lastErr error
	for range 5 {
		s.Port = testcaddy.FreePort(t)
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
		if args == nil {
			args = dataArgs
		}
		s.argv = args(s.Port, s.Dir)
		if lastErr = s.start(); lastErr == nil {
			t.Cleanup(s.cleanup)
			return s
		}
	}
	t.Fatalf("starting redis-server: %v", lastErr)
	return nil
}

// dataArgs are the arguments of a data node: loopback only, append-only
// file fsynced at every write, no RDB snapshots (what survives a restart is
// the append-only file alone, as the tests claim).
func dataArgs(port int, dir string) []string {
	return []string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", dir,
		"--appendonly", "yes",
		"--appendfsync", "always",
		"--save", "",
		"--daemonize", "no",
		"--logfile", filepath.Join(dir, "redis.log"),
	}
}

// StartCluster runs a Redis Cluster of n masters (no replicas), the slots
// split evenly between them, and waits until every node says the cluster is
// ok. The nodes' cluster bus ports are free ports too.
func StartCluster(t testing.TB, n int) []*Server {
	t.Helper()
	nodes := make([]*Server, n)
	for i := range nodes {
		bus := testcaddy.FreePort(t)
		nodes[i] = start(t, func(port int, dir string) []string {
			return append(dataArgs(port, dir), "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
				"--cluster-port", strconv.Itoa(bus), "--cluster-node-timeout", "2000")
		})
		nodes[i].BusPort = bus
		nodes[i].MustDo("CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(i*16384/n), strconv.Itoa((i+1)*16384/n-1))
	}
	for _, node := range nodes[1:] {
		nodes[0].MustDo("CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(node.Port), strconv.Itoa(node.BusPort))
	}
	deadline := time.Now().Add(startTimeout)
	for _, node := range nodes {
		for {
			info, err := node.Do("CLUSTER", "INFO")
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(n)) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Redis Cluster not ok within %v: %s", startTimeout, info)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nodes
}

func (s *Server) start() error {
	cmd := exec.Command(s.binary, s.argv...)
	cmd.Dir = s.Dir
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited, s.stopped = cmd, exited, false
	s.mu.Unlock()
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("redis-server exited at start: %s", s.logTail())
		default:
		}
		if reply, err := s.Do("PING"); err == nil && reply == "PONG" {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-exited
	return fmt.Errorf("redis-server did not answer PING within %v: %s", startTimeout, s.logTail())
}

// Stop shuts the server down gracefully (SIGTERM) and waits for it to exit.
func (s *Server) Stop() {
	s.t.Helper()
	s.signal(syscall.SIGTERM)
}

// Kill kills the server with SIGKILL, as a crash would, and waits for it to
// exit. With appendfsync always, every write it acknowledged is on disk.
func (s *Server) Kill() {
	s.t.Helper()
	s.signal(syscall.SIGKILL)
}

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd, exited, stopped := s.cmd, s.exited, s.stopped
	s.stopped = true
	s.mu.Unlock()
	if stopped {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(startTimeout):
		_ = cmd.Process.Kill()
		<-exited
		s.t.Errorf("redis-server did not exit on %v within %v", sig, startTimeout)
	}
}

// StartReplica runs a data node that replicates master, and waits until
// the link is up.
func StartReplica(t testing.TB, master *Server) *Server {
	t.Helper()
	r := start(t, func(port int, dir string) []string {
		return append(dataArgs(port, dir), "--replicaof", "127.0.0.1", strconv.Itoa(master.Port))
	})
	deadline := time.Now().Add(startTimeout)
	for {
		info, err := r.Do("INFO", "replication")
		if err == nil && strings.Contains(info, "master_link_status:up") {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica not linked within %v: %s", startTimeout, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// StartSentinel runs a Sentinel monitoring master under name, with a
// quorum of 1 and short failure detection, and waits until it knows the
// master.
func StartSentinel(t testing.TB, master *Server, name string) *Server {
	t.Helper()
	s := start(t, func(port int, dir string) []string {
		conf := filepath.Join(dir, "sentinel.conf")
		text := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 1\nsentinel down-after-milliseconds %s 1000\nsentinel failover-timeout %s 5000\n",
			name, master.Port, name, name)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return []string{conf, "--sentinel", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
			"--daemonize", "no", "--logfile", filepath.Join(dir, "redis.log")}
	})
	deadline := time.Now().Add(startTimeout)
	for {
		addr, err := s.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)
		if err == nil && addr == "127.0.0.1\n"+strconv.Itoa(master.Port) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("sentinel does not know master %s within %v: %s %v", name, startTimeout, addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Pause stops the process (SIGSTOP) without closing its sockets: the kernel
// still accepts connections, but nothing answers, as with a Redis that hangs
// or a network that drops packets. Resume (SIGCONT) undoes it.
func (s *Server) Pause() { s.t.Helper(); s.jobControl(syscall.SIGSTOP) }

// Resume continues a paused server.
func (s *Server) Resume() { s.t.Helper(); s.jobControl(syscall.SIGCONT) }

func (s *Server) jobControl(sig syscall.Signal) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("redis-server %v: %v", sig, err)
	}
}

// Restart starts the server again on the same port and directory, so that it
// loads its append-only file, and waits until it answers PING (that is, until
// the file is loaded).
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	stopped := s.stopped
	s.mu.Unlock()
	if !stopped {
		s.Stop()
	}
	if err := s.start(); err != nil {
		s.t.Fatalf("restarting redis-server: %v", err)
	}
}

func (s *Server) cleanup() {
	s.mu.Lock()
	stopped := s.stopped
	s.mu.Unlock()
	if !stopped {
		// A paused process does not act on SIGKILL until continued.
		_ = s.cmd.Process.Signal(syscall.SIGCONT)
		s.Kill()
	}
}

// Do sends one command over a fresh connection and returns the reply as
// text: simple strings and integers as they are, bulk strings as their
// content, nil as "(nil)", arrays as their elements joined by newlines. It
// is a plain RESP client on purpose, independent of the client under test.
func (s *Server) Do(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return "", err
	}
	return readReply(bufio.NewReader(conn))
}

// MustDo is Do that fails the test on an error.
func (s *Server) MustDo(args ...string) string {
	s.t.Helper()
	reply, err := s.Do(args...)
	if err != nil {
		s.t.Fatalf("redis %v: %v", args, err)
	}
	return reply
}

func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		if n < 0 {
			return "(nil)", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		parts := make([]string, 0, max(n, 0))
		for range n {
			p, err := readReply(r)
			if err != nil {
				return "", err
			}
			parts = append(parts, p)
		}
		return strings.Join(parts, "\n"), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}

func (s *Server) logTail() string {
	b, err := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 10 {
		lines = lines[len(lines)-10:]
	}
	return strings.Join(lines, "\n")
}

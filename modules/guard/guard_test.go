package guard

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
)

func testListener(t *testing.T, s settings) *Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if s.logger == nil {
		s.logger = zap.NewNop()
	}
	l := newListener(ln, s)
	t.Cleanup(func() { l.Close() })
	return l
}

// serve accepts like caddy-l4 v0.1.2's loop: any error other than a
// timeout ends it. Accepted connections go to conns.
func serve(l net.Listener, conns chan<- net.Conn) <-chan error {
	done := make(chan error, 1)
	go func() {
		for {
			c, err := l.Accept()
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if err != nil {
				done <- err
				return
			}
			conns <- c
		}
	}()
	return done
}

func dialFrom(t *testing.T, from string, addr net.Addr) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// refused reports whether a connection from the address is reset or
// closed by the listener, during the dial or right after.
func refused(t *testing.T, from string, addr net.Addr) bool {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		return errors.Is(err, syscall.ECONNRESET)
	}
	defer c.Close()
	return closedByPeer(t, c, 3*time.Second)
}

// closedByPeer waits for c to be closed or reset by the other end.
func closedByPeer(t *testing.T, c net.Conn, within time.Duration) bool {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(within))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func TestPreAuthTimeout(t *testing.T) {
	l := testListener(t, settings{preAuthTimeout: 300 * time.Millisecond, maxPreAuth: 10, maxPreAuthPerIP: 10})
	conns := make(chan net.Conn, 10)
	serve(l, conns)
	silent := dialFrom(t, "127.0.0.1", l.Addr())
	authed := dialFrom(t, "127.0.0.1", l.Addr())
	<-conns
	a := <-conns
	// Which accepted connection is which does not matter: authenticate
	// one of them.
	if !Authenticate(a, nil) {
		t.Fatal("Authenticate found no guarded connection")
	}
	if _, ok := PreAuthDeadline(a, nil); ok {
		t.Fatal("an authenticated connection still has a pre-authentication deadline")
	}
	start := time.Now()
	first, second := closedByPeer(t, silent, 3*time.Second), closedByPeer(t, authed, 100*time.Millisecond)
	if first == second {
		t.Fatalf("closed: %v and %v; want exactly the unauthenticated one closed", first, second)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("closed after %s", time.Since(start))
	}
	if n := l.Pending(); n != 0 {
		t.Fatalf("%d pending after expiry and authentication", n)
	}
	if l.expired.Load() != 1 {
		t.Fatalf("expired = %d", l.expired.Load())
	}
}

func TestPreAuthCaps(t *testing.T) {
	l := testListener(t, settings{preAuthTimeout: time.Minute, maxPreAuth: 3, maxPreAuthPerIP: 2})
	conns := make(chan net.Conn, 10)
	serve(l, conns)
	a1, a2 := dialFrom(t, "127.0.0.2", l.Addr()), dialFrom(t, "127.0.0.2", l.Addr())
	first := <-conns
	<-conns
	// A third from the same address is reset at accept time.
	if !refused(t, "127.0.0.2", l.Addr()) {
		t.Fatal("a third unauthenticated connection from one address was admitted")
	}
	// Another address is admitted, up to the listener's cap.
	dialFrom(t, "127.0.0.3", l.Addr())
	<-conns
	if !refused(t, "127.0.0.4", l.Addr()) {
		t.Fatal("a connection beyond the listener's cap was admitted")
	}
	// Authenticated connections no longer count.
	Authenticate(first, nil)
	dialFrom(t, "127.0.0.4", l.Addr())
	select {
	case <-conns:
	case <-time.After(3 * time.Second):
		t.Fatal("no room after a connection was authenticated")
	}
	if closedByPeer(t, a1, 50*time.Millisecond) || closedByPeer(t, a2, 50*time.Millisecond) {
		t.Fatal("admitted connections were closed")
	}
	if l.refused.Load() != 2 {
		t.Fatalf("refused = %d, want 2", l.refused.Load())
	}
}

func TestAddressKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":                 "192.0.2.1",
		"::ffff:192.0.2.1":          "192.0.2.1",
		"2001:db8:1:2:3:4:5:6":      "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1%eth0": "2001:db8:1:2::/64",
		"2001:db8:1:3:ffff:ffff::1": "2001:db8:1:3::/64",
	} {
		if got := AddressKey(mustAddr(t, in)); got != want {
			t.Errorf("AddressKey(%s) = %s, want %s", in, got, want)
		}
	}
}

// TestSurvivesDescriptorExhaustion runs a guarded listener, and a bare
// one, in a child process whose descriptor limit is low, exhausts the
// descriptors, connects meanwhile, frees them, and checks which listener
// still accepts.
func TestSurvivesDescriptorExhaustion(t *testing.T) {
	if os.Getenv("GUARD_TEST_CHILD") != "" {
		t.Skip("child")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestExhaustionChild$")
	cmd.Env = append(os.Environ(), "GUARD_TEST_CHILD=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stdout)
	expect := func(prefix string) string {
		t.Helper()
		for lines.Scan() {
			if rest, ok := strings.CutPrefix(lines.Text(), prefix); ok {
				return rest
			}
		}
		t.Fatalf("child ended before %q", prefix)
		return ""
	}
	addrs := strings.Fields(expect("listening "))
	expect("exhausted")
	// Connections that arrive while the child has no descriptor: each
	// completes in the kernel's backlog and is shed or waits.
	var during []net.Conn
	for _, a := range addrs {
		for range 3 {
			if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
				during = append(during, c)
			}
		}
	}
	time.Sleep(300 * time.Millisecond) // let the accept loops meet EMFILE
	fmt.Fprintln(stdin, "release")
	expect("released")
	for _, c := range during {
		c.Close()
	}
	guarded, bare := accepts(addrs[0], 5*time.Second), accepts(addrs[1], time.Second)
	fmt.Fprintln(stdin, "quit")
	if !guarded {
		t.Fatal("the guarded listener no longer accepts after running out of descriptors")
	}
	if bare {
		// The control: caddy-l4's loop on a bare listener must have died,
		// or descriptors never ran out and this test proved nothing.
		t.Fatal("the bare listener survived: the child never ran out of descriptors")
	}
}

// accepts reports whether a connection to addr is greeted with "ok"
// within the time given.
func accepts(addr string, within time.Duration) bool {
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			continue
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		b, _ := io.ReadAll(c)
		c.Close()
		if string(b) == "ok" {
			return true
		}
	}
	return false
}

// TestExhaustionChild is the child of TestSurvivesDescriptorExhaustion.
func TestExhaustionChild(t *testing.T) {
	if os.Getenv("GUARD_TEST_CHILD") == "" {
		t.Skip("run by TestSurvivesDescriptorExhaustion")
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: 64, Max: 64}); err != nil {
		t.Fatal(err)
	}
	guarded := testListener(t, settings{preAuthTimeout: time.Minute, maxPreAuth: 100, maxPreAuthPerIP: 100})
	bare, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []net.Listener{guarded, bare} {
		conns := make(chan net.Conn, 1)
		serve(l, conns)
		go func() {
			for c := range conns {
				_, _ = c.Write([]byte("ok"))
				c.Close()
			}
		}()
	}
	fmt.Printf("listening %s %s\n", guarded.Addr(), bare.Addr())
	var held []*os.File
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			break
		}
		held = append(held, f)
	}
	fmt.Println("exhausted")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "release":
			for _, f := range held {
				f.Close()
			}
			fmt.Println("released")
		case "quit":
			return
		}
	}
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

package testcaddy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/bankedge/bankedge/internal/procnet"
)

// Reload adapts and runs caddyfile in place of the running configuration,
// as `caddy reload` does, and returns once the old configuration's
// listeners are closed.
//
// On Linux Caddy binds a reloaded configuration's listeners with
// SO_REUSEPORT next to the old ones, and the kernel spreads new connections
// over both sockets. The old configuration's sockets are closed by
// goroutines that may run after caddy.Load has returned; a connection the
// kernel queued on one of them is then reset. A test that connects right
// after a reload would fail on that reset, which says nothing about the
// configuration under test.
func Reload(t testing.TB, caddyfile string) {
	t.Helper()
	if err := caddy.Load(Adapt(t, caddyfile), true); err != nil {
		t.Fatalf("reloading config: %v\n%s", err, caddyfile)
	}
	WaitListenersSettled(t)
}

// WaitListenersSettled waits until no TCP port has two listening sockets
// in this process: until a previous configuration's listeners, still open
// next to the current ones after a reload or a Stop followed by a Load, are
// closed. Where the process's sockets cannot be read (not Linux), it
// returns at once.
func WaitListenersSettled(t testing.TB) {
	t.Helper()
	var dup int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		var ok bool
		if dup, ok = duplicateListeningPort(); !ok || dup == 0 {
			return
		}
	}
	t.Fatalf("port %d still has a previous configuration's listener 10 s after the reload", dup)
}

// duplicateListeningPort returns a TCP port on which this process has more
// than one listening socket (0: none), and false where the process's
// sockets cannot be read.
func duplicateListeningPort() (int, bool) {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, false
	}
	ours := make(map[string]bool, len(fds))
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(target, "socket:[") {
			ours[target] = true
		}
	}
	listeners, err := procnet.Listening()
	if err != nil {
		return 0, false
	}
	listening := map[int]int{}
	for _, l := range listeners {
		if ours[l.Socket] {
			listening[l.Port]++
		}
	}
	for port, n := range listening {
		if n > 1 {
			return port, true
		}
	}
	return 0, true
}

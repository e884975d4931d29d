package testcaddy

import (
	"context"
	"net"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Two sockets listening on one port with SO_REUSEPORT, as after a Caddy
// reload, are seen until one of them is closed.
func TestDuplicateListeningPort(t *testing.T) {
	if _, ok := duplicateListeningPort(); !ok {
		t.Skip("this process's sockets cannot be read here (no /proc)")
	}
	reuse := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) }); err != nil {
			return err
		}
		return serr
	}}
	old, err := reuse.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	port := old.Addr().(*net.TCPAddr).Port
	if dup, _ := duplicateListeningPort(); dup != 0 {
		t.Fatalf("one listener reported as a duplicate on port %d", dup)
	}
	current, err := reuse.Listen(context.Background(), "tcp", old.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer current.Close()
	if dup, _ := duplicateListeningPort(); dup != port {
		t.Fatalf("duplicate port = %d, want %d", dup, port)
	}
	old.Close()
	if dup, _ := duplicateListeningPort(); dup != 0 {
		t.Fatalf("duplicate port %d after the old listener closed", dup)
	}
	WaitListenersSettled(t)
}

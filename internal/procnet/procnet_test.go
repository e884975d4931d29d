package procnet

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

func TestListeningFindsOurSocket(t *testing.T) {
	if _, err := os.Stat("/proc/self/net/tcp"); err != nil {
		t.Skip("no /proc/self/net/tcp here")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	fds, _ := os.ReadDir("/proc/self/fd")
	ours := map[string]bool{}
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil {
			ours[target] = true
		}
	}
	found := func() bool {
		listeners, err := Listening()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range listeners {
			if s.Port == port && ours[s.Socket] {
				return true
			}
		}
		return false
	}
	if !found() {
		t.Fatalf("port %d, listened on by this process, is not listed", port)
	}
	l.Close()
	if found() {
		t.Fatalf("port %d is still listed after its listener closed", port)
	}
}

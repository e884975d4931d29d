package guard

import (
	"net"
	"os"
	"sync"
)

// spare is a file descriptor held in reserve for the moment the process
// runs out: released, it lets a listener accept the connection waiting in
// its queue and close it, so that the client hears at once instead of
// waiting in the backlog, and the accept loop does not spin.
var spare spareFD

type spareFD struct {
	mu   sync.Mutex
	f    *os.File
	once sync.Once
}

func (s *spareFD) init() {
	s.once.Do(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.f, _ = os.Open(os.DevNull)
	})
}

// shed is called after accept failed for lack of descriptors. It releases
// the spare, accepts one connection and takes the spare back. If it cannot
// (the process is still out of descriptors), it resets the connection and
// returns (nil, true); if descriptors came back meanwhile, it returns the
// connection to serve. ok is false when there was no spare to release (it
// is then retaken if possible) or another listener is using it; the caller
// backs off.
func (s *spareFD) shed(ln net.Listener) (c net.Conn, ok bool) {
	if !s.mu.TryLock() {
		return nil, false
	}
	defer s.mu.Unlock()
	if s.f == nil {
		s.f, _ = os.Open(os.DevNull)
		return nil, false
	}
	_ = s.f.Close()
	s.f = nil
	c, err := ln.Accept()
	s.f, _ = os.Open(os.DevNull)
	if err != nil {
		return nil, false
	}
	if s.f == nil {
		reset(c)
		return nil, true
	}
	return c, true
}

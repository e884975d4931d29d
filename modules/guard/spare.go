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
// (the process is still out of descriptors), it resets the connection,
// takes the spare back with its descriptor, and returns (nil, true): while
// descriptors lack, the queue drains one reset at a time, and waiting
// clients hear at once rather than time out. If descriptors came back
// meanwhile, it returns the connection to serve. ok is false when there
// was no spare to release (it is retaken if a descriptor is free); the
// caller backs off. The lock is not held while Accept waits, so that a
// listener with an empty queue does not keep the others from shedding.
func (s *spareFD) shed(ln net.Listener) (c net.Conn, ok bool) {
	s.mu.Lock()
	if s.f == nil {
		s.f, _ = os.Open(os.DevNull)
		s.mu.Unlock()
		return nil, false
	}
	_ = s.f.Close()
	s.f = nil
	s.mu.Unlock()
	c, err := ln.Accept()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		s.f, _ = os.Open(os.DevNull)
	}
	if err != nil {
		return nil, false
	}
	if s.f == nil {
		// Still out of descriptors: shed c, whose descriptor then holds
		// the spare again for the next one.
		reset(c)
		s.f, _ = os.Open(os.DevNull)
		return nil, true
	}
	return c, true
}

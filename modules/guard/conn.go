package guard

import (
	"net"
	"sync/atomic"
	"time"
)

// Conn is a connection of a guarded listener.
type Conn struct {
	net.Conn
	l        *Listener
	key      string
	deadline time.Time
	timer    *time.Timer
	state    atomic.Int32
}

// Connection states.
const (
	statePending       int32 = iota // counted, under the pre-authentication timer
	stateAuthenticated              // released from the counts and the timer
	stateDone                       // closed or expired before authentication
)

// Authenticated ends the connection's pre-authentication phase: it no
// longer counts against the caps and the timer will not close it. It
// reports false if the connection was already closed.
func (c *Conn) Authenticated() bool {
	if c.state.CompareAndSwap(statePending, stateAuthenticated) {
		c.timer.Stop()
		c.l.release(c.key)
		return true
	}
	return c.state.Load() == stateAuthenticated
}

// PreAuthDeadline is when the connection is closed unless authenticated.
func (c *Conn) PreAuthDeadline() time.Time { return c.deadline }

// expire closes a connection still unauthenticated at its deadline.
func (c *Conn) expire() {
	if c.state.CompareAndSwap(statePending, stateDone) {
		c.l.release(c.key)
		c.l.expired.Add(1)
		_ = c.Conn.Close()
	}
}

// Close closes the connection, and releases its counts if it was still
// unauthenticated.
func (c *Conn) Close() error {
	if c.state.CompareAndSwap(statePending, stateDone) {
		c.timer.Stop()
		c.l.release(c.key)
	}
	return c.Conn.Close()
}

// CloseWrite half-closes, for proxies that propagate an end of stream.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Authenticate marks the guarded connection under c as authenticated.
// unwrap may peel handler-specific wrappers (such as caddy-l4's
// *layer4.Connection) that Authenticate cannot see through itself; it
// already sees through *tls.Conn and any wrapper with a NetConn method.
// It reports whether a guarded connection was found.
func Authenticate(c net.Conn, unwrap func(net.Conn) net.Conn) bool {
	if gc := find(c, unwrap); gc != nil {
		return gc.Authenticated()
	}
	return false
}

// PreAuthDeadline returns the pre-authentication deadline of the guarded
// connection under c, if there is one and it is not yet authenticated.
func PreAuthDeadline(c net.Conn, unwrap func(net.Conn) net.Conn) (time.Time, bool) {
	if gc := find(c, unwrap); gc != nil && gc.state.Load() == statePending {
		return gc.deadline, true
	}
	return time.Time{}, false
}

func find(c net.Conn, unwrap func(net.Conn) net.Conn) *Conn {
	// A bound, in case of a wrapper that unwraps to itself.
	for range 16 {
		switch v := c.(type) {
		case nil:
			return nil
		case *Conn:
			return v
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
			continue
		}
		if unwrap == nil {
			return nil
		}
		next := unwrap(c)
		if next == nil || next == c {
			return nil
		}
		c = next
	}
	return nil
}

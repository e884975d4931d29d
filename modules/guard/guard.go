// Package guard provides guarded TCP listeners for Caddy: the networks
// guard+tcp, guard+tcp4 and guard+tcp6, usable in any Caddy listen
// address (for example a layer4 server's "guard+tcp/:6502"). A guarded
// listener
//
//   - survives running out of file descriptors: when accept fails with
//     EMFILE or ENFILE it releases a spare descriptor to accept and shed
//     the waiting connection, backs off (5 ms doubling to 1 s, as
//     net/http does) and accepts again, where caddy-l4 v0.1.2's accept
//     loop would return and never accept again;
//   - bounds the pre-authentication phase: a connection that no handler
//     has marked authenticated within pre_auth_timeout of its accept is
//     closed, whatever it is doing (a stalled TLS handshake, a matcher or
//     handler waiting for bytes); a timer does it, because caddy-l4's
//     router clears read deadlines once a route matched;
//   - caps unauthenticated connections, per listener and per source
//     address (an IPv6 address counts by its /64): a connection accepted
//     beyond a cap is reset at once.
//
// A handler marks a connection authenticated with Authenticate, which the
// PeSIT gateway does once a partner's CONNECT is accepted and pesit_server
// once it accepted a CONNECT. The settings come from the listener_guard
// app (global option listener_guard), or its defaults.
package guard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// Networks are the network names this package registers; each guards the
// plain network after the "guard+".
var Networks = []string{"guard+tcp", "guard+tcp4", "guard+tcp6"}

func init() {
	for _, n := range Networks {
		caddy.RegisterNetwork(n, listen)
	}
}

// Defaults of the listener_guard app.
const (
	DefaultPreAuthTimeout  = 15 * time.Second
	DefaultMaxPreAuth      = 256
	DefaultMaxPreAuthPerIP = 16
)

// settings are what a listener enforces.
type settings struct {
	preAuthTimeout  time.Duration
	maxPreAuth      int
	maxPreAuthPerIP int
	logger          *zap.Logger
}

func defaultSettings() settings {
	return settings{
		preAuthTimeout:  DefaultPreAuthTimeout,
		maxPreAuth:      DefaultMaxPreAuth,
		maxPreAuthPerIP: DefaultMaxPreAuthPerIP,
		logger:          caddy.Log().Named("listener_guard"),
	}
}

// listen is the caddy.ListenerFunc of the guard networks: the plain
// network's listener (with Caddy's socket reuse across reloads) wrapped.
func listen(ctx context.Context, network, host, port string, portOffset uint, cfg net.ListenConfig) (any, error) {
	inner := strings.TrimPrefix(network, "guard+")
	na, err := caddy.ParseNetworkAddress(caddy.JoinNetworkAddress(inner, host, port))
	if err != nil {
		return nil, fmt.Errorf("guarded listener %s/%s: %w", network, net.JoinHostPort(host, port), err)
	}
	ln, err := na.Listen(ctx, portOffset, cfg)
	if err != nil {
		return nil, err
	}
	nl, ok := ln.(net.Listener)
	if !ok {
		if c, ok := ln.(interface{ Close() error }); ok {
			_ = c.Close()
		}
		return nil, fmt.Errorf("guarded listener %s: %T is not a stream listener", network, ln)
	}
	s := defaultSettings()
	if cctx, ok := ctx.(caddy.Context); ok {
		if app, err := cctx.AppIfConfigured(appID); err == nil {
			s = app.(*App).settings()
		}
	}
	return newListener(nl, s), nil
}

// Listener is a guarded listener.
type Listener struct {
	net.Listener
	s settings

	mu      sync.Mutex
	pending int
	perIP   map[string]int

	closed    chan struct{}
	closeOnce sync.Once

	// Counters, for logs and tests.
	refused, expired, shed, backoffs atomic.Int64
	lastWarn                         atomic.Int64
}

func newListener(ln net.Listener, s settings) *Listener {
	spare.init()
	return &Listener{Listener: ln, s: s, perIP: map[string]int{}, closed: make(chan struct{})}
}

// maxBackoff is net/http's ceiling for accept retries.
const maxBackoff = time.Second

// Accept waits for a connection it admits. File descriptor exhaustion and
// other temporary errors are retried with a backoff; connections over a
// cap are reset and not returned.
func (l *Listener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !temporary(err) {
				return nil, err
			}
			if outOfDescriptors(err) {
				if c, ok := spare.shed(l.Listener); ok {
					if c != nil {
						// Descriptors came back meanwhile: serve it.
						if gc := l.admit(c); gc != nil {
							return gc, nil
						}
					} else {
						l.shed.Add(1)
					}
					continue
				}
			}
			delay = min(max(2*delay, 5*time.Millisecond), maxBackoff)
			l.backoffs.Add(1)
			l.warn("accepting connections failed; retrying", zap.Error(err), zap.Duration("retry_in", delay))
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-l.closed:
				t.Stop()
				return nil, net.ErrClosed
			}
			continue
		}
		delay = 0
		if gc := l.admit(c); gc != nil {
			return gc, nil
		}
	}
}

// Close closes the listener and stops any backoff wait.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// admit counts c as unauthenticated, or resets it if a cap is reached.
func (l *Listener) admit(c net.Conn) *Conn {
	key := ""
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		key = AddressKey(ap.Addr())
	}
	l.mu.Lock()
	if l.pending >= l.s.maxPreAuth || l.perIP[key] >= l.s.maxPreAuthPerIP {
		perIP := l.perIP[key]
		l.mu.Unlock()
		l.refused.Add(1)
		l.warn("refusing a connection: too many unauthenticated connections",
			zap.String("remote", c.RemoteAddr().String()), zap.Int("from_this_address", perIP),
			zap.Int("max_pre_auth", l.s.maxPreAuth), zap.Int("max_pre_auth_per_ip", l.s.maxPreAuthPerIP))
		reset(c)
		return nil
	}
	l.pending++
	l.perIP[key]++
	l.mu.Unlock()
	gc := &Conn{Conn: c, l: l, key: key, deadline: time.Now().Add(l.s.preAuthTimeout)}
	gc.timer = time.AfterFunc(l.s.preAuthTimeout, gc.expire)
	return gc
}

func (l *Listener) release(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending--
	if l.perIP[key]--; l.perIP[key] <= 0 {
		delete(l.perIP, key)
	}
}

// Pending returns the number of unauthenticated connections.
func (l *Listener) Pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pending
}

// warn logs at most once every 10 seconds per listener, so that an attack
// does not flood the log.
func (l *Listener) warn(msg string, fields ...zap.Field) {
	now := time.Now().UnixNano()
	last := l.lastWarn.Load()
	if now-last < int64(10*time.Second) || !l.lastWarn.CompareAndSwap(last, now) {
		return
	}
	l.s.logger.Warn(msg, append(fields, zap.String("listener", l.Addr().String()),
		zap.Int64("refused", l.refused.Load()), zap.Int64("expired", l.expired.Load()),
		zap.Int64("shed", l.shed.Load()), zap.Int64("accept_retries", l.backoffs.Load()))...)
}

// AddressKey is the source an address counts as: an IPv4 address itself,
// an IPv6 address its /64.
func AddressKey(ip netip.Addr) string {
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// temporary reports accept errors after which accepting again can work.
func temporary(err error) bool {
	if outOfDescriptors(err) || errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) ||
		errors.Is(err, syscall.ENOMEM) || errors.Is(err, syscall.EPROTO) {
		return true
	}
	var ne interface{ Temporary() bool }
	return errors.As(err, &ne) && ne.Temporary() && !errors.Is(err, net.ErrClosed)
}

func outOfDescriptors(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// reset closes c with an RST, which frees the socket at once (no
// TIME_WAIT) and tells the peer it was refused.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

package pesit

import (
	"context"
	"crypto/x509"
	"net/netip"
	"sync"
	"time"

	"github.com/bankedge/bankedge/modules/ca/registry"
	"github.com/bankedge/bankedge/modules/guard"
)

// Partners is what the gateway needs from the bankedge app (modules/ca
// implements it): partner authentication, and the issued-certificate
// inventory's answer to "which partner was this certificate issued for".
type Partners interface {
	// AuthenticatePartner checks a connecting partner; see
	// registry.Registry.Authenticate for its errors.
	AuthenticatePartner(ctx context.Context, req registry.AuthRequest) (registry.Partner, error)
	// CertificatePartner reports whether cert is exactly a certificate the
	// bankedge CA issued and, if so, the partner id and purpose (CLIENT,
	// SERVER, QWAC, QSEAL) of its inventory record. err is a storage
	// failure, never "not ours".
	CertificatePartner(ctx context.Context, cert *x509.Certificate) (partnerID, purpose string, issued bool, err error)
}

// ConnectionLimiter counts a partner's open sessions for maxConnections.
// The in-process one counts this instance's; a shared one (Redis) counts
// all instances'. Acquire takes a slot unless the partner already has
// limit sessions (ok false); release frees it and is called exactly once.
// An error (the backend is unreachable) makes the gateway answer RCONNECT
// 3-322, "call back later". It is called only for limit > 0, with ctx
// bounded by the CONNECT deadline.
//
// It is an alias of an unnamed interface so that another package can
// provide one without importing this one (see SharedState).
type ConnectionLimiter = interface {
	Acquire(ctx context.Context, partnerID string, limit int) (release func(), ok bool, err error)
}

// AuthFailureCounter counts failed partner authentications per key (a
// partner id or a source address, see throttleKeys) in a sliding window.
// Throttled reports whether any of keys has limit failures or more within
// window; Fail records one failure now against each key. An error (the
// backend is unreachable) makes the gateway answer RCONNECT 3-322, never
// an authentication refusal.
type AuthFailureCounter = interface {
	Throttled(ctx context.Context, keys []string, limit int, window time.Duration) (bool, error)
	Fail(ctx context.Context, keys []string, window time.Duration) error
}

// SharedState is what the bankedge app may also implement to replace the
// in-process limiter and counter, for gateways that share them (Redis).
// Either method may return nil to keep the in-process one. The app need
// not import this package: the result types are unnamed interfaces, so
// methods declared with the same interface literals match.
type SharedState interface {
	PartnerConnectionLimiter() ConnectionLimiter
	PartnerAuthFailures() AuthFailureCounter
}

// throttleKeys are the keys a failed authentication counts against: the
// partner id it claimed and its source address (an IPv6 address by its
// /64, which one host usually holds whole).
func throttleKeys(partnerID, remote string) []string {
	keys := make([]string, 0, 2)
	keys = append(keys, "partner:"+partnerID)
	if ip, err := netip.ParseAddr(remote); err == nil {
		keys = append(keys, "ip:"+guard.AddressKey(ip))
	}
	return keys
}

// localConnections counts sessions per partner in this process, across
// configuration reloads and listeners.
var localConnections ConnectionLimiter = &connectionCounter{n: map[string]int{}}

type connectionCounter struct {
	mu sync.Mutex
	n  map[string]int
}

// Acquire takes a slot for partner, refusing beyond limit.
func (c *connectionCounter) Acquire(_ context.Context, partner string, limit int) (func(), bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if limit > 0 && c.n[partner] >= limit {
		return nil, false, nil
	}
	c.n[partner]++
	var once sync.Once
	return func() { once.Do(func() { c.release(partner) }) }, true, nil
}

func (c *connectionCounter) release(partner string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[partner]--; c.n[partner] <= 0 {
		delete(c.n, partner)
	}
}

// localFailures counts failed authentications in this process, across
// configuration reloads and listeners, so that an attacker gains nothing
// by alternating between the TCP and the TLS port.
var localFailures AuthFailureCounter = newFailureLog(maxFailureKeys)

const (
	// maxFailureKeys bounds the keys the in-process counter remembers:
	// keys are attacker input (any partner id, any address).
	maxFailureKeys = 1 << 16
	// maxFailureLimit bounds the failures remembered per key, and so the
	// limit a configuration may set.
	maxFailureLimit = 64
)

// failureLog remembers, per key, the times (Unix nanoseconds) of its
// most recent failures. Throttled attempts are not recorded, so a key
// holds at most the limit's worth.
type failureLog struct {
	mu   sync.Mutex
	keys map[string][]int64
	max  int
	now  func() time.Time
}

func newFailureLog(maxKeys int) *failureLog {
	return &failureLog{keys: map[string][]int64{}, max: maxKeys, now: time.Now}
}

// Throttled implements AuthFailureCounter.
func (l *failureLog) Throttled(_ context.Context, keys []string, limit int, window time.Duration) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	since := l.now().Add(-window).UnixNano()
	for _, k := range keys {
		n := 0
		for _, t := range l.keys[k] {
			if t > since {
				n++
			}
		}
		if n >= limit {
			return true, nil
		}
	}
	return false, nil
}

// Fail implements AuthFailureCounter.
func (l *failureLog) Fail(_ context.Context, keys []string, window time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now().UnixNano()
	since := now - int64(window)
	for _, k := range keys {
		times, ok := l.keys[k]
		if !ok && len(l.keys) >= l.max {
			l.evict(since)
		}
		// Keep the newest maxFailureLimit, dropping those out of window.
		kept := times[:0]
		for _, t := range times {
			if t > since {
				kept = append(kept, t)
			}
		}
		if len(kept) >= maxFailureLimit {
			kept = append(kept[:0], kept[len(kept)-maxFailureLimit+1:]...)
		}
		l.keys[k] = append(kept, now)
	}
	return nil
}

// evict makes room: first the keys whose failures are all older than
// since, then, if none, an arbitrary sixteenth of them (map order is
// random, so an attacker cannot choose which keys go).
func (l *failureLog) evict(since int64) {
	for k, times := range l.keys {
		if len(times) == 0 || times[len(times)-1] <= since {
			delete(l.keys, k)
		}
	}
	if len(l.keys) < l.max {
		return
	}
	n := max(1, l.max/16)
	for k := range l.keys {
		if n == 0 {
			break
		}
		delete(l.keys, k)
		n--
	}
}

func (l *failureLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}

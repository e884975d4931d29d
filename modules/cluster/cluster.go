package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/google/uuid"
	storageredis "github.com/pberkel/caddy-storage-redis"
)

// ErrUnavailable is wrapped by every error of a primitive that could not get
// an answer from the shared state (Redis down, unreachable, too slow, loading
// its data, read-only, or the caller gave up). Callers fail closed on it: a
// PSD2 request gets 503, a PeSIT CONNECT gets RCONNECT 3-322.
var ErrUnavailable = errors.New("shared state unavailable")

// MaxTrackedFailures caps a failure counter: beyond it the oldest failures
// are forgotten, so the count saturates at this value.
const MaxTrackedFailures = 1024

// Failure counter scopes of the key layout.
const (
	// ScopeAuthPartner counts failed authentications per partner id.
	ScopeAuthPartner = "authfail"
	// ScopeAuthIP counts failed authentications per source address.
	ScopeAuthIP = "authfail-ip"
)

// FailureKey names one failure counter: a scope (what is counted) and a
// subject (whom it is counted for).
type FailureKey struct {
	// Scope is a lower-case word of letters, digits and '-', such as
	// ScopeAuthPartner; it becomes a segment of the Redis key.
	Scope string
	// Subject is the partner id, address or other identifier counted.
	Subject string
}

// PartnerAuthFailures is the counter of failed authentications of a partner.
func PartnerAuthFailures(partnerID string) FailureKey {
	return FailureKey{Scope: ScopeAuthPartner, Subject: partnerID}
}

// IPAuthFailures is the counter of failed authentications from an address.
func IPAuthFailures(ip string) FailureKey {
	return FailureKey{Scope: ScopeAuthIP, Subject: ip}
}

func (k FailureKey) validate() error {
	if k.Scope == "" {
		return errors.New("cluster: failure counter without a scope")
	}
	for _, c := range k.Scope {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return fmt.Errorf("cluster: failure counter scope %q: only a-z, 0-9 and '-'", k.Scope)
		}
	}
	return nil
}

// Event is a change notification handed to a subscriber.
type Event struct {
	// Topic is the topic it was published on.
	Topic string
	// Payload is what the publisher sent (an id, a serial number…).
	Payload string
	// Resync is set, with an empty payload, when notifications may have been
	// missed (the subscription to Redis was lost and is back): the
	// subscriber must drop everything it caches from the shared state.
	Resync bool
}

// Timing bounds the engine's waits and paces its background work. The
// defaults suit production; tests shorten them with SetTiming.
type Timing struct {
	// Op bounds one operation on Redis, dial included.
	Op time.Duration
	// Dial bounds one connection attempt.
	Dial time.Duration
	// LeaseTTL is how long a connection lease lives without renewal: the
	// longest a gateway killed with SIGKILL keeps its slots.
	LeaseTTL time.Duration
	// LeaseRenew is the period of lease renewal, a fraction of LeaseTTL.
	LeaseRenew time.Duration
	// PubSubPing is how long the subscriber waits for a message before it
	// pings Redis; an unanswered ping for as long again means the
	// subscription is lost and is made anew.
	PubSubPing time.Duration
	// RetryMax caps the back-off between attempts to restore the
	// subscription.
	RetryMax time.Duration
}

// DefaultTiming is the timing engines use unless SetTiming changed it.
var DefaultTiming = Timing{
	Op:         time.Second,
	Dial:       500 * time.Millisecond,
	LeaseTTL:   30 * time.Second,
	LeaseRenew: 10 * time.Second,
	PubSubPing: time.Second,
	RetryMax:   500 * time.Millisecond,
}

var currentTiming atomic.Pointer[Timing]

func init() {
	t := DefaultTiming
	currentTiming.Store(&t)
}

// SetTiming sets the timing of engines created from now on (an engine
// already serving a storage keeps its own) and returns a function restoring
// the previous one. It is for tests, which shorten the lease TTL and the
// timeouts to keep their run short.
func SetTiming(t Timing) (restore func()) {
	if t.Op <= 0 || t.Dial <= 0 || t.LeaseTTL <= 0 || t.LeaseRenew <= 0 || t.LeaseRenew >= t.LeaseTTL ||
		t.PubSubPing <= 0 || t.RetryMax <= 0 {
		panic(fmt.Sprintf("cluster: invalid timing %+v", t))
	}
	old := currentTiming.Swap(&t)
	return func() { currentTiming.Store(old) }
}

// store is one implementation of the shared state: in process or on Redis.
type store interface {
	shared() bool
	claim(ctx context.Context, orgID string, requestID uuid.UUID, window time.Duration) (bool, error)
	acquire(ctx context.Context, partnerID string, limit int) (func(), bool, error)
	leases(ctx context.Context, partnerID string) (int, error)
	incrFailure(ctx context.Context, k FailureKey, window time.Duration) (int, error)
	failures(ctx context.Context, k FailureKey, window time.Duration) (int, error)
	resetFailures(ctx context.Context, k FailureKey) error
	// publish sends a notification to the other instances; local
	// subscribers are served by the engine.
	publish(ctx context.Context, topic, payload string) error
	close()
}

// engine is the state of one storage, shared by every configuration that
// names it through the usage pool.
type engine struct {
	store store
	hub   *hub
}

// Destruct implements caddy.Destructor: the last configuration using the
// storage is gone.
func (e *engine) Destruct() error {
	e.store.close()
	return nil
}

// engines holds one engine per storage identity, counted per From call.
var engines = caddy.NewUsagePool()

// State is a configuration's handle on the shared state of its storage.
// Its methods are safe for concurrent use.
type State struct {
	e *engine

	mu     sync.Mutex
	subs   []subscription
	closed bool
}

// From returns the shared state of ctx's storage: on Redis when the
// storage is caddy.storage.redis, in process otherwise. Call it from
// Provision; the handle is released when ctx is cancelled (the
// configuration is unloaded), which also ends its subscriptions.
func From(ctx caddy.Context) (*State, error) {
	storage := ctx.Storage()
	var key string
	var build caddy.Constructor
	if rs, ok := storage.(*storageredis.RedisStorage); ok {
		key = redisIdentity(rs)
		build = func() (caddy.Destructor, error) {
			h := newHub()
			st, err := newRedisStore(rs.GetClient(), sentinelOf(rs), redisSettings(rs), rs.KeyPrefix, *currentTiming.Load(), h, caddy.Log().Named("bankedge.cluster"))
			if err != nil {
				return nil, err
			}
			return &engine{store: st, hub: h}, nil
		}
	} else {
		key = "local\x00" + storageIdentity(storage)
		build = func() (caddy.Destructor, error) {
			return &engine{store: newLocalStore(), hub: newHub()}, nil
		}
	}
	v, loaded, err := engines.LoadOrNew(key, build)
	if err != nil {
		return nil, fmt.Errorf("cluster: shared state on the storage: %w", err)
	}
	e := v.(*engine)
	if rs, ok := storage.(*storageredis.RedisStorage); ok && loaded {
		// Same Redis and prefix; credentials or TLS settings may have
		// changed with this configuration.
		if err := e.store.(*redisStore).adopt(rs.GetClient(), redisSettings(rs)); err != nil {
			_, _ = engines.Delete(key)
			return nil, fmt.Errorf("cluster: shared state on the storage: %w", err)
		}
	}
	s := &State{e: e}
	// caddy.Context.OnCancel appends to this copy of the context, whose
	// functions Caddy never calls: follow the context itself.
	context.AfterFunc(ctx, func() {
		s.close()
		_, _ = engines.Delete(key)
	})
	return s, nil
}

func (s *State) close() {
	s.mu.Lock()
	subs := s.subs
	s.subs, s.closed = nil, true
	s.mu.Unlock()
	for _, sub := range subs {
		s.e.hub.unsubscribe(sub)
	}
}

// Shared tells whether the state is shared with other gateways (on Redis)
// or kept in this process.
func (s *State) Shared() bool { return s.e.store.shared() }

// Claim records that the organisation sent the request id, for window. It
// answers fresh when no instance had recorded it within the window, false
// for a replay. On Redis it is one SET NX PX, one round trip; claims made at
// the same moment share a pipeline. It answers within Timing.Op or fails
// with ErrUnavailable, never fresh without Redis having said so.
func (s *State) Claim(ctx context.Context, orgID string, requestID uuid.UUID, window time.Duration) (fresh bool, err error) {
	if window < time.Millisecond {
		return false, fmt.Errorf("cluster: replay window %v is shorter than 1ms", window)
	}
	return s.e.store.claim(ctx, orgID, requestID, window)
}

// Acquire takes one of limit connection slots of the partner, counted over
// all instances. ok is false when all are taken. The slot is held until
// release is called (release is idempotent and never blocks longer than
// Timing.Op); meanwhile the engine renews it, so that it outlives neither
// its session nor, by more than the lease TTL, a gateway that dies.
func (s *State) Acquire(ctx context.Context, partnerID string, limit int) (release func(), ok bool, err error) {
	if limit <= 0 {
		return nil, false, fmt.Errorf("cluster: connection limit %d is not positive", limit)
	}
	return s.e.store.acquire(ctx, partnerID, limit)
}

// Leases counts the partner's live connection leases over all instances.
func (s *State) Leases(ctx context.Context, partnerID string) (int, error) {
	return s.e.store.leases(ctx, partnerID)
}

// IncrFailure records one failure for key and returns the number of
// failures within the last window, this one included, over all instances
// (at most MaxTrackedFailures).
func (s *State) IncrFailure(ctx context.Context, key FailureKey, window time.Duration) (count int, err error) {
	if err := key.validate(); err != nil {
		return 0, err
	}
	if window < time.Millisecond {
		return 0, fmt.Errorf("cluster: failure window %v is shorter than 1ms", window)
	}
	return s.e.store.incrFailure(ctx, key, window)
}

// Failures returns the number of failures recorded for key within the last
// window, over all instances, without recording one.
func (s *State) Failures(ctx context.Context, key FailureKey, window time.Duration) (int, error) {
	if err := key.validate(); err != nil {
		return 0, err
	}
	if window < time.Millisecond {
		return 0, fmt.Errorf("cluster: failure window %v is shorter than 1ms", window)
	}
	return s.e.store.failures(ctx, key, window)
}

// ResetFailures forgets the failures recorded for key.
func (s *State) ResetFailures(ctx context.Context, key FailureKey) error {
	if err := key.validate(); err != nil {
		return err
	}
	return s.e.store.resetFailures(ctx, key)
}

// Publish notifies every subscriber of topic, on this instance at once and
// on the others through Redis. Local subscribers are served even when Redis
// is unavailable; the error then says the others were not told.
func (s *State) Publish(ctx context.Context, topic, payload string) error {
	if err := validTopic(topic); err != nil {
		return err
	}
	s.e.hub.deliver(Event{Topic: topic, Payload: payload})
	return s.e.store.publish(ctx, topic, payload)
}

// Subscribe calls fn with every notification on topic, from this instance
// and the others, and with Resync events when notifications may have been
// missed. fn runs on the engine's receiving goroutine or the publisher's,
// possibly concurrently: it must be quick (drop a cache entry) and safe for
// concurrent use. The subscription ends with unsubscribe or when the
// configuration of this State is unloaded.
func (s *State) Subscribe(topic string, fn func(Event)) (unsubscribe func(), err error) {
	if err := validTopic(topic); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("cluster: subscribing on a State whose configuration is unloaded")
	}
	sub := s.e.hub.subscribe(topic, fn)
	s.subs = append(s.subs, sub)
	return func() {
		s.mu.Lock()
		for i, x := range s.subs {
			if x == sub {
				s.subs = append(s.subs[:i], s.subs[i+1:]...)
				break
			}
		}
		s.mu.Unlock()
		s.e.hub.unsubscribe(sub)
	}, nil
}

func validTopic(topic string) error {
	if topic == "" || strings.ContainsAny(topic, "\x00\r\n") {
		return fmt.Errorf("cluster: invalid topic %q", topic)
	}
	return nil
}

// unavailable wraps an error of the shared state.
func unavailable(op string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
}

package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// The scripts read the Redis server's clock (TIME), so that the gateways'
// clocks do not matter, and touch one key each, so that they run on Redis
// Cluster. replicate_commands is needed before a write that follows TIME on
// Redis before 5; later versions always replicate effects.
const scriptClock = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// acquireScript takes a lease in the session set KEYS[1] for member ARGV[1]
// when fewer than ARGV[2] unexpired leases exist (or the member already has
// one), for ARGV[3] ms. It answers 1 when taken, 0 when full.
var acquireScript = redis.NewScript(scriptClock + `
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
	return 0
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
`)

// renewScript extends the leases ARGV[3…] of KEYS[1] to ARGV[1] ms from now.
// With ARGV[2] = "xx" it extends only the leases still there and answers
// the missing ones (expired while Redis was away, or released meanwhile);
// with "force" it puts them all back.
var renewScript = redis.NewScript(scriptClock + `
local ttl = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local missing = {}
local kept = 0
for i = 3, #ARGV do
	if ARGV[2] == 'force' or redis.call('ZSCORE', KEYS[1], ARGV[i]) then
		redis.call('ZADD', KEYS[1], now + ttl, ARGV[i])
		kept = kept + 1
	else
		missing[#missing + 1] = ARGV[i]
	end
end
if kept > 0 then
	redis.call('PEXPIRE', KEYS[1], ttl)
end
return missing
`)

// countLeasesScript counts the unexpired leases of KEYS[1].
var countLeasesScript = redis.NewScript(scriptClock + `
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
`)

// failScript records failure ARGV[2] in KEYS[1] and answers the failures of
// the last ARGV[1] ms, keeping at most ARGV[3].
var failScript = redis.NewScript(scriptClock + `
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZADD', KEYS[1], now, ARGV[2])
local n = redis.call('ZCARD', KEYS[1])
local cap = tonumber(ARGV[3])
if n > cap then
	redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - cap - 1)
	n = cap
end
redis.call('PEXPIRE', KEYS[1], window)
return n
`)

// countFailuresScript counts the failures of KEYS[1] in the last ARGV[1] ms.
var countFailuresScript = redis.NewScript(scriptClock + `
return redis.call('ZCOUNT', KEYS[1], '(' .. (now - tonumber(ARGV[1])), '+inf')
`)

// go-redis prints every failed dial and reconnection itself, which would
// be one line per operation during an outage; the engine reports an outage
// once per burst, so go-redis's lines go to Caddy's log at debug level. Set
// at initialisation: go-redis reads its logger without synchronisation, so
// it must be set before any client (the storage's included) exists.
func init() { redis.SetLogger(redisLog{}) }

type redisLog struct{}

func (redisLog) Printf(_ context.Context, format string, v ...any) {
	caddy.Log().Named("redis").Debug(fmt.Sprintf(format, v...))
}

// envelope is a notification on the events channel.
type envelope struct {
	// From is the publishing engine, which has served its own subscribers
	// already and skips its echo.
	From    string `json:"from"`
	Topic   string `json:"topic"`
	Payload string `json:"payload"`
}

// claimPipelines is how many pipelines of replay claims may be on the wire
// at once; claims that arrive meanwhile wait for the next pipeline.
var claimPipelines = 1

// errClosed is the cause when a State outlives the last configuration
// that used its storage.
var errClosed = errors.New("the shared state of this storage was shut down")

type leaseRef struct{ key, member string }

// clientRef is the client in use and the digest of the settings it was
// made from.
type clientRef struct {
	c           redis.UniversalClient
	fingerprint string
}

// redisStore is the shared state on Redis.
type redisStore struct {
	keys     keyspace
	timing   Timing
	hub      *hub
	health   *health
	log      *zap.Logger
	instance string
	seq      atomic.Uint64
	cur      atomic.Pointer[clientRef]
	claims   *claimBatcher
	sentinel *sentinelSettings

	mu      sync.Mutex
	held    map[string]map[string]struct{} // session key -> lease members held here
	pending map[leaseRef]time.Time         // releases to retry, until the lease would expire
	closed  bool

	// ps is the subscription, closed by close to end a blocked receive.
	psMu sync.Mutex
	ps   *redis.PubSub

	bg     context.Context
	stop   context.CancelFunc
	wg     sync.WaitGroup
	renewC chan struct{} // asks the renewer for a round now (tests)
}

// newRedisStore makes the engine's own client from the storage's client src
// (see the package documentation for why) and starts the lease renewer and
// the subscriber.
func newRedisStore(src any, sentinel *sentinelSettings, settings string, prefix string, t Timing, h *hub, log *zap.Logger) (*redisStore, error) {
	c, err := deriveClient(src, sentinel, t)
	if err != nil {
		return nil, err
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	r := &redisStore{
		keys:     newKeyspace(prefix),
		timing:   t,
		hub:      h,
		health:   &health{log: log},
		log:      log,
		instance: hex.EncodeToString(id[:]),
		held:     make(map[string]map[string]struct{}),
		pending:  make(map[leaseRef]time.Time),
		renewC:   make(chan struct{}),
	}
	r.sentinel = sentinel
	r.claims = &claimBatcher{r: r, maxInflight: claimPipelines, maxBatch: 256}
	r.cur.Store(&clientRef{c: c, fingerprint: settings})
	r.bg, r.stop = context.WithCancel(context.Background())
	r.wg.Add(2)
	go r.renewLoop()
	go r.receiveLoop()
	return r, nil
}

// sentinelSettings are what a Sentinel (failover) client needs beyond the
// options of the cluster client the storage builds for that mode.
type sentinelSettings struct {
	masterName       string
	sentinelAddrs    []string
	sentinelPassword string
	db               int
}

// deriveClient clones the options of the storage's client with the
// engine's bounds: short dial, read, write and pool waits, the caller's
// context deadline honoured, and no retry, so that every operation is one
// attempt of at most Timing.Op.
func deriveClient(src any, sentinel *sentinelSettings, t Timing) (redis.UniversalClient, error) {
	switch c := src.(type) {
	case *redis.Client:
		o := *c.Options()
		o.Dialer = nil                    // the default dialer reads the options it was made for
		o.PushNotificationProcessor = nil // holds the storage client's handlers
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout = t.Dial, t.Op, t.Op, t.Op
		o.ContextTimeoutEnabled = true
		o.MaxRetries, o.DialerRetries = -1, 1
		o.ClientName = "bankedge"
		return redis.NewClient(&o), nil
	case *redis.ClusterClient:
		co := c.Options()
		if sentinel != nil {
			// Sentinel mode: the storage's client is a cluster client whose
			// slots come from the sentinels, and which the sentinels tell
			// about a failover. A clone would not be told, so make a
			// failover client of our own.
			return redis.NewFailoverClusterClient(&redis.FailoverOptions{
				MasterName:       sentinel.masterName,
				SentinelAddrs:    sentinel.sentinelAddrs,
				SentinelPassword: sentinel.sentinelPassword,
				DB:               sentinel.db,
				Username:         co.Username,
				Password:         co.Password,
				TLSConfig:        co.TLSConfig,
				Protocol:         co.Protocol,
				RouteByLatency:   co.RouteByLatency,
				RouteRandomly:    co.RouteRandomly,
				PoolSize:         co.PoolSize,
				ClientName:       "bankedge",
				DialTimeout:      t.Dial, ReadTimeout: t.Op, WriteTimeout: t.Op, PoolTimeout: t.Op,
				ContextTimeoutEnabled: true,
				MaxRetries:            -1, DialerRetries: 1,
			}), nil
		}
		o := *co
		o.Dialer = nil
		o.PushNotificationProcessor = nil
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout = t.Dial, t.Op, t.Op, t.Op
		o.ContextTimeoutEnabled = true
		o.MaxRetries, o.DialerRetries = -1, 1
		o.ClientName = "bankedge"
		return redis.NewClusterClient(&o), nil
	case nil:
		return nil, errors.New("the Redis storage has no client (not provisioned)")
	default:
		return nil, fmt.Errorf("unsupported Redis client %T from the Redis storage", src)
	}
}

// adopt switches to a client made from src when its settings differ from
// the current ones (a reload changed credentials or TLS). The old client is
// closed once the operations under way on it are over.
func (r *redisStore) adopt(src any, settings string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.cur.Load()
	if old.fingerprint == settings {
		return nil
	}
	c, err := deriveClient(src, r.sentinel, r.timing)
	if err != nil {
		return err
	}
	r.cur.Store(&clientRef{c: c, fingerprint: settings})
	time.AfterFunc(2*r.timing.Op, func() { _ = old.c.Close() })
	return nil
}

func (r *redisStore) client() redis.UniversalClient { return r.cur.Load().c }

func (*redisStore) shared() bool { return true }

// newID returns a lease or failure id unique across instances.
func (r *redisStore) newID() string {
	return r.instance + ":" + strconv.FormatUint(r.seq.Add(1), 10)
}

// done turns the outcome of an operation into the primitive's error and
// keeps the health state: a failure starts or extends a burst, a success
// of an operation that started during a burst ends it. The caller giving up
// says nothing about Redis.
func (r *redisStore) done(op string, caller context.Context, epoch uint64, err error) error {
	if err == nil || errors.Is(err, redis.Nil) {
		r.health.succeeded(epoch)
		return nil
	}
	if caller.Err() != nil {
		return unavailable(op, caller.Err())
	}
	if cc, ok := r.client().(*redis.ClusterClient); ok {
		// A node may have died or a failover happened: ask for the slot
		// map again (at most one reload runs at a time) rather than wait
		// for go-redis's periodic one.
		cc.ReloadState(r.bg)
	}
	r.health.failed(op, epoch, err)
	return unavailable(op, err)
}

func (r *redisStore) claim(ctx context.Context, orgID string, id uuid.UUID, window time.Duration) (bool, error) {
	return r.claims.claim(ctx, r.keys.replay(orgID, id), window)
}

func (r *redisStore) acquire(ctx context.Context, partnerID string, limit int) (func(), bool, error) {
	key := r.keys.sessions(partnerID)
	member := r.newID()
	n, err := r.evalInt(ctx, "connection lease", acquireScript, key, member, limit, r.timing.LeaseTTL.Milliseconds())
	if err != nil {
		return nil, false, err
	}
	if n == 0 {
		return nil, false, nil
	}
	// Held from now on, so renewed; a renewal round that ran between the
	// script and this line missed it once, well within the TTL.
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, false, unavailable("connection lease", errClosed)
	}
	if r.held[key] == nil {
		r.held[key] = make(map[string]struct{})
	}
	r.held[key][member] = struct{}{}
	r.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { r.release(key, member) }) }, true, nil
}

// release gives a lease back at once; when Redis does not take it, the
// renewer retries until the lease would have expired anyway.
func (r *redisStore) release(key, member string) {
	r.mu.Lock()
	if r.closed {
		// close gave every held lease back.
		r.mu.Unlock()
		return
	}
	delete(r.held[key], member)
	if len(r.held[key]) == 0 {
		delete(r.held, key)
	}
	r.mu.Unlock()
	epoch := r.health.begin()
	ctx, cancel := context.WithTimeout(r.bg, r.timing.Op)
	err := r.client().ZRem(ctx, key, member).Err()
	cancel()
	if r.done("connection lease release", r.bg, epoch, err) != nil {
		r.mu.Lock()
		if !r.closed {
			r.pending[leaseRef{key, member}] = time.Now().Add(r.timing.LeaseTTL)
		}
		r.mu.Unlock()
	}
}

func (r *redisStore) leases(ctx context.Context, partnerID string) (int, error) {
	return r.evalInt(ctx, "connection lease count", countLeasesScript, r.keys.sessions(partnerID))
}

func (r *redisStore) incrFailure(ctx context.Context, k FailureKey, window time.Duration) (int, error) {
	return r.evalInt(ctx, "failure count", failScript, r.keys.failures(k),
		window.Milliseconds(), r.newID(), MaxTrackedFailures)
}

func (r *redisStore) failures(ctx context.Context, k FailureKey, window time.Duration) (int, error) {
	return r.evalInt(ctx, "failure count", countFailuresScript, r.keys.failures(k), window.Milliseconds())
}

// evalInt runs a script on one key within Timing.Op and answers its
// integer result.
func (r *redisStore) evalInt(ctx context.Context, op string, script *redis.Script, key string, args ...any) (int, error) {
	epoch := r.health.begin()
	octx, cancel := context.WithTimeout(ctx, r.timing.Op)
	n, err := script.Run(octx, r.client(), []string{key}, args...).Int()
	cancel()
	if err := r.done(op, ctx, epoch, err); err != nil {
		return 0, err
	}
	return n, nil
}

func (r *redisStore) resetFailures(ctx context.Context, k FailureKey) error {
	epoch := r.health.begin()
	octx, cancel := context.WithTimeout(ctx, r.timing.Op)
	err := r.client().Del(octx, r.keys.failures(k)).Err()
	cancel()
	return r.done("failure reset", ctx, epoch, err)
}

func (r *redisStore) publish(ctx context.Context, topic, payload string) error {
	msg, err := json.Marshal(envelope{From: r.instance, Topic: topic, Payload: payload})
	if err != nil {
		return err
	}
	epoch := r.health.begin()
	octx, cancel := context.WithTimeout(ctx, r.timing.Op)
	err = r.client().Publish(octx, r.keys.events(), msg).Err()
	cancel()
	return r.done("change notification", ctx, epoch, err)
}

// renewLoop renews the leases held here every LeaseRenew, in one pipeline,
// and retries releases that did not reach Redis.
func (r *redisStore) renewLoop() {
	defer r.wg.Done()
	tick := time.NewTicker(r.timing.LeaseRenew)
	defer tick.Stop()
	for {
		select {
		case <-r.bg.Done():
			return
		case <-tick.C:
		case <-r.renewC:
		}
		r.renew()
	}
}

func (r *redisStore) renew() {
	now := time.Now()
	r.mu.Lock()
	held := make(map[string][]string, len(r.held))
	for key, members := range r.held {
		for m := range members {
			held[key] = append(held[key], m)
		}
	}
	var pending []leaseRef
	for ref, until := range r.pending {
		if now.After(until) {
			delete(r.pending, ref) // expired in Redis by now
			continue
		}
		pending = append(pending, ref)
	}
	r.mu.Unlock()
	if len(held) == 0 && len(pending) == 0 {
		return
	}

	ttl := r.timing.LeaseTTL.Milliseconds()
	epoch := r.health.begin()
	ctx, cancel := context.WithTimeout(r.bg, r.timing.Op)
	defer cancel()
	c := r.client()
	pipe := c.Pipeline()
	renewals := make(map[string]*redis.Cmd, len(held))
	for key, members := range held {
		args := make([]any, 0, 2+len(members))
		args = append(args, ttl, "xx")
		for _, m := range members {
			args = append(args, m)
		}
		// EVAL rather than EVALSHA: the script cache is empty after a
		// Redis restart, and a renewal is rare enough to send the text.
		renewals[key] = renewScript.Eval(ctx, pipe, []string{key}, args...)
	}
	releases := make(map[leaseRef]*redis.IntCmd, len(pending))
	for _, ref := range pending {
		releases[ref] = pipe.ZRem(ctx, ref.key, ref.member)
	}
	_, err := pipe.Exec(ctx)
	if err = r.done("connection lease renewal", r.bg, epoch, err); err != nil {
		return
	}

	r.mu.Lock()
	for ref := range releases {
		delete(r.pending, ref)
	}
	// Leases that expired while Redis was away, for sessions that still
	// live: put them back so that the count tells the truth.
	restore := make(map[string][]any)
	for key, cmd := range renewals {
		missing, _ := cmd.StringSlice()
		for _, m := range missing {
			if _, ok := r.held[key][m]; ok {
				restore[key] = append(restore[key], m)
			}
		}
	}
	r.mu.Unlock()
	if len(restore) == 0 {
		return
	}
	pipe = c.Pipeline()
	for key, members := range restore {
		renewScript.Eval(ctx, pipe, []string{key}, append([]any{ttl, "force"}, members...)...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		_ = r.done("connection lease renewal", r.bg, r.health.begin(), err)
		return
	}
	r.log.Warn("connection leases had expired while Redis was unavailable; restored for the sessions still open",
		zap.Int("partners", len(restore)))
}

// receiveLoop keeps one subscription to the events channel and hands its
// messages to the hub. When the subscription is lost and restored, the
// subscribers get a Resync event: what was published meanwhile is lost.
func (r *redisStore) receiveLoop() {
	defer r.wg.Done()
	var (
		ps          *redis.PubSub
		via         redis.UniversalClient
		subscribed  bool // a first confirmation was seen
		pingPending bool
		backoff     = 10 * time.Millisecond
	)
	setPS := func(p *redis.PubSub) {
		r.psMu.Lock()
		if r.ps != nil {
			_ = r.ps.Close()
		}
		r.ps = p
		r.psMu.Unlock()
	}
	defer setPS(nil)
	sleep := func() bool {
		select {
		case <-r.bg.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, r.timing.RetryMax)
		return true
	}
	for r.bg.Err() == nil {
		if c := r.client(); ps == nil || c != via {
			// First subscription, or the client changed in a reload.
			via = c
			ps = c.Subscribe(r.bg, r.keys.events())
			setPS(ps)
			pingPending = false
		}
		epoch := r.health.begin()
		msg, err := ps.ReceiveTimeout(r.bg, r.timing.PubSubPing)
		if err != nil {
			if r.bg.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if pingPending {
					// Not even the ping came back: the connection is
					// dead without having been closed. Start afresh.
					r.health.failed("change subscription", epoch, errors.New("no answer to ping"))
					ps = nil
					continue
				}
				if err := ps.Ping(r.bg); err != nil {
					r.health.failed("change subscription", epoch, err)
					if !sleep() {
						return
					}
					continue
				}
				pingPending = true
				continue
			}
			// go-redis dials again and subscribes anew on the next
			// receive; the confirmation will trigger the resync.
			r.health.failed("change subscription", epoch, err)
			if !sleep() {
				return
			}
			continue
		}
		pingPending = false
		backoff = 10 * time.Millisecond
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind != "subscribe" {
				continue
			}
			if subscribed {
				r.hub.resync()
			}
			subscribed = true
		case *redis.Message:
			var env envelope
			if err := json.Unmarshal([]byte(m.Payload), &env); err != nil || env.Topic == "" {
				r.log.Warn("ignoring a malformed change notification", zap.String("channel", m.Channel))
				continue
			}
			if env.From == r.instance {
				continue
			}
			r.hub.deliver(Event{Topic: env.Topic, Payload: env.Payload})
		}
	}
}

// close stops the background work, gives back the leases still held (the
// process is stopping, or this storage is no longer used) and closes the
// client.
func (r *redisStore) close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	r.mu.Unlock()
	r.stop()
	r.psMu.Lock()
	if r.ps != nil {
		_ = r.ps.Close()
	}
	r.psMu.Unlock()
	r.wg.Wait()

	r.mu.Lock()
	held := r.held
	r.held = nil
	r.mu.Unlock()
	if len(held) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), r.timing.Op)
		pipe := r.client().Pipeline()
		for key, members := range held {
			for m := range members {
				pipe.ZRem(ctx, key, m)
			}
		}
		_, _ = pipe.Exec(ctx)
		cancel()
	}
	_ = r.client().Close()
}

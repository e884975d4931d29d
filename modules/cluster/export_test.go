package cluster

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// NewRedisInstance returns a State on the Redis at addr with its own engine,
// as another gateway process would have: tests run several of them in one
// process. The engine is closed when t ends.
func NewRedisInstance(t testing.TB, addr, prefix string, log *zap.Logger) *State {
	t.Helper()
	src := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = src.Close() })
	h := newHub()
	st, err := newRedisStore(src, nil, "test", prefix, *currentTiming.Load(), h, log)
	if err != nil {
		t.Fatal(err)
	}
	e := &engine{store: st, hub: h}
	t.Cleanup(func() { _ = e.Destruct() })
	return &State{e: e}
}

// NewLocalInstance returns a State with its own in-process engine whose
// clock is now.
func NewLocalInstance(now func() time.Time) *State {
	l := newLocalStore()
	l.now = now
	return &State{e: &engine{store: l, hub: newHub()}}
}

// Crash stops the engine's background work without giving its leases back,
// as SIGKILL would.
func (s *State) Crash() {
	r := s.e.store.(*redisStore)
	r.mu.Lock()
	r.closed = true
	r.held = nil
	r.mu.Unlock()
	r.stop()
	r.wg.Wait()
}

// RenewNow runs a lease renewal round and waits for it to start.
func (s *State) RenewNow() { s.e.store.(*redisStore).renewC <- struct{}{} }

// SameEngine tells whether two States share one engine.
func SameEngine(a, b *State) bool { return a.e == b.e }

// Engines counts the engines alive in the usage pool.
func Engines() int {
	n := 0
	engines.Range(func(any, any) bool { n++; return true })
	return n
}

// PipelinedClaims counts the claims this State's engine sent in pipelines
// of more than one.
func (s *State) PipelinedClaims() uint64 { return s.e.store.(*redisStore).claims.pipelined.Load() }

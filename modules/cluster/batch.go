package cluster

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// claimBatcher sends concurrent replay claims to Redis together. Each
// claim is still one SET NX PX answered in one round trip, but claims that
// arrive while others are on the wire go in one pipeline: one write and one
// read system call for many requests, which is most of the CPU a round trip
// costs the gateway. A claim that finds fewer than maxInflight pipelines on
// the wire sends at once, from its own goroutine, so a lone request waits
// for nothing and pays no hand-off.
type claimBatcher struct {
	r           *redisStore
	maxInflight int
	maxBatch    int

	mu       sync.Mutex
	queue    []*claimCall
	inflight int

	// pipelined counts the claims sent in pipelines of more than one, for
	// tests.
	pipelined atomic.Uint64
}

type claimCall struct {
	key    string
	window time.Duration
	fresh  bool
	err    error
	done   chan struct{}
}

func (b *claimBatcher) claim(ctx context.Context, key string, window time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, unavailable("replay claim", err)
	}
	c := &claimCall{key: key, window: window, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, c)
	if b.inflight < b.maxInflight {
		// Send now: the pipeline is bounded by Timing.Op.
		b.inflight++
		batch := b.take()
		b.mu.Unlock()
		b.send(batch)
		b.next()
		return c.fresh, c.err
	}
	b.mu.Unlock()
	// Queued behind a pipeline on the wire: wait no longer than Timing.Op
	// in all, whatever happens to that pipeline.
	timer := time.NewTimer(b.r.timing.Op)
	defer timer.Stop()
	select {
	case <-c.done:
		return c.fresh, c.err
	case <-timer.C:
		// The claim may still reach Redis; the request id then counts as
		// used, which is the safe side.
		return false, b.r.done("replay claim", b.r.bg, b.r.health.begin(), errQueueTimeout)
	case <-ctx.Done():
		return false, unavailable("replay claim", ctx.Err())
	}
}

// errQueueTimeout is the cause when a claim waited Timing.Op behind a
// pipeline that did not come back.
var errQueueTimeout = errors.New("no answer from Redis in time")

// take removes up to maxBatch queued claims. The caller holds mu.
func (b *claimBatcher) take() []*claimCall {
	n := min(len(b.queue), b.maxBatch)
	batch := make([]*claimCall, n)
	copy(batch, b.queue)
	rest := copy(b.queue, b.queue[n:])
	clear(b.queue[rest:])
	b.queue = b.queue[:rest]
	return batch
}

// next hands the claims queued meanwhile to a new goroutine, so that the
// caller that sent the last pipeline returns with its own answer now; or
// frees the pipeline slot.
func (b *claimBatcher) next() {
	b.mu.Lock()
	if len(b.queue) == 0 {
		b.inflight--
		b.mu.Unlock()
		return
	}
	batch := b.take()
	b.mu.Unlock()
	go func() {
		b.send(batch)
		b.next()
	}()
}

// send runs one batch within Timing.Op and answers every claim in it. It
// does not use a caller's context: the batch serves several callers, each
// of which stops waiting when its own context ends.
func (b *claimBatcher) send(batch []*claimCall) {
	r := b.r
	epoch := r.health.begin()
	ctx, cancel := context.WithTimeout(r.bg, r.timing.Op)
	defer cancel()
	c := r.client()
	if len(batch) == 1 {
		one := batch[0]
		var err error
		one.fresh, err = c.SetNX(ctx, one.key, "1", one.window).Result()
		one.err = r.done("replay claim", r.bg, epoch, err)
		close(one.done)
		return
	}
	b.pipelined.Add(uint64(len(batch)))
	pipe := c.Pipeline()
	cmds := make([]*redis.BoolCmd, len(batch))
	for i, call := range batch {
		cmds[i] = pipe.SetNX(ctx, call.key, "1", call.window)
	}
	_, err := pipe.Exec(ctx)
	// Exec reports the first failed command; after a network error the
	// replies that did arrive are not trusted either.
	failure := r.done("replay claim", r.bg, epoch, err)
	for i, call := range batch {
		switch {
		case failure != nil:
			call.err = failure
		case cmds[i].Err() != nil:
			call.err = unavailable("replay claim", cmds[i].Err())
		default:
			call.fresh = cmds[i].Val()
		}
		close(call.done)
	}
}

package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"
)

// localStore is the in-process shared state, for one gateway: the same
// semantics as on Redis, without the network.
type localStore struct {
	// orgs maps an organisation id to its *orgReplays: each TPP has its
	// own entries, so no TPP can push out another's.
	orgs sync.Map

	mu        sync.Mutex
	sessions  map[string]int
	fails     map[string]*failureLog
	lastSweep time.Time

	// now is time.Now, replaced in tests.
	now func() time.Time
}

type orgReplays struct {
	mu   sync.Mutex
	seen map[uuid.UUID]int64 // request id -> expiry (UnixNano)
	// queue holds the ids in claim order, so that expired ones are found
	// at its head without scanning the map.
	queue []replayEntry
	head  int
}

type replayEntry struct {
	id      uuid.UUID
	expires int64
}

type failureLog struct {
	times  []int64 // UnixNano, oldest first
	window time.Duration
}

func newLocalStore() *localStore {
	return &localStore{
		sessions: make(map[string]int),
		fails:    make(map[string]*failureLog),
		now:      time.Now,
	}
}

func (*localStore) shared() bool { return false }

func (l *localStore) claim(_ context.Context, orgID string, id uuid.UUID, window time.Duration) (bool, error) {
	v, ok := l.orgs.Load(orgID)
	if !ok {
		v, _ = l.orgs.LoadOrStore(orgID, &orgReplays{seen: make(map[uuid.UUID]int64)})
	}
	o := v.(*orgReplays)
	now := l.now().UnixNano()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.prune(now)
	if exp, ok := o.seen[id]; ok && exp > now {
		return false, nil
	}
	exp := now + int64(window)
	o.seen[id] = exp
	o.queue = append(o.queue, replayEntry{id: id, expires: exp})
	return true, nil
}

// prune drops expired entries from the head of the queue. Windows may
// differ between calls, so an entry at the head that has not expired can
// hide expired ones behind it; those go when they reach the head, and a
// lookup checks the expiry anyway.
func (o *orgReplays) prune(now int64) {
	for o.head < len(o.queue) && o.queue[o.head].expires <= now {
		e := o.queue[o.head]
		if o.seen[e.id] == e.expires {
			delete(o.seen, e.id)
		}
		o.head++
	}
	// Reuse the slice once its dead head outweighs the live part.
	if o.head > 1024 && o.head*2 > len(o.queue) {
		n := copy(o.queue, o.queue[o.head:])
		clear(o.queue[n:])
		o.queue = o.queue[:n]
		o.head = 0
	}
}

func (l *localStore) acquire(_ context.Context, partnerID string, limit int) (func(), bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sessions[partnerID] >= limit {
		return nil, false, nil
	}
	l.sessions[partnerID]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.sessions[partnerID]--; l.sessions[partnerID] <= 0 {
				delete(l.sessions, partnerID)
			}
		})
	}, true, nil
}

func (l *localStore) leases(_ context.Context, partnerID string) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sessions[partnerID], nil
}

func failureMapKey(k FailureKey) string { return k.Scope + "\x00" + k.Subject }

func (l *localStore) incrFailure(_ context.Context, k FailureKey, window time.Duration) (int, error) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	fl := l.fails[failureMapKey(k)]
	if fl == nil {
		fl = &failureLog{}
		l.fails[failureMapKey(k)] = fl
	}
	fl.window = window
	fl.prune(now.UnixNano() - int64(window))
	fl.times = append(fl.times, now.UnixNano())
	if over := len(fl.times) - MaxTrackedFailures; over > 0 {
		fl.times = append(fl.times[:0], fl.times[over:]...)
	}
	return len(fl.times), nil
}

func (l *localStore) failures(_ context.Context, k FailureKey, window time.Duration) (int, error) {
	since := l.now().UnixNano() - int64(window)
	l.mu.Lock()
	defer l.mu.Unlock()
	fl := l.fails[failureMapKey(k)]
	if fl == nil {
		return 0, nil
	}
	n := 0
	for _, t := range fl.times {
		if t > since {
			n++
		}
	}
	return n, nil
}

func (l *localStore) resetFailures(_ context.Context, k FailureKey) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, failureMapKey(k))
	return nil
}

// prune drops the failures at or before since.
func (fl *failureLog) prune(since int64) {
	i := 0
	for i < len(fl.times) && fl.times[i] <= since {
		i++
	}
	if i > 0 {
		fl.times = append(fl.times[:0], fl.times[i:]...)
	}
}

// sweep drops, once a minute, the counters whose failures all left their
// window, so that failures from many addresses do not pile up.
func (l *localStore) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < time.Minute {
		return
	}
	l.lastSweep = now
	for k, fl := range l.fails {
		if len(fl.times) == 0 || fl.times[len(fl.times)-1] <= now.UnixNano()-int64(fl.window) {
			delete(l.fails, k)
		}
	}
}

// publish has no other instance to tell.
func (*localStore) publish(context.Context, string, string) error { return nil }

func (*localStore) close() {}

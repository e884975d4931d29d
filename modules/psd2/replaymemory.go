package psd2

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"
)

// memoryReplayStore holds the live request ids of every organisation, each
// organisation apart with its own quota, and writes every claim to a
// journal before answering, so that it survives restarts.
type memoryReplayStore struct {
	now    func() time.Time
	logger *zap.Logger

	mu      sync.Mutex
	orgs    map[string]*orgReplays
	quota   int
	journal *replayJournal // nil keeps ids in memory only (tests)

	stop chan struct{}
	done chan struct{}
}

// orgReplays are one organisation's live ids, and the same ids in claim
// order so that the expired ones can be dropped from the front.
type orgReplays struct {
	ids  map[uuid.UUID]int64 // expiry, Unix nanoseconds
	fifo []replayEntry
	head int
}

type replayEntry struct {
	id      uuid.UUID
	expires int64
}

// replaySweepInterval is how often expired ids of organisations that no
// longer send are dropped, and the journal compacted.
const replaySweepInterval = time.Minute

// openMemoryReplayStore opens (or creates) journal, loads the ids it holds
// that have not expired, and starts the sweeper.
func openMemoryReplayStore(journal string, quota int, logger *zap.Logger) (*memoryReplayStore, error) {
	s := newMemoryReplayStore(quota, logger)
	j, entries, err := openReplayJournal(journal, s.now(), logger)
	if err != nil {
		return nil, err
	}
	s.journal = j
	for _, e := range entries {
		s.org(e.org).add(replayEntry{id: e.id, expires: e.expires})
	}
	if len(entries) > 0 {
		logger.Info("replay window restored from the journal", zap.String("journal", journal), zap.Int("request_ids", len(entries)))
	}
	s.startSweeper(replaySweepInterval)
	return s, nil
}

func newMemoryReplayStore(quota int, logger *zap.Logger) *memoryReplayStore {
	return &memoryReplayStore{
		now:    time.Now,
		logger: logger,
		orgs:   make(map[string]*orgReplays),
		quota:  quota,
	}
}

// setQuota sets the per-organisation quota.
func (s *memoryReplayStore) setQuota(quota int) {
	s.mu.Lock()
	s.quota = quota
	s.mu.Unlock()
}

// Claim implements ReplayStore.
func (s *memoryReplayStore) Claim(_ context.Context, orgID string, id uuid.UUID, window time.Duration) (bool, error) {
	now := s.now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.org(orgID)
	o.prune(now)
	if exp, ok := o.ids[id]; ok && exp > now {
		return false, nil
	}
	if len(o.ids) >= s.quota {
		return false, &ReplayQuotaError{OrgID: orgID, Quota: s.quota, RetryAfter: time.Duration(o.fifo[o.head].expires - now)}
	}
	e := replayEntry{id: id, expires: now + int64(window)}
	if s.journal != nil {
		if err := s.journal.append(orgID, e); err != nil {
			return false, err
		}
	}
	o.add(e)
	return true, nil
}

// org returns the organisation's entries, making them on first use.
func (s *memoryReplayStore) org(orgID string) *orgReplays {
	o := s.orgs[orgID]
	if o == nil {
		o = &orgReplays{ids: make(map[uuid.UUID]int64)}
		s.orgs[orgID] = o
	}
	return o
}

func (o *orgReplays) add(e replayEntry) {
	o.ids[e.id] = e.expires
	o.fifo = append(o.fifo, e)
}

// prune drops the expired entries at the front. Entries claimed with a
// longer window may hold shorter ones behind them for a while; they still
// count towards the quota until they reach the front, which errs on the
// side of remembering.
func (o *orgReplays) prune(now int64) {
	for o.head < len(o.fifo) && o.fifo[o.head].expires <= now {
		e := o.fifo[o.head]
		if o.ids[e.id] == e.expires {
			delete(o.ids, e.id)
		}
		o.fifo[o.head] = replayEntry{}
		o.head++
	}
	// Reuse the front of the slice once half of it is dead, so that it
	// neither grows for ever nor moves on every request.
	if o.head > 0 && o.head >= len(o.fifo)/2 {
		n := copy(o.fifo, o.fifo[o.head:])
		clear(o.fifo[n:])
		o.fifo, o.head = o.fifo[:n], 0
	}
}

// live calls f with every live entry, oldest first per organisation.
func (s *memoryReplayStore) live(f func(org string, e replayEntry)) {
	for org, o := range s.orgs {
		for _, e := range o.fifo[o.head:] {
			if o.ids[e.id] == e.expires {
				f(org, e)
			}
		}
	}
}

// sweep drops expired entries everywhere, forgets organisations with none,
// and compacts the journal when most of it is dead.
func (s *memoryReplayStore) sweep() {
	now := s.now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	liveCount := 0
	for org, o := range s.orgs {
		o.prune(now)
		if len(o.ids) == 0 {
			delete(s.orgs, org)
			continue
		}
		liveCount += len(o.ids)
	}
	if s.journal != nil && s.journal.wantsCompaction(liveCount) {
		if err := s.journal.rewrite(s.live); err != nil {
			s.logger.Error("compacting the replay journal", zap.Error(err))
		}
	}
}

func (s *memoryReplayStore) startSweeper(every time.Duration) {
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.sweep()
			}
		}
	}()
}

// Destruct implements caddy.Destructor: the last handler using the store
// is gone, so stop sweeping and close the journal.
func (s *memoryReplayStore) Destruct() error {
	if s.stop != nil {
		close(s.stop)
		<-s.done
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.journal == nil {
		return nil
	}
	err := s.journal.close()
	s.journal = nil
	return err
}

package psd2

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/google/uuid"
)

// ReplayCache remembers (organisation, X-Request-ID) pairs for a window.
// The in-memory implementation serves one gateway; a shared store (Redis
// SET NX PX, for example) can implement the same interface for a cluster.
type ReplayCache interface {
	// Remember records the pair until now+window. It returns false when the
	// pair is already recorded and has not expired: a replay.
	Remember(orgID string, requestID uuid.UUID, now time.Time, window time.Duration) bool
}

// replayKey is fixed-size so that the map and ring never allocate per key:
// the request id as bytes and a keyed hash of the organisation id.
type replayKey struct {
	id  uuid.UUID
	org uint64
}

type replayEntry struct {
	key     replayKey
	expires int64
}

// memoryReplayCache is a bounded FIFO of recent request ids. Entries are
// appended in time order, so expired ones are always at the head.
type memoryReplayCache struct {
	seed maphash.Seed

	mu       sync.Mutex
	seen     map[replayKey]int64
	ring     []replayEntry
	head     int // index of the oldest entry
	size     int
	capacity int
	// evictedLive counts entries dropped before they expired because the
	// cache was full; warn reports it so operators can raise the size.
	evictedLive uint64
	warn        func(evicted uint64, capacity int)
}

func newMemoryReplayCache(capacity int) *memoryReplayCache {
	return &memoryReplayCache{
		seed:     maphash.MakeSeed(),
		seen:     make(map[replayKey]int64),
		capacity: capacity,
	}
}

// setWarn sets what is called when entries are dropped before they expire,
// at the 1st, 2nd, 4th, 8th… such drop so that a full cache cannot flood
// the log. The handler provisioned last sets it, so it logs with the current
// configuration.
func (c *memoryReplayCache) setWarn(warn func(evicted uint64, capacity int)) {
	c.mu.Lock()
	c.warn = warn
	c.mu.Unlock()
}

// grow raises the capacity; it never shrinks a cache in use.
func (c *memoryReplayCache) grow(capacity int) {
	c.mu.Lock()
	if capacity > c.capacity {
		c.capacity = capacity
	}
	c.mu.Unlock()
}

func (c *memoryReplayCache) Remember(orgID string, requestID uuid.UUID, now time.Time, window time.Duration) bool {
	k := replayKey{id: requestID, org: maphash.String(c.seed, orgID)}
	nowNano := now.UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.size > 0 && c.ring[c.head].expires <= nowNano {
		c.popOldest()
	}
	if exp, ok := c.seen[k]; ok && exp > nowNano {
		return false
	}
	if c.size >= c.capacity {
		c.popOldest()
		c.evictedLive++
		if c.warn != nil && c.evictedLive&(c.evictedLive-1) == 0 {
			c.warn(c.evictedLive, c.capacity)
		}
	}
	exp := nowNano + int64(window)
	c.seen[k] = exp
	c.push(replayEntry{key: k, expires: exp})
	return true
}

func (c *memoryReplayCache) popOldest() {
	e := c.ring[c.head]
	if c.seen[e.key] == e.expires {
		delete(c.seen, e.key)
	}
	c.ring[c.head] = replayEntry{}
	c.head = (c.head + 1) % len(c.ring)
	c.size--
}

func (c *memoryReplayCache) push(e replayEntry) {
	if c.size == len(c.ring) {
		// Grow the ring geometrically up to capacity, unrolling it so that
		// the oldest entry is at index 0 again.
		n := max(2*len(c.ring), 1024)
		n = min(n, c.capacity)
		if n <= len(c.ring) {
			n = len(c.ring) + 1
		}
		ring := make([]replayEntry, n)
		for i := 0; i < c.size; i++ {
			ring[i] = c.ring[(c.head+i)%len(c.ring)]
		}
		c.ring, c.head = ring, 0
	}
	c.ring[(c.head+c.size)%len(c.ring)] = e
	c.size++
}

// Destruct implements caddy.Destructor for the usage pool.
func (c *memoryReplayCache) Destruct() error { return nil }

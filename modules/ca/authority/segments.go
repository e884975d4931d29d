package authority

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// A segment log is an append-only list of JSON entries kept in storage as
// numbered objects under one directory: dir/0000000000.json,
// dir/0000000001.json, … Each holds at most a fixed number of entries. Only
// the last one, the head, is ever rewritten: an append rewrites the head,
// or starts a new one when the head is full, which is one write either
// way and costs at most one segment, whatever the length of the log.
// Every segment but the head is therefore immutable, so an instance keeps
// the ones it has read in memory (segCache), and a read of the whole log
// costs one List and one Load of the head.
//
// certmagic.Storage has no transactions: appenders hold a storage lock,
// and readers take none (a Store is atomic on file_system, by rename, and
// on Redis, by SET).

// segment is one stored segment of a log.
type segment[E any] struct {
	// Prev is the digest of the previous segment's stored bytes, so that
	// the digest of the head names the whole log (a hash chain). Only the
	// revocation log uses it.
	Prev string `json:"prev,omitempty"`
	// Entries are in the order they were appended.
	Entries []E `json:"entries"`
}

// segName is the storage name of segment n: fixed width, so that names
// sort like numbers.
func segName(n int) string { return fmt.Sprintf("%010d.json", n) }

// listSegments returns the numbers of the segments under dir, ascending.
// Names that are not segments (temporary files) are ignored.
func (a *Authority) listSegments(ctx context.Context, dir string) ([]int, error) {
	keys, err := a.cfg.Storage.List(ctx, dir, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	out := make([]int, 0, len(keys))
	for _, k := range keys {
		num, ok := strings.CutSuffix(path.Base(k), ".json")
		if !ok || len(num) != 10 {
			continue
		}
		n, err := strconv.Atoi(num)
		if err != nil || n < 0 {
			continue
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// loadedSegment is a decoded segment and the digest of its stored bytes.
type loadedSegment[E any] struct {
	seg    segment[E]
	digest string
}

// loadSegment reads segment n of dir. sealed says that a later segment
// exists, so that the segment can no longer change and may be cached.
// A segment that does not exist (listed by a stale directory index, or
// removed by a rebuild meanwhile) is reported with fs.ErrNotExist.
func loadSegment[E any](ctx context.Context, a *Authority, dir string, n int, sealed bool) (loadedSegment[E], error) {
	key := dir + "/" + segName(n)
	if sealed {
		if v, ok := a.segs.get(key); ok {
			if s, ok := v.(loadedSegment[E]); ok {
				return s, nil
			}
		}
	}
	raw, err := a.cfg.Storage.Load(ctx, key)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return loadedSegment[E]{}, err
		}
		return loadedSegment[E]{}, fmt.Errorf("loading %s: %w", key, err)
	}
	var s segment[E]
	if err := json.Unmarshal(raw, &s); err != nil {
		return loadedSegment[E]{}, fmt.Errorf("reading %s: %w", key, err)
	}
	out := loadedSegment[E]{seg: s, digest: digestOf(raw)}
	if sealed {
		a.segs.put(key, out, len(s.Entries))
	}
	return out, nil
}

// logHead is where the next append of a log goes.
type logHead[E any] struct {
	// segs are the segment numbers, ascending, as listed.
	segs []int
	// n is the head's number and head its content; n is -1 for an empty
	// log.
	n    int
	head loadedSegment[E]
}

// loadHead lists dir and reads its head. A listed head that does not
// exist (a crash on Redis between the directory index and the value) is
// skipped: the one before is the head.
func loadHead[E any](ctx context.Context, a *Authority, dir string) (logHead[E], error) {
	segs, err := a.listSegments(ctx, dir)
	if err != nil {
		return logHead[E]{}, err
	}
	for len(segs) > 0 {
		n := segs[len(segs)-1]
		s, err := loadSegment[E](ctx, a, dir, n, false)
		if errors.Is(err, fs.ErrNotExist) {
			segs = segs[:len(segs)-1]
			continue
		}
		if err != nil {
			return logHead[E]{}, err
		}
		return logHead[E]{segs: segs, n: n, head: s}, nil
	}
	return logHead[E]{n: -1}, nil
}

// appendEntries appends entries to the log whose head is h, rewriting the
// head while it has room and starting new segments after it, and returns
// the new head. The caller holds the log's lock. With chain set, each new
// segment records the digest of the one before.
func appendEntries[E any](ctx context.Context, a *Authority, dir string, h logHead[E], max int, chain bool, entries ...E) (logHead[E], error) {
	for len(entries) > 0 {
		var next segment[E]
		n := h.n
		switch {
		case n >= 0 && len(h.head.seg.Entries) < max:
			next = segment[E]{Prev: h.head.seg.Prev, Entries: slices.Clip(h.head.seg.Entries)}
		default:
			n++
			if chain {
				next.Prev = h.head.digest
			}
		}
		room := max - len(next.Entries)
		take := min(room, len(entries))
		next.Entries = append(next.Entries, entries[:take]...)
		entries = entries[take:]
		raw, err := json.Marshal(next)
		if err != nil {
			return h, err
		}
		if err := a.storeKey(ctx, dir+"/"+segName(n), raw); err != nil {
			return h, err
		}
		if n != h.n {
			if h.n >= 0 {
				// The old head is sealed now.
				a.segs.put(dir+"/"+segName(h.n), h.head, len(h.head.seg.Entries))
			}
			h.segs = append(h.segs, n)
		}
		h.n, h.head = n, loadedSegment[E]{seg: next, digest: digestOf(raw)}
	}
	return h, nil
}

// deleteTree removes every key under dir. Storage.Delete of a directory
// removes its content on file_system but not on Redis, hence the walk.
func (a *Authority) deleteTree(ctx context.Context, dir string) error {
	keys, err := a.cfg.Storage.List(ctx, dir, true)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := a.cfg.Storage.Delete(ctx, k); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := a.cfg.Storage.Delete(ctx, dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// segCache keeps decoded sealed segments, least recently used first out,
// bounded by the number of entries they hold.
type segCache struct {
	mu      sync.Mutex
	max     int
	entries int
	order   *list.List // of *segCacheItem, most recent at the front
	items   map[string]*list.Element
}

type segCacheItem struct {
	key  string
	val  any
	size int
}

// defaultSegCacheEntries bounds the cache: about 30 MB of inventory
// summaries, enough to hold the index of 100,000 certificates.
const defaultSegCacheEntries = 100_000

func newSegCache(max int) *segCache {
	return &segCache{max: max, order: list.New(), items: map[string]*list.Element{}}
}

func (c *segCache) get(key string) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*segCacheItem).val, true
}

func (c *segCache) put(key string, val any, size int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		it := e.Value.(*segCacheItem)
		c.entries += size - it.size
		it.val, it.size = val, size
		c.order.MoveToFront(e)
	} else {
		c.items[key] = c.order.PushFront(&segCacheItem{key: key, val: val, size: size})
		c.entries += size
	}
	for c.entries > c.max && c.order.Len() > 1 {
		e := c.order.Back()
		it := e.Value.(*segCacheItem)
		c.order.Remove(e)
		delete(c.items, it.key)
		c.entries -= it.size
	}
}

// dropPrefix forgets the segments under dir, when a rebuild replaces them.
func (c *segCache) dropPrefix(dir string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.items {
		if strings.HasPrefix(k, dir+"/") {
			c.entries -= e.Value.(*segCacheItem).size
			c.order.Remove(e)
			delete(c.items, k)
		}
	}
}

package authority

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// The inventory index. The records (issued/<serial>.json, one per
// certificate) are the truth; the index is derived from them so that the
// inventory pages and filters without loading every record. It is kept
// in storage, under index/:
//
//	index/state.json                      the generation in use (indexState)
//	index/pending/<serial>.json           issuances in progress (write-ahead intents)
//	index/g<N>/all/<segment>              every certificate, in issue order
//	index/g<N>/partner/<hex id>/<segment> the certificates of one partner
//	index/g<N>/expiry/<YYYY-MM>/<segment> the certificates expiring in a month (UTC)
//
// Each is a segment log (segments.go) of summaries, the records without
// their certificate. A status is not stored: it changes with the clock
// (expired) and with the revocation log (revoked), so it is derived on
// read; the expiry index finds the expired certificates and the
// revocation log the revoked ones.
//
// An issuance holds the index lock and writes, in this order: the intent,
// the record, the three index entries, and deletes the intent. Issue
// times are kept strictly increasing along the log, so that issue order
// is newest-first order. A crash leaves an intent: readers merge the
// intents whose record exists into their answers, and start-up, or the
// next issuance on any instance (which repairs before it appends), adds
// their missing index entries and deletes them. No entry is appended while
// an intent is pending, so a missing entry can only be missing from the
// head of its log. An index that is absent or unfinished (an upgrade, a
// crash while building it) has no state.json naming it: start-up builds a
// new generation from the records and switches state.json to it in one
// write, so that readers on other instances never see half an index;
// until then they read the records.
const (
	indexStateName = "index/state.json"
	pendingDir     = "index/pending"
	// indexSegmentSize bounds what an issuance rewrites: three segments
	// of at most 256 summaries (about 80 KB each).
	indexSegmentSize = 256
	indexVersion     = 1
	// loadParallelism is how many Loads are in flight when many records
	// are read: each is a round trip on Redis.
	loadParallelism = 8
)

// indexState names the index generation in use.
type indexState struct {
	Version    int       `json:"version"`
	Generation int       `json:"generation"`
	BuiltAt    time.Time `json:"builtAt"`
	// Records is the number of records the generation was built from.
	Records int `json:"records"`
}

// summary is an inventory record without its certificate and without the
// derived fields: what the index keeps. Its JSON names are the record's,
// so a record decodes into it.
type summary struct {
	Serial    string    `json:"serial"`
	Subject   string    `json:"subject"`
	PartnerID string    `json:"partnerId,omitempty"`
	Purpose   Purpose   `json:"purpose"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	IssuedAt  time.Time `json:"issuedAt"`
	IssuedBy  string    `json:"issuedBy,omitempty"`
}

// summaryOf is the summary of rec, its serial in SerialString notation:
// the index holds no other, so that readers compare serials as they are.
func summaryOf(rec Record) summary {
	return summary{Serial: rec.Serial, Subject: rec.Subject, PartnerID: rec.PartnerID, Purpose: rec.Purpose,
		NotBefore: rec.NotBefore, NotAfter: rec.NotAfter, IssuedAt: rec.IssuedAt, IssuedBy: rec.IssuedBy}.normalized()
}

func (s summary) record() Record {
	return Record{Serial: s.Serial, Subject: s.Subject, PartnerID: s.PartnerID, Purpose: s.Purpose,
		NotBefore: s.NotBefore, NotAfter: s.NotAfter, IssuedAt: s.IssuedAt, IssuedBy: s.IssuedBy}
}

// normalized returns s with its serial in SerialString notation (records
// written before it padded serials hold odd-length ones).
func (s summary) normalized() summary {
	if n, err := ParseSerial(s.Serial); err == nil {
		s.Serial = SerialString(n)
	}
	return s
}

// newer reports whether x comes before y in the inventory's order:
// newest issue first, then the higher serial (ties exist only among
// records written before the index).
func newer(x, y summary) bool {
	if !x.IssuedAt.Equal(y.IssuedAt) {
		return x.IssuedAt.After(y.IssuedAt)
	}
	return serialLess(y.Serial, x.Serial)
}

// serialLess orders SerialString serials as numbers.
func serialLess(x, y string) bool {
	if len(x) != len(y) {
		return len(x) < len(y)
	}
	return x < y
}

// Paths of generation g.
func (a *Authority) genDir(g int) string { return a.cfg.key(fmt.Sprintf("index/g%d", g)) }
func (a *Authority) allDir(g int) string { return a.genDir(g) + "/all" }
func (a *Authority) partnerDir(g int, id string) string {
	// Hex: partner ids may hold any character, and a case-insensitive file
	// system must not merge BANK and bank. Ids too long for a file name
	// are named by their SHA-256 (the entries carry the id).
	name := hex.EncodeToString([]byte(id))
	if len(name) > 128 {
		sum := sha256.Sum256([]byte(id))
		name = "sha256-" + hex.EncodeToString(sum[:])
	}
	return a.genDir(g) + "/partner/" + name
}
func (a *Authority) expiryRoot(g int) string { return a.genDir(g) + "/expiry" }
func expiryMonth(t time.Time) string         { return t.UTC().Format("2006-01") }

// loadIndexState reads state.json; ok is false when there is none (or
// one of a later version), that is when the index must be built.
func (a *Authority) loadIndexState(ctx context.Context) (st indexState, ok bool, err error) {
	b, err := a.cfg.Storage.Load(ctx, a.cfg.key(indexStateName))
	if errors.Is(err, fs.ErrNotExist) {
		return st, false, nil
	}
	if err != nil {
		return st, false, fmt.Errorf("loading the inventory index state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil || st.Version != indexVersion || st.Generation < 1 {
		// Unreadable, or not ours to read: build one we can.
		return indexState{}, false, nil
	}
	return st, true, nil
}

// recordIssued stores the record of a new certificate and indexes it,
// under the index lock. rec.IssuedAt may be moved forward by a few
// nanoseconds, so that issue times increase strictly along the index
// across instances whose clocks differ. Once the record is stored the
// certificate is issued: a failure to index it is repaired later (see
// above) and not returned.
func (a *Authority) recordIssued(ctx context.Context, serial *big.Int, rec *Record) error {
	if a.cfg.ReadOnly {
		return ErrReadOnly
	}
	st := a.cfg.Storage
	release, err := a.lock(ctx, "index")
	if err != nil {
		return err
	}
	defer release()
	ist, ok, err := a.loadIndexState(ctx)
	if err != nil {
		return err
	}
	if !ok {
		// No index to keep: the next start builds it from the records.
		return a.storeRecord(ctx, serial, *rec)
	}
	if err := a.repairPending(ctx, ist); err != nil {
		return err
	}
	all, err := loadHead[summary](ctx, a, a.allDir(ist.Generation))
	if err != nil {
		return err
	}
	if n := len(all.head.seg.Entries); n > 0 {
		if last := all.head.seg.Entries[n-1].IssuedAt; !rec.IssuedAt.After(last) {
			rec.IssuedAt = last.Add(time.Nanosecond)
		}
	}
	sum := summaryOf(*rec)
	intent, err := json.Marshal(sum)
	if err != nil {
		return err
	}
	intentKey := a.cfg.key(pendingDir + "/" + storageSerial(serial) + ".json")
	if err := st.Store(ctx, intentKey, intent); err != nil {
		return fmt.Errorf("storing the issuance intent: %w", err)
	}
	if err := a.storeRecord(ctx, serial, *rec); err != nil {
		// Never issued: the intent alone would be dropped by the repair.
		_ = st.Delete(ctx, intentKey)
		return err
	}
	if err := a.indexEntry(ctx, ist, &all, sum, false); err != nil {
		a.logger().Warn("a certificate is issued but not indexed yet; the next issuance or start indexes it",
			zap.String("serial", sum.Serial), zap.Error(err))
		return nil
	}
	if err := st.Delete(ctx, intentKey); err != nil && !errors.Is(err, fs.ErrNotExist) {
		a.logger().Warn("removing an issuance intent", zap.String("serial", sum.Serial), zap.Error(err))
	}
	return nil
}

// indexEntry appends sum to the three logs of generation ist; all is the
// head of the global log, already read. With repair set, an entry already
// in the head of its log is not appended again.
func (a *Authority) indexEntry(ctx context.Context, ist indexState, all *logHead[summary], sum summary, repair bool) error {
	add := func(dir string, h *logHead[summary]) error {
		if h == nil {
			head, err := loadHead[summary](ctx, a, dir)
			if err != nil {
				return err
			}
			h = &head
		}
		if repair && slices.ContainsFunc(h.head.seg.Entries, func(e summary) bool { return e.Serial == sum.Serial }) {
			return nil
		}
		_, err := appendEntries(ctx, a, dir, *h, a.indexSegSize, false, sum)
		return err
	}
	if err := add(a.allDir(ist.Generation), all); err != nil {
		return err
	}
	if sum.PartnerID != "" {
		if err := add(a.partnerDir(ist.Generation, sum.PartnerID), nil); err != nil {
			return err
		}
	}
	return add(a.expiryRoot(ist.Generation)+"/"+expiryMonth(sum.NotAfter), nil)
}

// pendingIntents reads the issuance intents, oldest first.
func (a *Authority) pendingIntents(ctx context.Context) (keys []string, sums []summary, err error) {
	listed, err := a.cfg.Storage.List(ctx, a.cfg.key(pendingDir), false)
	if errors.Is(err, fs.ErrNotExist) || len(listed) == 0 {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("listing issuance intents: %w", err)
	}
	type intent struct {
		key string
		sum summary
	}
	var in []intent
	for _, k := range listed {
		if !strings.HasSuffix(k, ".json") {
			continue
		}
		b, err := a.cfg.Storage.Load(ctx, k)
		if errors.Is(err, fs.ErrNotExist) {
			continue // done meanwhile
		}
		if err != nil {
			return nil, nil, fmt.Errorf("loading an issuance intent: %w", err)
		}
		var s summary
		if json.Unmarshal(b, &s) != nil {
			// Half-written by a crash on a storage without atomic
			// writes: the record, if any, is found by its name.
			s = summary{Serial: strings.TrimSuffix(path.Base(k), ".json")}
		}
		in = append(in, intent{k, s.normalized()})
	}
	slices.SortFunc(in, func(x, y intent) int {
		if newer(y.sum, x.sum) {
			return -1
		}
		return 1
	})
	for _, i := range in {
		keys, sums = append(keys, i.key), append(sums, i.sum)
	}
	return keys, sums, nil
}

// repairPending completes the issuances that intents say may be missing
// from the index: an intent whose record exists gets its index entries,
// one whose record does not exist was never issued. The caller holds the
// index lock.
func (a *Authority) repairPending(ctx context.Context, ist indexState) error {
	keys, sums, err := a.pendingIntents(ctx)
	if err != nil {
		return err
	}
	for i, k := range keys {
		serial, err := ParseSerial(sums[i].Serial)
		if err != nil {
			_ = a.cfg.Storage.Delete(ctx, k)
			continue
		}
		rec, err := a.loadRecord(ctx, serial)
		switch {
		case errors.Is(err, ErrNotFound):
		case errors.Is(err, errBadRecord):
			// A record that cannot be read cannot be listed either; it
			// must not stop every later issuance.
			a.logger().Error("an interrupted issuance left an unreadable record; it is not indexed", zap.String("serial", sums[i].Serial), zap.Error(err))
		case err != nil:
			return err
		default:
			if err := a.indexEntry(ctx, ist, nil, summaryOf(rec), true); err != nil {
				return fmt.Errorf("indexing an interrupted issuance: %w", err)
			}
			a.logger().Info("indexed a certificate whose issuance was interrupted", zap.String("serial", rec.Serial))
		}
		if err := a.cfg.Storage.Delete(ctx, k); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Reindex builds the inventory index again from the records, in a new
// generation that replaces the current one in one write, and returns the
// number of records indexed. Start-up does it when the index is missing;
// operators may do it after editing records by hand.
func (a *Authority) Reindex(ctx context.Context) (int, error) {
	if a.cfg.ReadOnly {
		return 0, ErrReadOnly
	}
	release, err := a.lock(ctx, "index")
	if err != nil {
		return 0, err
	}
	defer release()
	return a.rebuildLocked(ctx)
}

func (a *Authority) rebuildLocked(ctx context.Context) (int, error) {
	old, hadOld, err := a.loadIndexState(ctx)
	if err != nil {
		return 0, err
	}
	g := old.Generation + 1
	if !hadOld {
		// The generation of an unreadable state is unknown: start after
		// any generation present.
		g = a.freeGeneration(ctx)
	}
	// Leftovers of a build that crashed.
	if err := a.deleteTree(ctx, a.genDir(g)); err != nil {
		return 0, fmt.Errorf("clearing an unfinished index: %w", err)
	}
	intents, _, err := a.pendingIntents(ctx)
	if err != nil {
		return 0, err
	}
	sums, err := a.allSummaries(ctx)
	if err != nil {
		return 0, err
	}
	slices.SortFunc(sums, func(x, y summary) int {
		if newer(y, x) {
			return -1
		}
		return 1
	})
	write := func(dir string, entries []summary) error {
		if len(entries) == 0 {
			return nil
		}
		_, err := appendEntries(ctx, a, dir, logHead[summary]{n: -1}, a.indexSegSize, false, entries...)
		return err
	}
	if err := write(a.allDir(g), sums); err != nil {
		return 0, err
	}
	byPartner, byMonth := map[string][]summary{}, map[string][]summary{}
	for _, s := range sums {
		if s.PartnerID != "" {
			byPartner[s.PartnerID] = append(byPartner[s.PartnerID], s)
		}
		m := expiryMonth(s.NotAfter)
		byMonth[m] = append(byMonth[m], s)
	}
	for id, list := range byPartner {
		if err := write(a.partnerDir(g, id), list); err != nil {
			return 0, err
		}
	}
	for m, list := range byMonth {
		if err := write(a.expiryRoot(g)+"/"+m, list); err != nil {
			return 0, err
		}
	}
	b, err := json.Marshal(indexState{Version: indexVersion, Generation: g, BuiltAt: a.cfg.Now().UTC(), Records: len(sums)})
	if err != nil {
		return 0, err
	}
	if err := a.store(ctx, indexStateName, b); err != nil {
		return 0, fmt.Errorf("storing the inventory index state: %w", err)
	}
	// The records of these intents are indexed, or were never written.
	for _, k := range intents {
		_ = a.cfg.Storage.Delete(ctx, k)
	}
	// The previous generation, and any a crashed build left.
	for _, n := range a.generations(ctx) {
		if n == g {
			continue
		}
		a.segs.dropPrefix(a.genDir(n))
		if err := a.deleteTree(ctx, a.genDir(n)); err != nil {
			a.logger().Warn("removing a previous inventory index", zap.Int("generation", n), zap.Error(err))
		}
	}
	return len(sums), nil
}

// generations lists the index generations present in storage.
func (a *Authority) generations(ctx context.Context) []int {
	keys, _ := a.cfg.Storage.List(ctx, a.cfg.key("index"), false)
	var out []int
	for _, k := range keys {
		var n int
		if _, err := fmt.Sscanf(path.Base(k), "g%d", &n); err == nil && path.Base(k) == fmt.Sprintf("g%d", n) {
			out = append(out, n)
		}
	}
	return out
}

// freeGeneration returns a generation number above those present in
// storage.
func (a *Authority) freeGeneration(ctx context.Context) int {
	g := 1
	for _, n := range a.generations(ctx) {
		g = max(g, n+1)
	}
	return g
}

// allSummaries reads every record, with loadParallelism Loads in flight.
func (a *Authority) allSummaries(ctx context.Context) ([]summary, error) {
	keys, err := a.cfg.Storage.List(ctx, a.cfg.key("issued"), false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing issued certificates: %w", err)
	}
	keys = slices.DeleteFunc(keys, func(k string) bool { return !strings.HasSuffix(k, ".json") })
	return a.loadSummaries(ctx, keys)
}

// loadSummaries reads the records at keys, in their order; keys deleted
// meanwhile are left out.
func (a *Authority) loadSummaries(ctx context.Context, keys []string) ([]summary, error) {
	out := make([]summary, 0, len(keys))
	err := a.loadEach(ctx, keys, func(k string, b []byte) error {
		var s summary
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("reading %s: %w", path.Base(k), err)
		}
		out = append(out, s.normalized())
		return nil
	})
	return out, err
}

// loadEach loads keys, loadParallelism at a time, and calls fn with each
// one found, in the order of keys. Keys deleted meanwhile are skipped.
func (a *Authority) loadEach(ctx context.Context, keys []string, fn func(key string, value []byte) error) error {
	const chunk = 1024
	vals := make([][]byte, min(chunk, len(keys)))
	errs := make([]error, len(vals))
	for start := 0; start < len(keys); start += chunk {
		part := keys[start:min(start+chunk, len(keys))]
		var wg sync.WaitGroup
		next := make(chan int)
		for range min(loadParallelism, len(part)) {
			wg.Go(func() {
				for i := range next {
					vals[i], errs[i] = a.cfg.Storage.Load(ctx, part[i])
				}
			})
		}
		for i := range part {
			next <- i
		}
		close(next)
		wg.Wait()
		for i, k := range part {
			switch {
			case errors.Is(errs[i], fs.ErrNotExist):
				continue
			case errs[i] != nil:
				return fmt.Errorf("loading %s: %w", path.Base(k), errs[i])
			}
			if err := fn(k, vals[i]); err != nil {
				return err
			}
			vals[i] = nil
		}
	}
	return nil
}

// repair brings storage up to date at start: it moves revocations.json
// into the revocation log, builds the index if it is missing, and
// completes interrupted issuances. In the usual case it costs three small
// reads (and, where a revocations.json of an earlier version is kept, a
// read of it). Failures are logged: reads stay correct without the repair, and
// the next start or write tries again.
func (a *Authority) repair(ctx context.Context) {
	if a.cfg.Storage.Exists(ctx, a.cfg.key(legacyRevocationsName)) {
		_, moved, err := a.legacyMoved(ctx)
		if err == nil && !moved {
			if err = a.withLock(ctx, "revocations", func() error { return a.migrateLegacyRevocations(ctx) }); err == nil {
				a.logger().Info("moved the revocations of revocations.json into the revocation log")
			}
		}
		if err != nil {
			a.logger().Error("moving revocations.json into the revocation log; the next start tries again", zap.Error(err))
		}
	}
	_, ok, err := a.loadIndexState(ctx)
	if err == nil && ok {
		var keys []string
		if keys, _, err = a.pendingIntents(ctx); err == nil && len(keys) == 0 {
			return
		}
	}
	if err != nil {
		a.logger().Error("reading the inventory index", zap.Error(err))
		return
	}
	err = a.withLock(ctx, "index", func() error {
		ist, ok, err := a.loadIndexState(ctx)
		if err != nil {
			return err
		}
		if ok {
			return a.repairPending(ctx, ist)
		}
		start := time.Now()
		n, err := a.rebuildLocked(ctx)
		if err == nil {
			a.logger().Info("built the inventory index from the records", zap.Int("records", n), zap.Duration("took", time.Since(start)))
		}
		return err
	})
	if err != nil {
		a.logger().Error("repairing the inventory index; the inventory is read from the records meanwhile", zap.Error(err))
	}
}

// withLock runs fn under the storage lock name (under the CA's prefix).
func (a *Authority) withLock(ctx context.Context, name string, fn func() error) error {
	release, err := a.lock(ctx, name)
	if err != nil {
		return err
	}
	defer release()
	return fn()
}

// lock takes the storage lock name (under the CA's prefix) and returns
// its release. Callers in this process queue on a local lock first: the
// storage locks of file_system and Redis are polled every second, which
// would make two issuances of one gateway wait a second for each other.
func (a *Authority) lock(ctx context.Context, name string) (release func(), err error) {
	v, _ := a.locks.LoadOrStore(name, make(chan struct{}, 1))
	local := v.(chan struct{})
	select {
	case local <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	key := a.cfg.key(name)
	if err := a.cfg.Storage.Lock(ctx, key); err != nil {
		<-local
		return nil, fmt.Errorf("taking the %s lock: %w", name, err)
	}
	return func() {
		unlock(a.cfg.Storage, key)
		<-local
	}, nil
}

func (a *Authority) logger() *zap.Logger {
	if a.cfg.Logger == nil {
		return zap.NewNop()
	}
	return a.cfg.Logger
}

package authority

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Query selects inventory records. Records come newest first (by issue
// time, then serial).
type Query struct {
	// PartnerID keeps the records of this partner only.
	PartnerID string
	// Purpose keeps the records of this purpose only (any case).
	Purpose string
	// Status keeps the records of this status only: StatusValid,
	// StatusExpired or StatusRevoked. Any other value matches nothing.
	Status string
	// ExpiresBefore, when set, keeps the records whose notAfter is not
	// after it.
	ExpiresBefore time.Time
	// Limit is the most records of a page; 0 means no limit.
	Limit int
	// Cursor, from a previous Page's Next, starts the page after the
	// records that page returned.
	Cursor string
}

// Page is a page of the inventory.
type Page struct {
	// Records are the page's records, without their certificate (DER);
	// Lookup has it.
	Records []Record
	// Next is the cursor of the next page, "" when no record remains.
	Next string
}

// ErrBadCursor is returned (wrapped) for a cursor the inventory did not
// give.
var ErrBadCursor = errors.New("the cursor is not one this inventory gave")

// cursor is the position after which a page starts: the last record of
// the previous page.
type cursor struct {
	set    bool
	at     time.Time
	serial string
}

func encodeCursor(s summary) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(s.IssuedAt.UnixNano(), 10) + "." + s.Serial))
}

func parseCursor(c string) (cursor, error) {
	if c == "" {
		return cursor{}, nil
	}
	bad := fmt.Errorf("%w: %s", ErrBadCursor, quoteShort(c))
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(c) > 200 {
		return cursor{}, bad
	}
	at, serial, ok := strings.Cut(string(raw), ".")
	ns, err := strconv.ParseInt(at, 10, 64)
	if !ok || err != nil {
		return cursor{}, bad
	}
	n, err := ParseSerial(serial)
	if err != nil || SerialString(n) != serial {
		return cursor{}, bad
	}
	return cursor{set: true, at: time.Unix(0, ns), serial: serial}, nil
}

// before reports whether s comes after the cursor, that is belongs to a
// later page.
func (c cursor) before(s summary) bool {
	return !c.set || newer(summary{IssuedAt: c.at, Serial: c.serial}, s)
}

// matcher decides which summaries a query keeps.
type matcher struct {
	q     Query
	cur   cursor
	state revocationState
	now   time.Time
}

func (m matcher) status(s summary) string {
	switch {
	case m.revoked(s):
		return StatusRevoked
	case m.now.After(s.NotAfter):
		return StatusExpired
	}
	return StatusValid
}

func (m matcher) revoked(s summary) bool { _, ok := m.state.get(s.Serial); return ok }

func (m matcher) match(s summary) bool {
	return m.cur.before(s) &&
		(m.q.PartnerID == "" || s.PartnerID == m.q.PartnerID) &&
		(m.q.Purpose == "" || strings.EqualFold(string(s.Purpose), m.q.Purpose)) &&
		(m.q.Status == "" || m.status(s) == m.q.Status) &&
		(m.q.ExpiresBefore.IsZero() || !s.NotAfter.After(m.q.ExpiresBefore))
}

// want is how many matches a query needs: one more than its limit tells
// whether a next page exists.
func (m matcher) want() int {
	if m.q.Limit <= 0 {
		return -1
	}
	return m.q.Limit + 1
}

// Query returns a page of the inventory. It reads the index, not the
// records: the newest first of the global log, or the partner's log, or
// the expiry months that can hold the records asked for, or the
// revocation log, whichever reads least; with the records of issuances
// still in progress merged in.
func (a *Authority) Query(ctx context.Context, q Query) (Page, error) {
	p, err := a.query(ctx, q)
	if errors.Is(err, errIndexReplaced) {
		// Another instance rebuilt the index while this one read it.
		p, err = a.query(ctx, q)
	}
	return p, err
}

// errIndexReplaced reports a sealed index segment that is gone: only a
// rebuild, which replaces the generation, removes them.
var errIndexReplaced = errors.New("the inventory index was rebuilt while it was read")

func (a *Authority) query(ctx context.Context, q Query) (Page, error) {
	cur, err := parseCursor(q.Cursor)
	if err != nil {
		return Page{}, err
	}
	switch q.Status {
	case "", StatusValid, StatusExpired, StatusRevoked:
	default:
		return Page{Records: []Record{}}, nil
	}
	state, err := a.loadRevocations(ctx)
	if err != nil {
		return Page{}, err
	}
	a.setRevocations(state)
	m := matcher{q: q, cur: cur, state: state, now: a.cfg.Now()}
	ist, indexed, err := a.loadIndexState(ctx)
	if err != nil {
		return Page{}, err
	}
	var found []summary
	switch {
	case !indexed:
		// No index yet (a read-only check, or a start that could not
		// build it): the records themselves.
		all, err := a.allSummaries(ctx)
		if err != nil {
			return Page{}, err
		}
		found = filterSorted(all, m)
	case q.PartnerID != "":
		found, err = a.walk(ctx, a.partnerDir(ist.Generation, q.PartnerID), m)
	case q.Status == StatusRevoked:
		found, err = a.revokedSummaries(ctx, m)
	default:
		found, err = a.scan(ctx, ist, m)
	}
	if err != nil {
		return Page{}, err
	}
	if indexed {
		// Issuances in progress, or interrupted before their index entries.
		_, intents, err := a.pendingIntents(ctx)
		if err != nil {
			return Page{}, err
		}
		if found, err = a.withIntents(ctx, found, intents, m); err != nil {
			return Page{}, err
		}
	}
	page := Page{Records: make([]Record, 0, len(found))}
	if w := m.want(); w > 0 && len(found) == w {
		found = found[:q.Limit]
		page.Next = encodeCursor(found[len(found)-1])
	}
	for _, s := range found {
		page.Records = append(page.Records, a.withStatus(s.record(), state))
	}
	return page, nil
}

// Issued returns the whole inventory, newest first, without the
// certificates (Lookup has them).
func (a *Authority) Issued(ctx context.Context) ([]Record, error) {
	p, err := a.Query(ctx, Query{})
	return p.Records, err
}

// filterSorted returns what m keeps of all, in order, cut to what m wants.
func filterSorted(all []summary, m matcher) []summary {
	out := slices.DeleteFunc(all, func(s summary) bool { return !m.match(s) })
	slices.SortFunc(out, func(x, y summary) int {
		if newer(x, y) {
			return -1
		}
		return 1
	})
	if w := m.want(); w > 0 && len(out) > w {
		out = out[:w]
	}
	return out
}

// walk reads the log under dir from its newest entry back, until m has
// what it wants.
func (a *Authority) walk(ctx context.Context, dir string, m matcher) ([]summary, error) {
	h, err := loadHead[summary](ctx, a, dir)
	if err != nil || h.n < 0 {
		return nil, err
	}
	var out []summary
	entries := h.head.seg.Entries
	for i := len(h.segs) - 1; ; {
		// Entries are oldest first: when the oldest does not come after
		// the cursor, none does.
		if len(entries) > 0 && m.cur.before(entries[0]) {
			for j := len(entries) - 1; j >= 0; j-- {
				if s := entries[j]; m.match(s) {
					if out = append(out, s); len(out) == m.want() {
						return out, nil
					}
				}
			}
		}
		// The next older segment; those below the head are sealed.
		for {
			if i--; i < 0 {
				return out, nil
			}
			if h.segs[i] < h.n {
				break
			}
		}
		seg, err := loadSegment[summary](ctx, a, dir, h.segs[i], true)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errIndexReplaced
		}
		if err != nil {
			return nil, err
		}
		entries = seg.seg.Entries
	}
}

// scan answers a query without a partner, by status and expiry. The
// expiry months that can hold its records are read whole when they hold
// fewer summaries than half the inventory, which is the case for expired
// and soon-expiring certificates; otherwise the global log is walked from
// its newest entry, which finds valid certificates (the newest) at once.
func (a *Authority) scan(ctx context.Context, ist indexState, m matcher) ([]summary, error) {
	lo, hi := "", ""
	nowMonth := expiryMonth(m.now)
	switch m.q.Status {
	case StatusValid:
		lo = nowMonth
	case StatusExpired:
		hi = nowMonth
	}
	if !m.q.ExpiresBefore.IsZero() {
		if eb := expiryMonth(m.q.ExpiresBefore); hi == "" || eb < hi {
			hi = eb
		}
	}
	all := a.allDir(ist.Generation)
	if hi == "" {
		return a.walk(ctx, all, m)
	}
	root := a.expiryRoot(ist.Generation)
	months, err := a.cfg.Storage.List(ctx, root, false)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("listing %s: %w", root, err)
	}
	type bucket struct {
		dir  string
		segs []int
	}
	var buckets []bucket
	inRange := 0
	for _, k := range months {
		mon := path.Base(k)
		if mon < lo || mon > hi {
			continue
		}
		segs, err := a.listSegments(ctx, root+"/"+mon)
		if err != nil {
			return nil, err
		}
		buckets = append(buckets, bucket{root + "/" + mon, segs})
		inRange += len(segs)
	}
	allSegs, err := a.listSegments(ctx, all)
	if err != nil {
		return nil, err
	}
	if inRange*2 > len(allSegs)+1 {
		return a.walk(ctx, all, m)
	}
	var cands []summary
	for _, b := range buckets {
		// From the newest: the first that exists is the head, the others
		// are sealed (a listed head may be missing after a crash on Redis).
		headSeen := false
		for i := len(b.segs) - 1; i >= 0; i-- {
			seg, err := loadSegment[summary](ctx, a, b.dir, b.segs[i], headSeen)
			if errors.Is(err, fs.ErrNotExist) {
				if headSeen {
					return nil, errIndexReplaced
				}
				continue
			}
			if err != nil {
				return nil, err
			}
			headSeen = true
			for _, s := range seg.seg.Entries {
				if m.match(s) {
					cands = append(cands, s)
				}
			}
		}
	}
	return filterSorted(cands, m), nil
}

// revokedSummaries answers a query for revoked certificates from the
// revocation log, which carries their issue times: the records of the
// page are then read, loadParallelism at a time.
func (a *Authority) revokedSummaries(ctx context.Context, m matcher) ([]summary, error) {
	revs := slices.Clone(m.state.all())
	// Revocations moved from revocations.json without a record lack the
	// issue time: read it.
	var unknown []string
	for _, r := range revs {
		if r.IssuedAt.IsZero() {
			unknown = append(unknown, r.Serial)
		}
	}
	if len(unknown) > 0 {
		found, err := a.summariesOf(ctx, unknown)
		if err != nil {
			return nil, err
		}
		at := make(map[string]time.Time, len(found))
		for _, s := range found {
			at[s.Serial] = s.IssuedAt
		}
		revs = slices.DeleteFunc(revs, func(r Revocation) bool { return r.IssuedAt.IsZero() && at[r.Serial].IsZero() })
		for i, r := range revs {
			if r.IssuedAt.IsZero() {
				revs[i].IssuedAt = at[r.Serial]
			}
		}
	}
	keyOf := func(r Revocation) summary { return summary{Serial: r.Serial, IssuedAt: r.IssuedAt} }
	revs = slices.DeleteFunc(revs, func(r Revocation) bool { return !m.cur.before(keyOf(r)) })
	slices.SortFunc(revs, func(x, y Revocation) int {
		if newer(keyOf(x), keyOf(y)) {
			return -1
		}
		return 1
	})
	var out []summary
	for len(revs) > 0 {
		n := len(revs)
		if w := m.want(); w > 0 {
			n = min(n, w-len(out))
		}
		serials := make([]string, n)
		for i, r := range revs[:n] {
			serials[i] = r.Serial
		}
		revs = revs[n:]
		found, err := a.summariesOf(ctx, serials)
		if err != nil {
			return nil, err
		}
		for _, s := range found {
			if m.match(s) {
				out = append(out, s)
			}
		}
		if len(out) == m.want() {
			break
		}
	}
	return out, nil
}

// summariesOf reads the records of serials, in their order; serials
// without a record are left out.
func (a *Authority) summariesOf(ctx context.Context, serials []string) ([]summary, error) {
	keys := make([]string, 0, len(serials))
	for _, s := range serials {
		if n, err := ParseSerial(s); err == nil {
			keys = append(keys, a.recordKey(n))
		}
	}
	return a.loadSummaries(ctx, keys)
}

// withIntents merges into found (ordered, cut to m.want()) the intents
// whose record exists and that m keeps.
func (a *Authority) withIntents(ctx context.Context, found, intents []summary, m matcher) ([]summary, error) {
	var extra []summary
	for _, s := range intents {
		n, err := ParseSerial(s.Serial)
		if err != nil || !a.cfg.Storage.Exists(ctx, a.recordKey(n)) {
			continue
		}
		if s.IssuedAt.IsZero() {
			// An unreadable intent: the record says.
			rec, err := a.loadRecord(ctx, n)
			if err != nil {
				continue
			}
			s = summaryOf(rec)
		}
		if m.match(s) && !slices.ContainsFunc(found, func(f summary) bool { return f.Serial == s.Serial }) {
			extra = append(extra, s)
		}
	}
	if len(extra) == 0 {
		return found, nil
	}
	return filterSorted(append(found, extra...), m), nil
}

// loadRecord reads the inventory record of serial, as stored.
func (a *Authority) loadRecord(ctx context.Context, serial *big.Int) (Record, error) {
	b, err := a.cfg.Storage.Load(ctx, a.recordKey(serial))
	if errors.Is(err, fs.ErrNotExist) {
		return Record{}, ErrNotFound
	}
	if err != nil {
		return Record{}, err
	}
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return Record{}, fmt.Errorf("%w: %s: %v", errBadRecord, SerialString(serial), err)
	}
	return rec, nil
}

// errBadRecord is an inventory record that is not JSON of a record.
var errBadRecord = errors.New("unreadable inventory record")

// Lookup returns the inventory record of a serial, or ErrNotFound, with
// its revocation as currently stored.
func (a *Authority) Lookup(ctx context.Context, serial *big.Int) (Record, error) {
	rec, err := a.loadRecord(ctx, serial)
	if err != nil {
		return Record{}, err
	}
	state, err := a.loadRevocations(ctx)
	if err != nil {
		return Record{}, err
	}
	a.setRevocations(state)
	return a.withStatus(rec, state), nil
}

package tsl

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// DefaultLOTLURL is where the European Commission publishes the LOTL.
const DefaultLOTLURL = "https://ec.europa.eu/tools/lotl/eu-lotl.xml"

// DefaultGrace is how long past its NextUpdate a list stays usable.
const DefaultGrace = 24 * time.Hour

// Fetcher gets the document at a URL.
type Fetcher interface {
	Fetch(ctx context.Context, url string) ([]byte, error)
}

// Store keeps the last good copy of each list between runs. A
// certmagic.Storage (Caddy's storage) is one; Load must return an error
// wrapping fs.ErrNotExist for a missing key.
type Store interface {
	Load(ctx context.Context, key string) ([]byte, error)
	Store(ctx context.Context, key string, value []byte) error
}

// Resolver builds the set of lists in force: the LOTL verified against
// configured signers, then each national list verified against the
// certificates of its own LOTL pointer.
type Resolver struct {
	// LOTLURL is the LOTL's address (http, https, file:// or a path, as the
	// Fetcher allows).
	LOTLURL string
	// Signers may sign the LOTL. They come from configuration (the Official
	// Journal), never from the list itself.
	Signers []*x509.Certificate
	// Territories limits the national lists (SchemeTerritory codes; "GR" is
	// taken for Greece's "EL"); empty means all.
	Territories []string
	// Fetcher gets the documents.
	Fetcher Fetcher
	// Mirror, when set, is a directory from which each national list is
	// read as <territory>.xml (e.g. EL.xml) instead of its TSLLocation, for
	// gateways without Internet access. The signatures are checked the
	// same way, so the mirror need not be trusted.
	Mirror string
	// Store keeps last good copies; nil keeps them in memory only.
	Store Store
	// StorePrefix is prepended to the storage keys.
	StorePrefix string
	// Grace is how long past NextUpdate a list stays in force; zero means
	// DefaultGrace.
	Grace time.Duration
	// Concurrency bounds parallel fetches of national lists; zero means 6.
	Concurrency int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Origin says where the copy of a list in force came from.
type Origin int

const (
	// NotInForce: no copy of the list is usable.
	NotInForce Origin = iota
	// Fetched: the copy just fetched.
	Fetched
	// LastGood: the fetched copy was refused or unavailable, and the last
	// good one is in force.
	LastGood
)

func (o Origin) String() string {
	switch o {
	case Fetched:
		return "fetched"
	case LastGood:
		return "last good copy"
	}
	return "not in force"
}

// ListState is the outcome for one list.
type ListState struct {
	// URL is where the list is fetched from.
	URL string
	// Territory is the expected SchemeTerritory.
	Territory string
	// List is the list in force, nil when none is.
	List *List
	// Raw is the signed document of List, kept as the next last good copy.
	Raw []byte
	// Signer is the certificate that signed List.
	Signer *x509.Certificate
	// Origin tells where List came from.
	Origin Origin
	// Err says why the fetched copy is not in force; nil when it is.
	Err error
}

// Snapshot is the set of lists in force at one time.
type Snapshot struct {
	// Time is when it was resolved.
	Time time.Time
	// LOTL is the list of lists.
	LOTL ListState
	// Lists are the national lists, by territory.
	Lists []ListState
}

// TrustedCA is a certificate of a qualified CA in force.
type TrustedCA struct {
	Territory string
	Provider  string
	Service   string
	Cert      *x509.Certificate
}

// TrustedCAs returns the certificates of the granted CA/QC services listed
// for u in the national lists in force, without duplicates.
func (s *Snapshot) TrustedCAs(u Usage) []TrustedCA {
	var out []TrustedCA
	seen := map[[32]byte]bool{}
	for _, ls := range s.Lists {
		if ls.List == nil {
			continue
		}
		for _, p := range ls.List.Providers {
			for _, svc := range p.Services {
				if !svc.Qualifies(u) {
					continue
				}
				for _, c := range svc.Certificates {
					sum := sha256.Sum256(c.Raw)
					if seen[sum] {
						continue
					}
					seen[sum] = true
					out = append(out, TrustedCA{Territory: ls.Territory, Provider: p.Name, Service: svc.Name, Cert: c})
				}
			}
		}
	}
	return out
}

// NextUpdate returns the earliest NextUpdate among the lists in force, zero
// if none has one.
func (s *Snapshot) NextUpdate() time.Time {
	var t time.Time
	consider := func(ls ListState) {
		if ls.List != nil && !ls.List.NextUpdate.IsZero() && (t.IsZero() || ls.List.NextUpdate.Before(t)) {
			t = ls.List.NextUpdate
		}
	}
	consider(s.LOTL)
	for _, ls := range s.Lists {
		consider(ls)
	}
	return t
}

// Failures reports whether some list's fetched copy is not in force.
func (s *Snapshot) Failures() bool {
	if s.LOTL.Err != nil {
		return true
	}
	for _, ls := range s.Lists {
		if ls.Err != nil {
			return true
		}
	}
	return false
}

// ErrNoLOTL is returned when neither a fetched nor a stored LOTL is usable.
var ErrNoLOTL = errors.New("no usable LOTL")

// Resolve fetches and verifies the LOTL and the national lists. prev, the
// previous snapshot (may be nil), supplies last good copies kept in memory.
// The error is non-nil only when no LOTL is usable at all.
func (r *Resolver) Resolve(ctx context.Context, prev *Snapshot) (*Snapshot, error) {
	if len(r.Signers) == 0 {
		return nil, errors.New("no LOTL signer certificates configured")
	}
	now := r.now()
	snap := &Snapshot{Time: now}
	var prevLOTL *ListState
	if prev != nil {
		prevLOTL = &prev.LOTL
	}
	snap.LOTL = r.resolveOne(ctx, r.lotlURL(), "", TypeLOTL, r.Signers, prevLOTL)
	if snap.LOTL.List == nil {
		if prevLOTL == nil || prevLOTL.List == nil {
			return snap, fmt.Errorf("%w from %s: %v", ErrNoLOTL, r.lotlURL(), snap.LOTL.Err)
		}
		// The LOTL in force lapsed and nothing replaces it: its pointers
		// still lead to the national lists, which keep being refreshed and
		// checked on their own.
		err := snap.LOTL.Err
		snap.LOTL = *prevLOTL
		snap.LOTL.Origin, snap.LOTL.Err = LastGood, err
	}

	var ptrs []Pointer
	for _, p := range snap.LOTL.List.XMLPointers() {
		if r.wanted(p.Territory) {
			ptrs = append(ptrs, p)
		}
	}
	sort.SliceStable(ptrs, func(i, j int) bool { return ptrs[i].Territory < ptrs[j].Territory })
	snap.Lists = make([]ListState, len(ptrs))
	workers := r.Concurrency
	if workers <= 0 {
		workers = 6
	}
	sem := make(chan struct{}, workers)
	var wg sync.WaitGroup
	for i, p := range ptrs {
		p.Location = r.location(p)
		var prevState *ListState
		if prev != nil {
			for j := range prev.Lists {
				if prev.Lists[j].URL == p.Location {
					prevState = &prev.Lists[j]
				}
			}
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if len(p.Certificates) == 0 {
				snap.Lists[i] = ListState{URL: p.Location, Territory: p.Territory, Err: errors.New("its LOTL pointer carries no certificate")}
				return
			}
			snap.Lists[i] = r.resolveOne(ctx, p.Location, p.Territory, p.Type, p.Certificates, prevState)
		}()
	}
	wg.Wait()
	return snap, nil
}

// location is where the list of p is read: its TSLLocation, or the mirror.
func (r *Resolver) location(p Pointer) string {
	if r.Mirror == "" {
		return p.Location
	}
	return filepath.Join(r.Mirror, strings.ToUpper(filepath.Base(p.Territory))+".xml")
}

func (r *Resolver) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Resolver) lotlURL() string {
	if r.LOTLURL == "" {
		return DefaultLOTLURL
	}
	return r.LOTLURL
}

// wanted reports whether a territory passes the Territories filter.
func (r *Resolver) wanted(territory string) bool {
	if len(r.Territories) == 0 {
		return true
	}
	for _, t := range r.Territories {
		if SameTerritory(t, territory) {
			return true
		}
	}
	return false
}

// SameTerritory compares territory codes, taking ISO 3166 "GR" as the
// trusted lists' "EL" (Greece) and "GB" as "UK".
func SameTerritory(a, b string) bool {
	norm := func(s string) string {
		s = strings.ToUpper(strings.TrimSpace(s))
		switch s {
		case "GR":
			return "EL"
		case "GB":
			return "UK"
		}
		return s
	}
	return norm(a) == norm(b)
}

// checked is a verified, parsed copy of a list.
type checked struct {
	raw    []byte
	list   *List
	signer *x509.Certificate
}

// check verifies raw as the list expected at this place.
func (r *Resolver) check(raw []byte, territory, typ string, signers []*x509.Certificate) (*checked, error) {
	l, v, err := ParseSigned(raw, signers)
	if err != nil {
		return nil, err
	}
	if typ != "" && l.Type != typ {
		return nil, fmt.Errorf("TSLType is %s, expected %s", l.Type, typ)
	}
	if territory != "" && !SameTerritory(l.Territory, territory) {
		return nil, fmt.Errorf("SchemeTerritory is %q, expected %q", l.Territory, territory)
	}
	return &checked{raw: raw, list: l, signer: v.Signer}, nil
}

func (r *Resolver) expired(l *List) error {
	grace := r.Grace
	if grace == 0 {
		grace = DefaultGrace
	}
	if l.Expired(r.now(), grace) {
		if l.NextUpdate.IsZero() {
			return fmt.Errorf("list (sequence %d) is closed: it has no NextUpdate", l.SequenceNumber)
		}
		return fmt.Errorf("list (sequence %d) expired: NextUpdate was %s", l.SequenceNumber, l.NextUpdate.Format(time.RFC3339))
	}
	return nil
}

// resolveOne fetches and checks one list, and falls back on its last good
// copy (in memory, then in the store) when the fetched one is refused.
func (r *Resolver) resolveOne(ctx context.Context, url, territory, typ string, signers []*x509.Certificate, prev *ListState) ListState {
	st := ListState{URL: url, Territory: territory}
	last, lastErr := r.lastGood(ctx, url, territory, typ, signers, prev)

	raw, err := r.Fetcher.Fetch(ctx, url)
	if err == nil {
		var c *checked
		if c, err = r.check(raw, territory, typ, signers); err == nil {
			if err = r.expired(c.list); err == nil && last != nil && c.list.SequenceNumber < last.list.SequenceNumber {
				err = fmt.Errorf("sequence number %d is lower than the last good copy's %d", c.list.SequenceNumber, last.list.SequenceNumber)
			}
		}
		if err == nil {
			st.List, st.Raw, st.Signer, st.Origin = c.list, c.raw, c.signer, Fetched
			if last == nil || !bytes.Equal(last.raw, raw) {
				r.save(ctx, url, raw)
			}
			return st
		}
	} else {
		err = fmt.Errorf("fetching: %w", err)
	}
	st.Err = err
	if last == nil {
		if lastErr != nil {
			st.Err = fmt.Errorf("%w; last good copy: %v", err, lastErr)
		}
		return st
	}
	if xerr := r.expired(last.list); xerr != nil {
		st.Err = fmt.Errorf("%w; last good copy: %v", err, xerr)
		return st
	}
	st.List, st.Raw, st.Signer, st.Origin = last.list, last.raw, last.signer, LastGood
	return st
}

// lastGood returns the last good copy of a list, verified again against
// today's signers: from the previous snapshot, else from the store.
func (r *Resolver) lastGood(ctx context.Context, url, territory, typ string, signers []*x509.Certificate, prev *ListState) (*checked, error) {
	var firstErr error
	if prev != nil && prev.Raw != nil && prev.URL == url {
		c, err := r.check(prev.Raw, territory, typ, signers)
		if err == nil {
			return c, nil
		}
		firstErr = err
	}
	if r.Store == nil {
		return nil, firstErr
	}
	raw, err := r.Store.Load(ctx, r.storeKey(url))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if firstErr == nil {
				firstErr = errors.New("none stored")
			}
			return nil, firstErr
		}
		return nil, fmt.Errorf("loading: %w", err)
	}
	c, err := r.check(raw, territory, typ, signers)
	if err != nil {
		return nil, fmt.Errorf("stored copy refused: %w", err)
	}
	return c, nil
}

func (r *Resolver) save(ctx context.Context, url string, raw []byte) {
	if r.Store == nil {
		return
	}
	// A failed write only loses the restart-without-network case, which
	// the next refresh retries; the list in force is unaffected.
	_ = r.Store.Store(ctx, r.storeKey(url), raw)
}

// storeKey names the last good copy of url. Copies are kept per set of LOTL
// signers, so that pools trusting different signers never share one.
func (r *Resolver) storeKey(url string) string {
	var fps []string
	for _, c := range r.Signers {
		s := sha256.Sum256(c.Raw)
		fps = append(fps, hex.EncodeToString(s[:]))
	}
	sort.Strings(fps)
	anchors := sha256.Sum256([]byte(strings.Join(fps, ",")))
	u := sha256.Sum256([]byte(url))
	prefix := r.StorePrefix
	if prefix == "" {
		prefix = "bankedge/trust/tsl"
	}
	return prefix + "/" + hex.EncodeToString(anchors[:8]) + "/" + hex.EncodeToString(u[:16]) + ".xml"
}

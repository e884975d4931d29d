package trust

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/bankedge/bankedge/modules/trust/fetch"
	"github.com/bankedge/bankedge/modules/trust/tsl"
)

// sources holds one *source per distinct LOTL configuration (URL, signers,
// territories, refresh), shared by every pool that uses it and kept across
// config reloads: the new config's pools take their reference before the
// old config's pools drop theirs.
var sources = caddy.NewUsagePool()

// documents is the process-wide document cache: one fetch per URL however
// many sources need it, and none again for reuseFor after a success.
var documents = &documentCache{reuseFor: 5 * time.Minute}

// documentCache shares fetched lists between sources.
type documentCache struct {
	reuseFor time.Duration
	flight   singleflight.Group
	mu       sync.Mutex
	docs     map[string]cachedDocument
	fetches  atomic.Int64
}

type cachedDocument struct {
	body []byte
	at   time.Time
}

// fetcher is the tsl.Fetcher of one source: the shared cache in front of
// the source's own bounded client.
type fetcher struct {
	cache  *documentCache
	client *fetch.Client
	// maxAge is the source's refresh interval: a copy that old is never
	// reused, so that each refresh of the source reads the list anew
	// however short its interval.
	maxAge time.Duration
}

// Fetch returns a copy fetched within reuseFor and maxAge, or fetches;
// concurrent fetches of a URL share one request.
func (f fetcher) Fetch(ctx context.Context, url string) ([]byte, error) {
	c := f.cache
	reuse := c.reuseFor
	if f.maxAge > 0 {
		reuse = min(reuse, f.maxAge)
	}
	c.mu.Lock()
	d, ok := c.docs[url]
	c.mu.Unlock()
	if ok && time.Since(d.at) < reuse {
		return d.body, nil
	}
	v, err, _ := c.flight.Do(url, func() (any, error) {
		c.fetches.Add(1)
		body, err := f.client.Fetch(ctx, url)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		if c.docs == nil {
			c.docs = map[string]cachedDocument{}
		}
		c.docs[url] = cachedDocument{body: body, at: time.Now()}
		c.mu.Unlock()
		return body, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]byte), nil
}

// storageRef lets a source, which outlives configs, use the storage of the
// latest config that provisioned a pool on it.
type storageRef struct {
	p atomic.Pointer[certmagic.Storage]
}

func (s *storageRef) Load(ctx context.Context, key string) ([]byte, error) {
	st := s.p.Load()
	if st == nil {
		return nil, errors.New("no storage")
	}
	return (*st).Load(ctx, key)
}

func (s *storageRef) Store(ctx context.Context, key string, value []byte) error {
	st := s.p.Load()
	if st == nil {
		return errors.New("no storage")
	}
	return (*st).Store(ctx, key, value)
}

// view is the pool for one usage in one snapshot.
type view struct {
	pool  *x509.CertPool
	certs []*x509.Certificate
	cas   []tsl.TrustedCA
	// fingerprint identifies the set of certificates, so that an
	// unchanged set keeps its *x509.CertPool across refreshes.
	fingerprint string
}

// state is what a source serves until the next refresh.
type state struct {
	snap  *tsl.Snapshot
	views map[tsl.Usage]*view
}

// source resolves one LOTL configuration and refreshes it in the
// background.
type source struct {
	resolver *tsl.Resolver
	store    *storageRef
	refresh  time.Duration
	logger   atomic.Pointer[zap.Logger]

	resolveMu sync.Mutex // one resolve at a time
	cur       atomic.Pointer[state]

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// retryAfterFailure is how soon a source refreshes after a list failed.
const retryAfterFailure = 15 * time.Minute

func newSource(r *tsl.Resolver, store *storageRef, refresh time.Duration) *source {
	return &source{resolver: r, store: store, refresh: refresh, stop: make(chan struct{}), done: make(chan struct{})}
}

// Destruct stops the refresh loop when the last pool using the source is
// gone (caddy.Destructor, called by the UsagePool).
func (s *source) Destruct() error {
	s.stopOnce.Do(func() { close(s.stop) })
	return nil
}

// ensure resolves the lists if nothing is in force yet; the first error is
// a start-up failure. It then starts the refresh loop, once.
func (s *source) ensure(ctx context.Context) error {
	s.resolveMu.Lock()
	defer s.resolveMu.Unlock()
	if s.cur.Load() != nil {
		return nil
	}
	if err := s.resolveLocked(ctx); err != nil {
		return err
	}
	go s.loop()
	return nil
}

// resolveLocked resolves once and installs the result; the error is that of
// a resolve with no usable LOTL, when the previous state stays.
func (s *source) resolveLocked(ctx context.Context) error {
	var prev *tsl.Snapshot
	old := s.cur.Load()
	if old != nil {
		prev = old.snap
	}
	snap, err := s.resolver.Resolve(ctx, prev)
	meterResolve(snap, err)
	log := s.logger.Load()
	if err != nil {
		if log != nil {
			log.Error("no usable LOTL; the trusted lists in force stay", zap.Error(err))
		}
		return err
	}
	next := &state{snap: snap, views: map[tsl.Usage]*view{}}
	for _, u := range []tsl.Usage{tsl.UsageWeb, tsl.UsageESeal} {
		v := makeView(snap, u)
		if old != nil && old.views[u].fingerprint == v.fingerprint {
			v.pool = old.views[u].pool
		}
		next.views[u] = v
	}
	s.cur.Store(next)
	if log != nil {
		s.logSnapshot(log, snap, next)
	}
	return nil
}

func (s *source) logSnapshot(log *zap.Logger, snap *tsl.Snapshot, st *state) {
	lists := func(ls tsl.ListState) {
		if ls.Err != nil {
			log.Warn("trusted list refused or unavailable",
				zap.String("territory", ls.Territory), zap.String("url", ls.URL),
				zap.Stringer("in_force", ls.Origin), zap.Error(ls.Err))
		}
	}
	lists(snap.LOTL)
	for _, ls := range snap.Lists {
		lists(ls)
	}
	log.Info("trusted lists in force",
		zap.String("lotl", snap.LOTL.URL), zap.Int("lotl_sequence", snap.LOTL.List.SequenceNumber),
		zap.Int("national_lists", len(snap.Lists)),
		zap.Int("web_cas", len(st.views[tsl.UsageWeb].certs)), zap.Int("eseal_cas", len(st.views[tsl.UsageESeal].certs)))
}

func makeView(snap *tsl.Snapshot, u tsl.Usage) *view {
	v := &view{pool: x509.NewCertPool(), cas: snap.TrustedCAs(u)}
	var fps []string
	for _, ca := range v.cas {
		v.pool.AddCert(ca.Cert)
		v.certs = append(v.certs, ca.Cert)
		sum := sha256.Sum256(ca.Cert.Raw)
		fps = append(fps, hex.EncodeToString(sum[:]))
	}
	sort.Strings(fps)
	v.fingerprint = strings.Join(fps, ",")
	return v
}

// current returns the view in force for u.
func (s *source) current(u tsl.Usage) *view {
	st := s.cur.Load()
	if st == nil {
		return nil
	}
	return st.views[u]
}

// loop refreshes at most every refresh, sooner when a list's NextUpdate
// comes first or after a failure, until the source is destructed.
func (s *source) loop() {
	defer close(s.done)
	for {
		timer := time.NewTimer(s.nextRefresh(time.Now()))
		select {
		case <-s.stop:
			timer.Stop()
			return
		case <-timer.C:
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-s.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		s.resolveMu.Lock()
		_ = s.resolveLocked(ctx)
		s.resolveMu.Unlock()
		cancel()
	}
}

// nextRefresh is the wait before the next resolve.
func (s *source) nextRefresh(now time.Time) time.Duration {
	wait := s.refresh
	st := s.cur.Load()
	if st == nil {
		return wait
	}
	if st.snap.Failures() && retryAfterFailure < wait {
		wait = retryAfterFailure
	}
	if nu := st.snap.NextUpdate(); !nu.IsZero() {
		until := nu.Sub(now)
		if until < time.Minute {
			// Overdue: the publisher is late; retry at the failure pace.
			until = min(retryAfterFailure, s.refresh)
		}
		wait = min(wait, until)
	}
	return wait
}

// Package revocation establishes whether a certificate is revoked, by OCSP
// (from its Authority Information Access) and CRL (from its distribution
// points), with verified and fresh answers, a cache that keeps each answer
// until its nextUpdate (bounded), and one fetch per certificate however many
// requests wait for it. It has no Caddy imports; Shared is the one checker
// of the process, kept across config reloads.
package revocation

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ocsp"
	"golang.org/x/sync/singleflight"

	"github.com/bankedge/bankedge/modules/trust/fetch"
)

// Status is a revocation status.
type Status int

const (
	// Unknown: the status could not be established.
	Unknown Status = iota
	// Good: not revoked, per a verified and fresh answer.
	Good
	// Revoked: revoked (or on hold), per a verified answer.
	Revoked
)

func (s Status) String() string {
	switch s {
	case Good:
		return "good"
	case Revoked:
		return "revoked"
	}
	return "unknown"
}

// Prefer is the source tried first; the other is the fallback.
type Prefer int

const (
	// PreferOCSP tries OCSP, then the CRL.
	PreferOCSP Prefer = iota
	// PreferCRL tries the CRL, then OCSP.
	PreferCRL
)

// Result is the answer about one certificate.
type Result struct {
	// Status is good, revoked or unknown.
	Status Status
	// Source is "ocsp" or "crl" for a good or revoked answer.
	Source string
	// RevokedAt is the revocation time of a revoked certificate.
	RevokedAt time.Time
	// Reason is the RFC 5280 CRLReason of a revoked certificate.
	Reason int
	// Detail says why the status is unknown (responder down, stale
	// answer, …); it names URLs but never secrets.
	Detail string
	// Until is when the answer leaves the cache.
	Until time.Time
}

// Options tune a Checker; zero values take the defaults.
type Options struct {
	// HTTP fetches OCSP and CRLs; nil means a client bounded by 10 s
	// (each Check is also bounded by its context).
	HTTP *fetch.Client
	// MaxOCSPBytes bounds an OCSP response (default 64 KiB).
	MaxOCSPBytes int64
	// MaxCRLBytes bounds a CRL (default 32 MiB).
	MaxCRLBytes int64
	// MaxCacheAge bounds how long an answer is kept even when its
	// nextUpdate is later (default 24 h).
	MaxCacheAge time.Duration
	// NoNextUpdateTTL is how long an OCSP answer without nextUpdate is kept,
	// and how old it may be (default 1 h).
	NoNextUpdateTTL time.Duration
	// UnknownTTL is how long an unknown status is kept, so that a
	// responder that is down costs one timeout per certificate per
	// UnknownTTL, not one per request (default 30 s).
	UnknownTTL time.Duration
	// ClockSkew is tolerated on thisUpdate and nextUpdate (default 5 min).
	ClockSkew time.Duration
	// FetchTimeout bounds a fetch whose first caller has no deadline
	// (default 10 s).
	FetchTimeout time.Duration
	// MaxEntries bounds the per-certificate cache (default 100 000).
	MaxEntries int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.MaxOCSPBytes <= 0 {
		o.MaxOCSPBytes = 64 << 10
	}
	if o.MaxCRLBytes <= 0 {
		o.MaxCRLBytes = 32 << 20
	}
	if o.MaxCacheAge <= 0 {
		o.MaxCacheAge = 24 * time.Hour
	}
	if o.NoNextUpdateTTL <= 0 {
		o.NoNextUpdateTTL = time.Hour
	}
	if o.UnknownTTL <= 0 {
		o.UnknownTTL = 30 * time.Second
	}
	if o.ClockSkew <= 0 {
		o.ClockSkew = 5 * time.Minute
	}
	if o.FetchTimeout <= 0 {
		o.FetchTimeout = 10 * time.Second
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = 100000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HTTP == nil {
		o.HTTP = &fetch.Client{HTTP: fetch.NewHTTPClient(o.FetchTimeout), UserAgent: "bankedge-revocation"}
	}
}

// entry is a cached answer.
type entry struct {
	res Result
	// refreshAt (Unix nanoseconds) is when a hit starts a refresh in the
	// background, so that requests keep being answered from the cache
	// while it runs.
	refreshAt  atomic.Int64
	refreshing atomic.Bool
}

// crlEntry is a verified CRL indexed by serial.
type crlEntry struct {
	revoked map[string]x509.RevocationListEntry
	until   time.Time
}

// Checker checks revocation and caches the answers.
type Checker struct {
	opts Options

	mu    sync.RWMutex
	cache map[[32]byte]*entry

	crlMu sync.Mutex
	crls  map[string]*crlEntry // by URL and issuer

	certFlight singleflight.Group
	crlFlight  singleflight.Group

	// Fetches counts network fetches (OCSP requests and CRL downloads).
	fetches atomic.Int64
}

// New returns a Checker.
func New(opts Options) *Checker {
	opts.defaults()
	return &Checker{opts: opts, cache: map[[32]byte]*entry{}, crls: map[string]*crlEntry{}}
}

var (
	sharedOnce sync.Once
	shared     *Checker
)

// Shared returns the process-wide checker: every handler uses it, and it
// outlives config reloads, so answers are fetched once per certificate.
func Shared() *Checker {
	sharedOnce.Do(func() { shared = New(Options{}) })
	return shared
}

// Fetches returns how many OCSP requests and CRL downloads were made.
func (c *Checker) Fetches() int64 { return c.fetches.Load() }

// Cached returns the cached answer for the certificate whose DER hashes to
// sum, if it is still current. It does not allocate.
func (c *Checker) Cached(sum [32]byte) (Result, bool) {
	c.mu.RLock()
	e := c.cache[sum]
	c.mu.RUnlock()
	if e == nil || !c.opts.Now().Before(e.res.Until) {
		return Result{}, false
	}
	return e.res, true
}

// Check returns the revocation status of cert, issued by issuer; sum is the
// SHA-256 of cert.Raw. A cached answer costs a map lookup. Otherwise
// concurrent calls for the same certificate share one fetch, and each
// returns no later than its ctx is done (an Unknown result then).
func (c *Checker) Check(ctx context.Context, sum [32]byte, cert, issuer *x509.Certificate, prefer Prefer) Result {
	if res, ok := c.CheckCached(sum, cert, issuer, prefer); ok {
		return res
	}
	return c.miss(ctx, sum, cert, issuer, prefer, c.opts.Now())
}

// CheckCached is the cache-hit half of Check: the cached answer, if it is
// still current, with a background refresh started when the answer nears
// its end, so that a certificate in use is checked again before its answer
// ends rather than on the request that finds it ended. It does not
// allocate unless it starts a refresh.
func (c *Checker) CheckCached(sum [32]byte, cert, issuer *x509.Certificate, prefer Prefer) (Result, bool) {
	now := c.opts.Now()
	c.mu.RLock()
	e := c.cache[sum]
	c.mu.RUnlock()
	if e == nil || !now.Before(e.res.Until) {
		observeLookup(false)
		return Result{}, false
	}
	observeLookup(true)
	if now.UnixNano() >= e.refreshAt.Load() && e.refreshing.CompareAndSwap(false, true) {
		go c.refresh(e, sum, cert, issuer, prefer)
	}
	return e.res, true
}

// miss fetches an answer, sharing the fetch with concurrent callers. It is
// apart from Check so that the variables its closure captures do not move
// to the heap on the cache-hit path.
func (c *Checker) miss(ctx context.Context, sum [32]byte, cert, issuer *x509.Certificate, prefer Prefer, now time.Time) Result {
	ch := c.certFlight.DoChan(string(sum[:]), func() (any, error) {
		// The fetch outlives a caller that gives up, so that the others
		// and the next request find its answer; it keeps the deadline of
		// the caller that started it.
		fctx := context.WithoutCancel(ctx)
		var cancel context.CancelFunc
		if dl, ok := ctx.Deadline(); ok {
			fctx, cancel = context.WithDeadline(fctx, dl)
		} else {
			fctx, cancel = context.WithTimeout(fctx, c.opts.FetchTimeout)
		}
		defer cancel()
		return c.fetch(fctx, sum, cert, issuer, prefer), nil
	})
	select {
	case r := <-ch:
		return r.Val.(Result)
	case <-ctx.Done():
		return Result{Status: Unknown, Detail: "revocation check timed out", Until: now}
	}
}

// fetch establishes the status, caches it and returns it.
func (c *Checker) fetch(ctx context.Context, sum [32]byte, cert, issuer *x509.Certificate, prefer Prefer) Result {
	res := c.establish(ctx, cert, issuer, prefer, c.opts.Now())
	observeCheck(res, prefer)
	return c.store(sum, res)
}

// refresh renews a cached answer ahead of its end. A failure keeps the
// current answer until it ends and retries after UnknownTTL. A cached CRL
// that ends with the answer is downloaded again: its publisher has
// usually issued the next one by then.
func (c *Checker) refresh(e *entry, sum [32]byte, cert, issuer *x509.Certificate, prefer Prefer) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.FetchTimeout)
	defer cancel()
	res := c.establish(ctx, cert, issuer, prefer, e.res.Until)
	observeCheck(res, prefer)
	now := c.opts.Now()
	switch {
	case res.Status == Unknown:
		e.refreshAt.Store(now.Add(c.opts.UnknownTTL).UnixNano())
	case res.Status == e.res.Status && !res.Until.After(e.res.Until):
		// Nothing newer published yet (the same CRL): ask again after a
		// quarter of what is left, not on every hit until the end.
		e.refreshAt.Store(now.Add(max(c.opts.UnknownTTL, e.res.Until.Sub(now)/4)).UnixNano())
	default:
		c.store(sum, res)
		return
	}
	e.refreshing.Store(false)
}

// store caches res and returns it with its end set.
func (c *Checker) store(sum [32]byte, res Result) Result {
	now := c.opts.Now()
	if res.Status == Unknown || !res.Until.After(now) {
		res.Until = now.Add(c.opts.UnknownTTL)
	}
	e := &entry{res: res}
	e.refreshAt.Store(res.Until.UnixNano())
	if res.Status == Good {
		// Refresh in the last fifth of the lifetime, before it ends.
		e.refreshAt.Store(res.Until.Add(-res.Until.Sub(now) / 5).UnixNano())
	}
	c.mu.Lock()
	if len(c.cache) >= c.opts.MaxEntries {
		c.evictLocked(now)
	}
	c.cache[sum] = e
	c.mu.Unlock()
	return res
}

// evictLocked drops expired entries, or a random one when none is.
func (c *Checker) evictLocked(now time.Time) {
	for k, e := range c.cache {
		if !now.Before(e.res.Until) {
			delete(c.cache, k)
		}
	}
	if len(c.cache) >= c.opts.MaxEntries {
		for k := range c.cache {
			delete(c.cache, k)
			break
		}
	}
}

// establish asks the preferred source, then the other. A cached CRL is
// used only when it is current beyond crlAfter.
func (c *Checker) establish(ctx context.Context, cert, issuer *x509.Certificate, prefer Prefer, crlAfter time.Time) Result {
	if issuer == nil {
		return Result{Status: Unknown, Detail: "issuer certificate unknown"}
	}
	ocspURLs := httpURLs(cert.OCSPServer)
	crlURLs := httpURLs(cert.CRLDistributionPoints)
	if len(ocspURLs) == 0 && len(crlURLs) == 0 {
		return Result{Status: Unknown, Detail: "certificate names no OCSP responder and no CRL distribution point"}
	}
	sources := []func() (Result, error){
		func() (Result, error) { return c.viaOCSP(ctx, cert, issuer, ocspURLs) },
		func() (Result, error) { return c.viaCRL(ctx, cert, issuer, crlURLs, crlAfter) },
	}
	if prefer == PreferCRL {
		sources[0], sources[1] = sources[1], sources[0]
	}
	var details []string
	for _, src := range sources {
		res, err := src()
		if err == nil {
			return res
		}
		details = append(details, err.Error())
	}
	return Result{Status: Unknown, Detail: strings.Join(details, "; ")}
}

var errNoURL = errors.New("none given")

// viaOCSP asks each responder in turn until one gives a verified answer.
func (c *Checker) viaOCSP(ctx context.Context, cert, issuer *x509.Certificate, urls []string) (Result, error) {
	if len(urls) == 0 {
		return Result{}, fmt.Errorf("OCSP: %w", errNoURL)
	}
	req, err := ocsp.CreateRequest(cert, issuer, &ocsp.RequestOptions{Hash: crypto.SHA1})
	if err != nil {
		return Result{}, fmt.Errorf("OCSP: %w", err)
	}
	client := *c.opts.HTTP
	client.MaxBytes = c.opts.MaxOCSPBytes
	var errs []string
	for _, u := range urls {
		c.fetches.Add(1)
		var der []byte
		// RFC 5019: GET for small requests, which caches well in front
		// of responders; POST otherwise.
		if enc := base64.StdEncoding.EncodeToString(req); len(enc) <= 255 {
			// Escaped whole: '+' and '/' of base64 are not taken literally
			// by every server in a path.
			der, err = client.Fetch(ctx, strings.TrimSuffix(u, "/")+"/"+url.QueryEscape(enc))
		} else {
			der, err = client.Post(ctx, u, "application/ocsp-request", req)
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", u, err))
			continue
		}
		now := c.opts.Now()
		resp, err := VerifyOCSP(der, cert, issuer, now, c.opts.ClockSkew, c.opts.NoNextUpdateTTL)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", u, err))
			continue
		}
		until := now.Add(c.opts.NoNextUpdateTTL)
		if !resp.NextUpdate.IsZero() {
			until = resp.NextUpdate
		}
		if max := now.Add(c.opts.MaxCacheAge); until.After(max) {
			until = max
		}
		switch resp.Status {
		case ocsp.Good:
			return Result{Status: Good, Source: "ocsp", Until: until}, nil
		case ocsp.Revoked:
			return Result{Status: Revoked, Source: "ocsp", RevokedAt: resp.RevokedAt, Reason: resp.RevocationReason, Until: until}, nil
		}
		errs = append(errs, u+": responder does not know the certificate")
	}
	return Result{}, fmt.Errorf("OCSP: %s", strings.Join(errs, ", "))
}

// viaCRL looks the serial up in the first distribution point whose CRL
// verifies.
func (c *Checker) viaCRL(ctx context.Context, cert, issuer *x509.Certificate, urls []string, after time.Time) (Result, error) {
	if len(urls) == 0 {
		return Result{}, fmt.Errorf("CRL: %w", errNoURL)
	}
	var errs []string
	for _, u := range urls {
		ce, err := c.crl(ctx, u, issuer, after)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", u, err))
			continue
		}
		if rc, ok := ce.revoked[string(cert.SerialNumber.Bytes())]; ok {
			return Result{Status: Revoked, Source: "crl", RevokedAt: rc.RevocationTime, Reason: rc.ReasonCode, Until: ce.until}, nil
		}
		return Result{Status: Good, Source: "crl", Until: ce.until}, nil
	}
	return Result{}, fmt.Errorf("CRL: %s", strings.Join(errs, ", "))
}

// crl returns the verified CRL at u, from the cache while it is current
// beyond after; concurrent callers share one download.
func (c *Checker) crl(ctx context.Context, u string, issuer *x509.Certificate, after time.Time) (*crlEntry, error) {
	key := u + "\x00" + string(issuer.RawSubject) + string(issuer.RawSubjectPublicKeyInfo)
	c.crlMu.Lock()
	ce := c.crls[key]
	c.crlMu.Unlock()
	if ce != nil && after.Before(ce.until) {
		return ce, nil
	}
	v, err, _ := c.crlFlight.Do(key, func() (any, error) {
		client := *c.opts.HTTP
		client.MaxBytes = c.opts.MaxCRLBytes
		c.fetches.Add(1)
		der, err := client.Fetch(ctx, u)
		if err != nil {
			return nil, err
		}
		now := c.opts.Now()
		crl, err := VerifyCRL(der, issuer, now, c.opts.ClockSkew)
		if err != nil {
			return nil, err
		}
		ce := &crlEntry{revoked: make(map[string]x509.RevocationListEntry, len(crl.RevokedCertificateEntries)), until: crl.NextUpdate}
		if max := now.Add(c.opts.MaxCacheAge); ce.until.After(max) {
			ce.until = max
		}
		for _, rc := range crl.RevokedCertificateEntries {
			if rc.SerialNumber != nil {
				ce.revoked[string(rc.SerialNumber.Bytes())] = rc
			}
		}
		c.crlMu.Lock()
		c.crls[key] = ce
		for k, old := range c.crls {
			if !now.Before(old.until) {
				delete(c.crls, k)
			}
		}
		c.crlMu.Unlock()
		return ce, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*crlEntry), nil
}

// httpURLs keeps the http and https URLs: a certificate must never make the
// gateway read a file or speak LDAP.
func httpURLs(in []string) []string {
	var out []string
	for _, s := range in {
		if u, err := url.Parse(s); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
			out = append(out, s)
		}
	}
	return out
}

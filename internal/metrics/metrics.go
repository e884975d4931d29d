// Package metrics holds bankedge's Prometheus collectors and the helpers
// that record into them. The collectors are created once per process and
// registered into Caddy's registry of each configuration (Register, from
// every bankedge module's Provision), as Caddy's reverse proxy does: a
// config reload gets a fresh registry, and re-registering the same
// collectors keeps every series and its value across the reload.
//
// Labels stay bounded: values are cut to a safe alphabet and length, each
// label keeps at most maxLabelValues distinct values (later ones count as
// "other"), and results are either "ok" or a code of a known shape.
// Request ids and certificate serials are never labels.
package metrics

import (
	"errors"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
)

const ns = "bankedge"

var (
	psd2Requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: "psd2", Name: "requests_total",
		Help: "PSD2 requests by TPP organisation id and result (ok or the Berlin Group error code).",
	}, []string{"tpp", "result"})
	psd2VerifyDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: ns, Subsystem: "psd2", Name: "verify_duration_seconds",
		Help:    "Time spent verifying a PSD2 request (certificates, digest, signature).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12),
	})
	psd2CacheLookups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: "psd2", Name: "cache_lookups_total",
		Help: "Lookups in the PSD2 verification caches by cache and outcome (hit or miss).",
	}, []string{"cache", "outcome"})

	pesitSessions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: "pesit", Name: "sessions_total",
		Help: "Ended PeSIT sessions by partner and result (ok or the PeSIT diagnostic, e.g. 3-304).",
	}, []string{"partner", "result"})
	pesitBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: "pesit", Name: "bytes_total",
		Help: "File bytes transferred by partner and direction (upload: partner to bank; download: bank to partner).",
	}, []string{"partner", "direction"})
	pesitActive = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: ns, Subsystem: "pesit", Name: "active_sessions",
		Help: "Open PeSIT sessions by partner.",
	}, []string{"partner"})

	caIssued = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: "ca", Name: "issued_total",
		Help: "Certificates issued by the bankedge CA by purpose.",
	}, []string{"purpose"})
	caRevocations = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: ns, Subsystem: "ca", Name: "revocations_total",
		Help: "Certificates revoked by the bankedge CA.",
	})
	caExpiry = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: ns, Subsystem: "ca", Name: "certificate_expiry_timestamp_seconds",
		Help: "notAfter of the CA certificate, as a Unix timestamp.",
	})
	caPartnerExpiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: ns, Subsystem: "ca", Name: "partner_certificate_expiry_timestamp_seconds",
		Help: "Earliest notAfter among a partner's valid (not revoked, not expired) certificates, as a Unix timestamp.",
	}, []string{"partner"})
	caCRLNextUpdate = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: ns, Subsystem: "ca", Name: "crl_next_update_timestamp_seconds",
		Help: "nextUpdate of the CA's current CRL, as a Unix timestamp.",
	})

	trustListSuccess = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: ns, Subsystem: "trustlist", Name: "last_success_timestamp_seconds",
		Help: "Time of the last successful refresh of a trust list, as a Unix timestamp.",
	}, []string{"list"})
	trustListFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: "trustlist", Name: "refresh_failures_total",
		Help: "Failed refreshes of a trust list.",
	}, []string{"list"})
	revocationChecks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: "revocation", Name: "checks_total",
		Help: "Revocation checks of client certificates by method (ocsp, crl) and result (good, revoked, unknown, error).",
	}, []string{"method", "result"})
)

// collectors are all bankedge collectors, in Names order.
var collectors = []prometheus.Collector{
	psd2Requests, psd2VerifyDuration, psd2CacheLookups,
	pesitSessions, pesitBytes, pesitActive,
	caIssued, caRevocations, caExpiry, caPartnerExpiry, caCRLNextUpdate,
	trustListSuccess, trustListFailures, revocationChecks,
}

// Names lists the metric names, for documentation and alert rule tests.
func Names() []string {
	return []string{
		"bankedge_psd2_requests_total", "bankedge_psd2_verify_duration_seconds", "bankedge_psd2_cache_lookups_total",
		"bankedge_pesit_sessions_total", "bankedge_pesit_bytes_total", "bankedge_pesit_active_sessions",
		"bankedge_ca_issued_total", "bankedge_ca_revocations_total", "bankedge_ca_certificate_expiry_timestamp_seconds",
		"bankedge_ca_partner_certificate_expiry_timestamp_seconds", "bankedge_ca_crl_next_update_timestamp_seconds",
		"bankedge_trustlist_last_success_timestamp_seconds", "bankedge_trustlist_refresh_failures_total",
		"bankedge_revocation_checks_total",
	}
}

// Register adds the bankedge collectors to the metrics registry of ctx's
// configuration. Call it from the Provision of every bankedge module that
// records metrics; registering again in the same configuration is a no-op.
func Register(ctx caddy.Context) error {
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return nil
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				continue
			}
			return err
		}
	}
	return nil
}

// maxLabelValues bounds the distinct values of one label (partners, TPPs,
// trust lists): beyond it, new values are recorded as "other".
const maxLabelValues = 1000

// boundedLabel remembers the values a label has taken.
type boundedLabel struct {
	mu   sync.Mutex
	seen map[string]struct{}
}

var (
	tppLabel     = &boundedLabel{}
	partnerLabel = &boundedLabel{}
	listLabel    = &boundedLabel{}
)

// value returns the label value for raw: cut to 64 characters of
// [A-Za-z0-9_.:-] (others become '_'), "unknown" when empty, "other" when
// the label already has maxLabelValues values.
func (b *boundedLabel) value(raw string) string {
	v := cleanLabel(raw)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seen == nil {
		b.seen = make(map[string]struct{})
	}
	if _, ok := b.seen[v]; ok {
		return v
	}
	if len(b.seen) >= maxLabelValues {
		return "other"
	}
	b.seen[v] = struct{}{}
	return v
}

func cleanLabel(raw string) string {
	if raw == "" {
		return "unknown"
	}
	if len(raw) > 64 {
		raw = raw[:64]
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '.', r == ':', r == '-':
			return r
		}
		return '_'
	}, raw)
}

var (
	bgCodeRE     = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,39}$`)
	pesitDiagRE  = regexp.MustCompile(`^([0-9]-[0-9]{3}|nak0)$`)
	shortTokenRE = regexp.MustCompile(`^[a-z0-9_]{1,32}$`)
)

// result keeps a result label to "ok" or a code matching re.
func result(code string, re *regexp.Regexp) string {
	switch {
	case code == "" || code == "ok":
		return "ok"
	case re.MatchString(code):
		return code
	}
	return "other"
}

// token keeps a fixed-vocabulary label (cache names, methods, outcomes)
// short and lower case.
func token(s string) string {
	s = strings.ToLower(s)
	if shortTokenRE.MatchString(s) {
		return s
	}
	return "other"
}

// PSD2Request counts a request that the PSD2 handlers decided on: tpp is
// the organisation id of the verified QWAC ("" before one was verified),
// roles its PSD2 roles, and code "ok" or the Berlin Group error code. The
// handlers use a TPPMeter for verified TPPs, which costs less.
func PSD2Request(tpp string, roles []string, code string) {
	res := result(code, bgCodeRE)
	psd2Requests.WithLabelValues(tppLabel.value(tpp), res).Inc()
	if tpp == "" {
		return
	}
	e, now := tpps.entry(cleanLabel(tpp), roles), time.Now()
	if res == "ok" {
		e.seen(now)
	} else {
		e.refused(res, now)
	}
}

// PSD2VerifyDuration records the time one request's verification took.
func PSD2VerifyDuration(d time.Duration) { psd2VerifyDuration.Observe(d.Seconds()) }

// PSD2CacheLookup counts a lookup in a verification cache (e.g. "qwac",
// "qseal", "revocation").
func PSD2CacheLookup(cache string, hit bool) {
	outcome := "miss"
	if hit {
		outcome = "hit"
	}
	psd2CacheLookups.WithLabelValues(token(cache), outcome).Inc()
}

// PSD2CacheCounters returns the hit and miss counters of a verification
// cache, resolved once for a hot path.
func PSD2CacheCounters(cache string) (hit, miss prometheus.Counter) {
	return psd2CacheLookups.WithLabelValues(token(cache), "hit"), psd2CacheLookups.WithLabelValues(token(cache), "miss")
}

// Direction of a PeSIT transfer, from the bank's point of view.
type Direction string

// The directions.
const (
	// Upload is a file the partner sends to the bank (PeSIT CREATE/WRITE).
	Upload Direction = "upload"
	// Download is a file the partner receives (PeSIT SELECT/READ).
	Download Direction = "download"
)

// PeSITSessionStarted counts an open session of an authenticated partner
// in bankedge_pesit_active_sessions until the returned function is called.
func PeSITSessionStarted(partner string) (ended func()) {
	g := pesitActive.WithLabelValues(partnerLabel.value(partner))
	g.Inc()
	var once sync.Once
	return func() { once.Do(g.Dec) }
}

// PeSITSession counts an ended session: partner is the PI 3 id once
// authenticated ("" before), diag "ok", the PeSIT diagnostic ("3-304"),
// or "nak0" for a refused pre-connection.
func PeSITSession(partner, diag string) {
	pesitSessions.WithLabelValues(partnerLabel.value(partner), result(diag, pesitDiagRE)).Inc()
}

// PeSITMeter holds the series of an authenticated partner's session,
// resolved once, for the byte counts of every data FPDU.
type PeSITMeter struct {
	upload, download prometheus.Counter
}

// NewPeSITMeter returns the meter of a session of partner.
func NewPeSITMeter(partner string) *PeSITMeter {
	l := partnerLabel.value(partner)
	return &PeSITMeter{upload: pesitBytes.WithLabelValues(l, string(Upload)), download: pesitBytes.WithLabelValues(l, string(Download))}
}

// Bytes adds n file bytes in direction d.
func (m *PeSITMeter) Bytes(d Direction, n int64) {
	if n <= 0 {
		return
	}
	if d == Upload {
		m.upload.Add(float64(n))
	} else {
		m.download.Add(float64(n))
	}
}

// PeSITBytes adds n file bytes transferred by partner in direction d.
func PeSITBytes(partner string, d Direction, n int64) {
	if n <= 0 {
		return
	}
	pesitBytes.WithLabelValues(partnerLabel.value(partner), token(string(d))).Add(float64(n))
}

// CAIssued counts a certificate issued for purpose (CLIENT, SERVER, QWAC,
// QSEAL).
func CAIssued(purpose string) { caIssued.WithLabelValues(token(purpose)).Inc() }

// CARevoked counts a revocation.
func CARevoked() { caRevocations.Inc() }

// SetCACertificateExpiry sets the CA certificate's notAfter.
func SetCACertificateExpiry(notAfter time.Time) { caExpiry.Set(unix(notAfter)) }

// SetCRLNextUpdate sets the current CRL's nextUpdate.
func SetCRLNextUpdate(next time.Time) { caCRLNextUpdate.Set(unix(next)) }

// SetPartnerCertificateExpiry replaces the partner expiry gauges: for each
// partner, the earliest notAfter among its valid certificates. Partners
// absent from m (no valid certificate left) lose their series; the others
// never disappear in between, whenever a scrape comes.
func SetPartnerCertificateExpiry(m map[string]time.Time) {
	partnerExpiry.mu.Lock()
	defer partnerExpiry.mu.Unlock()
	next := make(map[string]bool, len(m))
	for p, t := range m {
		l := partnerLabel.value(p)
		if l == "other" {
			// One series cannot stand for many partners' dates.
			continue
		}
		caPartnerExpiry.WithLabelValues(l).Set(unix(t))
		next[l] = true
	}
	for l := range partnerExpiry.labels {
		if !next[l] {
			caPartnerExpiry.DeleteLabelValues(l)
		}
	}
	partnerExpiry.labels = next
}

// partnerExpiry remembers the partners with an expiry series.
var partnerExpiry struct {
	mu     sync.Mutex
	labels map[string]bool
}

// TrustListRefreshed records a successful refresh of a trust list (e.g.
// "EU", "GR").
func TrustListRefreshed(list string, at time.Time) {
	l := listLabel.value(list)
	trustListSuccess.WithLabelValues(l).Set(unix(at))
	trustListFailures.WithLabelValues(l).Add(0)
}

// TrustListRefreshFailed counts a failed refresh of a trust list.
func TrustListRefreshFailed(list string) {
	trustListFailures.WithLabelValues(listLabel.value(list)).Inc()
}

// RevocationCheck counts a revocation check by method ("ocsp", "crl") and
// result ("good", "revoked", "unknown", "error").
func RevocationCheck(method, res string) {
	revocationChecks.WithLabelValues(token(method), token(res)).Inc()
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

package metrics

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TPP is what the gateway saw of a PSD2 third-party provider lately, for
// the admin console's dashboard.
type TPP struct {
	// OrgID is the organisation id of its QWAC.
	OrgID string
	// Roles are the PSD2 roles of its last QWAC.
	Roles []string
	// LastSeen is the time of its last request.
	LastSeen time.Time
	// Requests and Rejections count its requests since the process started.
	Requests, Rejections int64
	// LastRejection is the Berlin Group code of its last refused request,
	// and LastRejectionAt when that was; empty when none was refused.
	LastRejection   string
	LastRejectionAt time.Time
}

// maxTPPs bounds the TPPs remembered; the least recently seen go first.
const maxTPPs = 200

// tppEntry is a TPP's activity. Its counters are atomic, so that an
// accepted request updates them without a lock or an allocation.
type tppEntry struct {
	org      string
	roles    atomic.Pointer[[]string]
	lastSeen atomic.Int64 // Unix nanoseconds
	requests atomic.Int64
	// gone is set when the table evicted the entry: meters holding it
	// take a new one.
	gone atomic.Bool

	mu              sync.Mutex
	rejections      int64
	lastRejection   string
	lastRejectionAt time.Time
}

type tppTable struct {
	mu sync.Mutex
	m  map[string]*tppEntry
}

var tpps = &tppTable{m: make(map[string]*tppEntry)}

// entry returns the entry of org, making it (and evicting the least
// recently seen when full); roles, when given, replace the entry's.
func (t *tppTable) entry(org string, roles []string) *tppEntry {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[org]
	if !ok {
		if len(t.m) >= maxTPPs {
			var oldest *tppEntry
			for _, v := range t.m {
				if oldest == nil || v.lastSeen.Load() < oldest.lastSeen.Load() {
					oldest = v
				}
			}
			oldest.gone.Store(true)
			delete(t.m, oldest.org)
		}
		e = &tppEntry{org: org}
		t.m[org] = e
	}
	if len(roles) > 0 {
		r := slices.Clone(roles)
		e.roles.Store(&r)
	}
	return e
}

func (e *tppEntry) seen(now time.Time) {
	e.lastSeen.Store(now.UnixNano())
	e.requests.Add(1)
}

func (e *tppEntry) refused(res string, now time.Time) {
	e.seen(now)
	e.mu.Lock()
	e.rejections++
	e.lastRejection, e.lastRejectionAt = res, now
	e.mu.Unlock()
}

// TPPMeter records the requests of one TPP with its series resolved once:
// the PSD2 handlers keep one with each verified certificate, so that an
// accepted request costs a few atomic additions and no allocation.
type TPPMeter struct {
	org, label string
	roles      []string
	ok         prometheus.Counter
	entry      atomic.Pointer[tppEntry]
}

// NewTPPMeter returns the meter of the TPP with organisation id org and
// PSD2 roles (those of the certificate it was verified with).
func NewTPPMeter(org string, roles []string) *TPPMeter {
	m := &TPPMeter{org: cleanLabel(org), label: tppLabel.value(org), roles: slices.Clone(roles)}
	m.ok = psd2Requests.WithLabelValues(m.label, "ok")
	m.entry.Store(tpps.entry(m.org, m.roles))
	return m
}

func (m *TPPMeter) current() *tppEntry {
	e := m.entry.Load()
	if e.gone.Load() {
		e = tpps.entry(m.org, m.roles)
		m.entry.Store(e)
	}
	return e
}

// OK counts an accepted request at now.
func (m *TPPMeter) OK(now time.Time) {
	m.ok.Inc()
	m.current().seen(now)
}

// Refused counts a refused request with its Berlin Group code.
func (m *TPPMeter) Refused(code string, now time.Time) {
	res := result(code, bgCodeRE)
	psd2Requests.WithLabelValues(m.label, res).Inc()
	m.current().refused(res, now)
}

// RecentTPPs returns the TPPs seen within the last window, most recent
// first.
func RecentTPPs(window time.Duration) []TPP {
	tpps.mu.Lock()
	entries := make([]*tppEntry, 0, len(tpps.m))
	for _, e := range tpps.m {
		entries = append(entries, e)
	}
	tpps.mu.Unlock()
	cutoff := time.Now().Add(-window)
	var out []TPP
	for _, e := range entries {
		last := time.Unix(0, e.lastSeen.Load())
		if !last.After(cutoff) {
			continue
		}
		t := TPP{OrgID: e.org, LastSeen: last, Requests: e.requests.Load()}
		if r := e.roles.Load(); r != nil {
			t.Roles = slices.Clone(*r)
		}
		e.mu.Lock()
		t.Rejections, t.LastRejection, t.LastRejectionAt = e.rejections, e.lastRejection, e.lastRejectionAt
		e.mu.Unlock()
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b TPP) int { return b.LastSeen.Compare(a.LastSeen) })
	return out
}

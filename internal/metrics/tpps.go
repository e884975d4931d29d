package metrics

import (
	"slices"
	"sync"
	"time"
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

type tppTable struct {
	mu sync.Mutex
	m  map[string]*TPP
}

var tpps = &tppTable{m: make(map[string]*TPP)}

func (t *tppTable) seen(org string, roles []string, res string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[org]
	if !ok {
		if len(t.m) >= maxTPPs {
			oldest := ""
			for k, v := range t.m {
				if oldest == "" || v.LastSeen.Before(t.m[oldest].LastSeen) {
					oldest = k
				}
			}
			delete(t.m, oldest)
		}
		e = &TPP{OrgID: org}
		t.m[org] = e
	}
	e.LastSeen = now
	e.Requests++
	if len(roles) > 0 {
		e.Roles = slices.Clone(roles)
	}
	if res != "ok" {
		e.Rejections++
		e.LastRejection, e.LastRejectionAt = res, now
	}
}

// RecentTPPs returns the TPPs seen within the last window, most recent
// first.
func RecentTPPs(window time.Duration) []TPP {
	tpps.mu.Lock()
	defer tpps.mu.Unlock()
	cutoff := time.Now().Add(-window)
	var out []TPP
	for _, e := range tpps.m {
		if e.LastSeen.After(cutoff) {
			c := *e
			c.Roles = slices.Clone(e.Roles)
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b TPP) int { return b.LastSeen.Compare(a.LastSeen) })
	return out
}

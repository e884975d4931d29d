package pesit

import (
	"sync"

	"github.com/bankedge/bankedge/internal/metrics"
	"github.com/bankedge/bankedge/modules/pesit/fpdu"
)

// The PeSIT gateway's metrics, all recorded here; the session calls these
// with one-line hooks. A session counts once in
// bankedge_pesit_sessions_total, when it ends, with the first outcome
// that decided it: "ok" for a RELEASE without error, the diagnostic of an
// RCONNECT or ABORT (from the gateway, the partner or the upstream),
// "nak0" for a refused pre-connection, and the network-incident
// diagnostic for an accepted session whose connection closed without
// RELEASE. A connection that closes before sending a CONNECT (a port
// probe, a load balancer's check) is not a session and counts nothing.
//
// The partner label is the partner once authenticated; for a refused
// CONNECT, the requester id only when the registry knows it (a wrong
// password, a disabled partner), so that made-up ids cannot use up the
// label's values; "unknown" otherwise.

// sessionMeter is a session's metrics state.
type sessionMeter struct {
	mu      sync.Mutex
	partner string
	result  string
	// active ends the session's count in bankedge_pesit_active_sessions.
	active func()
	// bytes is set once the session is authenticated, before any data.
	bytes *metrics.PeSITMeter
}

// named sets the partner label: an authenticated partner, or one the
// registry knows that was refused.
func (m *sessionMeter) named(partner string) {
	m.mu.Lock()
	m.partner = partner
	m.mu.Unlock()
}

// started counts an accepted session as active, until finish.
func (m *sessionMeter) started(partner string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.partner = partner
	m.active = metrics.PeSITSessionStarted(partner)
	m.bytes = metrics.NewPeSITMeter(partner)
}

// end records the diagnostic that ends the session, unless one did
// already.
func (m *sessionMeter) end(d fpdu.Diag) {
	res := "ok"
	if !d.OK() {
		res = d.String()
	}
	m.endWith(res)
}

func (m *sessionMeter) endWith(res string) {
	m.mu.Lock()
	if m.result == "" {
		m.result = res
	}
	m.mu.Unlock()
}

// data counts the file bytes of a data FPDU in the transfer's direction.
func (m *sessionMeter) data(upload bool, n uint64) {
	if m.bytes == nil {
		return
	}
	d := metrics.Download
	if upload {
		d = metrics.Upload
	}
	m.bytes.Bytes(d, int64(n))
}

// finish counts the ended session and ends its active count.
func (m *sessionMeter) finish(accepted bool) {
	m.mu.Lock()
	res, partner, active := m.result, m.partner, m.active
	m.mu.Unlock()
	if res == "" && accepted {
		res = fpdu.NewDiag(fpdu.ReasonNetworkIncident).String()
	}
	if res != "" {
		metrics.PeSITSession(partner, res)
	}
	if active != nil {
		active()
	}
}

package psd2

import (
	"sync"
	"time"

	"github.com/bankedge/bankedge/internal/certprofile/qcstatements"
	"github.com/bankedge/bankedge/internal/metrics"
)

// The PSD2 handlers' metrics, all recorded here; the handlers call these
// with one-line hooks. Every request that a PSD2 handler decides on is
// counted once in bankedge_psd2_requests_total: a refusal where it is
// answered (refuse), an acceptance by psd2_qwac when the rest of the route
// has run without a PSD2 refusal. bankedge_psd2_verify_duration_seconds is
// the time from psd2_qwac's start to the end of the last PSD2 check of the
// request (psd2_qseal's, when the route has it), upstream time excluded.
//
// The accepted path allocates nothing for this: the TPP's series are
// resolved once per verified certificate (TPP.meter), the cache counters
// once per process, and the per-request state is pooled.

// Cache lookup counters, resolved once.
var (
	qwacCacheHit, qwacCacheMiss   = metrics.PSD2CacheCounters("qwac")
	qsealCacheHit, qsealCacheMiss = metrics.PSD2CacheCounters("qseal")
)

// meterLookup counts a lookup in the verifier's cache of verified
// certificates.
func (v *certVerifier) meterLookup(hit bool) {
	switch {
	case v.qcType == qcstatements.QcTypeESeal && hit:
		qsealCacheHit.Inc()
	case v.qcType == qcstatements.QcTypeESeal:
		qsealCacheMiss.Inc()
	case hit:
		qwacCacheHit.Inc()
	default:
		qwacCacheMiss.Inc()
	}
}

// tppMeter is the meter of a TPP verified by its QWAC; QSEALs count
// nothing of their own (their requests are the QWAC's).
func (v *certVerifier) tppMeter(orgID string, roles []string) *metrics.TPPMeter {
	if v.qcType != qcstatements.QcTypeWeb {
		return nil
	}
	return metrics.NewTPPMeter(orgID, roles)
}

// requestMeter is the metrics state of one request, which psd2_qwac keeps
// in the request's variables for the PSD2 handlers after it.
type requestMeter struct {
	start, checked time.Time
	tpp            *TPP
	refused        bool
}

// varMeter holds the *requestMeter.
const varMeter = "psd2.meter"

var meterPool = sync.Pool{New: func() any { return new(requestMeter) }}

// startMeter starts the meter of a request at psd2_qwac; finish it with
// finishMeter when the route has run.
func startMeter(vars map[string]any) *requestMeter {
	m := meterPool.Get().(*requestMeter)
	*m = requestMeter{start: time.Now()}
	if vars != nil {
		vars[varMeter] = m
	}
	return m
}

// meterOf returns the request's meter, nil when psd2_qwac did not start
// one.
func meterOf(vars map[string]any) *requestMeter {
	m, _ := vars[varMeter].(*requestMeter)
	return m
}

// markChecked notes that a PSD2 handler finished its checks of the
// request; tpp is the verified TPP, if any.
func markChecked(vars map[string]any, tpp *TPP) {
	if m := meterOf(vars); m != nil {
		m.checked = time.Now()
		if tpp != nil {
			m.tpp = tpp
		}
	}
}

// meterRefusal counts a refusal, answered by any PSD2 handler.
func meterRefusal(vars map[string]any, tpp *TPP, code Code) {
	if m := meterOf(vars); m != nil {
		m.refused = true
	}
	switch {
	case tpp != nil && tpp.meter != nil:
		tpp.meter.Refused(string(code), time.Now())
	case tpp != nil:
		metrics.PSD2Request(tpp.OrgID, nil, string(code))
	default:
		metrics.PSD2Request("", nil, string(code))
	}
}

// finishMeter records the request's verification time and, unless a PSD2
// handler refused it, its acceptance; the meter goes back to the pool.
func finishMeter(vars map[string]any, m *requestMeter) {
	if vars != nil {
		delete(vars, varMeter)
	}
	if !m.checked.IsZero() {
		metrics.PSD2VerifyDuration(m.checked.Sub(m.start))
	}
	if !m.refused && m.tpp != nil && m.tpp.meter != nil {
		m.tpp.meter.OK(m.checked)
	}
	*m = requestMeter{}
	meterPool.Put(m)
}

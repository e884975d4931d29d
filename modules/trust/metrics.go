package trust

import (
	"time"

	"github.com/bankedge/bankedge/internal/metrics"
	"github.com/bankedge/bankedge/modules/trust/revocation"
	"github.com/bankedge/bankedge/modules/trust/tsl"
)

// The trust module's metrics, all recorded here: each resolve of the trusted
// lists (a success per list fetched and in force, a failure per list
// refused or unavailable, "EU" being the LOTL) and the revocation
// checker's cache lookups and checks.

// revocationHit and revocationMiss count the revocation cache, resolved
// once: a lookup is made on every PSD2 request.
var revocationHit, revocationMiss = metrics.PSD2CacheCounters("revocation")

func init() {
	revocation.ObserveLookup = func(hit bool) {
		if hit {
			revocationHit.Inc()
		} else {
			revocationMiss.Inc()
		}
	}
	revocation.ObserveCheck = func(method string, status revocation.Status) {
		metrics.RevocationCheck(method, status.String())
	}
}

// lotlLabel names the LOTL in the trust list series.
const lotlLabel = "EU"

// meterResolve records a resolve of the lists; snap may be nil or partial
// when err is set.
func meterResolve(snap *tsl.Snapshot, err error) {
	if snap == nil {
		metrics.TrustListRefreshFailed(lotlLabel)
		return
	}
	meterList(lotlLabel, snap.LOTL, snap.Time)
	if err != nil {
		return
	}
	for _, ls := range snap.Lists {
		meterList(ls.Territory, ls, snap.Time)
	}
}

func meterList(name string, ls tsl.ListState, at time.Time) {
	if ls.Origin == tsl.Fetched && ls.Err == nil {
		metrics.TrustListRefreshed(name, at)
		return
	}
	metrics.TrustListRefreshFailed(name)
}

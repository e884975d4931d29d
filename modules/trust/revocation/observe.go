package revocation

// Observers of a Checker's work, for metrics. The trust module sets them
// once, at init; this package stays free of the metrics' dependencies.
var (
	// ObserveLookup, when set, is told whether Check found a current
	// answer in the cache.
	ObserveLookup func(hit bool)
	// ObserveCheck, when set, is told of every status established by
	// fetching (a cache miss or a refresh ahead of expiry): the method
	// that answered, or the preferred one when none did, and the status.
	ObserveCheck func(method string, status Status)
)

func observeLookup(hit bool) {
	if ObserveLookup != nil {
		ObserveLookup(hit)
	}
}

func observeCheck(res Result, prefer Prefer) {
	if ObserveCheck == nil {
		return
	}
	method := res.Source
	if method == "" {
		method = "ocsp"
		if prefer == PreferCRL {
			method = "crl"
		}
	}
	ObserveCheck(method, res.Status)
}

package ca

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/bankedge/bankedge/internal/metrics"
	"github.com/bankedge/bankedge/modules/ca/authority"
)

// The CA's metrics, all recorded here: issuances (every one, through the
// authority's OnIssue), revocations, and the gauges of the CA certificate's
// expiry, the CRL's nextUpdate and each partner's earliest valid
// certificate, which a refresher recomputes from storage.

// gaugeRefreshInterval is how often the gauges are recomputed from
// storage: the bound on how stale they are after a change made by another
// instance sharing the storage, or after a certificate expired.
const gaugeRefreshInterval = time.Minute

// gaugeMinGap spaces recomputations, so that a burst of issuances reads
// the inventory once, not once per certificate. A change this instance
// makes reaches the gauges within it.
const gaugeMinGap = time.Second

// meterIssued records an issuance.
func (a *App) meterIssued(req authority.Request) {
	metrics.CAIssued(string(req.Purpose))
	a.gauges.changed()
}

// revoked records a revocation.
func (a *App) revoked() {
	metrics.CARevoked()
	a.gauges.changed()
}

// gaugeRefresher recomputes the CA's gauges: at start, soon after a change
// this instance made, and every interval.
type gaugeRefresher struct {
	app      *App
	interval time.Duration
	kick     chan struct{}
	stop     chan struct{}
	done     chan struct{}
}

func newGaugeRefresher(a *App) *gaugeRefresher {
	return &gaugeRefresher{app: a, interval: gaugeRefreshInterval, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

// changed asks for a recomputation; it never blocks.
func (g *gaugeRefresher) changed() {
	if g == nil {
		return
	}
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

func (g *gaugeRefresher) start() {
	if g != nil {
		go g.run()
	}
}

// close stops the refresher and waits for a recomputation in progress.
func (g *gaugeRefresher) close() {
	if g == nil {
		return
	}
	select {
	case <-g.stop:
		return
	default:
	}
	close(g.stop)
	<-g.done
}

func (g *gaugeRefresher) run() {
	defer close(g.done)
	timer := time.NewTimer(0)
	defer timer.Stop()
	// One line per failure burst (a storage outage), not one per retry.
	failing := false
	for {
		select {
		case <-g.stop:
			return
		case <-g.kick:
		case <-timer.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := g.app.refreshGauges(ctx)
		switch {
		case err != nil && !failing:
			g.app.logger.Warn("recomputing the CA metrics failed; retrying at the next change or refresh", zap.Error(err))
		case err == nil && failing:
			g.app.logger.Info("the CA metrics are recomputed again")
		}
		failing = err != nil
		cancel()
		timer.Reset(g.interval)
		select {
		case <-g.stop:
			return
		case <-time.After(gaugeMinGap):
		}
	}
}

// refreshGauges sets the gauges from storage. Revoked and expired
// certificates do not count for a partner's expiry; a partner left with
// none loses its series.
func (a *App) refreshGauges(ctx context.Context) error {
	auth, err := a.Authority()
	if err != nil {
		return nil // no CA yet: nothing to say
	}
	metrics.SetCACertificateExpiry(auth.Certificate().NotAfter)
	if crl, err := auth.PublishedCRL(ctx); err == nil {
		metrics.SetCRLNextUpdate(crl.NextUpdate)
	}
	recs, err := auth.Issued(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	earliest := map[string]time.Time{}
	for _, r := range recs {
		if r.PartnerID == "" || r.Status != authority.StatusValid || !r.NotAfter.After(now) {
			continue
		}
		if t, ok := earliest[r.PartnerID]; !ok || r.NotAfter.Before(t) {
			earliest[r.PartnerID] = r.NotAfter
		}
	}
	metrics.SetPartnerCertificateExpiry(earliest)
	return nil
}

package ca

import (
	"context"
	"errors"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/bankedge/bankedge/internal/runmode"
	"github.com/bankedge/bankedge/modules/ca/authority"
	"github.com/bankedge/bankedge/modules/cluster"
)

// Gateways that share a storage share the CA and the registry through it;
// what each keeps in memory follows the others' changes through the change
// notifications of the shared state (modules/cluster), which arrive within
// milliseconds on Redis storage:
//
//   - a partner created, updated (password included) or deleted: every
//     gateway empties its cache of password verifications (authentication
//     reads the partner's record from storage on every connection anyway);
//   - a certificate revoked: every gateway drops its in-memory view of
//     revocations, which the next handshake or PSD2 request reads again;
//   - the CA initialised through the API (manual_initialize): the gateways
//     still without a CA open it.
//
// When notifications may have been lost (Redis was unreachable), every
// gateway does all three.
const (
	topicPartner    = "bankedge.partner"
	topicRevocation = "bankedge.revocation"
	topicCA         = "bankedge.ca"
)

// notifyRetry bounds the retries of a notification that could not be
// published: past it, the receivers' own refresh (30 s for revocations)
// takes over.
const notifyRetry = 30 * time.Second

// joinCluster takes the configuration's shared state, puts the storage the
// CA and the registry use behind its guard (an unreachable Redis becomes
// cluster.ErrUnavailable: 503 at the API, RCONNECT 3-322 at the PeSIT
// gateway) and returns that storage.
func (a *App) joinCluster(ctx caddy.Context) error {
	st, err := cluster.From(ctx)
	if err != nil {
		return err
	}
	a.cluster, a.ctx = st, ctx
	a.storage = st.GuardStorage(ctx.Storage())
	return nil
}

// subscribe follows the other gateways' changes. Called at the end of
// Provision, once the authority and the registry exist.
func (a *App) subscribe() error {
	if runmode.ValidateOnly {
		return nil
	}
	a.registry.OnChange = func(ctx context.Context, id string) { a.notify(topicPartner, id) }
	subs := []struct {
		topic string
		fn    func(cluster.Event)
	}{
		// Not on the receiving goroutine: a registry not used yet makes its
		// dummy hash (argon2id) first.
		{topicPartner, func(cluster.Event) { go a.registry.ForgetAuthentications() }},
		{topicRevocation, func(cluster.Event) {
			if auth, err := a.Authority(); err == nil {
				auth.ForgetRevocations()
			}
			a.gauges.changed()
		}},
		{topicCA, func(cluster.Event) { go a.openCA() }},
	}
	for _, s := range subs {
		fn := s.fn
		if _, err := a.cluster.Subscribe(s.topic, func(ev cluster.Event) {
			if ev.Resync && s.topic == topicPartner {
				a.logger.Info("change notifications may have been missed while Redis was unreachable: dropping cached partner and revocation state",
					zap.String("topic", ev.Topic))
			}
			fn(ev)
		}); err != nil {
			return err
		}
	}
	return nil
}

// onRevoke is the authority's OnRevoke.
func (a *App) onRevoke(_ context.Context, serial *big.Int) {
	a.notify(topicRevocation, authority.SerialString(serial))
}

// notify publishes a change without holding up the caller (a revocation
// holds the revocation lock meanwhile), retrying for a while when Redis
// does not take it.
func (a *App) notify(topic, payload string) {
	if a.cluster == nil || runmode.ValidateOnly {
		return
	}
	go func() {
		deadline := time.Now().Add(notifyRetry)
		for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
			err := a.cluster.Publish(a.ctx, topic, payload)
			if err == nil {
				return
			}
			if time.Now().After(deadline) || a.ctx.Err() != nil {
				a.logger.Warn("the other gateways were not told of a change; they see it at their next refresh",
					zap.String("topic", topic), zap.String("subject", payload), zap.Error(err))
				return
			}
			select {
			case <-a.ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}()
}

// openCA opens the CA that another gateway initialised, if this one has
// none yet.
func (a *App) openCA() {
	if _, err := a.Authority(); err == nil {
		return
	}
	ctx, cancel := context.WithTimeout(a.ctx, 30*time.Second)
	defer cancel()
	auth, _, err := authority.Open(ctx, a.caConfig, false)
	if err != nil {
		a.logger.Warn("another gateway initialised the CA, but it could not be opened here yet", zap.Error(err))
		return
	}
	a.mu.Lock()
	if a.authority == nil {
		a.authority = auth
		a.logger.Info("opened the CA initialised by another gateway",
			zap.String("serial", authority.SerialString(auth.Certificate().SerialNumber)))
	}
	a.mu.Unlock()
}

// PartnerConnectionLimiter implements the PeSIT gateway's SharedState:
// on Redis storage, maxConnections counts a partner's sessions on every
// gateway (leases renewed while the session lives, expiring 30 s after a
// gateway dies). nil keeps the gateway's in-process count.
func (a *App) PartnerConnectionLimiter() interface {
	Acquire(ctx context.Context, partnerID string, limit int) (release func(), ok bool, err error)
} {
	if a.cluster == nil || !a.cluster.Shared() {
		return nil
	}
	return a.cluster
}

// PartnerAuthFailures implements the PeSIT gateway's SharedState: on Redis
// storage, failed authentications count on every gateway, so that guesses
// spread over the gateways are throttled as on one. nil keeps the gateway's
// in-process count.
func (a *App) PartnerAuthFailures() interface {
	Throttled(ctx context.Context, keys []string, limit int, window time.Duration) (bool, error)
	Fail(ctx context.Context, keys []string, window time.Duration) error
} {
	if a.cluster == nil || !a.cluster.Shared() {
		return nil
	}
	return sharedAuthFailures{a.cluster}
}

// sharedAuthFailures counts the PeSIT gateway's failure keys ("partner:<id>",
// "ip:<address or /64>") in the shared state's sliding-window counters.
type sharedAuthFailures struct{ s *cluster.State }

func failureKey(k string) cluster.FailureKey {
	scope, subject, _ := strings.Cut(k, ":")
	switch scope {
	case "partner":
		return cluster.PartnerAuthFailures(subject)
	case "ip":
		return cluster.IPAuthFailures(subject)
	}
	return cluster.FailureKey{Scope: "authfail-other", Subject: k}
}

// Throttled reports whether any key has limit failures within window.
func (f sharedAuthFailures) Throttled(ctx context.Context, keys []string, limit int, window time.Duration) (bool, error) {
	for _, k := range keys {
		n, err := f.s.Failures(ctx, failureKey(k), window)
		if err != nil {
			return false, err
		}
		if n >= limit {
			return true, nil
		}
	}
	return false, nil
}

// Fail records one failure against every key.
func (f sharedAuthFailures) Fail(ctx context.Context, keys []string, window time.Duration) error {
	for _, k := range keys {
		if _, err := f.s.IncrFailure(ctx, failureKey(k), window); err != nil {
			return err
		}
	}
	return nil
}

// storageRetryAfter is the Retry-After of an API request refused because
// the storage did not answer.
const storageRetryAfter = 5 * time.Second

// unavailableError is the API's answer to err when the storage (Redis) did
// not answer: 503 with Retry-After, never 500. Every change is one storage
// write, so a refused request is not half done (a revocation whose CRL
// could not follow says so). The shared state logged the outage
// once; each request gets a debug line only. nil for any other error.
func (h *API) unavailableError(c *call, err error) *apiError {
	if !errors.Is(err, cluster.ErrUnavailable) {
		return nil
	}
	h.logger.Debug("storage unavailable", zap.String("request_id", c.audit.requestID),
		zap.String("action", c.audit.action), zap.Error(err))
	c.w.Header().Set("Retry-After", strconv.Itoa(int(storageRetryAfter/time.Second)))
	return storageUnavailable(err)
}

// storageUnavailable is the refusal of an operation whose storage did not
// answer, for both doors (the console shows it as such too).
func storageUnavailable(err error) *apiError {
	ae := &apiError{status: http.StatusServiceUnavailable,
		msg: "the gateway's storage (Redis) is not answering; retry later", cause: err}
	var crl *crlPending
	if errors.As(err, &crl) {
		ae.msg = crl.Error()
	}
	return ae
}

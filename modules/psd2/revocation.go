package psd2

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/bankedge/bankedge/modules/cluster"
)

// RevocationChecker says whether a certificate is revoked. The PSD2
// handlers ask every checker on every request, after the chain was verified
// or found in the cache, so that no cached verification outlives a
// revocation: a checker must answer from memory (or a cache it refreshes
// itself) in well under a microsecond or two.
//
// The bankedge app (modules/ca) implements it for the certificates its CA
// issued; OCSP and CRL checkers for other QTSPs can implement it too and be
// added in revocationCheckers.
type RevocationChecker interface {
	// CertificateRevoked reports whether cert, whose verified chain
	// names issuer as its issuer, is revoked. A checker that has no say
	// on cert (another issuer) answers false, nil. An error means the
	// status is unknown; the request is then refused with 503.
	CertificateRevoked(ctx context.Context, cert, issuer *x509.Certificate) (revoked bool, err error)
}

// revocationCheckers returns the checkers configured for this
// configuration: today the bankedge app, when the configuration has one.
func revocationCheckers(ctx caddy.Context) ([]RevocationChecker, error) {
	var checkers []RevocationChecker
	app, err := ctx.AppIfConfigured("bankedge")
	switch {
	case errors.Is(err, caddy.ErrNotConfigured):
	case err != nil:
		return nil, fmt.Errorf("loading the bankedge app for revocation checks: %w", err)
	default:
		rc, ok := app.(RevocationChecker)
		if !ok {
			return nil, fmt.Errorf("the bankedge app (%T) cannot say whether its certificates are revoked", app)
		}
		checkers = append(checkers, rc)
	}
	return checkers, nil
}

// revocationRetryAfter is the Retry-After of a request refused because a
// revocation status could not be learned.
const revocationRetryAfter = 5 * time.Second

// checkRevocation refuses vc when a checker says it is revoked, or when
// its status cannot be learned.
func (v *certVerifier) checkRevocation(ctx context.Context, vc *verifiedCert) *rejection {
	for _, rc := range v.revocation {
		revoked, err := rc.CertificateRevoked(ctx, vc.cert, vc.issuer)
		if err != nil {
			log := v.logger.Error
			if errors.Is(err, cluster.ErrUnavailable) {
				// The shared state logs one line per outage, not per request.
				log = v.logger.Debug
			}
			log("revocation status unknown", zap.String("kind", v.kind),
				zap.String("org_id", vc.tpp.OrgID), zap.String("serial", serialHex(vc.cert)), zap.Error(err))
			return &rejection{Status: ServiceUnavailable.status(), Code: ServiceUnavailable, RetryAfter: revocationRetryAfter,
				Text: "the revocation status of the " + v.kind + " cannot be checked right now; retry later"}
		}
		if revoked {
			return reject(CertificateRevoked, fmt.Sprintf("%s (serial %s) is revoked", v.kind, serialHex(vc.cert)))
		}
	}
	return nil
}

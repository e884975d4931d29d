package psd2

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/bankedge/bankedge/modules/cluster"
	"github.com/bankedge/bankedge/modules/trust"
)

// RevocationChecker says whether a certificate is revoked. The PSD2
// handlers ask every checker on every request, after the chain was verified
// or found in the cache, so that no cached verification outlives a
// revocation: a checker must answer from memory (or a cache it refreshes
// itself) in well under a microsecond or two.
//
// The bankedge app (modules/ca) implements it for the certificates its CA
// issued. OCSP and CRL, for the other QTSPs, are the revocation block
// (trust.RevocationPolicy).
type RevocationChecker interface {
	// CertificateRevoked reports whether cert, whose verified chain
	// names issuer as its issuer, is revoked. A checker that has no say
	// on cert (another issuer) answers false, nil. An error means the
	// status is unknown; the request is then refused with 503.
	CertificateRevoked(ctx context.Context, cert, issuer *x509.Certificate) (revoked bool, err error)
}

// IssuerRevocationChecker is a RevocationChecker that is itself the CA of
// the certificates it answers for, such as the bankedge CA: its own view
// of its revocations is authoritative and fresher than its CRL, so for
// those certificates OCSP and CRL are not asked.
type IssuerRevocationChecker interface {
	RevocationChecker
	// IsIssuer reports whether issuer is this checker's CA certificate.
	IsIssuer(issuer *x509.Certificate) bool
}

// Blocklist is the bank's own list of TPPs and certificates it refuses,
// whatever their QTSP says (401 CERTIFICATE_BLOCKED). The bankedge app
// implements it: its admin API edits the list, which every gateway sharing
// the storage follows within a second. Both lookups are asked on every
// request and must be map reads.
type Blocklist interface {
	// OrganizationBlocked reports whether the TPP with this
	// organizationIdentifier is blocked (compared without regard to case).
	OrganizationBlocked(orgID string) bool
	// CertificateBlocked reports whether the certificate whose DER hashes
	// to sum is blocked.
	CertificateBlocked(sum [32]byte) bool
}

// certStatus is what is asked, on every request, whether a certificate
// whose chain verified is still good.
type certStatus struct {
	// checkers are the CAs' own revocation views.
	checkers []RevocationChecker
	// blocklist is the bank's; nil without the bankedge app.
	blocklist Blocklist
	// policy checks OCSP and CRL; nil without a revocation block, or with
	// mode off.
	policy *trust.RevocationPolicy
}

// statusChecks returns the status checks of a handler: the bankedge app's
// revocations and blocklist, when the configuration has the app, and OCSP
// and CRL per the handler's revocation block. Without the block only the
// bankedge CA's own revocations count, as before the block existed.
func statusChecks(ctx caddy.Context, policy *trust.RevocationPolicy, roots trustRoots, logger *zap.Logger) (certStatus, error) {
	var st certStatus
	app, err := ctx.AppIfConfigured("bankedge")
	switch {
	case errors.Is(err, caddy.ErrNotConfigured):
	case err != nil:
		return st, fmt.Errorf("loading the bankedge app for revocation checks: %w", err)
	default:
		rc, ok := app.(RevocationChecker)
		if !ok {
			return st, fmt.Errorf("the bankedge app (%T) cannot say whether its certificates are revoked", app)
		}
		st.checkers = append(st.checkers, rc)
		if bl, ok := app.(Blocklist); ok {
			st.blocklist = bl
		}
	}
	if policy == nil {
		if roots.live != nil {
			logger.Warn("no revocation block: certificates revoked by their QTSP are accepted until they expire; add revocation { mode hard } to check OCSP and CRLs")
		}
		return st, nil
	}
	if err := policy.Provision(); err != nil {
		return st, err
	}
	if policy.Mode != "off" {
		st.policy = policy
	}
	return st, nil
}

// revocationRetryAfter is the Retry-After of a request refused because a
// revocation status could not be learned.
const revocationRetryAfter = 5 * time.Second

// statusLogEvery spaces the log lines about one certificate whose
// revocation status is unknown.
const statusLogEvery = 10 * time.Second

// checkRevocation refuses vc when the bank blocked it or its organisation
// (401 CERTIFICATE_BLOCKED), or when it is revoked (401
// CERTIFICATE_REVOKED): by the bankedge CA's own view for the certificates
// that CA issued, otherwise per OCSP and CRL when the handler has a
// revocation block, whose mode decides what an unknown status means.
func (v *certVerifier) checkRevocation(ctx context.Context, vc *verifiedCert) *rejection {
	if bl := v.status.blocklist; bl != nil {
		if bl.CertificateBlocked(vc.sum) {
			return reject(CertificateBlocked, fmt.Sprintf("%s (serial %s) is blocked by the ASPSP", v.kind, serialHex(vc.cert)))
		}
		if bl.OrganizationBlocked(vc.tpp.OrgID) {
			return reject(CertificateBlocked, fmt.Sprintf("the organisation %s is blocked by the ASPSP", vc.tpp.OrgID))
		}
	}
	authoritative := false
	for _, rc := range v.status.checkers {
		if ic, ok := rc.(IssuerRevocationChecker); ok && vc.issuer != nil && ic.IsIssuer(vc.issuer) {
			authoritative = true
		}
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
	if authoritative || v.status.policy == nil {
		return nil
	}
	verdict, res := v.status.policy.Check(ctx, vc.sum, vc.cert, vc.issuer)
	switch verdict {
	case trust.Refuse:
		return reject(CertificateRevoked, fmt.Sprintf("%s (serial %s) is revoked (%s)", v.kind, serialHex(vc.cert), strings.ToUpper(res.Source)))
	case trust.RefuseUnknown:
		v.logUnknown(vc, "refused", res.Detail)
		return reject(CertificateInvalid, fmt.Sprintf("the revocation status could not be established for the %s (serial %s)", v.kind, serialHex(vc.cert)))
	case trust.AllowUnknown:
		v.logUnknown(vc, "allowed (revocation mode soft)", res.Detail)
	}
	return nil
}

// logUnknown logs that vc's revocation status is unknown, at most once per
// statusLogEvery per certificate.
func (v *certVerifier) logUnknown(vc *verifiedCert, outcome, detail string) {
	now := v.now().UnixNano()
	last := vc.statusLoggedAt.Load()
	if now-last < int64(statusLogEvery) || !vc.statusLoggedAt.CompareAndSwap(last, now) {
		return
	}
	v.logger.Warn("revocation status could not be established", zap.String("kind", v.kind), zap.String("outcome", outcome),
		zap.String("org_id", vc.tpp.OrgID), zap.String("serial", serialHex(vc.cert)), zap.String("cert_sha256", vc.tpp.CertSHA256),
		zap.String("reason", detail))
}

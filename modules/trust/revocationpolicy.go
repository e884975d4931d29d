package trust

import (
	"context"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/bankedge/bankedge/internal/caddyfileargs"
	"github.com/bankedge/bankedge/modules/trust/revocation"
)

// DefaultRevocationTimeout bounds a revocation check on a cache miss.
const DefaultRevocationTimeout = 3 * time.Second

// RevocationPolicy is the revocation block of the PSD2 handlers: how the
// status of a QWAC or QSEAL is established and what an unknown status
// means. Every policy uses the process-wide revocation.Shared checker, so
// answers are cached once for all handlers and across reloads.
type RevocationPolicy struct {
	// Mode is "hard" (the default: a certificate whose status cannot be
	// established is refused), "soft" (it is allowed and logged) or "off"
	// (no check).
	Mode string `json:"mode,omitempty"`
	// Prefer is "ocsp" (the default: OCSP first, the CRL as fallback) or
	// "crl" (the CRL first, OCSP as fallback).
	Prefer string `json:"prefer,omitempty"`
	// Timeout bounds one check on a cache miss, all fetches included
	// (default 3s). A request never waits longer for revocation.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	checker *revocation.Checker
	prefer  revocation.Prefer
	timeout time.Duration
}

// Verdict is what a request gets from a revocation check.
type Verdict int

const (
	// Allow: the certificate is good, or the mode is off.
	Allow Verdict = iota
	// AllowUnknown: soft mode let a certificate of unknown status in; log
	// the Result's Detail.
	AllowUnknown
	// Refuse: the certificate is revoked (401 CERTIFICATE_REVOKED).
	Refuse
	// RefuseUnknown: hard mode refuses a certificate whose status could
	// not be established (401 CERTIFICATE_INVALID).
	RefuseUnknown
)

// Provision checks the options and attaches the shared checker; the zero
// policy is "hard, ocsp, 3s".
func (p *RevocationPolicy) Provision() error {
	switch p.Mode {
	case "", "hard", "soft", "off":
	default:
		return fmt.Errorf("revocation mode must be hard, soft or off, got %q", p.Mode)
	}
	switch p.Prefer {
	case "", "ocsp":
		p.prefer = revocation.PreferOCSP
	case "crl":
		p.prefer = revocation.PreferCRL
	default:
		return fmt.Errorf("revocation prefer must be ocsp or crl, got %q", p.Prefer)
	}
	p.timeout = time.Duration(p.Timeout)
	if p.timeout <= 0 {
		p.timeout = DefaultRevocationTimeout
	}
	if p.checker == nil {
		p.checker = revocation.Shared()
	}
	return nil
}

// UseChecker replaces the shared checker (tests use a private one).
func (p *RevocationPolicy) UseChecker(c *revocation.Checker) { p.checker = c }

// Check establishes the revocation status of cert, issued by issuer (the
// next certificate of its verified chain); sum is the SHA-256 of cert.Raw.
// A cached answer costs a map lookup and no allocation (its refresh, near
// its end, runs in the background); otherwise the check waits at most
// Timeout.
func (p *RevocationPolicy) Check(ctx context.Context, sum [32]byte, cert, issuer *x509.Certificate) (Verdict, revocation.Result) {
	if p.Mode == "off" {
		return Allow, revocation.Result{Status: revocation.Good}
	}
	res, ok := p.checker.CheckCached(sum, cert, issuer, p.prefer)
	if !ok {
		res = p.checkWithTimeout(ctx, sum, cert, issuer)
	}
	switch res.Status {
	case revocation.Good:
		return Allow, res
	case revocation.Revoked:
		return Refuse, res
	}
	if p.Mode == "soft" {
		return AllowUnknown, res
	}
	return RefuseUnknown, res
}

func (p *RevocationPolicy) checkWithTimeout(ctx context.Context, sum [32]byte, cert, issuer *x509.Certificate) revocation.Result {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	return p.checker.Check(ctx, sum, cert, issuer, p.prefer)
}

// UnmarshalCaddyfile parses, from the "revocation" token on,
//
//	revocation [hard|soft|off] {
//		mode    hard|soft|off
//		prefer  ocsp|crl
//		timeout <duration>
//	}
func (p *RevocationPolicy) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		p.Mode = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "mode":
			err = caddyfileargs.One(d, &p.Mode)
		case "prefer":
			err = caddyfileargs.One(d, &p.Prefer)
		case "timeout":
			err = caddyfileargs.Duration(d, &p.Timeout)
		default:
			err = d.Errf("unknown revocation option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	switch p.Mode {
	case "", "hard", "soft", "off":
	default:
		return d.Errf("revocation mode must be hard, soft or off, got %q", p.Mode)
	}
	switch p.Prefer {
	case "", "ocsp", "crl":
	default:
		return d.Errf("revocation prefer must be ocsp or crl, got %q", p.Prefer)
	}
	return nil
}

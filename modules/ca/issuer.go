package ca

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/certmagic"

	"github.com/bankedge/bankedge/internal/caddyfileargs"
	"github.com/bankedge/bankedge/modules/ca/authority"
)

func init() {
	caddy.RegisterModule(&Issuer{})
}

// Issuer gets the gateway's own server certificates from the bankedge CA:
// `tls { issuer bankedge }`. Certificates are recorded in the CA's
// inventory and renewed by Caddy like any other.
type Issuer struct {
	// Lifetime of issued server certificates. Default: 30 days; Caddy
	// renews them when a third of that is left.
	Lifetime caddy.Duration `json:"lifetime,omitempty"`

	app *App
}

// CaddyModule returns the Caddy module information.
func (*Issuer) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "tls.issuance.bankedge",
		New: func() caddy.Module { return new(Issuer) },
	}
}

// Provision finds the bankedge app.
func (iss *Issuer) Provision(ctx caddy.Context) error {
	app, err := appFrom(ctx)
	if err != nil {
		return err
	}
	iss.app = app
	if iss.Lifetime == 0 {
		iss.Lifetime = caddy.Duration(30 * 24 * time.Hour)
	}
	return nil
}

// IssuerKey implements certmagic.Issuer; it names the storage area of the
// certificates this issuer obtains.
func (iss *Issuer) IssuerKey() string { return "bankedge" }

// Issue implements certmagic.Issuer.
func (iss *Issuer) Issue(ctx context.Context, csr *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	auth, err := iss.app.Authority()
	if err != nil {
		return nil, err
	}
	cert, err := auth.SignCSR(ctx, csr, authority.PurposeServer, time.Duration(iss.Lifetime), "", "tls.issuance.bankedge")
	if err != nil {
		return nil, fmt.Errorf("bankedge issuer: %w", err)
	}
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	chain = append(chain, auth.CertificatePEM()...)
	// The authority audits the issuance (user tls.issuance.bankedge).
	return &certmagic.IssuedCertificate{Certificate: chain}, nil
}

// UnmarshalCaddyfile parses:
//
//	issuer bankedge {
//		lifetime <duration>
//	}
func (iss *Issuer) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "lifetime":
			if err := caddyfileargs.Duration(d, &iss.Lifetime); err != nil {
				return err
			}
		default:
			return d.Errf("unrecognized issuer bankedge option %q", d.Val())
		}
	}
	return nil
}

// Interface guards.
var (
	_ caddy.Provisioner     = (*Issuer)(nil)
	_ certmagic.Issuer      = (*Issuer)(nil)
	_ caddyfile.Unmarshaler = (*Issuer)(nil)
)

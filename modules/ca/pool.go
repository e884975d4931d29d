package ca

import (
	"crypto/x509"
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
)

func init() {
	caddy.RegisterModule(&TrustPool{})
}

// TrustPool is the bankedge CA certificate as a Caddy trust pool, for
// client_auth { trust_pool bankedge }, caddy-l4's tls handler and the PSD2
// handlers' trust_pool. Like every trust pool it is read once per config
// load.
type TrustPool struct {
	cert *x509.Certificate
	pool *x509.CertPool
}

// CaddyModule returns the Caddy module information.
func (*TrustPool) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "tls.ca_pool.source.bankedge",
		New: func() caddy.Module { return new(TrustPool) },
	}
}

// Provision loads the CA certificate from the bankedge app.
func (p *TrustPool) Provision(ctx caddy.Context) error {
	app, err := appFrom(ctx)
	if err != nil {
		return err
	}
	auth, err := app.Authority()
	if err != nil {
		return fmt.Errorf("trust_pool bankedge: %w", err)
	}
	p.cert = auth.Certificate()
	p.pool = x509.NewCertPool()
	p.pool.AddCert(p.cert)
	return nil
}

// CertPool implements caddytls.CA.
func (p *TrustPool) CertPool() *x509.CertPool { return p.pool }

// Certificates implements caddytls.CertificateProvider, so that the pool can
// be part of a combined pool.
func (p *TrustPool) Certificates() []*x509.Certificate { return []*x509.Certificate{p.cert} }

// UnmarshalCaddyfile parses `trust_pool bankedge`, which takes no options.
func (p *TrustPool) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() || d.NextBlock(0) {
		return d.Err("trust_pool bankedge takes no options")
	}
	return nil
}

// Interface guards.
var (
	_ caddytls.CA                  = (*TrustPool)(nil)
	_ caddytls.CertificateProvider = (*TrustPool)(nil)
	_ caddyfile.Unmarshaler        = (*TrustPool)(nil)
)

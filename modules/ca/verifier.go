package ca

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddytls"

	"github.com/bankedge/bankedge/modules/ca/authority"
)

func init() {
	caddy.RegisterModule(&Verifier{})
}

// Verifier refuses, during the TLS handshake, client certificates that the
// bankedge CA revoked or did not issue. Use it next to trust_pool bankedge:
//
//	client_auth {
//		trust_pool bankedge
//		verifier bankedge
//	}
//
// Revocations made on another gateway sharing the storage are seen within
// 30 seconds; those made through this gateway's API at once.
type Verifier struct {
	app *App
}

// CaddyModule returns the Caddy module information.
func (*Verifier) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "tls.client_auth.verifier.bankedge",
		New: func() caddy.Module { return new(Verifier) },
	}
}

// Provision finds the bankedge app.
func (v *Verifier) Provision(ctx caddy.Context) error {
	app, err := appFrom(ctx)
	if err != nil {
		return err
	}
	v.app = app
	return nil
}

// VerifyClientCertificate implements caddytls.ClientCertificateVerifier.
func (v *Verifier) VerifyClientCertificate(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	if len(rawCerts) == 0 {
		// Without a certificate the handshake mode decides (WANT or NEED).
		return nil
	}
	auth, err := v.app.Authority()
	if err != nil {
		return err
	}
	cert, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return fmt.Errorf("client certificate: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = auth.Verify(ctx, cert)
	var verr *authority.VerifyError
	if errors.As(err, &verr) {
		return fmt.Errorf("client certificate %s refused: %w", authority.SerialString(cert.SerialNumber), err)
	}
	return err
}

// UnmarshalCaddyfile parses `verifier bankedge`, which takes no options.
func (v *Verifier) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() || d.NextBlock(0) {
		return d.Err("verifier bankedge takes no options")
	}
	return nil
}

// Interface guards.
var (
	_ caddytls.ClientCertificateVerifier = (*Verifier)(nil)
	_ caddyfile.Unmarshaler              = (*Verifier)(nil)
)

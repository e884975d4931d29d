package ca

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"sync"
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
// bankedge CA revoked, did not issue, or issued for another purpose than
// client authentication: one CA issues partner certificates and the PSD2
// sandbox's QWACs and QSEALs, and a TPP's QWAC (which carries clientAuth)
// must not open a partner listener. Use it next to trust_pool bankedge:
//
//	client_auth {
//		trust_pool bankedge
//		verifier bankedge
//	}
//
// Revocations made on another gateway sharing the storage are seen within
// 30 seconds; those made through this gateway's API at once. A
// certificate's purpose is read from the CA's inventory once and then kept
// in memory: an inventory record never changes its purpose.
type Verifier struct {
	// Purposes lists the purposes (as recorded in the CA's inventory) a
	// client certificate may have been issued for: CLIENT, SERVER, QWAC,
	// QSEAL. Default: CLIENT only.
	Purposes []string `json:"purposes,omitempty"`

	app      *App
	purposes []authority.Purpose
	cache    purposeCache
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
	v.purposes = nil
	for _, s := range v.Purposes {
		p, err := authority.ParsePurpose(s)
		if err != nil {
			return fmt.Errorf("verifier bankedge: %w", err)
		}
		v.purposes = append(v.purposes, p)
	}
	if len(v.purposes) == 0 {
		v.purposes = []authority.Purpose{authority.PurposeClient}
	}
	v.cache.init(purposeCacheSize)
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
	if err != nil {
		return err
	}
	purpose, err := v.purposeOf(ctx, auth, cert)
	if err != nil {
		return err
	}
	if !slices.Contains(v.purposes, purpose) {
		if purpose == "" {
			return fmt.Errorf("client certificate %s refused: it is not in the CA's inventory", authority.SerialString(cert.SerialNumber))
		}
		return fmt.Errorf("client certificate %s refused: issued for %s, not for client authentication here", authority.SerialString(cert.SerialNumber), purpose)
	}
	return nil
}

// purposeOf returns the purpose the inventory records for cert, "" when
// the CA signed it but holds no record of exactly this certificate.
func (v *Verifier) purposeOf(ctx context.Context, auth *authority.Authority, cert *x509.Certificate) (authority.Purpose, error) {
	key := sha256.Sum256(cert.Raw)
	if p, ok := v.cache.get(key); ok {
		return p, nil
	}
	rec, err := auth.Lookup(ctx, cert.SerialNumber)
	var p authority.Purpose
	switch {
	case errors.Is(err, authority.ErrNotFound):
	case err != nil:
		return "", err
	case slices.Equal(rec.DER, cert.Raw):
		p = rec.Purpose
	}
	v.cache.put(key, p)
	return p, nil
}

// purposeCacheSize bounds the purposes kept in memory; a full cache starts
// over, which costs one inventory read per certificate.
const purposeCacheSize = 4096

// purposeCache maps certificate digests to inventory purposes. Only
// certificates signed by the CA get there, so its size is the number of
// live partner certificates.
type purposeCache struct {
	mu sync.RWMutex
	m  map[[32]byte]authority.Purpose
	n  int
}

func (c *purposeCache) init(n int) {
	c.mu.Lock()
	c.m, c.n = make(map[[32]byte]authority.Purpose), n
	c.mu.Unlock()
}

func (c *purposeCache) get(k [32]byte) (authority.Purpose, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	p, ok := c.m[k]
	return p, ok
}

func (c *purposeCache) put(k [32]byte, p authority.Purpose) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.n {
		clear(c.m)
	}
	c.m[k] = p
}

// UnmarshalCaddyfile parses:
//
//	verifier bankedge {
//		purposes CLIENT [SERVER|QWAC|QSEAL…]
//	}
func (v *Verifier) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "purposes":
			v.Purposes = d.RemainingArgs()
			if len(v.Purposes) == 0 {
				return d.ArgErr()
			}
		default:
			return d.Errf("unrecognized verifier bankedge option %q", d.Val())
		}
	}
	return nil
}

// Interface guards.
var (
	_ caddy.Provisioner                  = (*Verifier)(nil)
	_ caddytls.ClientCertificateVerifier = (*Verifier)(nil)
	_ caddyfile.Unmarshaler              = (*Verifier)(nil)
)

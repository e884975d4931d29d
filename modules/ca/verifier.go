package ca

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
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
// A certificate seen before is not parsed nor its signature checked again
// (the cache holds only certificates that passed both): only its validity
// period, its revocation and its purpose are.
func (v *Verifier) VerifyClientCertificate(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	if len(rawCerts) == 0 {
		// Without a certificate the handshake mode decides (WANT or NEED).
		return nil
	}
	auth, err := v.app.Authority()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	key := sha256.Sum256(rawCerts[0])
	seen, ok := v.cache.get(key)
	if !ok {
		cert, err := x509.ParseCertificate(rawCerts[0])
		if err != nil {
			return fmt.Errorf("client certificate: %w", err)
		}
		if err := auth.Verify(ctx, cert); err != nil {
			return refusal(cert.SerialNumber, err)
		}
		if seen, err = v.inventory(ctx, auth, cert); err != nil {
			return err
		}
		v.cache.put(key, seen)
	} else {
		now := time.Now()
		switch {
		case now.Before(seen.notBefore):
			return refusal(seen.serial, &authority.VerifyError{Reason: "not_yet_valid", Err: errors.New("certificate is not valid yet")})
		case now.After(seen.notAfter):
			return refusal(seen.serial, &authority.VerifyError{Reason: "expired", Err: errors.New("certificate expired")})
		}
		revoked, err := auth.IsRevoked(ctx, seen.serial)
		if err != nil {
			return err
		}
		if revoked {
			return refusal(seen.serial, &authority.VerifyError{Reason: "revoked", Err: errors.New("certificate is revoked")})
		}
	}
	if !slices.Contains(v.purposes, seen.purpose) {
		if seen.purpose == "" {
			return fmt.Errorf("client certificate %s refused: it is not in the CA's inventory", authority.SerialString(seen.serial))
		}
		return fmt.Errorf("client certificate %s refused: issued for %s, not for client authentication here", authority.SerialString(seen.serial), seen.purpose)
	}
	return nil
}

func refusal(serial *big.Int, err error) error {
	var verr *authority.VerifyError
	if errors.As(err, &verr) {
		return fmt.Errorf("client certificate %s refused: %w", authority.SerialString(serial), err)
	}
	return err
}

// verified is what the verifier keeps of a certificate that the CA signed:
// its serial, validity period and the purpose the inventory records for
// it ("" when the CA holds no record of exactly this certificate).
type verified struct {
	serial              *big.Int
	notBefore, notAfter time.Time
	purpose             authority.Purpose
}

// inventory reads what the CA's inventory says about cert.
func (v *Verifier) inventory(ctx context.Context, auth *authority.Authority, cert *x509.Certificate) (verified, error) {
	out := verified{serial: cert.SerialNumber, notBefore: cert.NotBefore, notAfter: cert.NotAfter}
	rec, err := auth.Lookup(ctx, cert.SerialNumber)
	switch {
	case errors.Is(err, authority.ErrNotFound):
	case err != nil:
		return out, err
	case slices.Equal(rec.DER, cert.Raw):
		out.purpose = rec.Purpose
	}
	return out, nil
}

// purposeCacheSize bounds the certificates kept in memory; a full cache
// starts over, which costs one verification and inventory read per
// certificate.
const purposeCacheSize = 4096

// purposeCache maps certificate digests to what the verifier learnt of
// them. Only certificates signed by the CA get there, so its size is the
// number of live partner certificates.
type purposeCache struct {
	mu sync.RWMutex
	m  map[[32]byte]verified
	n  int
}

func (c *purposeCache) init(n int) {
	c.mu.Lock()
	c.m, c.n = make(map[[32]byte]verified), n
	c.mu.Unlock()
}

func (c *purposeCache) get(k [32]byte) (verified, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	p, ok := c.m[k]
	return p, ok
}

func (c *purposeCache) put(k [32]byte, p verified) {
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

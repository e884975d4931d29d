package psd2

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddytls"

	"github.com/bankedge/bankedge/internal/caddyfileargs"
	"github.com/bankedge/bankedge/modules/trust"
)

// trustRoots is the pool certificates must chain to: fixed when the config
// is loaded, or live (trust.LivePool, the EU trusted lists) when the pool
// follows the real world while the config runs.
type trustRoots struct {
	fixed *x509.CertPool
	live  trust.LivePool
}

// current returns the pool in force now.
func (t trustRoots) current() *x509.CertPool {
	if t.live != nil {
		return t.live.CurrentCertPool()
	}
	return t.fixed
}

// loadTrustPool provisions the tls.ca_pool.source module in field of host.
func loadTrustPool(ctx caddy.Context, host any, field string, raw json.RawMessage) (trustRoots, error) {
	if raw == nil {
		return trustRoots{}, fmt.Errorf("trust_pool is required: the QTSP roots that certificates must chain to")
	}
	mod, err := ctx.LoadModule(host, field)
	if err != nil {
		return trustRoots{}, fmt.Errorf("loading trust pool: %w", err)
	}
	ca, ok := mod.(caddytls.CA)
	if !ok {
		return trustRoots{}, fmt.Errorf("trust pool module %T is not a certificate pool provider", mod)
	}
	pool := ca.CertPool()
	if pool == nil {
		return trustRoots{}, fmt.Errorf("trust pool module %T provided no certificate pool", mod)
	}
	roots := trustRoots{fixed: pool}
	if live, ok := mod.(trust.LivePool); ok {
		roots.live = live
	}
	return roots, nil
}

// unmarshalTrustPool parses "trust_pool <module> [args] [{ … }]", the same
// syntax as Caddy's client_auth.
func unmarshalTrustPool(d *caddyfile.Dispenser) (json.RawMessage, error) {
	return unmarshalGuestModule(d, "tls.ca_pool.source.", "provider", "a certificate pool provider",
		func(m any) bool { _, ok := m.(caddytls.CA); return ok })
}

// unmarshalGuestModule parses "<option> <module> [args] [{ … }]" for a
// module of namespace (with its trailing dot) that must satisfy is.
func unmarshalGuestModule(d *caddyfile.Dispenser, namespace, inlineKey, what string, is func(any) bool) (json.RawMessage, error) {
	option := d.Val()
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	name := d.Val()
	mod, err := caddyfile.UnmarshalModule(d, namespace+name)
	if err != nil {
		return nil, d.WrapErr(err)
	}
	if !is(mod) {
		return nil, d.Errf("%s module %q is not %s", option, name, what)
	}
	return caddyconfig.JSONModuleObject(mod, inlineKey, name, nil), nil
}

// unmarshalPositiveInt parses a single positive integer argument.
func unmarshalPositiveInt(d *caddyfile.Dispenser) (int, error) {
	name := d.Val()
	if !d.NextArg() {
		return 0, d.ArgErr()
	}
	n, err := strconv.Atoi(d.Val())
	if err != nil || n <= 0 {
		return 0, d.Errf("%s needs a positive integer, got %q", name, d.Val())
	}
	if d.NextArg() {
		return 0, d.ArgErr()
	}
	return n, nil
}

// unmarshalBool is caddyfileargs.Bool for the optional flags, which are
// pointers so that an absent flag keeps the profile's default.
func unmarshalBool(d *caddyfile.Dispenser) (*bool, error) {
	var v bool
	if err := caddyfileargs.Bool(d, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

package jwtauth

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"

	"github.com/bankedge/bankedge/internal/caddyfileargs"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("jwt_auth", parseCaddyfile)
	// Where basic_auth runs: authentication comes before the handlers it
	// protects.
	httpcaddyfile.RegisterDirectiveOrder("jwt_auth", httpcaddyfile.After, "basic_auth")
}

// UnmarshalCaddyfile parses:
//
//	jwt_auth [<matcher>] {
//		jwks        <file path or https URL>
//		issuer      <expected iss>
//		audience    <expected aud> [<aud>…]
//		roles_claim roles
//		# algorithms RS256 ES256 …
//		# clock_skew 30s
//		# refresh 5m
//		# min_refetch 30s
//		# fetch_timeout 10s
//		# jwks_ca <PEM file>
//		# realm bankedge
//	}
func (j *JWTAuth) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "jwks":
			err = caddyfileargs.One(d, &j.JWKS)
		case "issuer":
			err = caddyfileargs.One(d, &j.Issuer)
		case "audience":
			err = caddyfileargs.Append(d, &j.Audience)
		case "roles_claim":
			err = caddyfileargs.One(d, &j.RolesClaim)
		case "algorithms":
			err = caddyfileargs.Append(d, &j.Algorithms)
		case "clock_skew":
			var s string
			if err = caddyfileargs.One(d, &s); err == nil {
				var dur caddy.Duration
				dur, err = parseNonNegative(d, s)
				j.ClockSkew = dur
			}
		case "refresh":
			err = caddyfileargs.Duration(d, &j.RefreshInterval)
		case "min_refetch":
			err = caddyfileargs.Duration(d, &j.MinRefetchInterval)
		case "fetch_timeout":
			err = caddyfileargs.Duration(d, &j.FetchTimeout)
		case "jwks_ca":
			err = caddyfileargs.One(d, &j.JWKSCA)
		case "realm":
			err = caddyfileargs.One(d, &j.Realm)
		default:
			return d.Errf("unrecognized jwt_auth option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func parseNonNegative(d *caddyfile.Dispenser, s string) (caddy.Duration, error) {
	dur, err := caddy.ParseDuration(s)
	if err != nil || dur < 0 {
		return 0, d.Errf("%q is not a duration", s)
	}
	return caddy.Duration(dur), nil
}

// parseCaddyfile makes the authentication handler with this provider, as
// basic_auth does with its own.
func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	j := new(JWTAuth)
	if err := j.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return &caddyauth.Authentication{
		ProvidersRaw: caddy.ModuleMap{"jwt": caddyconfig.JSON(j, nil)},
	}, nil
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*JWTAuth)(nil)

// Package psd2 holds the Caddy HTTP handlers that admit PSD2 third-party
// providers: psd2_qwac checks the transport identity (the QWAC of the mTLS
// handshake and the X-Client-Certificate header) and psd2_qseal the
// application-layer signature made with the TPP's QSEAL. Refusals are Berlin
// Group NextGenPSD2 errors.
package psd2

import "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

func init() {
	// Identity checks come before anything that acts on the request, and
	// psd2_qseal after psd2_qwac because it needs the QWAC identity. Both
	// are registered here, in one init, since each insertion lands right
	// before "header" and file init order would otherwise decide.
	httpcaddyfile.RegisterDirectiveOrder("psd2_qwac", httpcaddyfile.Before, "header")
	httpcaddyfile.RegisterDirectiveOrder("psd2_qseal", httpcaddyfile.Before, "header")
}

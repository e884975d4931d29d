package psd2

import (
	"context"
	"net"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/bankedge/bankedge/modules/guard"
)

// connKey keys a request's connection in its context.
type connKey struct{}

// rememberConnections makes the connection of each request of the server
// being provisioned reachable from the request, so that a request with a
// verified QWAC can end the pre-authentication phase of a guarded listener
// (guard+tcp) under it.
func rememberConnections(ctx caddy.Context) {
	srv, ok := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if !ok {
		return
	}
	srv.RegisterConnContext(func(c context.Context, conn net.Conn) context.Context {
		return context.WithValue(c, connKey{}, conn)
	})
}

// endPreAuthentication marks the connection of r authenticated on its
// guarded listener, if it has one: it no longer counts against the
// listener's caps, and the pre-authentication timer no longer closes it.
// A connection whose requests are all refused stays counted and is closed
// at pre_auth_timeout, as a stalled handshake is.
func endPreAuthentication(r *http.Request) {
	if c, ok := r.Context().Value(connKey{}).(net.Conn); ok {
		guard.Authenticate(c, nil)
	}
}

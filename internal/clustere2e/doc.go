// Package clustere2e holds the end-to-end tests of several bankedge
// gateways sharing one Redis: each gateway is a separate process (the test
// binary re-executed with a Caddyfile) with the bankedge app, its admin
// API, an XS2A site and a PeSIT listener, all on `storage redis`, driven
// through their sockets as a TPP, a partner and an administrator would. It
// has no code of its own.
package clustere2e

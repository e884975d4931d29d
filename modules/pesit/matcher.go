// Package pesit holds the caddy-l4 modules for PeSIT E (Hors-SIT) file
// transfer: a matcher for PeSIT connections, the gateway handler that
// authenticates partners against the bankedge registry, audits every
// transfer and hands the connection on (normally to caddy-l4's proxy), and
// pesit_server, a small PeSIT server that stores and serves files.
package pesit

import (
	"errors"
	"io"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/mholt/caddy-l4/layer4"

	"github.com/bankedge/bankedge/modules/pesit/fpdu"
)

func init() {
	caddy.RegisterModule(&Matcher{})
}

// Matcher matches connections whose first bytes are a PeSIT CONNECT or an
// EBCDIC pre-connection, with or without the 2-byte NSDU length prefix. It
// reads only what it needs: the pre-connection, or the CONNECT FPDU, which
// it checks decodes with PI 3, 4 and 6.
type Matcher struct{}

// CaddyModule returns the Caddy module information.
func (*Matcher) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "layer4.matchers.pesit",
		New: func() caddy.Module { return new(Matcher) },
	}
}

// Match reports whether the connection starts like PeSIT. It keeps no
// state, because the router calls it again from the start each time more
// bytes have arrived.
func (m *Matcher) Match(cx *layer4.Connection) (bool, error) {
	var buf [fpdu.MaxConnectLen + 2]byte
	have := 0
	need := 6
	for {
		n, err := io.ReadFull(cx, buf[have:need])
		have += n
		if err != nil {
			// ErrConsumedAllPrefetchedBytes must reach the router as is:
			// it then prefetches and calls Match again.
			return false, err
		}
		d, err := fpdu.Detect(buf[:have])
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, fpdu.ErrNeedMore) && d.Need > have && d.Need <= len(buf):
			need = d.Need
		default:
			return false, nil
		}
	}
}

// UnmarshalCaddyfile parses `pesit`, which takes no options.
func (m *Matcher) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() || d.NextBlock(0) {
		return d.Err("the pesit matcher takes no options")
	}
	return nil
}

// Interface guards.
var (
	_ layer4.ConnMatcher    = (*Matcher)(nil)
	_ caddyfile.Unmarshaler = (*Matcher)(nil)
)

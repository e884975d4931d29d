// Package bankedge blank-imports every bankedge module package, as caddy-l4's
// root package does, so that xcaddy's --with github.com/bankedge/bankedge
// compiles all of them into the binary. It also embeds the example
// configuration that "bankedge sandbox" serves.
package bankedge

import (
	_ "embed"

	_ "github.com/bankedge/bankedge/modules/ca"
	_ "github.com/bankedge/bankedge/modules/jwtauth"
	_ "github.com/bankedge/bankedge/modules/pesit"
	_ "github.com/bankedge/bankedge/modules/pesit/pesitcmd"
	_ "github.com/bankedge/bankedge/modules/psd2"
	_ "github.com/bankedge/bankedge/modules/psd2/tppcmd"
	_ "github.com/bankedge/bankedge/modules/trust"
	_ "github.com/bankedge/bankedge/modules/trust/trustcmd"
)

// ExampleCaddyfile is Caddyfile.example, the sandbox configuration.
//
//go:embed Caddyfile.example
var ExampleCaddyfile []byte

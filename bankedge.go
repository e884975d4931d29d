// Package bankedge blank-imports every bankedge module package, as caddy-l4's
// root package does, so that xcaddy's --with github.com/bankedge/bankedge
// compiles all of them into the binary.
package bankedge

import (
	_ "github.com/bankedge/bankedge/modules/psd2"
)

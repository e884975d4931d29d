// Command bankedge is a full Caddy build with the bankedge modules: the PSD2
// QWAC/QSEAL handlers, the private CA app and the PeSIT layer4 modules, plus
// caddy-l4's layer4 app, proxy and tls handlers, and the Redis storage
// (caddy.storage.redis) on which several gateways share their state.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/mholt/caddy-l4/layer4"
	_ "github.com/mholt/caddy-l4/modules/l4proxy"
	_ "github.com/mholt/caddy-l4/modules/l4subroute"
	_ "github.com/mholt/caddy-l4/modules/l4tls"
	_ "github.com/pberkel/caddy-storage-redis"

	_ "github.com/bankedge/bankedge"
)

func main() {
	caddycmd.Main()
}

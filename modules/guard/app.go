package guard

import (
	"errors"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"go.uber.org/zap"

	"github.com/bankedge/bankedge/internal/caddyfileargs"
)

const appID = "listener_guard"

func init() {
	caddy.RegisterModule(&App{})
	httpcaddyfile.RegisterGlobalOption(appID, parseGlobal)
}

// App holds the settings of the guarded listeners (networks guard+tcp,
// guard+tcp4 and guard+tcp6) of a configuration. Without it, guarded
// listeners use the defaults.
type App struct {
	// PreAuthTimeout closes a connection that no handler marked
	// authenticated this long after it was accepted: TLS handshake,
	// matching and the protocol's own authentication must fit in it.
	// Default: 15s.
	PreAuthTimeout caddy.Duration `json:"pre_auth_timeout,omitempty"`

	// MaxPreAuth caps the unauthenticated connections of each listener;
	// connections beyond are reset when accepted. Default: 256.
	MaxPreAuth int `json:"max_pre_auth,omitempty"`

	// MaxPreAuthPerIP caps the unauthenticated connections of each
	// listener from one source address (an IPv6 address counts by its
	// /64). Default: 16.
	MaxPreAuthPerIP int `json:"max_pre_auth_per_ip,omitempty"`

	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  appID,
		New: func() caddy.Module { return new(App) },
	}
}

// Provision sets the defaults.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	if a.PreAuthTimeout == 0 {
		a.PreAuthTimeout = caddy.Duration(DefaultPreAuthTimeout)
	}
	if a.MaxPreAuth == 0 {
		a.MaxPreAuth = DefaultMaxPreAuth
	}
	if a.MaxPreAuthPerIP == 0 {
		a.MaxPreAuthPerIP = DefaultMaxPreAuthPerIP
	}
	return nil
}

// Validate checks the settings.
func (a *App) Validate() error {
	if a.PreAuthTimeout < 0 || a.MaxPreAuth < 0 || a.MaxPreAuthPerIP < 0 {
		return errors.New("listener_guard: values must be positive")
	}
	return nil
}

// Start implements caddy.App; the listeners read the settings when the
// servers that use them start.
func (a *App) Start() error { return nil }

// Stop implements caddy.App.
func (a *App) Stop() error { return nil }

func (a *App) settings() settings {
	return settings{
		preAuthTimeout:  time.Duration(a.PreAuthTimeout),
		maxPreAuth:      a.MaxPreAuth,
		maxPreAuthPerIP: a.MaxPreAuthPerIP,
		logger:          a.logger,
	}
}

// parseGlobal parses the global option:
//
//	listener_guard {
//		pre_auth_timeout <duration>
//		max_pre_auth <n>
//		max_pre_auth_per_ip <n>
//	}
func parseGlobal(d *caddyfile.Dispenser, _ any) (any, error) {
	a := new(App)
	d.Next()
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "pre_auth_timeout":
			err = caddyfileargs.Duration(d, &a.PreAuthTimeout)
		case "max_pre_auth":
			err = caddyfileargs.Int(d, &a.MaxPreAuth)
		case "max_pre_auth_per_ip":
			err = caddyfileargs.Int(d, &a.MaxPreAuthPerIP)
		default:
			return nil, d.Errf("unrecognized listener_guard option %q", d.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	return httpcaddyfile.App{Name: appID, Value: caddyconfig.JSON(a, nil)}, nil
}

// Interface guards.
var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)
	_ caddy.Validator   = (*App)(nil)
)

package pesit

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/mholt/caddy-l4/layer4"
	"go.uber.org/zap"

	"github.com/bankedge/bankedge/internal/auditlog"
	"github.com/bankedge/bankedge/internal/caddyfileargs"
	"github.com/bankedge/bankedge/internal/metrics"
	"github.com/bankedge/bankedge/modules/pesit/fpdu"
)

func init() {
	caddy.RegisterModule(&Handler{})
}

// Handler is the PeSIT gateway. It reads the partner's pre-connection and
// CONNECT, authenticates the partner against the bankedge registry (PI 3
// and PI 5, enabled, password not expired, allowed IPs, certificate
// binding when the connection came through caddy-l4's tls handler and TLS
// verified the certificate, a bankedge certificate issued for this
// partner, access type against PI 22, connection limit; failed attempts
// throttled per partner id and source address), checks PI 4 against
// server_id, tells a guarded listener (guard+tcp) that the connection is
// authenticated, and then hands the connection to the next handler,
// normally caddy-l4's proxy. Refusals are RCONNECT with the diagnostic of
// the PeSIT specification, and a refused connection never reaches the
// upstream.
//
// It then keeps reading the FPDUs in both directions: CREATE and SELECT are
// checked against the partner's access type and allowed files (refused with
// a negative ACK, after which the session may go on), and every connection,
// transfer start, TRANS.END, transfer outcome and release or abort is
// written to the bankedge.audit.pesit logger. PI 5 is never logged.
type Handler struct {
	// ServerID is the PI 4 that partners must call; other values get
	// RCONNECT 3-301. Required.
	ServerID string `json:"server_id,omitempty"`

	// Framing of the partner's stream: "auto" (default) detects, per
	// connection, whether NSDUs carry the 2-byte length prefix (always on
	// plain TCP; optional on TLS, as Connect:Express TCPIP_HEADER).
	Framing string `json:"framing,omitempty"`

	// UpstreamFraming is the framing towards the upstream: "same" (default:
	// as the partner), "prefixed" or "raw". The gateway re-frames NSDUs
	// when they differ.
	UpstreamFraming string `json:"upstream_framing,omitempty"`

	// ConnectTimeout bounds the wait for the pre-connection and CONNECT.
	// Default: 30s.
	ConnectTimeout caddy.Duration `json:"connect_timeout,omitempty"`

	// IdleTimeout closes a session in which neither side sent anything for
	// this long, with ABORT 3-313 to the partner. Default: 5m (the PeSIT
	// Td timer).
	IdleTimeout caddy.Duration `json:"idle_timeout,omitempty"`

	// MaxFPDUSize is the largest FPDU (and NSDU) accepted from the
	// partner; a larger one is a protocol error (ABORT 3-311). Default and
	// maximum: 65535.
	MaxFPDUSize int `json:"max_fpdu_size,omitempty"`

	// UpstreamCredentials, when set, replace PI 3, 4 and 5 of the CONNECT
	// sent upstream, so that partners never learn the internal server's
	// credentials. Its requester id may be {l4.pesit.partner_id}: the
	// upstream then sees which partner each session belongs to (and keeps
	// its files and restart state apart), and authenticates the gateway by
	// the password alone.
	UpstreamCredentials *Credentials `json:"upstream_credentials,omitempty"`

	// UpstreamPreConnection, when set, makes the gateway send its own
	// pre-connection to the upstream, and wait for ACK0, before the
	// CONNECT. A partner's pre-connection is always answered by the gateway
	// and never forwarded.
	UpstreamPreConnection *PreConnection `json:"upstream_preconnection,omitempty"`

	// MaxAuthFailures is how many failed authentications (pre-connection
	// or CONNECT) a partner id, or a source address, may have within
	// AuthFailureWindow; beyond, attempts get RCONNECT 3-304 (NAK0 for a
	// pre-connection), as for a wrong password, without any password
	// being checked, and are audited as throttled. The count is shared by
	// every listener of the process. Default: 5; -1 turns throttling off.
	MaxAuthFailures int `json:"max_auth_failures,omitempty"`

	// AuthFailureWindow is the sliding window of MaxAuthFailures.
	// Default: 5m.
	AuthFailureWindow caddy.Duration `json:"auth_failure_window,omitempty"`

	partners        Partners
	limiter         ConnectionLimiter
	failures        AuthFailureCounter
	logger          *zap.Logger
	audit           *zap.Logger
	framing         fpdu.Framing
	upstreamFraming fpdu.Framing
	sameFraming     bool
}

// Credentials are the identities and password of a CONNECT.
type Credentials struct {
	// ServerID is PI 4, the server called.
	ServerID string `json:"server_id"`
	// RequesterID is PI 3, the caller.
	RequesterID string `json:"requester_id"`
	// Password is PI 5. Placeholders such as {env.VAR} are replaced.
	Password string `json:"password,omitempty"`
}

// PreConnection is the identity and password of a pre-connection.
type PreConnection struct {
	// ID is the pre-connection identifier (1 to 8 characters).
	ID string `json:"id"`
	// Password (up to 8 characters). Placeholders are replaced.
	Password string `json:"password,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (*Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "layer4.handlers.pesit",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision finds the partner registry and sets defaults.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if err := metrics.Register(ctx); err != nil {
		return err
	}
	h.audit = auditlog.Logger(ctx, "bankedge.audit.pesit")
	v, err := ctx.App("bankedge")
	if err != nil {
		return fmt.Errorf("loading the bankedge app for its partner registry: %w", err)
	}
	partners, ok := v.(Partners)
	if !ok {
		return fmt.Errorf("the bankedge app (%T) does not authenticate partners", v)
	}
	h.partners, h.limiter, h.failures = partners, localConnections, localFailures
	if sh, ok := v.(SharedState); ok {
		if l := sh.PartnerConnectionLimiter(); l != nil {
			h.limiter = l
		}
		if f := sh.PartnerAuthFailures(); f != nil {
			h.failures = f
		}
	}
	if h.MaxAuthFailures == 0 {
		h.MaxAuthFailures = 5
	}
	if h.AuthFailureWindow == 0 {
		h.AuthFailureWindow = caddy.Duration(5 * time.Minute)
	}
	if h.Framing == "" {
		h.Framing = "auto"
	}
	if err := h.framing.UnmarshalText([]byte(h.Framing)); err != nil {
		return fmt.Errorf("framing: %w", err)
	}
	switch h.UpstreamFraming {
	case "", "same":
		h.sameFraming = true
	default:
		if err := h.upstreamFraming.UnmarshalText([]byte(h.UpstreamFraming)); err != nil || h.upstreamFraming == fpdu.FramingAuto {
			return fmt.Errorf("upstream_framing must be same, prefixed or raw, got %q", h.UpstreamFraming)
		}
	}
	if h.ConnectTimeout == 0 {
		h.ConnectTimeout = caddy.Duration(30 * time.Second)
	}
	if h.IdleTimeout == 0 {
		h.IdleTimeout = caddy.Duration(5 * time.Minute)
	}
	if h.MaxFPDUSize == 0 {
		h.MaxFPDUSize = 65535
	}
	repl := caddy.NewReplacer()
	if c := h.UpstreamCredentials; c != nil {
		c.Password = repl.ReplaceKnown(c.Password, "")
	}
	if p := h.UpstreamPreConnection; p != nil {
		p.Password = repl.ReplaceKnown(p.Password, "")
	}
	return nil
}

// Validate checks the configuration.
func (h *Handler) Validate() error {
	switch {
	case h.ServerID == "":
		return errors.New("pesit: server_id is required")
	case len(h.ServerID) > fpdu.MaxIDLen:
		return fmt.Errorf("pesit: server_id is longer than %d characters", fpdu.MaxIDLen)
	case h.MaxFPDUSize < 64 || h.MaxFPDUSize > 65535:
		return fmt.Errorf("pesit: max_fpdu_size must be between 64 and 65535, got %d", h.MaxFPDUSize)
	case h.ConnectTimeout < 0 || h.IdleTimeout < 0 || h.AuthFailureWindow < 0:
		return errors.New("pesit: timeouts must be positive")
	case h.MaxAuthFailures < -1 || h.MaxAuthFailures > maxFailureLimit:
		return fmt.Errorf("pesit: max_auth_failures must be between 1 and %d, or off", maxFailureLimit)
	}
	if c := h.UpstreamCredentials; c != nil {
		if c.ServerID == "" || c.RequesterID == "" || len(c.ServerID) > fpdu.MaxIDLen ||
			len(c.RequesterID) > fpdu.MaxIDLen && !strings.Contains(c.RequesterID, "{") {
			return errors.New("pesit: upstream_credentials needs a server id and a requester id of 1 to 24 characters")
		}
		if len(c.Password) > fpdu.MaxPI5Len {
			return fmt.Errorf("pesit: the upstream password is longer than %d bytes, which PI 5 cannot carry", fpdu.MaxPI5Len)
		}
	}
	if p := h.UpstreamPreConnection; p != nil && (p.ID == "" || len(p.ID) > 8 || len(p.Password) > 8) {
		return errors.New("pesit: upstream_preconnection needs an id of 1 to 8 characters and a password of at most 8")
	}
	return nil
}

// Handle runs a partner's session.
func (h *Handler) Handle(cx *layer4.Connection, next layer4.Handler) error {
	s := newSession(h, cx)
	defer s.finish()
	if !s.accept() {
		return nil
	}
	err := next.Handle(cx.Wrap(s))
	if err != nil && !s.upstreamAnswered() {
		// Nothing came back from the upstream, so the partner still waits
		// for its ACONNECT: tell it, rather than closing silently.
		s.refuseConnect(fpdu.ReasonNetworkIncident, "upstream unavailable: "+err.Error())
		return nil
	}
	return err
}

// tlsState returns the state of the TLS handshake caddy-l4's tls handler
// made on this connection, if any.
func tlsState(cx *layer4.Connection) *tls.ConnectionState {
	states, _ := cx.GetVar(layer4.TLSConnectionStatesVarName).([]*tls.ConnectionState)
	if len(states) == 0 {
		return nil
	}
	return states[len(states)-1]
}

// UnmarshalCaddyfile parses:
//
//	pesit {
//		server_id <id>
//		framing auto|prefixed|raw
//		upstream_framing same|prefixed|raw
//		connect_timeout <duration>
//		idle_timeout <duration>
//		max_fpdu_size <bytes>
//		upstream_credentials <server_id> <requester_id> [<password>]
//		upstream_preconnection <id> [<password>]
//		max_auth_failures <count>|off [<window>]
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "server_id":
			err = caddyfileargs.One(d, &h.ServerID)
		case "framing":
			err = caddyfileargs.One(d, &h.Framing)
		case "upstream_framing":
			err = caddyfileargs.One(d, &h.UpstreamFraming)
		case "connect_timeout":
			err = caddyfileargs.Duration(d, &h.ConnectTimeout)
		case "idle_timeout":
			err = caddyfileargs.Duration(d, &h.IdleTimeout)
		case "max_fpdu_size":
			err = caddyfileargs.Int(d, &h.MaxFPDUSize)
		case "upstream_credentials":
			args := d.RemainingArgs()
			if len(args) < 2 || len(args) > 3 {
				return d.Err("upstream_credentials takes <server_id> <requester_id> [<password>]")
			}
			h.UpstreamCredentials = &Credentials{ServerID: args[0], RequesterID: args[1]}
			if len(args) == 3 {
				h.UpstreamCredentials.Password = args[2]
			}
		case "max_auth_failures":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return d.Err("max_auth_failures takes <count>|off [<window>]")
			}
			if args[0] == "off" {
				h.MaxAuthFailures = -1
			} else if h.MaxAuthFailures, err = strconv.Atoi(args[0]); err != nil || h.MaxAuthFailures < 1 {
				return d.Errf("max_auth_failures: %q is not a positive count", args[0])
			}
			if len(args) == 2 {
				dur, err := caddy.ParseDuration(args[1])
				if err != nil {
					return d.Errf("max_auth_failures window: %v", err)
				}
				h.AuthFailureWindow = caddy.Duration(dur)
			}
		case "upstream_preconnection":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return d.Err("upstream_preconnection takes <id> [<password>]")
			}
			h.UpstreamPreConnection = &PreConnection{ID: args[0]}
			if len(args) == 2 {
				h.UpstreamPreConnection.Password = args[1]
			}
		default:
			return d.Errf("unrecognized pesit option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// remoteIP returns the partner's address.
func remoteIP(a net.Addr) string {
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return strings.TrimPrefix(host, "::ffff:")
}

// Interface guards.
var (
	_ caddy.Provisioner     = (*Handler)(nil)
	_ caddy.Validator       = (*Handler)(nil)
	_ layer4.NextHandler    = (*Handler)(nil)
	_ caddyfile.Unmarshaler = (*Handler)(nil)
)

package pesit

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/mholt/caddy-l4/layer4"
	"go.uber.org/zap"

	"github.com/bankedge/bankedge/internal/caddyfileargs"
	"github.com/bankedge/bankedge/modules/guard"
	"github.com/bankedge/bankedge/modules/pesit/fpdu"
	"github.com/bankedge/bankedge/modules/pesit/peer"
)

func init() {
	caddy.RegisterModule(&Server{})
}

// Server is a small PeSIT E (Hors-SIT) server that stores received files in
// a directory and serves files from it: a terminal layer4 handler. It is the
// sandbox upstream of the example configuration and a usable small PeSIT
// endpoint. Writes are atomic (a temporary file renamed when the transfer
// completes), file names are sanitised so that nothing outside root is
// touched, and interrupted transfers resume from their last sync point.
//
// It checks PI 4 against server_id and, when requesters are listed, PI 3
// and PI 5 against them; put the bankedge pesit gateway in front of it for
// partner authentication, IP allowlists and auditing.
type Server struct {
	// Root is the directory of the files. Required; it is created if
	// missing.
	Root string `json:"root,omitempty"`

	// ServerID is the PI 4 this server answers to. Default: "BANKEDGE".
	ServerID string `json:"server_id,omitempty"`

	// Requesters maps PI 3 identities to their PI 5 passwords. When empty,
	// any requester is accepted. Placeholders in passwords are replaced; a
	// password that is empty after that stops the configuration loading.
	Requesters map[string]string `json:"requesters,omitempty"`

	// Framing is "auto" (default), "prefixed" or "raw".
	Framing string `json:"framing,omitempty"`

	// MaxEntitySize caps the PI 25 negotiation. Default: 65535.
	MaxEntitySize int `json:"max_entity_size,omitempty"`

	// SyncIntervalKB and SyncWindow cap the PI 7 negotiation (the smaller
	// of the two sides' values wins). Defaults: those of the peer package.
	SyncIntervalKB int `json:"sync_interval_kb,omitempty"`
	SyncWindow     int `json:"sync_window,omitempty"`

	// IdleTimeout ends a silent session. Default: 5m.
	IdleTimeout caddy.Duration `json:"idle_timeout,omitempty"`

	srv    *peer.Server
	logger *zap.Logger
	ctx    caddy.Context
}

// CaddyModule returns the Caddy module information.
func (*Server) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "layer4.handlers.pesit_server",
		New: func() caddy.Module { return new(Server) },
	}
}

// Provision prepares the root directory and the protocol engine.
func (h *Server) Provision(ctx caddy.Context) error {
	h.ctx = ctx
	h.logger = ctx.Logger()
	if h.ServerID == "" {
		h.ServerID = "BANKEDGE"
	}
	repl := caddy.NewReplacer()
	h.Root = repl.ReplaceKnown(h.Root, "")
	if err := os.MkdirAll(h.Root, 0o750); err != nil {
		return fmt.Errorf("pesit_server root: %w", err)
	}
	var framing fpdu.Framing
	if err := framing.UnmarshalText([]byte(h.Framing)); err != nil {
		return fmt.Errorf("framing: %w", err)
	}
	requesters := map[string][]byte{}
	for id, pw := range h.Requesters {
		pw = repl.ReplaceKnown(pw, "")
		// Most likely an unset environment variable; an empty password
		// would let anyone in under that requester id.
		if pw == "" {
			return fmt.Errorf("pesit_server requester %q: the password is empty", id)
		}
		requesters[id] = []byte(pw)
	}
	h.srv = &peer.Server{
		ServerID:       h.ServerID,
		Root:           h.Root,
		Framing:        framing,
		MaxEntitySize:  uint16(h.MaxEntitySize),
		SyncIntervalKB: uint16(h.SyncIntervalKB),
		SyncWindow:     byte(h.SyncWindow),
		IdleTimeout:    time.Duration(h.IdleTimeout),
		Logger:         h.logger,
		Connected:      func(c net.Conn) { guard.Authenticate(c, unwrapL4) },
	}
	if len(requesters) > 0 {
		h.srv.Authenticate = func(_ context.Context, c fpdu.Connect, _ net.Addr) *fpdu.Diag {
			want, ok := requesters[c.RequesterID]
			got, _ := fpdu.PasswordFromPI5(c.Password)
			full := string(trimBlanks(c.Password))
			if !ok || subtle.ConstantTimeCompare(want, []byte(got)) != 1 && subtle.ConstantTimeCompare(want, []byte(full)) != 1 {
				d := fpdu.NewDiag(fpdu.ReasonUnauthorized)
				return &d
			}
			return nil
		}
	}
	return nil
}

func trimBlanks(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == ' ' {
		b = b[:len(b)-1]
	}
	return b
}

// Validate checks the configuration.
func (h *Server) Validate() error {
	switch {
	case h.Root == "":
		return errors.New("pesit_server: root is required")
	case h.MaxEntitySize < 0 || h.MaxEntitySize > 65535:
		return fmt.Errorf("pesit_server: max_entity_size %d is not 0..65535", h.MaxEntitySize)
	case h.SyncIntervalKB < 0 || h.SyncIntervalKB > 65535 || h.SyncWindow < 0 || h.SyncWindow > 255:
		return errors.New("pesit_server: sync_interval_kb or sync_window out of range")
	}
	return nil
}

// Handle serves one PeSIT session; it is terminal.
func (h *Server) Handle(cx *layer4.Connection, _ layer4.Handler) error {
	// cx serves the bytes the router prefetched while matching first.
	if err := h.srv.ServeConn(h.ctx, cx); err != nil {
		h.logger.Debug("pesit session ended", zap.String("remote", cx.RemoteAddr().String()), zap.Error(err))
	}
	return nil
}

// UnmarshalCaddyfile parses:
//
//	pesit_server {
//		root <dir>
//		server_id <id>
//		requester <id> <password>
//		framing auto|prefixed|raw
//		max_entity_size <bytes>
//		sync_interval_kb <n>
//		sync_window <n>
//		idle_timeout <duration>
//	}
func (h *Server) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		h.Root = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "root":
			err = caddyfileargs.One(d, &h.Root)
		case "server_id":
			err = caddyfileargs.One(d, &h.ServerID)
		case "requester":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Err("requester takes <id> <password>")
			}
			if h.Requesters == nil {
				h.Requesters = map[string]string{}
			}
			h.Requesters[args[0]] = args[1]
		case "framing":
			err = caddyfileargs.One(d, &h.Framing)
		case "max_entity_size":
			err = caddyfileargs.Int(d, &h.MaxEntitySize)
		case "sync_interval_kb":
			err = caddyfileargs.Int(d, &h.SyncIntervalKB)
		case "sync_window":
			err = caddyfileargs.Int(d, &h.SyncWindow)
		case "idle_timeout":
			err = caddyfileargs.Duration(d, &h.IdleTimeout)
		default:
			return d.Errf("unrecognized pesit_server option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Interface guards.
var (
	_ caddy.Provisioner     = (*Server)(nil)
	_ caddy.Validator       = (*Server)(nil)
	_ layer4.NextHandler    = (*Server)(nil)
	_ caddyfile.Unmarshaler = (*Server)(nil)
)

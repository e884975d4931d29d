package pesit

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dustin/go-humanize"
	"github.com/mholt/caddy-l4/layer4"
	"go.uber.org/zap"

	"github.com/bankedge/bankedge/internal/caddyfileargs"
	"github.com/bankedge/bankedge/internal/runmode"
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
// Each requester (PI 3) has its own directory, root/<PI 3>: it can neither
// read, overwrite nor resume another requester's files. Behind the
// gateway, whose upstream_credentials pass {l4.pesit.partner_id} as PI 3,
// that is one directory per partner.
//
// It checks PI 4 against server_id and, when requesters are listed, PI 3
// and PI 5 against them; put the bankedge pesit gateway in front of it for
// partner authentication, IP allowlists and auditing.
//
// Sessions outlive configuration reloads: they do not run on the module's
// context, and the locks on writes in progress are shared by every
// configuration serving the same root.
type Server struct {
	// Root is the directory of the files. Required; it is created if
	// missing.
	Root string `json:"root,omitempty"`

	// ServerID is the PI 4 this server answers to. Default: "BANKEDGE".
	ServerID string `json:"server_id,omitempty"`

	// Requesters maps PI 3 identities to their PI 5 passwords. When empty,
	// any requester is accepted. The identity "*" accepts any PI 3 with its
	// password: for a gateway that passes each partner's id in PI 3 and
	// proves itself with the password. Placeholders in passwords are
	// replaced; a password that is empty after that stops the
	// configuration loading.
	Requesters map[string]string `json:"requesters,omitempty"`

	// MaxFileSize caps each received file, in bytes: a CREATE announcing
	// more is refused (2-219), a transfer that goes beyond is aborted
	// (ABORT 2-219) and its partial file removed. 0: no limit.
	MaxFileSize int64 `json:"max_file_size,omitempty"`

	// Quota caps the bytes each requester's directory holds, partial
	// files included: a CREATE when it is full is refused (2-206), a
	// transfer that would overflow it is aborted (ABORT 2-206) and its
	// partial file removed. 0: no limit.
	Quota int64 `json:"quota,omitempty"`

	// PartialMaxAge is how long the partial file and restart state of an
	// interrupted write are kept for a restart; older ones are removed (at
	// start and then every PartialMaxAge/4, at most hourly). Default: 24h.
	PartialMaxAge caddy.Duration `json:"partial_max_age,omitempty"`

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

	// ConnectTimeout bounds the wait for a new connection's
	// pre-connection and CONNECT. Default: 30s.
	ConnectTimeout caddy.Duration `json:"connect_timeout,omitempty"`

	srv      *peer.Server
	logger   *zap.Logger
	ctx      caddy.Context
	locksKey string
	// janitor starts removeStalePartials with the first connection, so
	// that "caddy validate" removes nothing.
	janitor sync.Once
}

// writeLocks holds, per root directory, the locks on writes in progress,
// for as long as any configuration serves that root: the configuration
// loaded by a reload shares them with the one still finishing its
// transfers.
var writeLocks = caddy.NewUsagePool()

type sharedLocks struct{ *peer.WriteLocks }

func (sharedLocks) Destruct() error { return nil }

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
	// bankedge validate writes nothing; a run makes the root.
	if !runmode.ValidateOnly {
		if err := os.MkdirAll(h.Root, 0o750); err != nil {
			return fmt.Errorf("pesit_server root: %w", err)
		}
	}
	abs, err := filepath.Abs(h.Root)
	if err != nil {
		return fmt.Errorf("pesit_server root: %w", err)
	}
	h.locksKey = abs
	locks, _, err := writeLocks.LoadOrNew(h.locksKey, func() (caddy.Destructor, error) {
		return sharedLocks{new(peer.WriteLocks)}, nil
	})
	if err != nil {
		return err
	}
	if h.PartialMaxAge == 0 {
		h.PartialMaxAge = caddy.Duration(24 * time.Hour)
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
		ConnectTimeout: time.Duration(h.ConnectTimeout),
		Logger:         h.logger,
		Connected:      func(c net.Conn) { guard.Authenticate(c, unwrapL4) },
		RequesterDirs:  true,
		MaxFileSize:    h.MaxFileSize,
		Quota:          h.Quota,
		Locks:          locks.(sharedLocks).WriteLocks,
	}
	if len(requesters) > 0 {
		h.srv.Authenticate = func(_ context.Context, c fpdu.Connect, _ net.Addr) *fpdu.Diag {
			want, ok := requesters[c.RequesterID]
			if !ok {
				want, ok = requesters["*"]
			}
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
	case h.MaxFileSize < 0 || h.Quota < 0 || h.PartialMaxAge < 0:
		return errors.New("pesit_server: max_file_size, quota and partial_max_age must be positive")
	}
	return nil
}

// removeStalePartials removes the partial files of interrupted writes
// older than partial_max_age, now and periodically until the
// configuration is unloaded. The configuration that replaces this one
// starts its own.
func (h *Server) removeStalePartials() {
	age := time.Duration(h.PartialMaxAge)
	t := time.NewTicker(min(max(age/4, time.Second), time.Hour))
	defer t.Stop()
	for {
		if n, err := h.srv.RemoveStalePartials(age); err != nil {
			h.logger.Warn("removing stale partial files", zap.Error(err))
		} else if n > 0 {
			h.logger.Info("removed the partial files of interrupted writes", zap.Int("files", n), zap.Duration("older_than", age))
		}
		select {
		case <-t.C:
		case <-h.ctx.Done():
			return
		}
	}
}

// Cleanup lets go of the shared write locks.
func (h *Server) Cleanup() error {
	if h.locksKey != "" {
		_, _ = writeLocks.Delete(h.locksKey)
	}
	return nil
}

// Handle serves one PeSIT session; it is terminal. The session does not
// end with the configuration: a reload must not cut a transfer.
func (h *Server) Handle(cx *layer4.Connection, _ layer4.Handler) error {
	h.janitor.Do(func() { go h.removeStalePartials() })
	// cx serves the bytes the router prefetched while matching first.
	if err := h.srv.ServeConn(context.WithoutCancel(h.ctx), cx); err != nil {
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
//		connect_timeout <duration>
//		max_file_size <size>
//		quota <size>
//		partial_max_age <duration>
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
		case "connect_timeout":
			err = caddyfileargs.Duration(d, &h.ConnectTimeout)
		case "max_file_size":
			err = sizeArg(d, &h.MaxFileSize)
		case "quota":
			err = sizeArg(d, &h.Quota)
		case "partial_max_age":
			err = caddyfileargs.Duration(d, &h.PartialMaxAge)
		default:
			return d.Errf("unrecognized pesit_server option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// sizeArg reads one size, such as 500MiB or 2GB, in bytes.
func sizeArg(d *caddyfile.Dispenser, dst *int64) error {
	var s string
	if err := caddyfileargs.One(d, &s); err != nil {
		return err
	}
	n, err := humanize.ParseBytes(s)
	if err != nil || n > math.MaxInt64 {
		return d.Errf("%q is not a size", s)
	}
	*dst = int64(n)
	return nil
}

// Interface guards.
var (
	_ caddy.CleanerUpper    = (*Server)(nil)
	_ caddy.Provisioner     = (*Server)(nil)
	_ caddy.Validator       = (*Server)(nil)
	_ layer4.NextHandler    = (*Server)(nil)
	_ caddyfile.Unmarshaler = (*Server)(nil)
)

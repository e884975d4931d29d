package psd2

import (
	"cmp"
	"context"
	"fmt"
	"github.com/bankedge/bankedge/internal/runmode"
	"path/filepath"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/certmagic"
	"github.com/google/uuid"
)

func init() {
	caddy.RegisterModule(&LocalReplayStore{})
}

// ReplayStore records the X-Request-IDs that organisations used, for the
// replay window. psd2_qseal claims the id of every request it lets through;
// a store is configured with `replay_store <name> …` and its modules live
// in the http.psd2.replay_stores namespace (local, the default, keeps ids
// in memory with a journal on disk; a shared store such as Redis serves a
// cluster).
type ReplayStore interface {
	// Claim records requestID for orgID until window has passed, unless
	// it is recorded already and not expired. fresh is true when the id
	// was free (the request may go on), false with a nil error for a
	// replay. A *ReplayQuotaError refuses the request with 429
	// ACCESS_EXCEEDED; any other error with 503 SERVICE_UNAVAILABLE and
	// Retry-After, never with an answer that lets the request through. A
	// store must never forget a live id to make room.
	Claim(ctx context.Context, orgID string, requestID uuid.UUID, window time.Duration) (fresh bool, err error)
}

// ReplayQuotaError is a claim refused because the organisation holds as
// many live ids as its quota allows. Stores keep a quota per organisation
// so that one TPP sending fast cannot push another's ids out.
type ReplayQuotaError struct {
	OrgID string
	Quota int
	// RetryAfter is when the organisation's oldest id expires.
	RetryAfter time.Duration
}

func (e *ReplayQuotaError) Error() string {
	return fmt.Sprintf("organisation %s has %d request ids in the replay window, its quota", e.OrgID, e.Quota)
}

// replayStores shares local stores across handlers and config reloads, by
// journal: an id seen before a reload is still a replay after it.
var replayStores = caddy.NewUsagePool()

// defaultReplayQuota is the default number of live request ids per
// organisation: over the default 10-minute window, about 400 requests a
// second from one TPP, sustained.
const defaultReplayQuota = 250_000

// LocalReplayStore keeps request ids in memory, with a quota per
// organisation, and appends each claim to a journal file that is read
// back on start, so that a restart (or a crash) forgets nothing within the
// window. Expired entries are swept every minute and the journal is
// rewritten when it has grown to twice what is live. One process at a time
// may use a journal (an exclusive lock on <journal>.lock): gateways that
// share traffic need a shared store instead.
type LocalReplayStore struct {
	// Journal is the journal file. Default: psd2/replay.journal under the
	// file_system storage's root, or under Caddy's data directory with
	// another storage.
	Journal string `json:"journal,omitempty"`

	// Quota is the number of live request ids kept per organisation;
	// beyond it the organisation's new requests get 429 ACCESS_EXCEEDED
	// with Retry-After until its oldest id expires. Default: 250000.
	// Handlers on the same journal share one store and one quota.
	Quota int `json:"quota,omitempty"`

	key   string
	store *memoryReplayStore
}

// CaddyModule returns the Caddy module information.
func (*LocalReplayStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.psd2.replay_stores.local",
		New: func() caddy.Module { return new(LocalReplayStore) },
	}
}

// Provision opens the journal, or joins the store already open on it.
func (s *LocalReplayStore) Provision(ctx caddy.Context) error {
	journal := s.Journal
	if journal == "" {
		root := caddy.AppDataDir()
		if fs, ok := ctx.Storage().(*certmagic.FileStorage); ok {
			root = fs.Path
		}
		journal = filepath.Join(root, "psd2", "replay.journal")
	}
	journal, err := filepath.Abs(journal)
	if err != nil {
		return fmt.Errorf("replay journal: %w", err)
	}
	logger := ctx.Logger()
	s.key = "local:" + journal
	v, _, err := replayStores.LoadOrNew(s.key, func() (caddy.Destructor, error) {
		if runmode.ValidateOnly {
			// validate runs nothing: the journal, and its lock, stay with
			// the gateway that may be running on it.
			return newMemoryReplayStore(cmp.Or(s.Quota, defaultReplayQuota), logger), nil
		}
		return openMemoryReplayStore(journal, cmp.Or(s.Quota, defaultReplayQuota), logger)
	})
	if err != nil {
		return err
	}
	s.store = v.(*memoryReplayStore)
	if s.Quota > 0 {
		// Handlers sharing a journal share its store, and the quota set
		// last applies to all of them. Lowering it forgets nothing: an
		// organisation above it waits until its ids expire.
		s.store.setQuota(s.Quota)
	}
	return nil
}

// Validate checks the configuration.
func (s *LocalReplayStore) Validate() error {
	if s.Quota < 0 {
		return fmt.Errorf("replay store quota must be positive, got %d", s.Quota)
	}
	return nil
}

// Cleanup releases the shared store; the last user closes the journal.
func (s *LocalReplayStore) Cleanup() error {
	if s.store == nil {
		return nil
	}
	_, err := replayStores.Delete(s.key)
	return err
}

// Claim implements ReplayStore.
func (s *LocalReplayStore) Claim(ctx context.Context, orgID string, requestID uuid.UUID, window time.Duration) (bool, error) {
	return s.store.Claim(ctx, orgID, requestID, window)
}

// UnmarshalCaddyfile sets up the store from Caddyfile tokens:
//
//	replay_store local {
//		journal <path>
//		quota <n>
//	}
func (s *LocalReplayStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // store name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "journal":
			if !d.AllArgs(&s.Journal) {
				return d.ArgErr()
			}
		case "quota":
			n, err := unmarshalPositiveInt(d)
			if err != nil {
				return err
			}
			s.Quota = n
		default:
			return d.Errf("unrecognized replay_store local option %q", d.Val())
		}
	}
	return nil
}

// Interface guards.
var (
	_ ReplayStore           = (*LocalReplayStore)(nil)
	_ caddy.Provisioner     = (*LocalReplayStore)(nil)
	_ caddy.Validator       = (*LocalReplayStore)(nil)
	_ caddy.CleanerUpper    = (*LocalReplayStore)(nil)
	_ caddyfile.Unmarshaler = (*LocalReplayStore)(nil)
)

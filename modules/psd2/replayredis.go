package psd2

import (
	"context"
	"errors"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/google/uuid"

	"github.com/bankedge/bankedge/modules/cluster"
)

func init() {
	caddy.RegisterModule(&RedisReplayStore{})
}

// RedisReplayStore keeps request ids in the Redis of Caddy's storage
// (`storage redis { … }` in the global options), shared by every gateway
// on it: a request accepted by any of them is a replay on all of them for
// the whole window. It is the default replay store when the storage is
// Redis, and needs no settings: the connection, credentials and key
// prefix are the storage's. Each claim is one SET NX PX, one round trip,
// answered within a second or refused with 503 and Retry-After when Redis
// does not answer (never let through). Redis expires every id with its
// window; there is no per-organisation quota (Redis's memory is sized for
// the traffic: about 100 bytes per id in the window).
type RedisReplayStore struct {
	state *cluster.State
}

// CaddyModule returns the Caddy module information.
func (*RedisReplayStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.psd2.replay_stores.redis",
		New: func() caddy.Module { return new(RedisReplayStore) },
	}
}

// Provision takes the shared state of the configuration's storage.
func (s *RedisReplayStore) Provision(ctx caddy.Context) error {
	if !cluster.StorageShared(ctx) {
		return errors.New("replay_store redis keeps request ids in the Redis of Caddy's storage: " +
			"set `storage redis { address … }` in the global options, or use replay_store local")
	}
	st, err := cluster.From(ctx)
	if err != nil {
		return err
	}
	s.state = st
	return nil
}

// Claim implements ReplayStore. Its errors wrap cluster.ErrUnavailable.
func (s *RedisReplayStore) Claim(ctx context.Context, orgID string, requestID uuid.UUID, window time.Duration) (bool, error) {
	return s.state.Claim(ctx, orgID, requestID, window)
}

// UnmarshalCaddyfile sets up the store from Caddyfile tokens:
//
//	replay_store redis
func (s *RedisReplayStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // store name
	if d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(0) {
		return d.Errf("replay_store redis takes no options: it uses the storage's Redis")
	}
	return nil
}

// Interface guards.
var (
	_ ReplayStore           = (*RedisReplayStore)(nil)
	_ caddy.Provisioner     = (*RedisReplayStore)(nil)
	_ caddyfile.Unmarshaler = (*RedisReplayStore)(nil)
)

package testredis

import (
	"context"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	storageredis "github.com/pberkel/caddy-storage-redis"
)

// Storage returns a client of s as the binary's caddy.storage.redis
// module (github.com/pberkel/caddy-storage-redis), provisioned with key
// prefix prefix, closed when t ends. Each call makes a client of its own,
// as another gateway instance sharing the Redis would have.
func (s *Server) Storage(t testing.TB, prefix string) certmagic.Storage {
	t.Helper()
	rs := storageredis.New()
	rs.Address = []string{s.Addr}
	rs.KeyPrefix = prefix
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := rs.Provision(ctx); err != nil {
		t.Fatalf("provisioning the Redis storage: %v", err)
	}
	t.Cleanup(func() { _ = rs.Cleanup() })
	return rs
}

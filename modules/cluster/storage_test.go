package cluster_test

import (
	"context"
	"errors"
	"io/fs"
	"slices"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	storageredis "github.com/pberkel/caddy-storage-redis"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/bankedge/bankedge/internal/testredis"
	"github.com/bankedge/bankedge/modules/cluster"
)

// redisStorage provisions the Redis storage module on addr, as a
// configuration with `storage redis` would.
func redisStorage(t *testing.T, addr, prefix string) *storageredis.RedisStorage {
	t.Helper()
	rs := storageredis.New()
	rs.Address = []string{addr}
	rs.KeyPrefix = prefix
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := rs.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.Cleanup() })
	return rs
}

// Through the guard, the Redis storage's failures are ErrUnavailable,
// counted in the engine's single outage line, while its answers (a missing
// key, an undecodable value) are not; a hung Redis is given up on when the
// caller's context ends. Another storage is returned as it is.
func TestGuardStorage(t *testing.T) {
	srv := testredis.Start(t)
	withShortTimeouts(t)
	core, logs := observer.New(zapcore.InfoLevel)
	s := cluster.NewRedisInstance(t, srv.Addr, "dep", zap.New(core))
	rs := redisStorage(t, srv.Addr, "dep")
	st := s.GuardStorage(rs)
	ctx := context.Background()

	if err := st.Store(ctx, "a/b.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if b, err := st.Load(ctx, "a/b.json"); err != nil || string(b) != "{}" {
		t.Fatalf("load: %q %v", b, err)
	}
	if _, err := st.Load(ctx, "a/none.json"); !errors.Is(err, fs.ErrNotExist) || errors.Is(err, cluster.ErrUnavailable) {
		t.Fatalf("missing key: %v, want fs.ErrNotExist only", err)
	}
	srv.MustDo("SET", "dep/a/garbage.json", "not the storage's JSON")
	if _, err := st.Load(ctx, "a/garbage.json"); err == nil || errors.Is(err, cluster.ErrUnavailable) {
		t.Fatalf("undecodable value: %v, want an error that is not ErrUnavailable", err)
	}
	if !st.Exists(ctx, "a/b.json") || st.Exists(ctx, "a/none.json") {
		t.Fatal("exists does not tell a present key from a missing one")
	}
	if err := st.Store(ctx, "a/gone.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "a/gone.json"); err != nil {
		t.Fatal(err)
	}
	if keys, err := st.List(ctx, "a", false); err != nil || slices.Contains(keys, "a/gone.json") || srv.MustDo("EXISTS", "dep/a/gone.json") != "0" {
		t.Fatalf("after a delete: listed %v (%v), EXISTS %s", keys, err, srv.MustDo("EXISTS", "dep/a/gone.json"))
	}
	if err := st.Lock(ctx, "l"); err != nil {
		t.Fatal(err)
	}
	if err := st.Unlock(ctx, "l"); err != nil {
		t.Fatal(err)
	}

	srv.Kill()
	// The first failure of the outage goes through the storage itself,
	// which reports a failed GET as a missing key.
	if _, err := st.Load(ctx, "a/b.json"); !errors.Is(err, cluster.ErrUnavailable) || errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("load with Redis just killed: %v, want ErrUnavailable", err)
	}
	ops := map[string]func() error{
		"load":   func() error { _, err := st.Load(ctx, "a/b.json"); return err },
		"list":   func() error { _, err := st.List(ctx, "a", false); return err },
		"stat":   func() error { _, err := st.Stat(ctx, "a/b.json"); return err },
		"store":  func() error { return st.Store(ctx, "a/c.json", []byte("{}")) },
		"delete": func() error { return st.Delete(ctx, "a/b.json") },
		"lock":   func() error { return st.Lock(ctx, "l2") },
	}
	for name, op := range ops {
		// Never "not found": the storage itself says so for any failed GET.
		if err := op(); !errors.Is(err, cluster.ErrUnavailable) || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s with Redis down: %v, want ErrUnavailable", name, err)
		}
	}
	if st.Exists(ctx, "a/b.json") {
		t.Error("exists with Redis down: true")
	}
	if n := logs.FilterLevelExact(zapcore.ErrorLevel).Len(); n != 1 {
		t.Errorf("%d error lines for one outage, want 1: %v", n, logs.All())
	}

	srv.Restart()
	waitFor(t, 5*time.Second, "load after the restart", func() bool {
		b, err := st.Load(ctx, "a/b.json")
		if err != nil && !errors.Is(err, cluster.ErrUnavailable) {
			t.Fatalf("load after the restart: %v", err)
		}
		return string(b) == "{}"
	})
	if n := logs.FilterMessageSnippet("available again").Len(); n != 1 {
		t.Errorf("%d recovery lines, want 1: %v", n, logs.All())
	}

	// A hung Redis: the read ends with the caller's context, although the
	// storage's client would wait its 5 s timeout.
	srv.Pause()
	defer srv.Resume()
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := st.Load(short, "a/b.json"); !errors.Is(err, cluster.ErrUnavailable) {
		t.Fatalf("load from a hung Redis: %v", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("load from a hung Redis took %v, the caller gave 300ms", el)
	}

	local := cluster.NewLocalInstance(time.Now)
	if got := local.GuardStorage(rs); got != rs {
		t.Fatalf("in-process state guarded the storage: %T", got)
	}
}

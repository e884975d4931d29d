package cluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	storageredis "github.com/pberkel/caddy-storage-redis"
)

// StorageShared tells whether From would return a shared state for ctx,
// that is whether the configuration's storage is caddy.storage.redis,
// without taking a handle on the engine.
func StorageShared(ctx caddy.Context) bool {
	_, ok := ctx.Storage().(*storageredis.RedisStorage)
	return ok
}

// GuardStorage returns st such that the callers can tell an unavailable
// Redis from everything else, when the state is shared (st is then the
// Redis storage of this state); st itself otherwise.
//
// Through the guard, an error of the storage that is not one of its
// answers (a missing key, confirmed with Redis; a value that cannot be
// decoded) wraps ErrUnavailable: the Redis storage reports a refused connection, a
// timeout or a Redis in LOADING state as plain text, which no caller could
// tell from a damaged record. Failures and successes also count in the
// engine's health, so that an outage is one error line in the log however
// many storage operations fail.
//
// Reads (Load, List, Stat, Exists) end when ctx does, and after 2 s at
// most (twice Timing.Op), even when the storage's client would wait longer (it ignores
// deadlines, and waits its read timeout, three seconds by default, up to
// four times on a Redis that hangs): a PeSIT CONNECT is then answered
// within its connect timeout. Writes and
// locks are never abandoned: a write that lands after its caller gave up
// could undo a later one, and a lock obtained after it would be held by
// nobody.
func (s *State) GuardStorage(st certmagic.Storage) certmagic.Storage {
	r, ok := s.e.store.(*redisStore)
	if !ok {
		return st
	}
	g := &guardedStorage{Storage: st, r: r}
	if rs, ok := st.(*storageredis.RedisStorage); ok {
		g.prefix = rs.KeyPrefix
	}
	return g
}

// guardedStorage is a Redis storage seen through the engine's health.
type guardedStorage struct {
	certmagic.Storage
	r *redisStore
	// prefix is the storage's key_prefix, for the keys it reports missing.
	prefix string
}

// confirmMissing asks Redis whether the storage's key for name is really
// absent: the Redis storage (v1.8.1) reports any failure of a GET,
// connection refused included, as fs.ErrNotExist, which would turn an
// outage into "no such partner" or "no CA yet". nil when Redis says it is
// absent.
func (g *guardedStorage) confirmMissing(ctx context.Context, op, name string) error {
	epoch := g.r.health.begin()
	octx, cancel := context.WithTimeout(ctx, g.r.timing.Op)
	n, err := g.r.client().Exists(octx, path.Join(g.prefix, name)).Result()
	cancel()
	if err := g.r.done(op, ctx, epoch, err); err != nil {
		return err
	}
	if n > 0 {
		return unavailable(op, errors.New("the storage could not read a key that Redis holds"))
	}
	return nil
}

// Unwrap returns the storage behind the guard.
func (g *guardedStorage) Unwrap() certmagic.Storage { return g.Storage }

// String describes the storage behind the guard (with its secrets redacted
// by the storage itself), so that the guard keeps its identity in usage
// pools keyed by it.
func (g *guardedStorage) String() string {
	if s, ok := g.Storage.(interface{ String() string }); ok {
		return s.String()
	}
	return "guarded storage"
}

// probe fails fast during an outage: the storage's client retries a
// refused connection for about two seconds, and waits its read timeout on a
// hung Redis, while one PING of the engine's client fails at once or within
// Timing.Op. While Redis answers it costs nothing.
func (g *guardedStorage) probe(ctx context.Context, op string) error {
	epoch := g.r.health.begin()
	if epoch%2 == 0 {
		return nil
	}
	octx, cancel := context.WithTimeout(ctx, g.r.timing.Op)
	err := g.r.client().Ping(octx).Err()
	cancel()
	return g.r.done(op, ctx, epoch, err)
}

// dataErrors are the Redis storage's own errors about a value it read or
// was given: Redis answered, so these are not an outage.
var dataErrors = []string{
	"Unable to unmarshal", "Unable to marshal", "Unable to decrypt", "Unable to encrypt",
	"Unable to decompress", "Unable to compress",
}

// check turns err of a storage operation into the guard's error and keeps
// the health state.
func (g *guardedStorage) check(op string, ctx context.Context, epoch uint64, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		// Not proof that Redis answered (see confirmMissing).
		return err
	}
	if err == nil {
		g.r.health.succeeded(epoch)
		return nil
	}
	for _, d := range dataErrors {
		if strings.Contains(err.Error(), d) {
			g.r.health.succeeded(epoch)
			return err
		}
	}
	if ctx.Err() != nil {
		// The caller gave up: that says nothing about Redis.
		return unavailable(op, err)
	}
	g.r.health.failed(op, epoch, err)
	return unavailable(op, err)
}

// maxStorageRead bounds a read through the guard, in Timing.Op, whatever
// the caller's context: one GET or ZRANGE of Redis takes milliseconds, and
// the storage's client would otherwise retry a hung Redis for four times
// its read timeout.
const maxStorageRead = 2

// read runs a read that ends when ctx does, or after maxStorageRead.
func read[T any](g *guardedStorage, ctx context.Context, op string, fn func() (T, error)) (T, error) {
	var zero T
	if err := g.probe(ctx, op); err != nil {
		return zero, err
	}
	epoch := g.r.health.begin()
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := fn()
		done <- result{v, err}
	}()
	limit := maxStorageRead * g.r.timing.Op
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case res := <-done:
		return res.v, g.check(op, ctx, epoch, res.err)
	case <-ctx.Done():
		return zero, unavailable(op, ctx.Err())
	case <-timer.C:
		err := fmt.Errorf("no answer within %v", limit)
		g.r.health.failed(op, epoch, err)
		return zero, unavailable(op, err)
	}
}

// Load implements certmagic.Storage.
func (g *guardedStorage) Load(ctx context.Context, key string) ([]byte, error) {
	b, err := read(g, ctx, "storage load", func() ([]byte, error) { return g.Storage.Load(ctx, key) })
	if errors.Is(err, fs.ErrNotExist) {
		if cerr := g.confirmMissing(ctx, "storage load", key); cerr != nil {
			return nil, cerr
		}
	}
	return b, err
}

// List implements certmagic.Storage.
func (g *guardedStorage) List(ctx context.Context, path string, recursive bool) ([]string, error) {
	return read(g, ctx, "storage list", func() ([]string, error) { return g.Storage.List(ctx, path, recursive) })
}

// Stat implements certmagic.Storage.
func (g *guardedStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	ki, err := read(g, ctx, "storage stat", func() (certmagic.KeyInfo, error) { return g.Storage.Stat(ctx, key) })
	if errors.Is(err, fs.ErrNotExist) {
		if cerr := g.confirmMissing(ctx, "storage stat", key); cerr != nil {
			return ki, cerr
		}
	}
	return ki, err
}

// Exists implements certmagic.Storage. Its answer has no room for an
// error: an unavailable Redis answers false, as the storage does, but
// within Timing.Op and without the storage's warning (with a stack trace)
// per call.
func (g *guardedStorage) Exists(ctx context.Context, key string) bool {
	if g.prefix == "" {
		ok, _ := read(g, ctx, "storage exists", func() (bool, error) { return g.Storage.Exists(ctx, key), nil })
		return ok
	}
	epoch := g.r.health.begin()
	octx, cancel := context.WithTimeout(ctx, g.r.timing.Op)
	n, err := g.r.client().Exists(octx, path.Join(g.prefix, key)).Result()
	cancel()
	return g.r.done("storage exists", ctx, epoch, err) == nil && n > 0
}

// Store implements certmagic.Storage.
func (g *guardedStorage) Store(ctx context.Context, key string, value []byte) error {
	if err := g.probe(ctx, "storage write"); err != nil {
		return err
	}
	epoch := g.r.health.begin()
	return g.check("storage write", ctx, epoch, g.Storage.Store(ctx, key, value))
}

// Delete implements certmagic.Storage. The Redis storage removes a key
// from its directory index first and the key after: Redis failing in
// between would leave a key that no listing shows but every read finds (a
// deleted partner that still authenticates). The guard deletes the key
// first, so that such a failure leaves an index entry without its key,
// which listings skip.
func (g *guardedStorage) Delete(ctx context.Context, key string) error {
	if err := g.probe(ctx, "storage delete"); err != nil {
		return err
	}
	if g.prefix != "" {
		epoch := g.r.health.begin()
		octx, cancel := context.WithTimeout(ctx, g.r.timing.Op)
		err := g.r.client().Del(octx, path.Join(g.prefix, key)).Err()
		cancel()
		if err := g.r.done("storage delete", ctx, epoch, err); err != nil {
			return err
		}
	}
	epoch := g.r.health.begin()
	return g.check("storage delete", ctx, epoch, g.Storage.Delete(ctx, key))
}

// Lock implements certmagic.Locker.
func (g *guardedStorage) Lock(ctx context.Context, name string) error {
	if err := g.probe(ctx, "storage lock"); err != nil {
		return err
	}
	epoch := g.r.health.begin()
	return g.check("storage lock", ctx, epoch, g.Storage.Lock(ctx, name))
}

// Unlock implements certmagic.Locker. It always reaches the storage, which
// stops refreshing the lock there whether Redis answers or not.
func (g *guardedStorage) Unlock(ctx context.Context, name string) error {
	// Never skipped: the storage stops refreshing the lock only here.
	epoch := g.r.health.begin()
	return g.check("storage unlock", ctx, epoch, g.Storage.Unlock(ctx, name))
}

// Interface guard.
var _ certmagic.Storage = (*guardedStorage)(nil)

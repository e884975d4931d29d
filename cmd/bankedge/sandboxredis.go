package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// A sandbox started with --redis keeps Caddy's storage (the CA, its
// inventory and CRL, the partners) and the shared state (replay ids,
// PeSIT connection leases, failure counters, change notifications) in
// that Redis, under the key prefix sandboxRedisPrefix, instead of in
// <dir>/storage. Several sandboxes (each with its own --dir and ports) on
// one Redis are then one gateway: one CA, one registry, replays and limits
// across them. The first one makes the CA; the others need its passphrase,
// which --envfile <first dir>/secrets.env gives them (with the admin
// password and the DEMO partner's password, so that the same credentials
// work on all of them).

// sandboxRedisPrefix is the key_prefix of the sandboxes' storage, apart
// from a real deployment's ("caddy" by default) on the same Redis.
const sandboxRedisPrefix = "bankedge-sandbox"

// redisFile records in the sandbox directory the Redis its storage is in,
// so that a restart without --redis, and bankedge doctor --dir, use it.
const redisFile = "redis"

// sandboxRedis returns the Redis address of the sandbox in dir: --redis,
// or the one an earlier start recorded; "" for file storage.
func sandboxRedis(dir, flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	b, err := os.ReadFile(filepath.Join(dir, redisFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// redisStorage is the storage module of the sandbox on Redis at addr.
func redisStorage(addr string) (json.RawMessage, error) {
	return json.Marshal(map[string]any{"module": "redis", "address": []string{addr}, "key_prefix": sandboxRedisPrefix})
}

// checkSandboxRedis checks, before anything is written, that Redis
// answers, and that a sandbox joining a Redis that holds a CA already has
// that CA's passphrase instead of making a new one that cannot open it.
func checkSandboxRedis(addr string, secrets *secretsFile) error {
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("cannot reach Redis at %s (--redis): %w", addr, err)
	}
	n, err := c.Exists(ctx, sandboxRedisPrefix+"/bankedge/ca/ca.crt").Result()
	if err != nil {
		return fmt.Errorf("Redis at %s (--redis): %w", addr, err)
	}
	if _, set := os.LookupEnv(envCAPassword); n > 0 && !set && secrets.values[envCAPassword] == "" {
		return fmt.Errorf("Redis at %s already holds the CA of another sandbox: start this one with that sandbox's secrets, "+
			"e.g. %s sandbox --redis %s --dir %s --envfile <the first sandbox's dir>/secrets.env", addr, selfCommand(), addr, displayPath(filepath.Dir(secrets.path)))
	}
	return nil
}

// adoptSecrets takes the sandbox variables of another sandbox's
// secrets.env (--envfile) where the environment does not set them; they
// win over this directory's own file, into which they are written.
func (sf *secretsFile) adoptSecrets(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--envfile: %w", err)
	}
	other := map[string]string{}
	if _, err := parseSecrets(string(data), other); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	sf.adoptedFrom, sf.adopted = filepath.Dir(path), map[string]bool{}
	for _, sec := range sandboxSecrets {
		v, ok := other[sec.name]
		if !ok || sf.fromEnv[sec.name] {
			continue
		}
		if err := sec.check(v); err != nil {
			return fmt.Errorf("%s (from %s) %w", sec.name, path, err)
		}
		sf.adopted[sec.name] = true
		if sf.values[sec.name] != v {
			sf.values[sec.name] = v
			sf.rewrite = true
		}
	}
	return nil
}

// copyAdoptedFiles gives the sandbox in dir the clear-text passwords that
// go with adopted secrets (the admin password, the DEMO partner's), which
// the summary and the README's commands read from dir.
func (sf *secretsFile) copyAdoptedFiles(dir string) error {
	for _, f := range []struct{ variable, name string }{
		{envAdminHash, "admin-password"}, {envDemoPassword, filepath.Join("pesit", "demo-password")},
	} {
		if !sf.adopted[f.variable] {
			continue
		}
		dst := filepath.Join(dir, f.name)
		b, err := os.ReadFile(filepath.Join(sf.adoptedFrom, f.name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := writeFileAtomic(dst, b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

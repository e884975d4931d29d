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
// across them. The first one makes the CA; the others need its passphrase
// (and the admin and DEMO passwords, so that the same credentials work on
// all of them), which the first leaves in Redis (sharedSecretsKey) or
// --envfile <first dir>/secrets.env gives them.

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

// sharedSecretsKey holds, in a sandbox Redis, the secrets of the sandbox
// that made the CA (secrets.env, the admin and DEMO passwords), so that
// another sandbox started on that Redis with nothing but --redis, its
// --dir and its ports joins it. A sandbox only: its CA passphrase then
// sits next to the CA key it opens, which no deployment may do.
const sharedSecretsKey = sandboxRedisPrefix + "/sandbox/secrets"

// sharedSecrets are the files of sharedSecretsKey, by name in the
// sandbox directory.
type sharedSecrets map[string]string

// sharedSecretFiles are the files a joining sandbox takes.
var sharedSecretFiles = []string{secretsFileName, "admin-password", filepath.Join("pesit", "demo-password")}

// checkSandboxRedis checks, before anything is written, that Redis
// answers, and that a sandbox joining a Redis that holds a CA has that
// CA's passphrase instead of making a new one that cannot open it: from
// the environment or --envfile, or else from the secrets the first
// sandbox shared in Redis, which it adopts (as --envfile would) through a
// temporary directory that cleanup removes.
func checkSandboxRedis(addr string, secrets *secretsFile) (cleanup func(), err error) {
	cleanup = func() {}
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		return cleanup, fmt.Errorf("cannot reach Redis at %s (--redis): %w", addr, err)
	}
	n, err := c.Exists(ctx, sandboxRedisPrefix+"/bankedge/ca/ca.crt").Result()
	if err != nil {
		return cleanup, fmt.Errorf("Redis at %s (--redis): %w", addr, err)
	}
	if _, set := os.LookupEnv(envCAPassword); n == 0 || set || secrets.values[envCAPassword] != "" {
		return cleanup, nil
	}
	refusal := fmt.Errorf("Redis at %s already holds the CA of another sandbox: start this one with that sandbox's secrets, "+
		"e.g. %s sandbox --redis %s --dir %s --envfile <the first sandbox's dir>/secrets.env", addr, selfCommand(), addr, displayPath(filepath.Dir(secrets.path)))
	raw, err := c.Get(ctx, sharedSecretsKey).Bytes()
	if errors.Is(err, redis.Nil) {
		return cleanup, refusal
	}
	if err != nil {
		return cleanup, fmt.Errorf("Redis at %s (--redis): %w", addr, err)
	}
	var shared sharedSecrets
	if err := json.Unmarshal(raw, &shared); err != nil || shared[secretsFileName] == "" {
		return cleanup, refusal
	}
	tmp, err := os.MkdirTemp("", "bankedge-sandbox-secrets-")
	if err != nil {
		return cleanup, err
	}
	cleanup = func() { os.RemoveAll(tmp) }
	for _, name := range sharedSecretFiles {
		if v, ok := shared[name]; ok {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(tmp, name)), 0o700); err != nil {
				return cleanup, err
			}
			if err := writeFileAtomic(filepath.Join(tmp, name), []byte(v), 0o600); err != nil {
				return cleanup, err
			}
		}
	}
	return cleanup, secrets.adoptSecrets(filepath.Join(tmp, secretsFileName))
}

// shareSecrets publishes the secrets of the sandbox in dir, whose
// passphrase opened the CA in Redis at addr, unless another sandbox's
// are there already.
func shareSecrets(addr, dir string) error {
	shared := sharedSecrets{}
	for _, name := range sharedSecretFiles {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		shared[name] = string(b)
	}
	raw, err := json.Marshal(shared)
	if err != nil {
		return err
	}
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.SetNX(ctx, sharedSecretsKey, raw, 0).Err()
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

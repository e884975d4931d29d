package cluster_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/google/uuid"

	"github.com/bankedge/bankedge/internal/testcaddy"
	"github.com/bankedge/bankedge/internal/testredis"
	"github.com/bankedge/bankedge/modules/cluster"
)

// A configuration on Redis storage keeps its shared state in that Redis,
// under the storage's key_prefix, with nothing else configured.
func TestSelectionRedisStorage(t *testing.T) {
	srv := testredis.Start(t)
	s := loadProbe(t, redisCaddyfile(srv.Addr, "bank1/edge", "a"), "a")
	if !s.Shared() {
		t.Fatal("state on Redis storage is not shared")
	}
	ctx := context.Background()
	id := uuid.New()
	if fresh, err := s.Claim(ctx, "PSDFR-ACPR-12345", id, time.Minute); err != nil || !fresh {
		t.Fatalf("first claim: fresh=%v err=%v", fresh, err)
	}
	key := "bank1/edge:bankedge:replay:{PSDFR-ACPR-12345}:" + id.String()
	if got := srv.MustDo("EXISTS", key); got != "1" {
		t.Fatalf("EXISTS %s = %s; keys: %s", key, got, srv.MustDo("KEYS", "*"))
	}
	pttl, _ := strconv.Atoi(srv.MustDo("PTTL", key))
	if pttl <= 50_000 || pttl > 60_000 {
		t.Fatalf("PTTL %s = %d, want the window of 1 min", key, pttl)
	}

	release, ok, err := s.Acquire(ctx, "BANK{A}", 3)
	if err != nil || !ok {
		t.Fatalf("acquire: ok=%v err=%v", ok, err)
	}
	if got := srv.MustDo("ZCARD", "bank1/edge:bankedge:sessions:{BANK%7BA%7D}"); got != "1" {
		t.Fatalf("session set holds %s leases; keys: %s", got, srv.MustDo("KEYS", "*"))
	}
	release()
	if got := srv.MustDo("EXISTS", "bank1/edge:bankedge:sessions:{BANK%7BA%7D}"); got != "0" {
		t.Fatalf("session set still there after the release")
	}

	if _, err := s.IncrFailure(ctx, cluster.IPAuthFailures("192.0.2.7"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := srv.MustDo("ZCARD", "bank1/edge:bankedge:authfail-ip:{192.0.2.7}"); got != "1" {
		t.Fatalf("failure set holds %s; keys: %s", got, srv.MustDo("KEYS", "*"))
	}
	if _, err := s.IncrFailure(ctx, cluster.PartnerAuthFailures("BANKA"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := srv.MustDo("EXISTS", "bank1/edge:bankedge:authfail:{BANKA}"); got != "1" {
		t.Fatalf("partner failure set missing; keys: %s", srv.MustDo("KEYS", "*"))
	}
	if got := srv.MustDo("PUBSUB", "NUMSUB", "bank1/edge:bankedge:events"); got != "bank1/edge:bankedge:events\n1" {
		t.Fatalf("PUBSUB NUMSUB = %q, want one subscriber on the events channel", got)
	}
}

// With any other storage the state stays in process: nothing reaches Redis.
func TestSelectionOtherStorage(t *testing.T) {
	srv := testredis.Start(t)
	s := loadProbe(t, testcaddy.Globals(t.TempDir(), "\tcluster_probe local"), "local")
	if s.Shared() {
		t.Fatal("state on file_system storage claims to be shared")
	}
	ctx := context.Background()
	id := uuid.New()
	if fresh, _ := s.Claim(ctx, "ORG", id, time.Minute); !fresh {
		t.Fatal("first claim is a replay")
	}
	if fresh, _ := s.Claim(ctx, "ORG", id, time.Minute); fresh {
		t.Fatal("second claim is fresh")
	}
	if got := srv.MustDo("DBSIZE"); got != "0" {
		t.Fatalf("Redis holds %s keys", got)
	}
}

// A reload that keeps the storage keeps the engine: a lease taken under the
// old configuration is still counted, and released, under the new one; a
// replay claimed in process before the reload is still a replay after it.
func TestSelectionSurvivesReload(t *testing.T) {
	srv := testredis.Start(t)
	ctx := context.Background()
	old := loadProbe(t, redisCaddyfile(srv.Addr, "dep", "old"), "old")
	release, ok, err := old.Acquire(ctx, "P", 1)
	if err != nil || !ok {
		t.Fatalf("acquire: ok=%v err=%v", ok, err)
	}
	cur := loadProbe(t, redisCaddyfile(srv.Addr, "dep", "new"), "new")
	if !cluster.SameEngine(old, cur) {
		t.Fatal("the reload made a new engine for the same storage")
	}
	if _, ok, _ := cur.Acquire(ctx, "P", 1); ok {
		t.Fatal("a lease of the old configuration was lost in the reload")
	}
	cur.RenewNow() // the renewer still runs for the old configuration's lease
	release()
	if _, ok, err := cur.Acquire(ctx, "P", 1); err != nil || !ok {
		t.Fatalf("acquire after release: ok=%v err=%v", ok, err)
	}

	// Another storage: another engine; stopping Caddy ends it.
	dir := t.TempDir()
	a := loadProbe(t, testcaddy.Globals(dir, "\tcluster_probe la"), "la")
	id := uuid.New()
	if fresh, _ := a.Claim(ctx, "ORG", id, time.Minute); !fresh {
		t.Fatal("first claim is a replay")
	}
	b := loadProbe(t, testcaddy.Globals(dir, "\tcluster_probe lb"), "lb")
	if fresh, _ := b.Claim(ctx, "ORG", id, time.Minute); fresh {
		t.Fatal("the replay memory was lost in the reload")
	}
	_ = caddy.Stop()
	deadline := time.Now().Add(5 * time.Second)
	for cluster.Engines() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d engines alive after Caddy stopped", cluster.Engines())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

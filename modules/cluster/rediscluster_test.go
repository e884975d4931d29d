package cluster_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bankedge/bankedge/internal/testredis"
	"github.com/bankedge/bankedge/modules/cluster"
)

// On Redis Cluster (storage redis cluster), two gateway processes share
// replay claims, leases, failure counts and notifications; the keys of the
// many TPPs spread over the nodes, each TPP's on the node of its hash tag.
func TestRedisCluster(t *testing.T) {
	nodes := testredis.StartCluster(t, 3)
	caddyfile := fmt.Sprintf(`{
	admin off
	persist_config off
	storage redis cluster {
		address {
			%s
			%s
			%s
		}
		key_prefix dep
	}
	cluster_probe %%s
}
`, nodes[0].Addr, nodes[1].Addr, nodes[2].Addr)
	a := loadProbe(t, fmt.Sprintf(caddyfile, "a"), "a")
	b := startChild(t, fmt.Sprintf(caddyfile, "b"), "")
	ctx := context.Background()

	for i := range 30 {
		org := "PSDFR-ACPR-" + strconv.Itoa(i)
		id := uuid.New()
		if !mustClaim(t, a, org, id, time.Minute) {
			t.Fatalf("first claim for %s is a replay", org)
		}
		if got := b.do("claim", org, id.String(), "1m"); got != "replay" {
			t.Fatalf("claim on B for %s: %s", org, got)
		}
	}
	used := 0
	for _, n := range nodes {
		if keys, _ := strconv.Atoi(n.MustDo("DBSIZE")); keys > 0 {
			used++
		}
	}
	if used < 2 {
		t.Fatalf("the keys of 30 TPPs are on %d of 3 nodes", used)
	}

	if got := b.do("acquire", "BANKA", "1"); got != "ok 1" {
		t.Fatalf("B acquire: %s", got)
	}
	if _, ok, err := a.Acquire(ctx, "BANKA", 1); ok || err != nil {
		t.Fatalf("A acquire beyond the limit: ok=%v err=%v", ok, err)
	}
	if _, err := a.IncrFailure(ctx, cluster.PartnerAuthFailures("BANKA"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := b.do("fail", cluster.ScopeAuthPartner, "BANKA", "1m"); got != "2" {
		t.Fatalf("failures counted on B: %s, want 2", got)
	}

	if got := b.do("subscribe", "partners"); got != "ok" {
		t.Fatal(got)
	}
	// The subscription is confirmed asynchronously; publish until it lands.
	waitFor(t, 5*time.Second, "notification across the cluster", func() bool {
		if err := a.Publish(ctx, "partners", "BANKA"); err != nil {
			t.Fatal(err)
		}
		select {
		case ev := <-b.events:
			return ev == "partners BANKA"
		case <-time.After(100 * time.Millisecond):
			return false
		}
	})
}

// On Sentinel (storage redis failover), the state follows a failover: when
// the master dies and the replica is promoted, claims work again on the new
// master, and a claim made before the failover is still a replay.
func TestRedisSentinelFailover(t *testing.T) {
	master := testredis.Start(t)
	replica := testredis.StartReplica(t, master)
	sentinel := testredis.StartSentinel(t, master, "bankedge")
	s := loadProbe(t, fmt.Sprintf(`{
	admin off
	persist_config off
	storage redis failover {
		address %s
		master_name bankedge
		key_prefix dep
	}
	cluster_probe failover
}
`, sentinel.Addr), "failover")
	id := uuid.New()
	if !mustClaim(t, s, "ORG", id, time.Hour) {
		t.Fatal("first claim is a replay")
	}
	// The claim is on the replica too before the master dies.
	if got := master.MustDo("WAIT", "1", "2000"); got != "1" {
		t.Fatalf("WAIT: %s replicas acknowledged", got)
	}
	if got := replica.MustDo("EXISTS", "dep:bankedge:replay:{ORG}:"+id.String()); got != "1" {
		t.Fatal("the claim is not on the replica")
	}

	// The master dies; the sentinel promotes the replica once it has
	// polled it and seen the master down for a second.
	waitFor(t, 20*time.Second, "sentinel polling the replica", func() bool {
		replicas, _ := sentinel.Do("SENTINEL", "REPLICAS", "bankedge")
		return strings.Contains(replicas, strconv.Itoa(replica.Port)) && strings.Contains(replicas, "master-link-status\nok")
	})
	master.Kill()
	waitFor(t, 20*time.Second, "replica promoted", func() bool {
		addr, _ := sentinel.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "bankedge")
		return addr == "127.0.0.1\n"+strconv.Itoa(replica.Port)
	})
	el := waitFor(t, 10*time.Second, "claims on the new master", func() bool {
		_, err := s.Claim(context.Background(), "ORG", uuid.New(), time.Hour)
		return err == nil
	})
	t.Logf("claims work again %v after the failover", el)
	if mustClaim(t, s, "ORG", id, time.Hour) {
		t.Fatal("a claim made before the failover is fresh after it")
	}
	probe := uuid.New()
	mustClaim(t, s, "ORG", probe, time.Hour)
	if got := replica.MustDo("EXISTS", "dep:bankedge:replay:{ORG}:"+probe.String()); got != "1" {
		t.Fatal("the claim did not go to the promoted replica")
	}
}

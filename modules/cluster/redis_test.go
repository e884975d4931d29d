package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/bankedge/bankedge/internal/testredis"
	"github.com/bankedge/bankedge/modules/cluster"
)

// withTiming sets the engines' timing for the test.
func withTiming(t *testing.T, tm cluster.Timing) {
	t.Helper()
	t.Cleanup(cluster.SetTiming(tm))
}

// withShortTimeouts shortens the engines' operation and reconnection
// timeouts for the test, for outages that must not take seconds each.
func withShortTimeouts(t *testing.T) cluster.Timing {
	t.Helper()
	tm := cluster.DefaultTiming
	tm.Op, tm.Dial, tm.PubSubPing, tm.RetryMax = 300*time.Millisecond, 200*time.Millisecond, 200*time.Millisecond, 100*time.Millisecond
	withTiming(t, tm)
	return tm
}

// waitFor polls cond until it holds or the deadline passes, and returns
// how long it took.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func mustClaim(t *testing.T, s *cluster.State, org string, id uuid.UUID, window time.Duration) bool {
	t.Helper()
	fresh, err := s.Claim(context.Background(), org, id, window)
	if err != nil {
		t.Fatalf("claim %s %s: %v", org, id, err)
	}
	return fresh
}

// Two gateway processes, each with its own Caddy configuration on one
// Redis: a request id accepted by one is a replay on the other, per TPP,
// for the window.
func TestReplayAcrossProcesses(t *testing.T) {
	srv := testredis.Start(t)
	a := loadProbe(t, redisCaddyfile(srv.Addr, "dep", "a"), "a")
	b := startChild(t, redisCaddyfile(srv.Addr, "dep", "b"), "")

	id := uuid.New()
	if !mustClaim(t, a, "PSDFR-ACPR-1", id, time.Minute) {
		t.Fatal("first claim on A is a replay")
	}
	if got := b.do("claim", "PSDFR-ACPR-1", id.String(), "1m"); got != "replay" {
		t.Fatalf("claim on B of the id accepted by A: %s, want replay", got)
	}
	if got := b.do("claim", "PSDDE-BAFIN-2", id.String(), "1m"); got != "fresh" {
		t.Fatalf("claim on B of the same id for another TPP: %s, want fresh", got)
	}
	id2 := uuid.New()
	if got := b.do("claim", "PSDFR-ACPR-1", id2.String(), "1m"); got != "fresh" {
		t.Fatalf("first claim on B: %s", got)
	}
	if mustClaim(t, a, "PSDFR-ACPR-1", id2, time.Minute) {
		t.Fatal("claim on A of the id accepted by B is fresh")
	}

	// The window ends the memory of an id, on every instance.
	id3 := uuid.New()
	if !mustClaim(t, a, "PSDFR-ACPR-1", id3, 300*time.Millisecond) {
		t.Fatal("first claim of id3 is a replay")
	}
	start := time.Now()
	if got := b.do("claim", "PSDFR-ACPR-1", id3.String(), "300ms"); got != "replay" {
		t.Fatalf("claim on B within the window: %s", got)
	}
	waitFor(t, 3*time.Second, "id3 fresh after its window", func() bool {
		return b.do("claim", "PSDFR-ACPR-1", id3.String(), "1m") == "fresh"
	})
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Fatalf("id3 forgotten after %v, before its window of 300ms", el)
	}
}

// Concurrent claims, which travel in shared pipelines, each get their own
// answer: exactly one claim per id is fresh, over two instances.
func TestConcurrentClaims(t *testing.T) {
	srv := testredis.Start(t)
	insts := []*cluster.State{
		cluster.NewRedisInstance(t, srv.Addr, "dep", zap.NewNop()),
		cluster.NewRedisInstance(t, srv.Addr, "dep", zap.NewNop()),
	}
	ids := make([]uuid.UUID, 64)
	for i := range ids {
		ids[i] = uuid.New()
	}
	fresh := make([]atomic.Int32, len(ids))
	var wg sync.WaitGroup
	for round := range 4 {
		for i, id := range ids {
			wg.Go(func() {
				ok, err := insts[(i+round)%2].Claim(context.Background(), "ORG", id, time.Minute)
				if err != nil {
					t.Error(err)
				}
				if ok {
					fresh[i].Add(1)
				}
			})
		}
	}
	wg.Wait()
	if insts[0].PipelinedClaims()+insts[1].PipelinedClaims() == 0 {
		t.Fatal("no claim went in a shared pipeline: the test did not test them")
	}
	for i := range fresh {
		if n := fresh[i].Load(); n != 1 {
			t.Errorf("id %d: %d fresh claims of 4, want 1", i, n)
		}
	}
}

// maxConnections across processes: a slot freed on one is free on the
// other at once; a process killed with SIGKILL leaks its slots for no longer
// than the lease TTL, while a live one keeps them past it by renewal.
func TestLeasesAcrossProcessesAndKill9(t *testing.T) {
	srv := testredis.Start(t)
	const ttl = 1500 * time.Millisecond
	a := loadProbe(t, redisCaddyfile(srv.Addr, "dep", "a"), "a")
	b := startChild(t, redisCaddyfile(srv.Addr, "dep", "b"), "1500ms,300ms")
	ctx := context.Background()

	if got := b.do("acquire", "BANKA", "2"); got != "ok 1" {
		t.Fatalf("B acquire: %s", got)
	}
	releaseA, ok, err := a.Acquire(ctx, "BANKA", 2)
	if err != nil || !ok {
		t.Fatalf("A acquire: ok=%v err=%v", ok, err)
	}
	if _, ok, _ := a.Acquire(ctx, "BANKA", 2); ok {
		t.Fatal("A took a third slot of 2")
	}
	if got := b.do("acquire", "BANKA", "2"); got != "full" {
		t.Fatalf("B acquire beyond the limit: %s", got)
	}
	releaseA()
	start := time.Now()
	if got := b.do("acquire", "BANKA", "2"); got != "ok 2" {
		t.Fatalf("B acquire after A released: %s", got)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("the slot freed on A took %v to be free on B", el)
	}

	// B renews its leases every 300ms: past the TTL they still count.
	time.Sleep(ttl + 500*time.Millisecond)
	if n, err := a.Leases(ctx, "BANKA"); err != nil || n != 2 {
		t.Fatalf("leases of a live B after %v: %d, %v; want 2", ttl+500*time.Millisecond, n, err)
	}
	b.kill9()
	el := waitFor(t, ttl+time.Second, "slots of the killed B free again", func() bool {
		release, ok, err := a.Acquire(ctx, "BANKA", 2)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			release()
		}
		return ok
	})
	t.Logf("slots of the killed instance free again after %v (TTL %v)", el, ttl)
}

// Within one process, an instance that stops renewing (as a crash would)
// loses its lease after the TTL and not before.
func TestLeaseExpiresWithoutRenewal(t *testing.T) {
	srv := testredis.Start(t)
	tm := cluster.DefaultTiming
	tm.LeaseTTL, tm.LeaseRenew = time.Second, 200*time.Millisecond
	withTiming(t, tm)
	ctx := context.Background()
	a := cluster.NewRedisInstance(t, srv.Addr, "dep", zap.NewNop())
	b := cluster.NewRedisInstance(t, srv.Addr, "dep", zap.NewNop())
	if _, ok, err := a.Acquire(ctx, "P", 1); !ok || err != nil {
		t.Fatalf("A acquire: %v %v", ok, err)
	}
	time.Sleep(2 * tm.LeaseTTL)
	if _, ok, _ := b.Acquire(ctx, "P", 1); ok {
		t.Fatal("a renewed lease expired")
	}
	a.Crash()
	crashed := time.Now()
	waitFor(t, tm.LeaseTTL+time.Second, "lease of the crashed instance expired", func() bool {
		_, ok, err := b.Acquire(ctx, "P", 1)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	})
	if el := time.Since(crashed); el > tm.LeaseTTL+500*time.Millisecond {
		t.Fatalf("lease outlived the crash by %v, TTL %v", el, tm.LeaseTTL)
	}
}

// Failed authentications add up over instances in a sliding window.
func TestFailuresAcrossInstances(t *testing.T) {
	srv := testredis.Start(t)
	ctx := context.Background()
	a := cluster.NewRedisInstance(t, srv.Addr, "dep", zap.NewNop())
	b := cluster.NewRedisInstance(t, srv.Addr, "dep", zap.NewNop())
	k := cluster.PartnerAuthFailures("BANKA")
	incr := func(s *cluster.State, k cluster.FailureKey, window time.Duration) int {
		t.Helper()
		n, err := s.IncrFailure(ctx, k, window)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for i, s := range []*cluster.State{a, b, a, b, a} {
		if n := incr(s, k, 5*time.Minute); n != i+1 {
			t.Fatalf("failure %d counted %d", i+1, n)
		}
	}
	if n, err := b.Failures(ctx, k, 5*time.Minute); err != nil || n != 5 {
		t.Fatalf("B sees %d failures (%v), want 5", n, err)
	}
	if n, _ := a.Failures(ctx, cluster.IPAuthFailures("BANKA"), 5*time.Minute); n != 0 {
		t.Fatalf("the address counter shares the partner's: %d", n)
	}
	if err := b.ResetFailures(ctx, k); err != nil {
		t.Fatal(err)
	}
	if n, _ := a.Failures(ctx, k, 5*time.Minute); n != 0 {
		t.Fatalf("%d failures after the reset", n)
	}

	// Sliding: each failure leaves the count one window after it happened.
	w := cluster.IPAuthFailures("192.0.2.1")
	const window = 500 * time.Millisecond
	first := time.Now()
	incr(a, w, window)
	time.Sleep(250 * time.Millisecond)
	if n := incr(b, w, window); n != 2 {
		t.Fatalf("second failure within the window counted %d", n)
	}
	waitFor(t, 2*time.Second, "first failure out of the window", func() bool {
		n, _ := a.Failures(ctx, w, window)
		return n == 1
	})
	if el := time.Since(first); el < 400*time.Millisecond {
		t.Fatalf("first failure left the window after %v", el)
	}
	waitFor(t, 2*time.Second, "second failure out of the window", func() bool {
		n, _ := a.Failures(ctx, w, window)
		return n == 0
	})

	// However many failures, the set stays bounded.
	c := cluster.FailureKey{Scope: "authfail", Subject: "flood"}
	var n int
	for range cluster.MaxTrackedFailures + 10 {
		n = incr(a, c, time.Minute)
	}
	if n != cluster.MaxTrackedFailures {
		t.Fatalf("count after a flood: %d", n)
	}
	if got := srv.MustDo("ZCARD", "dep:bankedge:authfail:{flood}"); got != strconv.Itoa(cluster.MaxTrackedFailures) {
		t.Fatalf("failure set holds %s entries", got)
	}
}

type eventLog chan cluster.Event

func (l eventLog) next(t *testing.T, within time.Duration) cluster.Event {
	t.Helper()
	select {
	case ev := <-l:
		return ev
	case <-time.After(within):
		t.Fatalf("no notification within %v", within)
	}
	return cluster.Event{}
}

func subscribe(t *testing.T, s *cluster.State, topic string) eventLog {
	t.Helper()
	l := make(eventLog, 64)
	if _, err := s.Subscribe(topic, func(ev cluster.Event) { l <- ev }); err != nil {
		t.Fatal(err)
	}
	return l
}

// A change published on one instance reaches the others within 1 s, also
// after Redis was killed and restarted; the gap is reported as a resync.
func TestPubSubAcrossInstances(t *testing.T) {
	srv := testredis.Start(t)
	withShortTimeouts(t)
	ctx := context.Background()
	a := cluster.NewRedisInstance(t, srv.Addr, "dep", zap.NewNop())
	b := cluster.NewRedisInstance(t, srv.Addr, "dep", zap.NewNop())
	partners := subscribe(t, a, "partners")
	waitFor(t, 2*time.Second, "subscription on the events channel", func() bool {
		return srv.MustDo("PUBSUB", "NUMSUB", "dep:bankedge:events") == "dep:bankedge:events\n2"
	})

	sent := time.Now()
	if err := b.Publish(ctx, "partners", "BANKA"); err != nil {
		t.Fatal(err)
	}
	ev := partners.next(t, time.Second)
	if ev.Topic != "partners" || ev.Payload != "BANKA" || ev.Resync {
		t.Fatalf("got %+v", ev)
	}
	t.Logf("notification delivered across instances in %v", time.Since(sent))

	// Other topics are not delivered; the publisher's own subscribers get
	// its notification once, at once, not again through Redis.
	if err := b.Publish(ctx, "revocations", "01AB"); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(ctx, "partners", "self"); err != nil {
		t.Fatal(err)
	}
	if ev := partners.next(t, 0+time.Millisecond); ev.Payload != "self" {
		t.Fatalf("own notification: %+v", ev)
	}
	if err := b.Publish(ctx, "partners", "after"); err != nil {
		t.Fatal(err)
	}
	if ev := partners.next(t, time.Second); ev.Payload != "after" {
		t.Fatalf("after the own notification: %+v, want only B's", ev)
	}

	// Redis dies and comes back from its append-only file.
	srv.Kill()
	srv.Restart()
	if ev := partners.next(t, 5*time.Second); !ev.Resync || ev.Topic != "partners" {
		t.Fatalf("after the restart: %+v, want a resync", ev)
	}
	waitFor(t, 5*time.Second, "B publishing again", func() bool {
		return b.Publish(ctx, "partners", "probe") == nil
	})
	if ev := partners.next(t, time.Second); ev.Payload != "probe" {
		t.Fatalf("after the restart: %+v", ev)
	}
	sent = time.Now()
	if err := b.Publish(ctx, "partners", "BANKB"); err != nil {
		t.Fatal(err)
	}
	if ev := partners.next(t, time.Second); ev.Payload != "BANKB" {
		t.Fatalf("after the restart: %+v", ev)
	}
	t.Logf("after the restart, delivered in %v", time.Since(sent))
}

// A second process sees notifications through its own Caddy configuration.
func TestPubSubAcrossProcesses(t *testing.T) {
	srv := testredis.Start(t)
	a := loadProbe(t, redisCaddyfile(srv.Addr, "dep", "a"), "a")
	b := startChild(t, redisCaddyfile(srv.Addr, "dep", "b"), "")
	if got := b.do("subscribe", "revocations"); got != "ok" {
		t.Fatal(got)
	}
	waitFor(t, 2*time.Second, "both subscribed", func() bool {
		return srv.MustDo("PUBSUB", "NUMSUB", "dep:bankedge:events") == "dep:bankedge:events\n2"
	})
	sent := time.Now()
	if err := a.Publish(context.Background(), "revocations", "7F01"); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-b.events:
		if ev != "revocations 7F01" {
			t.Fatalf("B got %q", ev)
		}
	case <-time.After(time.Second):
		t.Fatal("B got nothing within 1 s")
	}
	t.Logf("delivered to the other process in %v", time.Since(sent))
}

// Two deployments with different key prefixes share one Redis without
// seeing each other.
func TestKeyPrefixIsolation(t *testing.T) {
	srv := testredis.Start(t)
	ctx := context.Background()
	one := cluster.NewRedisInstance(t, srv.Addr, "one", zap.NewNop())
	two := cluster.NewRedisInstance(t, srv.Addr, "two", zap.NewNop())
	twoAgain := cluster.NewRedisInstance(t, srv.Addr, "two", zap.NewNop())

	id := uuid.New()
	if !mustClaim(t, one, "ORG", id, time.Minute) || !mustClaim(t, two, "ORG", id, time.Minute) {
		t.Fatal("a claim in one deployment made a replay in the other")
	}
	if mustClaim(t, twoAgain, "ORG", id, time.Minute) {
		t.Fatal("the same deployment did not see its own claim")
	}
	if _, ok, _ := one.Acquire(ctx, "P", 1); !ok {
		t.Fatal("acquire in one")
	}
	if _, ok, _ := two.Acquire(ctx, "P", 1); !ok {
		t.Fatal("one's lease counted in two")
	}
	if _, err := one.IncrFailure(ctx, cluster.PartnerAuthFailures("P"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if n, _ := two.Failures(ctx, cluster.PartnerAuthFailures("P"), time.Minute); n != 0 {
		t.Fatalf("one's failures counted in two: %d", n)
	}
	events := subscribe(t, two, "partners")
	waitFor(t, 2*time.Second, "subscriptions", func() bool {
		return srv.MustDo("PUBSUB", "NUMSUB", "two:bankedge:events") == "two:bankedge:events\n2"
	})
	if err := one.Publish(ctx, "partners", "from-one"); err != nil {
		t.Fatal(err)
	}
	if err := twoAgain.Publish(ctx, "partners", "from-two"); err != nil {
		t.Fatal(err)
	}
	if ev := events.next(t, time.Second); ev.Payload != "from-two" {
		t.Fatalf("two received %+v, want only its own deployment's", ev)
	}
}

// Redis down: every primitive fails closed with ErrUnavailable within the
// operation bound, whether Redis refuses connections (killed) or hangs
// (stopped); one error line per burst, one info line per recovery; after a
// restart from the append-only file everything works again and nothing that
// was confirmed is lost.
func TestRedisDownFailsClosedAndRecovers(t *testing.T) {
	srv := testredis.Start(t)
	tm := withShortTimeouts(t)
	core, logs := observer.New(zapcore.InfoLevel)
	ctx := context.Background()
	s := cluster.NewRedisInstance(t, srv.Addr, "dep", zap.New(core))

	id := uuid.New()
	if !mustClaim(t, s, "ORG", id, time.Hour) {
		t.Fatal("first claim is a replay")
	}
	release, ok, err := s.Acquire(ctx, "P", 5)
	if err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	for range 2 {
		if _, err := s.IncrFailure(ctx, cluster.PartnerAuthFailures("P"), time.Hour); err != nil {
			t.Fatal(err)
		}
	}

	primitives := map[string]func() error{
		"claim": func() error {
			fresh, err := s.Claim(ctx, "ORG", uuid.New(), time.Hour)
			if fresh {
				return errors.New("fresh while Redis is down")
			}
			return err
		},
		"acquire": func() error {
			_, ok, err := s.Acquire(ctx, "P", 5)
			if ok {
				return errors.New("slot granted while Redis is down")
			}
			return err
		},
		"leases":   func() error { _, err := s.Leases(ctx, "P"); return err },
		"incr":     func() error { _, err := s.IncrFailure(ctx, cluster.IPAuthFailures("192.0.2.9"), time.Hour); return err },
		"failures": func() error { _, err := s.Failures(ctx, cluster.IPAuthFailures("192.0.2.9"), time.Hour); return err },
		"reset":    func() error { return s.ResetFailures(ctx, cluster.IPAuthFailures("192.0.2.9")) },
		"publish":  func() error { return s.Publish(ctx, "partners", "x") },
	}
	// Each primitive, five times, all at once: a burst of concurrent
	// failures, each bounded by the operation timeout.
	checkDown := func(how string) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, 5*len(primitives))
		for name, call := range primitives {
			for range 5 {
				wg.Go(func() {
					start := time.Now()
					err := call()
					el := time.Since(start)
					if !errors.Is(err, cluster.ErrUnavailable) {
						errs <- fmt.Errorf("%s with Redis %s: %v, want ErrUnavailable", name, how, err)
					} else if el > tm.Op+700*time.Millisecond {
						errs <- fmt.Errorf("%s with Redis %s took %v, bound %v", name, how, el, tm.Op)
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	lines := func(level zapcore.Level) int {
		return logs.FilterLevelExact(level).FilterMessageSnippet("shared state on Redis").Len()
	}
	// outage stops Redis one way, checks that everything fails closed
	// with one more error line, brings Redis back and checks that it works
	// again with one more recovery line.
	outage := func(how string, stop, back func(), nth int) {
		t.Helper()
		stop()
		checkDown(how)
		if n := lines(zapcore.ErrorLevel); n != nth {
			t.Fatalf("%d error lines after %d outages, want %d: %v", n, nth, nth, logs.All())
		}
		back()
		el := waitFor(t, 5*time.Second, "working again", func() bool {
			_, err := s.Claim(ctx, "ORG", uuid.New(), time.Hour)
			return err == nil
		})
		t.Logf("Redis %s: working again %v after it came back", how, el)
		if n := lines(zapcore.InfoLevel); n != nth {
			t.Fatalf("%d recovery lines after %d outages, want %d: %v", n, nth, nth, logs.All())
		}
	}

	// Killed (connections refused), restarted from the append-only file.
	outage("killed", srv.Kill, srv.Restart, 1)
	if mustClaim(t, s, "ORG", id, time.Hour) {
		t.Fatal("a confirmed claim was lost in the restart")
	}
	if n, err := s.Failures(ctx, cluster.PartnerAuthFailures("P"), time.Hour); err != nil || n != 2 {
		t.Fatalf("failures after the restart: %d, %v; want 2", n, err)
	}
	if n, err := s.Leases(ctx, "P"); err != nil || n != 1 {
		t.Fatalf("leases after the restart: %d, %v; want 1", n, err)
	}
	release()
	if n, _ := s.Leases(ctx, "P"); n != 0 {
		t.Fatalf("leases after the release: %d", n)
	}

	// Accepting connections and never answering.
	outage("hanging", srv.Pause, srv.Resume, 2)
	for _, e := range logs.All() {
		t.Logf("log: %s %s %v", e.Level, e.Message, fmt.Sprint(e.ContextMap()))
	}
}

package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bankedge/bankedge/modules/cluster"
)

// clock is a clock that moves only when told.
type clock struct{ t time.Time }

func (c *clock) Now() time.Time          { return c.t }
func (c *clock) Advance(d time.Duration) { c.t = c.t.Add(d) }

func newLocal() (*cluster.State, *clock) {
	c := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	return cluster.NewLocalInstance(c.Now), c
}

func TestLocalReplay(t *testing.T) {
	s, clock := newLocal()
	id := uuid.New()
	if !mustClaim(t, s, "ORG-A", id, time.Minute) {
		t.Fatal("first claim is a replay")
	}
	if mustClaim(t, s, "ORG-A", id, time.Minute) {
		t.Fatal("second claim is fresh")
	}
	if !mustClaim(t, s, "ORG-B", id, time.Minute) {
		t.Fatal("the same id of another TPP is a replay")
	}
	clock.Advance(59 * time.Second)
	if mustClaim(t, s, "ORG-A", id, time.Minute) {
		t.Fatal("fresh within the window")
	}
	clock.Advance(time.Second)
	if !mustClaim(t, s, "ORG-A", id, time.Minute) {
		t.Fatal("still a replay after the window")
	}
	if mustClaim(t, s, "ORG-A", id, time.Minute) {
		t.Fatal("a claim renewed after its window is fresh twice")
	}

	// One TPP sending many ids pushes out nothing of another's.
	other := uuid.New()
	mustClaim(t, s, "ORG-B", other, time.Hour)
	for range 5000 {
		mustClaim(t, s, "ORG-A", uuid.New(), time.Second)
		clock.Advance(time.Millisecond)
	}
	if mustClaim(t, s, "ORG-B", other, time.Hour) {
		t.Fatal("ORG-A's traffic evicted ORG-B's id")
	}
}

func TestLocalLeases(t *testing.T) {
	s, _ := newLocal()
	ctx := context.Background()
	r1, ok, err := s.Acquire(ctx, "P", 2)
	if err != nil || !ok {
		t.Fatal("first slot refused")
	}
	if _, ok, _ := s.Acquire(ctx, "P", 2); !ok {
		t.Fatal("second slot refused")
	}
	if _, ok, _ := s.Acquire(ctx, "P", 2); ok {
		t.Fatal("third slot of 2 granted")
	}
	if _, ok, _ := s.Acquire(ctx, "Q", 1); !ok {
		t.Fatal("another partner's slot refused")
	}
	r1()
	r1() // idempotent: frees one slot, not two
	if n, _ := s.Leases(ctx, "P"); n != 1 {
		t.Fatalf("%d leases after one release", n)
	}
	if _, ok, _ := s.Acquire(ctx, "P", 2); !ok {
		t.Fatal("freed slot refused")
	}
	if _, ok, _ := s.Acquire(ctx, "P", 2); ok {
		t.Fatal("a double release freed two slots")
	}
}

func TestLocalFailures(t *testing.T) {
	s, clock := newLocal()
	ctx := context.Background()
	k := cluster.PartnerAuthFailures("P")
	const window = 5 * time.Minute
	for i := 1; i <= 5; i++ {
		n, err := s.IncrFailure(ctx, k, window)
		if err != nil || n != i {
			t.Fatalf("failure %d counted %d (%v)", i, n, err)
		}
		clock.Advance(time.Minute)
	}
	// The first failure, 5 minutes old now, has left the window.
	if n, _ := s.Failures(ctx, k, window); n != 4 {
		t.Fatalf("sliding window: %d failures, want 4", n)
	}
	if n, _ := s.Failures(ctx, cluster.IPAuthFailures("P"), window); n != 0 {
		t.Fatalf("the address counter shares the partner's: %d", n)
	}
	if err := s.ResetFailures(ctx, k); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Failures(ctx, k, window); n != 0 {
		t.Fatalf("%d failures after a reset", n)
	}
	var n int
	for range cluster.MaxTrackedFailures + 10 {
		n, _ = s.IncrFailure(ctx, k, window)
	}
	if n != cluster.MaxTrackedFailures {
		t.Fatalf("count after a flood: %d", n)
	}
}

func TestLocalNotifications(t *testing.T) {
	s, _ := newLocal()
	ctx := context.Background()
	var got []cluster.Event
	unsubscribe, err := s.Subscribe("partners", func(ev cluster.Event) { got = append(got, ev) })
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(ctx, "revocations", "01"); err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(ctx, "partners", "BANKA"); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != (cluster.Event{Topic: "partners", Payload: "BANKA"}) {
		t.Fatalf("got %+v", got)
	}
	unsubscribe()
	if err := s.Publish(ctx, "partners", "BANKB"); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("delivered after unsubscribe: %+v", got)
	}
}

// Programming errors are errors, not answers.
func TestArgumentErrors(t *testing.T) {
	s, _ := newLocal()
	ctx := context.Background()
	if _, err := s.Claim(ctx, "ORG", uuid.New(), 0); err == nil {
		t.Error("claim with no window")
	}
	if _, _, err := s.Acquire(ctx, "P", 0); err == nil {
		t.Error("acquire with a limit of 0")
	}
	if _, err := s.IncrFailure(ctx, cluster.FailureKey{Scope: "Auth:Fail", Subject: "P"}, time.Minute); err == nil {
		t.Error("failure scope with a colon")
	}
	if _, err := s.IncrFailure(ctx, cluster.PartnerAuthFailures("P"), 0); err == nil {
		t.Error("failure with no window")
	}
	if err := s.Publish(ctx, "a\nb", "x"); err == nil {
		t.Error("topic with a newline")
	}
	if _, err := s.Subscribe("", func(cluster.Event) {}); err == nil {
		t.Error("empty topic")
	}
}

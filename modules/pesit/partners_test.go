package pesit

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestFailureLog: failures count per key in a sliding window, and the
// number of keys, which are attacker input, stays bounded.
func TestFailureLog(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	l := newFailureLog(64)
	l.now = func() time.Time { return now }
	keys := throttleKeys("P", "192.0.2.1")
	for i := range 3 {
		if th, _ := l.Throttled(ctx, keys, 3, time.Minute); th {
			t.Fatalf("throttled after %d failures", i)
		}
		_ = l.Fail(ctx, keys, time.Minute)
		now = now.Add(10 * time.Second)
	}
	if th, _ := l.Throttled(ctx, keys, 3, time.Minute); !th {
		t.Fatal("not throttled after 3 failures in a minute")
	}
	// Another partner from the same address is throttled by the address.
	if th, _ := l.Throttled(ctx, throttleKeys("Q", "192.0.2.1"), 3, time.Minute); !th {
		t.Fatal("the address is not throttled")
	}
	// The window slides: 40 s later the first failure has left it.
	now = now.Add(40 * time.Second)
	if th, _ := l.Throttled(ctx, keys, 3, time.Minute); th {
		t.Fatal("still throttled once a failure left the window")
	}
	// A flood of distinct keys never grows the log beyond its bound.
	for i := range 1000 {
		_ = l.Fail(ctx, throttleKeys(fmt.Sprint("X", i), fmt.Sprintf("2001:db8:%x::1", i)), time.Minute)
	}
	if n := l.len(); n > 64 {
		t.Fatalf("%d keys remembered, bound 64", n)
	}
	// An IPv6 host counts by its /64.
	a, b := throttleKeys("P", "2001:db8:1:2::1"), throttleKeys("P", "2001:db8:1:2:ffff::9")
	if a[1] != b[1] {
		t.Fatalf("%s and %s are one /64", a[1], b[1])
	}
}

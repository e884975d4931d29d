package psd2

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/google/uuid"
	"go.uber.org/zap"
)

// fakeClock is the store's clock in these tests.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func claim(t *testing.T, s *memoryReplayStore, org string, id uuid.UUID, window time.Duration) (bool, error) {
	t.Helper()
	return s.Claim(context.Background(), org, id, window)
}

func mustClaim(t *testing.T, s *memoryReplayStore, org string, id uuid.UUID, window time.Duration, want bool) {
	t.Helper()
	fresh, err := claim(t, s, org, id, window)
	if err != nil || fresh != want {
		t.Fatalf("Claim(%s, %s) = %v, %v; want %v", org, id, fresh, err, want)
	}
}

func TestReplayStoreWindow(t *testing.T) {
	clock := &fakeClock{time.Unix(1_800_000_000, 0)}
	s := newMemoryReplayStore(10, zap.NewNop())
	s.now = clock.now
	id := uuid.New()
	mustClaim(t, s, "PSDGR-BOG-1", id, time.Minute, true)
	mustClaim(t, s, "PSDGR-BOG-1", id, time.Minute, false)
	// Another organisation may use the same id.
	mustClaim(t, s, "PSDGR-BOG-2", id, time.Minute, true)
	clock.advance(time.Minute - time.Nanosecond)
	mustClaim(t, s, "PSDGR-BOG-1", id, time.Minute, false)
	clock.advance(time.Nanosecond)
	mustClaim(t, s, "PSDGR-BOG-1", id, time.Minute, true)
}

// One TPP filling its quota is refused; it never pushes out another TPP's
// ids, nor its own live ones.
func TestReplayStoreQuotaPerOrganisation(t *testing.T) {
	clock := &fakeClock{time.Unix(1_800_000_000, 0)}
	s := newMemoryReplayStore(3, zap.NewNop())
	s.now = clock.now
	victim := uuid.New()
	mustClaim(t, s, "PSDGR-BOG-B", victim, time.Minute, true)
	var first uuid.UUID
	for i := range 3 {
		id := uuid.New()
		if i == 0 {
			first = id
		}
		mustClaim(t, s, "PSDGR-BOG-A", id, time.Minute, true)
		clock.advance(time.Second)
	}
	fresh, err := claim(t, s, "PSDGR-BOG-A", uuid.New(), time.Minute)
	var quota *ReplayQuotaError
	if fresh || !errors.As(err, &quota) || quota.Quota != 3 || quota.RetryAfter != 57*time.Second {
		t.Fatalf("4th id of A: %v, %v; want a quota error with 57s to wait", fresh, err)
	}
	mustClaim(t, s, "PSDGR-BOG-A", first, time.Minute, false)
	mustClaim(t, s, "PSDGR-BOG-B", victim, time.Minute, false)
	mustClaim(t, s, "PSDGR-BOG-B", uuid.New(), time.Minute, true)
	// A's oldest id expires: room for one more.
	clock.advance(57 * time.Second)
	mustClaim(t, s, "PSDGR-BOG-A", uuid.New(), time.Minute, true)
}

func openTestStore(t *testing.T, path string, clock *fakeClock) *memoryReplayStore {
	t.Helper()
	j, entries, err := openReplayJournal(path, clock.now(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	s := newMemoryReplayStore(100, zap.NewNop())
	s.now, s.journal = clock.now, j
	for _, e := range entries {
		s.org(e.org).add(replayEntry{id: e.id, expires: e.expires})
	}
	return s
}

func TestReplayJournalRestores(t *testing.T) {
	clock := &fakeClock{time.Unix(1_800_000_000, 0)}
	path := filepath.Join(t.TempDir(), "psd2", "replay.journal")
	s := openTestStore(t, path, clock)
	a, b, short := uuid.New(), uuid.New(), uuid.New()
	mustClaim(t, s, "PSDGR-BOG-A", a, 10*time.Minute, true)
	mustClaim(t, s, "PSDGR-BOG-B", b, 10*time.Minute, true)
	mustClaim(t, s, "PSDGR-BOG-A", short, time.Second, true)
	// No Destruct: as after a crash, only what was written counts. The
	// lock goes with the process; here, with the file.
	s.journal.lock.Close()

	clock.advance(2 * time.Second)
	s2 := openTestStore(t, path, clock)
	defer s2.Destruct()
	mustClaim(t, s2, "PSDGR-BOG-A", a, 10*time.Minute, false)
	mustClaim(t, s2, "PSDGR-BOG-B", b, 10*time.Minute, false)
	mustClaim(t, s2, "PSDGR-BOG-A", short, time.Second, true)
	mustClaim(t, s2, "PSDGR-BOG-B", a, 10*time.Minute, true)
}

func TestReplayJournalTornTail(t *testing.T) {
	clock := &fakeClock{time.Unix(1_800_000_000, 0)}
	path := filepath.Join(t.TempDir(), "replay.journal")
	s := openTestStore(t, path, clock)
	kept := uuid.New()
	mustClaim(t, s, "PSDGR-BOG-A", kept, time.Hour, true)
	if err := s.Destruct(); err != nil {
		t.Fatal(err)
	}
	// A crash in the middle of a write leaves half a record.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	rec := appendRecord(nil, "PSDGR-BOG-A", replayEntry{id: uuid.New(), expires: clock.now().Add(time.Hour).UnixNano()})
	_, _ = f.Write(rec[:len(rec)-3])
	f.Close()
	s2 := openTestStore(t, path, clock)
	mustClaim(t, s2, "PSDGR-BOG-A", kept, time.Hour, false)
	// The journal was rewritten whole: what follows is readable again.
	later := uuid.New()
	mustClaim(t, s2, "PSDGR-BOG-A", later, time.Hour, true)
	s2.Destruct()
	s3 := openTestStore(t, path, clock)
	defer s3.Destruct()
	mustClaim(t, s3, "PSDGR-BOG-A", later, time.Hour, false)
}

func TestReplayJournalOneProcess(t *testing.T) {
	clock := &fakeClock{time.Now()}
	path := filepath.Join(t.TempDir(), "replay.journal")
	s := openTestStore(t, path, clock)
	defer s.Destruct()
	if _, _, err := openReplayJournal(path, clock.now(), zap.NewNop()); err == nil {
		t.Fatal("a second store opened a journal in use")
	}
}

func TestReplayJournalCompaction(t *testing.T) {
	clock := &fakeClock{time.Unix(1_800_000_000, 0)}
	path := filepath.Join(t.TempDir(), "replay.journal")
	s := openTestStore(t, path, clock)
	defer s.Destruct()
	s.quota = 100_000
	for range 30_000 {
		mustClaim(t, s, "PSDGR-BOG-A", uuid.New(), time.Second, true)
	}
	live := uuid.New()
	mustClaim(t, s, "PSDGR-BOG-B", live, time.Hour, true)
	before, _ := os.Stat(path)
	clock.advance(2 * time.Second)
	s.sweep()
	after, _ := os.Stat(path)
	if before.Size() < 1<<20 || after.Size() > 100 {
		t.Fatalf("journal %d bytes before the sweep, %d after; want it compacted", before.Size(), after.Size())
	}
	if len(s.orgs) != 1 {
		t.Errorf("%d organisations left, want only B's", len(s.orgs))
	}
	mustClaim(t, s, "PSDGR-BOG-B", live, time.Hour, false)
	// Appends after the compaction land in the new file.
	next := uuid.New()
	mustClaim(t, s, "PSDGR-BOG-B", next, time.Hour, true)
	entries, rest := parseJournal(mustRead(t, path), clock.now().UnixNano())
	if rest != 0 || len(entries) != 2 {
		t.Fatalf("journal holds %d entries (%d stray bytes), want 2", len(entries), rest)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A claim that cannot be written is refused, not let through.
func TestReplayJournalWriteFailure(t *testing.T) {
	clock := &fakeClock{time.Now()}
	s := openTestStore(t, filepath.Join(t.TempDir(), "replay.journal"), clock)
	defer s.Destruct()
	s.journal.f.Close()
	id := uuid.New()
	if fresh, err := claim(t, s, "PSDGR-BOG-A", id, time.Minute); fresh || err == nil {
		t.Fatalf("Claim with a broken journal = %v, %v; want an error", fresh, err)
	}
	if _, ok := s.orgs["PSDGR-BOG-A"].ids[id]; ok {
		t.Error("an id that was not journalled is remembered")
	}
}

// BenchmarkReplayClaim is the per-request cost of the local store with its
// journal.
func BenchmarkReplayClaim(b *testing.B) {
	j, _, err := openReplayJournal(filepath.Join(b.TempDir(), "replay.journal"), time.Now(), zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	s := newMemoryReplayStore(defaultReplayQuota, zap.NewNop())
	s.journal = j
	defer s.Destruct()
	ids := make([]uuid.UUID, 1<<16)
	for i := range ids {
		ids[i] = uuid.New()
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Claim(ctx, "PSDGR-BOG-123456", ids[i&(1<<16-1)], time.Millisecond); err != nil {
			b.Fatal(err)
		}
	}
}

// A Date is refused once it is older than the replay window less the
// clock skew: a request first accepted with a Date up to the skew ahead
// cannot come back after its id has left the window.
func TestDateAgeBoundByReplayWindow(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		window, skew, offset time.Duration // offset: Date - now
		ok                   bool
	}{
		{10 * time.Minute, 5 * time.Minute, -5 * time.Minute, true},
		{10 * time.Minute, 5 * time.Minute, -5*time.Minute - time.Second, false},
		{10 * time.Minute, 5 * time.Minute, 5 * time.Minute, true},
		{10 * time.Minute, 5 * time.Minute, 5*time.Minute + time.Second, false},
		// A window shorter than twice the skew bounds the age instead.
		{4 * time.Second, 3 * time.Second, -time.Second, true},
		{4 * time.Second, 3 * time.Second, -2 * time.Second, false},
		{4 * time.Second, 3 * time.Second, 3 * time.Second, true},
	} {
		h := &QSEAL{ReplayWindow: caddy.Duration(c.window), MaxClockSkew: caddy.Duration(c.skew), now: func() time.Time { return now }}
		r := httptest.NewRequest(http.MethodPost, "/v1/payments/x", nil)
		r.Header.Set("Date", now.Add(c.offset).Format(http.TimeFormat))
		rej := h.checkDate(r)
		if (rej == nil) != c.ok || rej != nil && rej.Code != TimestampInvalid {
			t.Errorf("window %s, skew %s, Date %+v: %v", c.window, c.skew, c.offset, rej)
		}
	}
}

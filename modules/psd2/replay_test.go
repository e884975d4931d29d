package psd2

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

// A full cache drops live entries; that must be reported, not silent.
func TestReplayCacheWarnsWhenFull(t *testing.T) {
	c := newMemoryReplayCache(2)
	var warned []uint64
	c.setWarn(func(evicted uint64, capacity int) {
		if capacity != 2 {
			t.Errorf("capacity = %d", capacity)
		}
		warned = append(warned, evicted)
	})
	now := time.Now()
	for i := range 6 {
		if !c.Remember("PSDGR-BOG-1", uuid.New(), now.Add(time.Duration(i)), time.Hour) {
			t.Fatal("a new id was taken for a replay")
		}
	}
	// Four live entries were dropped: warnings at the 1st, 2nd and 4th.
	if len(warned) != 3 || warned[0] != 1 || warned[1] != 2 || warned[2] != 4 {
		t.Fatalf("warnings at %v, want [1 2 4]", warned)
	}
	// Expired entries make room without a warning.
	c.Remember("PSDGR-BOG-1", uuid.New(), now.Add(2*time.Hour), time.Hour)
	if len(warned) != 3 {
		t.Fatalf("warned on expiry: %v", warned)
	}
}

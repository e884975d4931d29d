package peer

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap"
)

const benchSize = 64 << 20

// BenchmarkPush sends 64 MiB per op over loopback TCP to a Server that
// stores it on disk (default options: 4 KiB articles packed 15 per DTF,
// sync point every MiB, window 4).
func BenchmarkPush(b *testing.B) {
	benchPush(b, benchSize)
}

// BenchmarkPull fetches a 64 MiB file per op over loopback TCP.
func BenchmarkPull(b *testing.B) {
	benchPull(b, benchSize)
}

// The 1 MiB variants show that allocations per op do not grow with the
// file size.
func BenchmarkPush1MiB(b *testing.B) { benchPush(b, 1<<20) }
func BenchmarkPull1MiB(b *testing.B) { benchPull(b, 1<<20) }

func benchPush(b *testing.B, size int) {
	ts := startServer(b, &Server{Logger: zap.NewNop()})
	c := ts.connect(b, ConnectOptions{})
	data := randomData(size, 1)
	src := bytes.NewReader(data)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(data)
		if _, err := c.Send(context.Background(), "bench", src, int64(size), TransferOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func benchPull(b *testing.B, size int) {
	ts := startServer(b, &Server{Logger: zap.NewNop()})
	if err := os.WriteFile(filepath.Join(ts.Root, "bench"), randomData(size, 2), 0o644); err != nil {
		b.Fatal(err)
	}
	c := ts.connect(b, ConnectOptions{})
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Fetch(context.Background(), "bench", io.Discard, TransferOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAllocsDoNotGrow pins the steady state: a 16 MiB push or pull (15
// sync points, ~270 DTFs) allocates no more than a 1 MiB one, plus slack
// for runtime noise.
func TestAllocsDoNotGrow(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under -race")
	}
	ts := startServer(t, &Server{Logger: zap.NewNop()})
	c := ts.connect(t, ConnectOptions{})
	for _, n := range []int{1 << 20, 16 << 20} {
		if err := os.WriteFile(filepath.Join(ts.Root, "src"), randomData(n, 3), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	allocs := func(size int, pushDir bool) float64 {
		data := randomData(size, 4)
		src := bytes.NewReader(data)
		if !pushDir {
			if err := os.WriteFile(filepath.Join(ts.Root, "src"), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return testing.AllocsPerRun(5, func() {
			var err error
			if pushDir {
				src.Reset(data)
				_, err = c.Send(context.Background(), "dst", src, int64(size), TransferOptions{})
			} else {
				_, err = c.Fetch(context.Background(), "src", io.Discard, TransferOptions{})
			}
			if err != nil {
				t.Fatal(err)
			}
		})
	}
	for _, dir := range []bool{true, false} {
		small, large := allocs(1<<20, dir), allocs(16<<20, dir)
		t.Logf("push=%v: %.0f allocs for 1 MiB, %.0f for 16 MiB", dir, small, large)
		if large > small+30 {
			t.Errorf("push=%v: %.0f allocs for 16 MiB against %.0f for 1 MiB: allocations grow with the size", dir, large, small)
		}
	}
}

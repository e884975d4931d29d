package registry

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/bankedge/bankedge/internal/testredis"
)

// BenchmarkScale measures the registry row of issue 12 with many partners
// (BANKEDGE_CA_BENCH_PARTNERS, default 1,000; bench/ca.sh uses 10,000) on
// file_system storage and on a real Redis (append-only, fsync always)
// where redis-server is installed: an authentication whose password
// verification is cached, for a partner drawn at random each time, next
// to the same with a single partner (the figure of before), and the
// listing of every partner.
//
// How the registry is filled: the partner records are written straight
// to storage, eight at a time, all with the hash of one password made
// once with the production argon2id parameters (hashing 10,000 passwords
// takes minutes), and the authentication cache is filled with one
// successful verification per partner as Authenticate leaves it; each
// measured authentication checks that no hash was computed.
func BenchmarkScale(b *testing.B) {
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("BANKEDGE_CA_BENCH_PARTNERS")); err == nil && v > 0 {
		n = v
	}
	kinds := []struct {
		name string
		make func(b *testing.B) certmagic.Storage
	}{
		{"file", func(b *testing.B) certmagic.Storage { return &certmagic.FileStorage{Path: b.TempDir()} }},
		{"redis", func(b *testing.B) certmagic.Storage { return testredis.Start(b).Storage(b, "bench") }},
	}
	for _, k := range kinds {
		if only := os.Getenv("BANKEDGE_CA_BENCH_STORAGE"); only != "" && only != k.name {
			continue
		}
		b.Run(k.name, func(b *testing.B) {
			ctx := context.Background()
			st := k.make(b)
			hash, err := hashPassword(strong, defaultArgon)
			if err != nil {
				b.Fatal(err)
			}
			ids := fillPartners(b, st, n, hash)
			oneSt := k.make(b)
			one := fillPartners(b, oneSt, 1, hash)
			for _, c := range []struct {
				name string
				ids  []string
				st   certmagic.Storage
			}{{fmt.Sprintf("authenticate-hit-%d-partners", n), ids, st}, {"authenticate-hit-1-partner", one, oneSt}} {
				b.Run(c.name, func(b *testing.B) {
					r := &Registry{Storage: c.st}
					r.init()
					for _, id := range c.ids {
						r.cache.add(id, hash, strong)
					}
					before := r.hashes.Load()
					b.ReportAllocs()
					for b.Loop() {
						id := c.ids[rand.IntN(len(c.ids))]
						if _, err := r.Authenticate(ctx, AuthRequest{PartnerID: id, Passwords: []string{strong}, RemoteIP: addr("203.0.113.50")}); err != nil {
							b.Fatal(err)
						}
					}
					if r.hashes.Load() != before {
						b.Fatalf("%d password hashes: not all hits", r.hashes.Load()-before)
					}
				})
			}
			b.Run(fmt.Sprintf("list-%d-partners", n), func(b *testing.B) {
				r := &Registry{Storage: st}
				var ds []time.Duration
				for b.Loop() {
					t0 := time.Now()
					list, err := r.List(ctx)
					if err != nil || len(list) != n {
						b.Fatalf("List: %d partners, %v", len(list), err)
					}
					ds = append(ds, time.Since(t0))
				}
				slices.Sort(ds)
				b.ReportMetric(float64(ds[len(ds)/2])/1e6, "median-ms")
			})
		})
	}
}

// fillPartners writes n partner records with the given hash, eight at a
// time, and returns their ids.
func fillPartners(b *testing.B, st certmagic.Storage, n int, hash string) []string {
	ctx := context.Background()
	r := &Registry{Storage: st}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("PARTNER_%05d", i)
	}
	start := time.Now()
	now := time.Now().UTC()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || failed.Load() != nil {
					return
				}
				rec := &storedPartner{PartnerID: ids[i], Enabled: true, AccessType: AccessBoth, AllowedIPs: []string{"203.0.113.0/24"},
					PasswordHash: hash, PasswordChangedAt: now, CreatedAt: now, UpdatedAt: now}
				if err := r.store(ctx, rec); err != nil {
					failed.Store(&err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	b.Logf("%s: wrote %d partner records in %v", b.Name(), n, time.Since(start).Round(time.Millisecond))
	return ids
}

package authority

import (
	"context"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"math/rand/v2"
	"os"
	"path"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/bankedge/bankedge/internal/testredis"
)

// BenchmarkScale measures the inventory and revocation rows of issue 12
// on a CA filled with many certificates, on file_system storage and on a
// real Redis (append-only, fsync always) where redis-server is installed.
// bench/ca.sh runs it at full size:
//
//	BANKEDGE_CA_BENCH_CERTS=100000 BANKEDGE_CA_BENCH_REVOKED=10000 BANKEDGE_CA_BENCH_PARTNERS=10000 \
//	go test -run '^$' -bench Scale -benchtime 40x -timeout 2h ./modules/ca/authority
//
// Without those variables it fills 2,000 certificates, so that -bench .
// stays quick. Each sub-benchmark reports the median and 90th percentile
// of its operations (median-ms, p90-ms) besides the mean (ns/op).
//
// How the CA is filled (printed as it goes): every certificate is signed
// by the CA (the policy and signing of Issue, one holder key for all),
// over two simulated years, so that about half have expired, for
// BANKEDGE_CA_BENCH_PARTNERS partners in turn; the records are written
// straight to storage, eight at a time, and the index is built from them
// by Reindex, the start-up path of a CA without an index. The revocations
// are written to the revocation log in one append and the CRL signed
// once. Issuing one by one would give the same storage, index entries
// included, in hours instead of minutes.
func BenchmarkScale(b *testing.B) {
	sz := scaleFromEnv()
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
			fx := fillCA(b, k.make(b), sz)
			benchInventory(b, fx)
			benchRevoke(b, fx)
		})
	}
}

type scaleSize struct{ certs, revoked, partners int }

func scaleFromEnv() scaleSize {
	env := func(name string, def int) int {
		if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
			return v
		}
		return def
	}
	sz := scaleSize{env("BANKEDGE_CA_BENCH_CERTS", 2000), env("BANKEDGE_CA_BENCH_REVOKED", 200), env("BANKEDGE_CA_BENCH_PARTNERS", 200)}
	sz.revoked = min(sz.revoked, sz.certs/2)
	return sz
}

type scaleFixture struct {
	a        *Authority
	sz       scaleSize
	partners []string
	// fresh are serials not revoked, for the revocation benchmarks.
	fresh []*big.Int
	// legacyKey holds a revocations.json of the same revocations, for the
	// emulation of the previous revocation.
	legacyKey string
}

// benchClock runs from two years ago, one step per call, while the CA is
// filled, and is the real clock afterwards.
type benchClock struct {
	filling atomic.Bool
	calls   atomic.Int64
	start   time.Time
	step    time.Duration
}

func (c *benchClock) Now() time.Time {
	if c.filling.Load() {
		return c.start.Add(time.Duration(c.calls.Add(1)) * c.step)
	}
	return time.Now()
}

func fillCA(b *testing.B, st certmagic.Storage, sz scaleSize) *scaleFixture {
	ctx := context.Background()
	span := 2 * 365 * 24 * time.Hour
	clk := &benchClock{start: time.Now().Add(-span), step: span / time.Duration(sz.certs+1)}
	clk.filling.Store(true)
	a, _, err := Open(ctx, Config{Storage: st, Passphrase: []byte(testPassphrase), Now: clk.Now, MaxValidity: 400 * 24 * time.Hour}, true)
	if err != nil {
		b.Fatal(err)
	}
	fx := &scaleFixture{a: a, sz: sz}
	for i := range sz.partners {
		fx.partners = append(fx.partners, fmt.Sprintf("PARTNER_%05d", i))
	}
	pub := mustECDSA(b, elliptic.P256()).Public()
	start := time.Now()
	recs := make([]Record, sz.certs)
	serials := make([]*big.Int, sz.certs)
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	for range max(8, runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= sz.certs || failed.Load() != nil {
					return
				}
				cert, rec, err := a.sign(ctx, Request{PublicKey: pub, Template: &x509.Certificate{Subject: pkix.Name{CommonName: fmt.Sprintf("holder-%06d.example.com", i)}},
					Purpose: PurposeClient, Validity: 365 * 24 * time.Hour, PartnerID: fx.partners[i%sz.partners], IssuedBy: "bench"})
				if err == nil {
					err = a.storeRecord(ctx, cert.SerialNumber, rec)
				}
				if err != nil {
					failed.Store(&err)
					return
				}
				recs[i], serials[i] = rec, cert.SerialNumber
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	b.Logf("%s: signed and stored %d certificates (%d partners) in %v", b.Name(), sz.certs, sz.partners, time.Since(start).Round(time.Millisecond))

	// Revoke every k-th certificate, in one append to the log.
	k := sz.certs / sz.revoked
	var revs []Revocation
	for i := 0; i < sz.certs && len(revs) < sz.revoked; i += k {
		r := recs[i]
		revs = append(revs, Revocation{Serial: r.Serial, RevokedAt: r.IssuedAt.Add(time.Hour).UTC().Truncate(time.Second), Reason: 1 + i%5,
			IssuedAt: r.IssuedAt, PartnerID: r.PartnerID})
	}
	start = time.Now()
	if _, err := appendEntries(ctx, a, a.cfg.key(revocationsDir), logHead[Revocation]{n: -1}, a.revSegSize, true, revs...); err != nil {
		b.Fatal(err)
	}
	legacy, _ := json.Marshal(revs)
	fx.legacyKey = "bench-legacy/revocations.json"
	if err := st.Store(ctx, fx.legacyKey, legacy); err != nil {
		b.Fatal(err)
	}
	clk.filling.Store(false)
	start = time.Now()
	if _, err := a.RegenerateCRL(ctx); err != nil {
		b.Fatal(err)
	}
	b.Logf("%s: revocation log of %d written in one append, CRL signed in %v", b.Name(), len(revs), time.Since(start).Round(time.Millisecond))
	start = time.Now()
	n, err := a.Reindex(ctx)
	if err != nil || n != sz.certs {
		b.Fatalf("Reindex: %d, %v", n, err)
	}
	b.Logf("%s: index built from the %d records by Reindex (the start-up path of a CA without index) in %v", b.Name(), n, time.Since(start).Round(time.Millisecond))
	revoked := map[string]bool{}
	for _, r := range revs {
		revoked[r.Serial] = true
	}
	for i, r := range recs {
		if !revoked[r.Serial] {
			fx.fresh = append(fx.fresh, serials[i])
		}
	}
	rand.Shuffle(len(fx.fresh), func(i, j int) { fx.fresh[i], fx.fresh[j] = fx.fresh[j], fx.fresh[i] })
	return fx
}

// timed runs op b.N times and reports the median and 90th percentile.
func timed(b *testing.B, before func(), op func() error) {
	var ds []time.Duration
	for b.Loop() {
		if before != nil {
			b.StopTimer()
			before()
			b.StartTimer()
		}
		t0 := time.Now()
		if err := op(); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
	}
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	b.ReportMetric(ms(ds[len(ds)/2]), "median-ms")
	b.ReportMetric(ms(ds[len(ds)*9/10]), "p90-ms")
}

// cold replaces the authority by a new instance on the same storage, as
// a gateway that has just started has it: opened, and the CRL read (the
// bankedge app does it at start, which reads the revocation log), nothing
// of the index cached.
func (fx *scaleFixture) cold() {
	// Open's work but the key's decryption (100 ms of PBKDF2, which would
	// make the cold rows take minutes): the same storage reads.
	ctx := context.Background()
	old := fx.a
	a := &Authority{cfg: old.cfg, cert: old.cert, certPEM: old.certPEM, key: old.key, segs: newSegCache(defaultSegCacheEntries),
		indexSegSize: old.indexSegSize, revSegSize: old.revSegSize}
	a.repair(ctx)
	if _, err := a.CRL(ctx); err != nil {
		panic(err)
	}
	fx.a = a
}

// page queries and encodes the page as the API answers it.
func (fx *scaleFixture) page(q Query, want int) func() error {
	return func() error {
		p, err := fx.a.Query(context.Background(), q)
		if err != nil {
			return err
		}
		if _, err := json.Marshal(p.Records); err != nil {
			return err
		}
		if want >= 0 && len(p.Records) != want {
			return fmt.Errorf("%+v: %d records, want %d", q, len(p.Records), want)
		}
		return nil
	}
}

func benchInventory(b *testing.B, fx *scaleFixture) {
	partnerQuery := func() func() error {
		return func() error {
			p := fx.partners[rand.IntN(len(fx.partners))]
			return fx.page(Query{PartnerID: p, Limit: 50}, min(50, fx.sz.certs/fx.sz.partners))()
		}
	}
	for _, c := range []struct {
		name   string
		before func()
		op     func() error
	}{
		{"inventory-first-page-50", nil, fx.page(Query{Limit: 50}, 50)},
		{"inventory-first-page-50-cold", fx.cold, fx.page(Query{Limit: 50}, 50)},
		{"inventory-partner-50", nil, partnerQuery()},
		{"inventory-partner-50-cold", fx.cold, partnerQuery()},
		{"inventory-first-page-1000", nil, fx.page(Query{Limit: 1000}, 1000)},
		{"inventory-valid-50", nil, fx.page(Query{Status: StatusValid, Limit: 50}, 50)},
		{"inventory-expired-50", nil, fx.page(Query{Status: StatusExpired, Limit: 50}, 50)},
		{"inventory-expired-50-cold", fx.cold, fx.page(Query{Status: StatusExpired, Limit: 50}, 50)},
		{"inventory-revoked-50", nil, fx.page(Query{Status: StatusRevoked, Limit: 50}, 50)},
		// The whole inventory at once (Issued), as the CA gauges read it.
		{"inventory-all", nil, fx.page(Query{}, fx.sz.certs)},
	} {
		b.Run(c.name, func(b *testing.B) { timed(b, c.before, c.op) })
	}
	b.Run("inventory-middle-page-1000", func(b *testing.B) {
		// The cursor of the page that starts half-way down.
		ctx := context.Background()
		q := Query{Limit: 1000}
		for range fx.sz.certs / 2000 {
			p, err := fx.a.Query(ctx, q)
			if err != nil {
				b.Fatal(err)
			}
			q.Cursor = p.Next
		}
		timed(b, nil, fx.page(q, 1000))
	})
	// What every GET did before the index: list the records, load and
	// decode each one, sort; here for a partner's first page.
	b.Run("inventory-partner-50-before-index", func(b *testing.B) {
		timed(b, nil, func() error {
			recs, err := legacyIssued(context.Background(), fx.a)
			if err != nil {
				return err
			}
			p, n := fx.partners[rand.IntN(len(fx.partners))], 0
			for _, r := range recs {
				if r.PartnerID == p {
					n++
				}
			}
			if n == 0 {
				return errors.New("no record of the partner")
			}
			return nil
		})
	})
}

func benchRevoke(b *testing.B, fx *scaleFixture) {
	ctx := context.Background()
	next := func() *big.Int {
		s := fx.fresh[0]
		fx.fresh = fx.fresh[1:]
		return s
	}
	revoke := func() error {
		rec, err := fx.a.Revoke(ctx, next(), 1)
		if err == nil && rec.Status != StatusRevoked {
			err = fmt.Errorf("revoked record has status %s", rec.Status)
		}
		return err
	}
	b.Run("revoke-with-crl", func(b *testing.B) { timed(b, nil, revoke) })
	b.Run("revoke-with-crl-cold", func(b *testing.B) { timed(b, fx.cold, revoke) })
	// What a revocation did before the log: under the lock, load the
	// record and the whole list, append, store the list, sign a CRL of all
	// of it with crypto/x509 and store it.
	b.Run("revoke-with-crl-before-log", func(b *testing.B) {
		timed(b, nil, func() error { return legacyRevoke(ctx, fx, next(), 1) })
	})
}

// legacyIssued is the inventory read as Issued read it before the index.
func legacyIssued(ctx context.Context, a *Authority) ([]Record, error) {
	keys, err := a.cfg.Storage.List(ctx, a.cfg.key("issued"), false)
	if err != nil {
		return nil, err
	}
	state, err := a.loadRevocations(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Record, 0, len(keys))
	for _, k := range keys {
		if !strings.HasSuffix(k, ".json") {
			continue
		}
		raw, err := a.cfg.Storage.Load(ctx, k)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var rec Record
		if err := json.Unmarshal(raw, &rec); err != nil {
			return nil, fmt.Errorf("reading %s: %w", path.Base(k), err)
		}
		out = append(out, a.withStatus(rec, state))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IssuedAt.After(out[j].IssuedAt) })
	return out, nil
}

// legacyRevoke is a revocation as Revoke made it before the log, on a
// copy of the list kept at fx.legacyKey and a CRL object of its own.
func legacyRevoke(ctx context.Context, fx *scaleFixture, serial *big.Int, reason int) error {
	a, st := fx.a, fx.a.cfg.Storage
	lock := "bench-legacy/revocations"
	if err := st.Lock(ctx, lock); err != nil {
		return err
	}
	defer unlock(st, lock)
	if _, err := a.loadRecord(ctx, serial); err != nil {
		return err
	}
	raw, err := st.Load(ctx, fx.legacyKey)
	if err != nil {
		return err
	}
	var list []Revocation
	if err := json.Unmarshal(raw, &list); err != nil {
		return err
	}
	for i := range list {
		if n, err := ParseSerial(list[i].Serial); err == nil {
			list[i].Serial = SerialString(n)
		}
	}
	list = append(list, Revocation{Serial: SerialString(serial), RevokedAt: time.Now().UTC().Truncate(time.Second), Reason: reason})
	if raw, err = json.Marshal(list); err != nil {
		return err
	}
	if err := st.Store(ctx, fx.legacyKey, raw); err != nil {
		return err
	}
	var prev storedCRL
	if b, err := st.Load(ctx, "bench-legacy/crl.json"); err == nil {
		_ = json.Unmarshal(b, &prev)
	}
	now := time.Now().UTC()
	der, n, err := a.signCRLSlowly(&x509.RevocationList{Number: big.NewInt(prev.Number + 1), ThisUpdate: now, NextUpdate: now.Add(a.cfg.CRLValidity)}, list)
	if err != nil {
		return err
	}
	c, err := json.Marshal(storedCRL{Number: prev.Number + 1, ThisUpdate: now, NextUpdate: now.Add(a.cfg.CRLValidity), Revocations: digestOf(raw), Entries: n, DER: der})
	if err != nil {
		return err
	}
	return st.Store(ctx, "bench-legacy/crl.json", c)
}

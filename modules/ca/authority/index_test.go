package authority

import (
	"context"
	"crypto"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/bankedge/bankedge/internal/testredis"
)

// storageKind makes a fresh storage for a test, and another client of the
// same storage (as a second gateway instance has).
type storageKind struct {
	name string
	make func(t *testing.T) (first certmagic.Storage, another func() certmagic.Storage)
}

// storageKinds are file_system and, where redis-server is installed,
// Redis (caddy.storage.redis).
func storageKinds() []storageKind {
	return []storageKind{
		{"file_system", func(t *testing.T) (certmagic.Storage, func() certmagic.Storage) {
			dir := t.TempDir()
			return &certmagic.FileStorage{Path: dir}, func() certmagic.Storage { return &certmagic.FileStorage{Path: dir} }
		}},
		{"redis", func(t *testing.T) (certmagic.Storage, func() certmagic.Storage) {
			srv := testredis.Start(t)
			return srv.Storage(t, "test"), func() certmagic.Storage { return srv.Storage(t, "test") }
		}},
	}
}

// openOn opens (creating) a CA on st with small segments, so that a few
// certificates span several of them.
func openOn(t *testing.T, st certmagic.Storage, clk *fakeClock) *Authority {
	t.Helper()
	cfg := Config{Storage: st, Passphrase: []byte(testPassphrase), Now: clk.Now}
	a, _, err := Open(context.Background(), cfg, true)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	a.indexSegSize, a.revSegSize = 4, 3
	return a
}

// issueFor issues a CLIENT certificate for partner.
func issueFor(t *testing.T, a *Authority, pub crypto.PublicKey, partner string, validity time.Duration) *x509.Certificate {
	t.Helper()
	cert, err := a.Issue(context.Background(), Request{PublicKey: pub, Template: &x509.Certificate{Subject: pkix.Name{CommonName: "holder"}},
		Purpose: PurposeClient, Validity: validity, PartnerID: partner, IssuedBy: "tester"})
	if err != nil {
		t.Fatalf("Issue for %s: %v", partner, err)
	}
	return cert
}

// collect pages through q with limit, checking each page's size and
// that only the last page has no Next.
func collect(t *testing.T, a *Authority, q Query) []Record {
	t.Helper()
	var out []Record
	for pages := 0; ; pages++ {
		p, err := a.Query(context.Background(), q)
		if err != nil {
			t.Fatalf("Query(%+v): %v", q, err)
		}
		if q.Limit > 0 && len(p.Records) > q.Limit {
			t.Fatalf("page of %d records for limit %d", len(p.Records), q.Limit)
		}
		if p.Next != "" && len(p.Records) != q.Limit {
			t.Fatalf("a page of %d records (limit %d) says more remain", len(p.Records), q.Limit)
		}
		out = append(out, p.Records...)
		if p.Next == "" {
			return out
		}
		if pages > 1000 {
			t.Fatal("paging does not end")
		}
		q.Cursor = p.Next
	}
}

func serialsOf(recs []Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Serial + "/" + r.Status
	}
	return out
}

// TestQueryPagesAndFilters compares every filter and page size with what
// the records themselves say (Lookup), on both storages, with logs of
// several segments.
func TestQueryPagesAndFilters(t *testing.T) {
	for _, sk := range storageKinds() {
		t.Run(sk.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st, another := sk.make(t)
			clk := newClock()
			a := openOn(t, st, clk)
			pub := mustECDSA(t, elliptic.P256()).Public()
			var serials []*big.Int
			partners := []string{"BANK_A", "BANK_B", "bank_a", ""}
			for i := range 26 {
				validity := 400 * 24 * time.Hour
				if i%5 == 1 {
					validity = time.Hour // expires below
				}
				if i%7 == 3 {
					validity = 40 * 24 * time.Hour // another expiry month
				}
				serials = append(serials, issueFor(t, a, pub, partners[i%len(partners)], validity).SerialNumber)
				if i%3 != 0 {
					// Some issue at the same instant: times still increase.
					clk.Add(time.Minute)
				}
			}
			for i, s := range serials {
				if i%4 == 2 {
					if _, err := a.Revoke(ctx, s, 1); err != nil {
						t.Fatal(err)
					}
				}
			}
			clk.Add(2 * time.Hour)

			// What the records say, newest first.
			var truth []Record
			for _, s := range serials {
				rec, err := a.Lookup(ctx, s)
				if err != nil {
					t.Fatal(err)
				}
				rec.DER = nil
				truth = append(truth, rec)
			}
			slices.SortFunc(truth, func(x, y Record) int {
				if newer(summaryOf(x), summaryOf(y)) {
					return -1
				}
				return 1
			})
			for i := 1; i < len(truth); i++ {
				if !truth[i-1].IssuedAt.After(truth[i].IssuedAt) {
					t.Fatalf("issue times do not increase: %v then %v", truth[i].IssuedAt, truth[i-1].IssuedAt)
				}
			}
			// Another instance, with nothing cached, answers the same.
			b, _, err := Open(ctx, Config{Storage: another(), Passphrase: []byte(testPassphrase), Now: clk.Now}, false)
			if err != nil {
				t.Fatal(err)
			}
			deadline := clk.Now().Add(30 * 24 * time.Hour)
			for _, inst := range []*Authority{a, b} {
				for _, partner := range []string{"", "BANK_A", "bank_a", "NOBODY"} {
					for _, status := range []string{"", StatusValid, StatusExpired, StatusRevoked, "bogus"} {
						for _, expiring := range []bool{false, true} {
							var want []Record
							for _, r := range truth {
								if (partner == "" || r.PartnerID == partner) && (status == "" || r.Status == status) &&
									(!expiring || !r.NotAfter.After(deadline)) {
									want = append(want, r)
								}
							}
							for _, limit := range []int{0, 1, 3, 4, 100} {
								q := Query{PartnerID: partner, Status: status, Limit: limit}
								if expiring {
									q.ExpiresBefore = deadline
								}
								got := collect(t, inst, q)
								if !slices.Equal(serialsOf(got), serialsOf(want)) {
									t.Fatalf("%+v:\n got %v\nwant %v", q, serialsOf(got), serialsOf(want))
								}
								for i := range got {
									w := want[i]
									if g := got[i]; g.PartnerID != w.PartnerID || g.Subject != w.Subject || !g.IssuedAt.Equal(w.IssuedAt) ||
										!g.NotAfter.Equal(w.NotAfter) || g.RevocationReason != w.RevocationReason || (g.RevokedAt == nil) != (w.RevokedAt == nil) {
										t.Fatalf("%+v: record %d is %+v, want %+v", q, i, g, w)
									}
								}
							}
						}
					}
				}
			}
			all, err := a.Issued(ctx)
			if err != nil || len(all) != len(truth) {
				t.Fatalf("Issued: %d records, %v", len(all), err)
			}
		})
	}
}

func TestQueryRefusesForeignCursors(t *testing.T) {
	t.Parallel()
	a, _ := newCA(t, nil)
	ctx := context.Background()
	pub := mustECDSA(t, elliptic.P256()).Public()
	issue(t, a, pub, "one", time.Hour)
	issue(t, a, pub, "two", time.Hour)
	p, err := a.Query(ctx, Query{Limit: 1})
	if err != nil || p.Next == "" {
		t.Fatalf("first page: %+v, %v", p, err)
	}
	for _, c := range []string{"!!", "bm90IGEgY3Vyc29y", encodeCursorText("12.zz"), encodeCursorText("x.0A"), encodeCursorText("12.0a"),
		encodeCursorText("12.A"), encodeCursorText("12"), strings.Repeat("A", 300)} {
		if _, err := a.Query(ctx, Query{Limit: 1, Cursor: c}); !errors.Is(err, ErrBadCursor) {
			t.Errorf("cursor %q: %v, want ErrBadCursor", c, err)
		}
	}
}

func encodeCursorText(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// TestIssueTimesIncreaseAcrossInstances: an instance whose clock is
// behind still appends after the newest entry, so that the log stays in
// newest-first order.
func TestIssueTimesIncreaseAcrossInstances(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	ahead, behind := newClock(), newClock()
	behind.Add(-time.Hour)
	a := openOn(t, &certmagic.FileStorage{Path: dir}, ahead)
	b := openOn(t, &certmagic.FileStorage{Path: dir}, behind)
	pub := mustECDSA(t, elliptic.P256()).Public()
	first := issueFor(t, a, pub, "A", 24*time.Hour)
	second := issueFor(t, b, pub, "A", 24*time.Hour)
	recs, err := a.Issued(ctx)
	if err != nil || len(recs) != 2 {
		t.Fatalf("Issued: %v, %v", recs, err)
	}
	if recs[0].Serial != SerialString(second.SerialNumber) || recs[1].Serial != SerialString(first.SerialNumber) {
		t.Fatalf("order %s, %s: want the later issuance first", recs[0].Serial, recs[1].Serial)
	}
	if !recs[0].IssuedAt.Equal(recs[1].IssuedAt.Add(time.Nanosecond)) {
		t.Errorf("issue time %v after %v", recs[0].IssuedAt, recs[1].IssuedAt)
	}
	if stored, _ := b.Lookup(ctx, second.SerialNumber); !stored.IssuedAt.Equal(recs[0].IssuedAt) {
		t.Errorf("the record says %v, the index %v", stored.IssuedAt, recs[0].IssuedAt)
	}
}

// listKeys lists the keys under the CA's dir, relative to its prefix.
func listKeys(t *testing.T, st certmagic.Storage, dir string) []string {
	t.Helper()
	keys, err := st.List(context.Background(), "bankedge/ca/"+dir, true)
	if err != nil && !strings.Contains(err.Error(), "no such file") {
		t.Fatal(err)
	}
	var out []string
	for _, k := range keys {
		if strings.HasSuffix(k, ".json") {
			out = append(out, strings.TrimPrefix(k, "bankedge/ca/"))
		}
	}
	return out
}

// occurrences counts serial in the index logs of generation g.
func occurrences(t *testing.T, a *Authority, serial string) (all, partner, expiry int) {
	t.Helper()
	ctx := context.Background()
	ist, ok, err := a.loadIndexState(ctx)
	if err != nil || !ok {
		t.Fatalf("index state: %v, %v", ok, err)
	}
	count := func(root string) int {
		keys, _ := a.cfg.Storage.List(ctx, root, true)
		n := 0
		for _, k := range keys {
			b, err := a.cfg.Storage.Load(ctx, k)
			if err != nil {
				continue
			}
			var s segment[summary]
			if json.Unmarshal(b, &s) != nil {
				continue
			}
			for _, e := range s.Entries {
				if e.Serial == serial {
					n++
				}
			}
		}
		return n
	}
	return count(a.allDir(ist.Generation)), count(a.genDir(ist.Generation) + "/partner"), count(a.expiryRoot(ist.Generation))
}

// crashIssue does what recordIssued does, up to a crash after step steps:
// 1 the intent, 2 the record, 3 the global index entry.
func crashIssue(t *testing.T, a *Authority, partner string, steps int) *x509.Certificate {
	t.Helper()
	ctx := context.Background()
	cert, rec, err := a.sign(ctx, Request{PublicKey: mustECDSA(t, elliptic.P256()).Public(), Template: &x509.Certificate{Subject: pkix.Name{CommonName: "crash"}},
		Purpose: PurposeClient, Validity: 24 * time.Hour, PartnerID: partner})
	if err != nil {
		t.Fatal(err)
	}
	ist, _, err := a.loadIndexState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	all, err := loadHead[summary](ctx, a, a.allDir(ist.Generation))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(all.head.seg.Entries); n > 0 && !rec.IssuedAt.After(all.head.seg.Entries[n-1].IssuedAt) {
		rec.IssuedAt = all.head.seg.Entries[n-1].IssuedAt.Add(time.Nanosecond)
	}
	intent, _ := json.Marshal(summaryOf(rec))
	if err := a.cfg.Storage.Store(ctx, a.cfg.key(pendingDir+"/"+storageSerial(cert.SerialNumber)+".json"), intent); err != nil {
		t.Fatal(err)
	}
	if steps >= 2 {
		if err := a.storeRecord(ctx, cert.SerialNumber, rec); err != nil {
			t.Fatal(err)
		}
	}
	if steps >= 3 {
		if _, err := appendEntries(ctx, a, a.allDir(ist.Generation), all, a.indexSegSize, false, summaryOf(rec)); err != nil {
			t.Fatal(err)
		}
	}
	return cert
}

// TestInterruptedIssuanceIsRepaired: a crash between the writes of an
// issuance leaves an intent; readers list the certificate if its record
// was written, and the next issuance (any instance) or start indexes it
// once, or drops the intent of a certificate never recorded.
func TestInterruptedIssuanceIsRepaired(t *testing.T) {
	for _, sk := range storageKinds() {
		t.Run(sk.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st, another := sk.make(t)
			clk := newClock()
			a := openOn(t, st, clk)
			pub := mustECDSA(t, elliptic.P256()).Public()
			for range 5 {
				issueFor(t, a, pub, "BANK_A", 24*time.Hour)
				clk.Add(time.Second)
			}
			// The record was written, not its index entries.
			recorded := crashIssue(t, a, "BANK_A", 2)
			// The intent alone: never issued.
			never := crashIssue(t, a, "BANK_A", 1)
			for _, q := range []Query{{}, {PartnerID: "BANK_A"}, {Status: StatusValid, Limit: 2}} {
				p, err := a.Query(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				if p.Records[0].Serial != SerialString(recorded.SerialNumber) {
					t.Errorf("%+v: first record %s, want the interrupted issuance %s", q, p.Records[0].Serial, SerialString(recorded.SerialNumber))
				}
				for _, r := range p.Records {
					if r.Serial == SerialString(never.SerialNumber) {
						t.Errorf("%+v lists a certificate that was never recorded", q)
					}
				}
			}
			// The next issuance, on another instance, repairs first.
			b := openOn(t, another(), clk)
			if keys := listKeys(t, st, "index/pending"); len(keys) != 0 {
				t.Fatalf("start left intents %v", keys)
			}
			if n, p, e := occurrences(t, a, SerialString(recorded.SerialNumber)); n != 1 || p != 1 || e != 1 {
				t.Fatalf("after repair the interrupted issuance is in the logs %d, %d, %d times; want once each", n, p, e)
			}
			if n, p, e := occurrences(t, a, SerialString(never.SerialNumber)); n+p+e != 0 {
				t.Fatal("a certificate never recorded was indexed")
			}
			latest := issueFor(t, b, pub, "BANK_A", 24*time.Hour)

			// A crash after the global entry: the start completes the
			// partner and expiry entries without a second global one.
			half := crashIssue(t, a, "BANK_B", 3)
			c := openOn(t, another(), clk)
			if n, p, e := occurrences(t, c, SerialString(half.SerialNumber)); n != 1 || p != 1 || e != 1 {
				t.Fatalf("after repair: in the logs %d, %d, %d times; want once each", n, p, e)
			}
			recs := collect(t, c, Query{Limit: 3})
			want := []*big.Int{half.SerialNumber, latest.SerialNumber, recorded.SerialNumber}
			if len(recs) != 8 {
				t.Fatalf("%d records, want 8", len(recs))
			}
			for i, s := range want {
				if recs[i].Serial != SerialString(s) {
					t.Errorf("record %d is %s, want %s", i, recs[i].Serial, SerialString(s))
				}
			}
			if p := collect(t, c, Query{PartnerID: "BANK_B"}); len(p) != 1 || p[0].Serial != SerialString(half.SerialNumber) {
				t.Errorf("partner BANK_B: %v", serialsOf(p))
			}
		})
	}
}

// TestIndexBuiltFromRecords: storage without an index (written before it)
// gets one at start, a read-only instance reads the records meanwhile,
// and an unfinished build (a crash) is replaced whole.
func TestIndexBuiltFromRecords(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := newClock()
	a, dir := newCA(t, func(c *Config) { c.Now = clk.Now })
	pub := mustECDSA(t, elliptic.P256()).Public()
	for i := range 9 {
		issueFor(t, a, pub, fmt.Sprintf("P%d", i%2), 24*time.Hour)
		clk.Add(time.Second)
	}
	want := serialsOf(collect(t, a, Query{}))
	st := &certmagic.FileStorage{Path: dir}
	// As before the index: records only, and a crashed build's leftovers.
	if err := a.deleteTree(ctx, a.cfg.key("index")); err != nil {
		t.Fatal(err)
	}
	if err := st.Store(ctx, "bankedge/ca/index/g7/all/0000000000.json", []byte(`{"entries":[{"serial":"0BAD"}]}`)); err != nil {
		t.Fatal(err)
	}
	ro, _, err := Open(ctx, Config{Storage: st, Passphrase: []byte(testPassphrase), Now: clk.Now, ReadOnly: true}, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := serialsOf(collect(t, ro, Query{Limit: 4})); !slices.Equal(got, want) {
		t.Fatalf("read-only, without index:\n got %v\nwant %v", got, want)
	}
	if keys := listKeys(t, st, "index"); len(keys) != 1 {
		t.Fatalf("a read-only instance wrote %v", keys)
	}
	b, _, err := Open(ctx, testConfig(dir), false)
	if err != nil {
		t.Fatal(err)
	}
	ist, ok, err := b.loadIndexState(ctx)
	if err != nil || !ok || ist.Generation != 8 || ist.Records != 9 {
		t.Fatalf("index state after start: %+v, %v, %v", ist, ok, err)
	}
	if got := serialsOf(collect(t, b, Query{Limit: 4})); !slices.Equal(got, want) {
		t.Fatalf("built index:\n got %v\nwant %v", got, want)
	}
	if got := serialsOf(collect(t, b, Query{PartnerID: "P1"})); len(got) != 4 {
		t.Fatalf("partner P1: %v", got)
	}
	// Reindex replaces the generation and removes the old one.
	if n, err := b.Reindex(ctx); err != nil || n != 9 {
		t.Fatalf("Reindex: %d, %v", n, err)
	}
	for _, k := range listKeys(t, st, "index") {
		if !strings.HasPrefix(k, "index/g9/") && k != "index/state.json" {
			t.Errorf("left after Reindex: %s", k)
		}
	}
	if got := serialsOf(collect(t, a, Query{Limit: 2})); !slices.Equal(got, want) {
		t.Fatalf("after Reindex, the first instance reads:\n got %v\nwant %v", got, want)
	}
}

// TestRevocationLog: revocations go to a hash-chained log of segments,
// one segment written per revocation, and the CRL lists the whole log.
func TestRevocationLog(t *testing.T) {
	for _, sk := range storageKinds() {
		t.Run(sk.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st, another := sk.make(t)
			clk := newClock()
			a := openOn(t, st, clk)
			pub := mustECDSA(t, elliptic.P256()).Public()
			var serials []*big.Int
			for range 8 {
				serials = append(serials, issueFor(t, a, pub, "BANK_A", 24*time.Hour).SerialNumber)
			}
			for _, s := range serials {
				if _, err := a.Revoke(ctx, s, 4); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := a.Revoke(ctx, serials[3], 4); !errors.Is(err, ErrRevoked) {
				t.Fatalf("second revocation: %v", err)
			}
			segs := listKeys(t, st, "revocations")
			if len(segs) != 3 {
				t.Fatalf("revocation log segments %v, want 3 of at most 3", segs)
			}
			prev := ""
			for _, k := range segs {
				raw, err := st.Load(ctx, "bankedge/ca/"+k)
				if err != nil {
					t.Fatal(err)
				}
				var s segment[Revocation]
				if err := json.Unmarshal(raw, &s); err != nil {
					t.Fatal(err)
				}
				if s.Prev != prev {
					t.Errorf("%s names %q as the previous segment, want %q", k, s.Prev, prev)
				}
				for _, r := range s.Entries {
					if r.PartnerID != "BANK_A" || r.IssuedAt.IsZero() {
						t.Errorf("%s: revocation without its record's partner and issue time: %+v", k, r)
					}
				}
				prev = digestOf(raw)
			}
			c, err := a.loadCRL(ctx)
			if err != nil || c.Revocations != prev || c.Entries != 8 {
				t.Fatalf("stored CRL: revocations %q entries %d (%v); want the head's digest %q and 8", c.Revocations, c.Entries, err, prev)
			}
			b, _, err := Open(ctx, Config{Storage: another(), Passphrase: []byte(testPassphrase), Now: clk.Now}, false)
			if err != nil {
				t.Fatal(err)
			}
			crl := parseCRL(t, b, must(b.CRL(ctx)))
			if len(crl.RevokedCertificateEntries) != 8 {
				t.Fatalf("CRL lists %d", len(crl.RevokedCertificateEntries))
			}
			for _, s := range serials {
				if r, err := b.IsRevoked(ctx, s); err != nil || !r {
					t.Errorf("IsRevoked(%x) on another instance: %v, %v", s, r, err)
				}
			}
			if got := collect(t, b, Query{Status: StatusRevoked, Limit: 3}); len(got) != 8 || got[0].Serial != SerialString(serials[7]) {
				t.Errorf("revoked: %v", serialsOf(got))
			}
		})
	}
}

// TestLegacyRevocationListMoved: revocations.json, the list before the
// log, is moved into the log at start (once, even when a start was
// interrupted half-way), and the CRL made again from the log.
func TestLegacyRevocationListMoved(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, dir := newCA(t, nil)
	st := &certmagic.FileStorage{Path: dir}
	pub := mustECDSA(t, elliptic.P256()).Public()
	one := issue(t, a, pub, "one", time.Hour)
	two := issue(t, a, pub, "two", time.Hour)
	kept := issue(t, a, pub, "kept", time.Hour)
	at := time.Now().UTC().Truncate(time.Second)
	legacy, _ := json.Marshal([]Revocation{
		{Serial: strings.ToLower(one.SerialNumber.Text(16)), RevokedAt: at, Reason: 1},
		{Serial: SerialString(two.SerialNumber), RevokedAt: at, Reason: 4},
	})
	if err := st.Store(ctx, "bankedge/ca/revocations.json", legacy); err != nil {
		t.Fatal(err)
	}
	// A start interrupted after moving the first revocation.
	if _, err := appendEntries(ctx, a, a.cfg.key(revocationsDir), logHead[Revocation]{n: -1}, revocationSegmentSize, true,
		Revocation{Serial: SerialString(one.SerialNumber), RevokedAt: at, Reason: 1}); err != nil {
		t.Fatal(err)
	}
	b, _, err := Open(ctx, testConfig(dir), false)
	if err != nil {
		t.Fatal(err)
	}
	// Kept, unchanged, for gateways of the previous version.
	if kept, err := st.Load(ctx, "bankedge/ca/revocations.json"); err != nil || string(kept) != string(legacy) {
		t.Errorf("revocations.json after the move: %q, %v", kept, err)
	}
	state, err := b.loadRevocations(ctx)
	if err != nil || state.len() != 2 || state.legacy {
		t.Fatalf("log after the move: %d revocations, legacy %v, %v", state.len(), state.legacy, err)
	}
	if r, ok := state.get(SerialString(two.SerialNumber)); !ok || r.PartnerID != "P_two" || r.IssuedAt.IsZero() || r.Reason != 4 {
		t.Errorf("moved revocation %+v", r)
	}
	crl := parseCRL(t, b, must(b.CRL(ctx)))
	if len(crl.RevokedCertificateEntries) != 2 {
		t.Fatalf("CRL lists %d", len(crl.RevokedCertificateEntries))
	}
	for s, want := range map[*big.Int]bool{one.SerialNumber: true, two.SerialNumber: true, kept.SerialNumber: false} {
		if r, err := b.IsRevoked(ctx, s); err != nil || r != want {
			t.Errorf("IsRevoked(%x) = %v, %v", s, r, err)
		}
	}
	// A start with nothing new to move moves nothing.
	if _, _, err := Open(ctx, testConfig(dir), false); err != nil {
		t.Fatal(err)
	}
	if n, _ := b.loadRevocations(ctx); n.len() != 2 {
		t.Fatalf("%d revocations after another start", n.len())
	}
	// A gateway of the previous version revokes during the upgrade: the
	// next start moves that revocation too.
	legacy, _ = json.Marshal([]Revocation{
		{Serial: SerialString(one.SerialNumber), RevokedAt: at, Reason: 1},
		{Serial: SerialString(two.SerialNumber), RevokedAt: at, Reason: 4},
		{Serial: SerialString(kept.SerialNumber), RevokedAt: at, Reason: 5},
	})
	if err := st.Store(ctx, "bankedge/ca/revocations.json", legacy); err != nil {
		t.Fatal(err)
	}
	c, _, err := Open(ctx, testConfig(dir), false)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := c.IsRevoked(ctx, kept.SerialNumber); err != nil || !r {
		t.Errorf("a revocation made by a previous version during the upgrade: %v, %v", r, err)
	}
	if n, _ := c.loadRevocations(ctx); n.len() != 3 {
		t.Errorf("%d revocations, want 3", n.len())
	}
}

// TestLegacyRevocationListReadBeforeMove: until it is moved (a read-only
// instance), revocations.json is read as the log, and a CRL made from it
// stays current.
func TestLegacyRevocationListReadBeforeMove(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, dir := newCA(t, nil)
	cert := issue(t, a, mustECDSA(t, elliptic.P256()).Public(), "old", time.Hour)
	legacy, _ := json.Marshal([]Revocation{{Serial: SerialString(cert.SerialNumber), RevokedAt: time.Now().UTC().Truncate(time.Second), Reason: 1}})
	if err := (&certmagic.FileStorage{Path: dir}).Store(ctx, "bankedge/ca/revocations.json", legacy); err != nil {
		t.Fatal(err)
	}
	ro, _, err := Open(ctx, Config{Storage: &certmagic.FileStorage{Path: dir}, Passphrase: []byte(testPassphrase), ReadOnly: true}, false)
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := ro.Lookup(ctx, cert.SerialNumber); err != nil || rec.Status != StatusRevoked {
		t.Fatalf("Lookup: %+v, %v", rec.Status, err)
	}
	if got := collect(t, ro, Query{Status: StatusRevoked}); len(got) != 1 {
		t.Fatalf("revoked: %v", serialsOf(got))
	}
}

// TestOddPartnersAndRecordsDoNotStopIssuance: a partner id too long for a
// file name is indexed under its digest, and an interrupted issuance whose
// record is unreadable is dropped from repair instead of failing every
// later issuance.
func TestOddPartnersAndRecordsDoNotStopIssuance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := newClock()
	a, _ := newCA(t, func(c *Config) { c.Now = clk.Now })
	pub := mustECDSA(t, elliptic.P256()).Public()
	long := strings.Repeat("Ünïcode/..\\partner ", 12)
	c := issueFor(t, a, pub, long, time.Hour)
	if got := collect(t, a, Query{PartnerID: long}); len(got) != 1 || got[0].Serial != SerialString(c.SerialNumber) {
		t.Fatalf("partner with a long id: %v", serialsOf(got))
	}
	broken := crashIssue(t, a, "BANK_A", 2)
	if err := a.cfg.Storage.Store(ctx, a.recordKey(broken.SerialNumber), []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Second)
	issueFor(t, a, pub, "BANK_A", time.Hour)
	if keys := listKeys(t, a.cfg.Storage, "index/pending"); len(keys) != 0 {
		t.Errorf("intents left: %v", keys)
	}
}

// TestQueryPurpose: the purpose filter, in any case, pages like the others.
func TestQueryPurpose(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, _ := newCA(t, nil)
	pub := mustECDSA(t, elliptic.P256()).Public()
	var servers []string
	for i := range 5 {
		req := Request{PublicKey: pub, Template: &x509.Certificate{Subject: pkix.Name{CommonName: "host.example.com"}, DNSNames: []string{"host.example.com"}},
			Purpose: PurposeClient, Validity: time.Hour, PartnerID: "BANK_A"}
		if i%2 == 0 {
			req.Purpose = PurposeServer
		}
		cert, err := a.Issue(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if req.Purpose == PurposeServer {
			servers = append([]string{SerialString(cert.SerialNumber) + "/" + StatusValid}, servers...)
		}
	}
	if got := serialsOf(collect(t, a, Query{Purpose: "server", Limit: 2})); !slices.Equal(got, servers) {
		t.Fatalf("purpose server:\n got %v\nwant %v", got, servers)
	}
	if got := collect(t, a, Query{Purpose: "QSEAL", PartnerID: "BANK_A"}); len(got) != 0 {
		t.Fatalf("purpose QSEAL: %v", serialsOf(got))
	}
}

// lockWatch records whether a storage lock was asked for while this
// process already held it (which costs a poll interval, a second, on
// file_system and Redis).
type lockWatch struct {
	*certmagic.FileStorage
	mu        sync.Mutex
	held      map[string]bool
	contended []string
}

func (s *lockWatch) Lock(ctx context.Context, name string) error {
	s.mu.Lock()
	if s.held[name] {
		s.contended = append(s.contended, name)
	}
	s.mu.Unlock()
	if err := s.FileStorage.Lock(ctx, name); err != nil {
		return err
	}
	s.mu.Lock()
	s.held[name] = true
	s.mu.Unlock()
	return nil
}

func (s *lockWatch) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	s.held[name] = false
	s.mu.Unlock()
	return s.FileStorage.Unlock(ctx, name)
}

// TestIssuancesOfOneProcessQueueLocally: concurrent issuances and
// revocations of one gateway wait for each other in memory, never by
// polling the storage lock.
func TestIssuancesOfOneProcessQueueLocally(t *testing.T) {
	t.Parallel()
	st := &lockWatch{FileStorage: &certmagic.FileStorage{Path: t.TempDir()}, held: map[string]bool{}}
	a, _ := newCA(t, func(c *Config) { c.Storage = st })
	pub := mustECDSA(t, elliptic.P256()).Public()
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			cert, err := a.Issue(context.Background(), Request{PublicKey: pub, Template: &x509.Certificate{Subject: pkix.Name{CommonName: "queue"}},
				Purpose: PurposeClient, Validity: time.Hour, PartnerID: "Q"})
			if err == nil {
				_, err = a.Revoke(context.Background(), cert.SerialNumber, 1)
			}
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if len(st.contended) > 0 {
		t.Errorf("storage locks asked for while held by this process: %v", st.contended)
	}
	if got := collect(t, a, Query{Status: StatusRevoked}); len(got) != 6 {
		t.Errorf("%d revoked, want 6", len(got))
	}
}

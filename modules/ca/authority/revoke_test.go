package authority

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

func TestIssuedInventory(t *testing.T) {
	t.Parallel()
	clk := newClock()
	a, _ := newCA(t, func(c *Config) { c.Now = clk.Now })
	ctx := context.Background()
	pub := mustECDSA(t, elliptic.P256()).Public()

	if recs, err := a.Issued(ctx); err != nil || recs == nil || len(recs) != 0 {
		t.Fatalf("empty inventory: %v, %v; want an empty non-nil list", recs, err)
	}
	short := issue(t, a, pub, "short", 24*time.Hour) // expires
	clk.Add(time.Minute)
	long := issue(t, a, pub, "long", 365*24*time.Hour) // stays valid
	clk.Add(time.Minute)
	gone := issue(t, a, pub, "gone", 365*24*time.Hour) // revoked
	clk.Add(time.Minute)
	revokedAt := clk.Now()
	if _, err := a.Revoke(ctx, gone.SerialNumber, 1); err != nil {
		t.Fatal(err)
	}
	clk.Add(48 * time.Hour)

	recs, err := a.Issued(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		cert   *x509.Certificate
		cn     string
		status string
	}{{gone, "gone", StatusRevoked}, {long, "long", StatusValid}, {short, "short", StatusExpired}}
	if len(recs) != len(want) {
		t.Fatalf("Issued returned %d records, want %d", len(recs), len(want))
	}
	for i, w := range want {
		r := recs[i]
		if r.Serial != SerialString(w.cert.SerialNumber) {
			t.Errorf("record %d is %s, want %s (newest first)", i, r.Serial, w.cn)
			continue
		}
		if r.Subject != "CN="+w.cn || r.PartnerID != "P_"+w.cn || r.Purpose != PurposeClient || r.IssuedBy != "tester" {
			t.Errorf("record %s: subject=%q partner=%q purpose=%q by=%q", w.cn, r.Subject, r.PartnerID, r.Purpose, r.IssuedBy)
		}
		if !r.NotBefore.Equal(w.cert.NotBefore) || !r.NotAfter.Equal(w.cert.NotAfter) {
			t.Errorf("record %s: validity %v – %v, want %v – %v", w.cn, r.NotBefore, r.NotAfter, w.cert.NotBefore, w.cert.NotAfter)
		}
		if r.Status != w.status {
			t.Errorf("record %s: status %q, want %q", w.cn, r.Status, w.status)
		}
		// The inventory is read from the index, which keeps no
		// certificates; Lookup reads the record.
		if r.DER != nil {
			t.Errorf("record %s: the inventory carries the certificate", w.cn)
		}
		if full, err := a.Lookup(ctx, w.cert.SerialNumber); err != nil || !bytes.Equal(full.DER, w.cert.Raw) || full.Status != w.status {
			t.Errorf("Lookup(%s): status %q, %v; or the stored certificate differs", w.cn, full.Status, err)
		}
	}
	if r := recs[0]; r.RevokedAt == nil || !r.RevokedAt.Equal(revokedAt) || r.RevocationReason != "keyCompromise" {
		t.Errorf("revoked record: revokedAt=%v reason=%q", r.RevokedAt, r.RevocationReason)
	}
	if recs[1].RevokedAt != nil || recs[1].RevocationReason != "" {
		t.Error("a valid record carries revocation data")
	}

	rec, err := a.Lookup(ctx, long.SerialNumber)
	if err != nil || rec.Serial != SerialString(long.SerialNumber) || rec.Status != StatusValid {
		t.Errorf("Lookup: %+v, %v", rec, err)
	}
	if _, err := a.Lookup(ctx, big.NewInt(0xdeadbeef)); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup of an unknown serial: %v, want ErrNotFound", err)
	}
}

func TestParseSerial(t *testing.T) {
	want, _ := new(big.Int).SetString("6aa328d1f00e", 16)
	for _, in := range []string{
		"6a:a3:28:d1:f0:0e", "6A:A3:28:D1:F0:0E", "6AA328D1F00E", "6aa328d1f00e",
		"0x6aa328d1f00e", "0X6AA328D1F00E", " 6a a3 28 d1 f0 0e ", "00:6a:a3:28:d1:f0:0e",
	} {
		got, err := ParseSerial(in)
		if err != nil || got.Cmp(want) != 0 {
			t.Errorf("ParseSerial(%q) = %v, %v; want %x", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "00:00", "0x", "-1", "zz", "6a:g3", "12.5", "+6a", "0x0x6a", "6a_a3", strings.Repeat("f", 65)} {
		if n, err := ParseSerial(in); err == nil {
			t.Errorf("ParseSerial(%q) = %v, want an error", in, n)
		}
	}
	// SerialString round-trips.
	n, _ := randomSerial()
	if got, err := ParseSerial(SerialString(n)); err != nil || got.Cmp(n) != 0 {
		t.Errorf("ParseSerial(SerialString(%x)) = %v, %v", n, got, err)
	}
	if s := SerialString(want); s != "6AA328D1F00E" {
		t.Errorf("SerialString = %q", s)
	}
}

func TestParseReason(t *testing.T) {
	for in, want := range map[string]int{
		"": 0, "unspecified": 0, "keyCompromise": 1, "KEYCOMPROMISE": 1, "cacompromise": 2,
		"affiliationChanged": 3, "Superseded": 4, "cessationOfOperation": 5, "certificateHold": 6,
		"privilegeWithdrawn": 9, "aACompromise": 10, "0": 0, "1": 1, " 4 ": 4, "6": 6, "9": 9, "10": 10,
	} {
		if got, err := ParseReason(in); err != nil || got != want {
			t.Errorf("ParseReason(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"7", "8", "11", "-1", "removeFromCRL", "compromised", "key compromise"} {
		if n, err := ParseReason(in); err == nil {
			t.Errorf("ParseReason(%q) = %d, want an error", in, n)
		}
	}
	for n, name := range map[int]string{0: "unspecified", 1: "keyCompromise", 4: "superseded", 10: "aACompromise", 7: "7"} {
		if got := ReasonName(n); got != name {
			t.Errorf("ReasonName(%d) = %q, want %q", n, got, name)
		}
	}
}

func TestRevoke(t *testing.T) {
	t.Parallel()
	clk := newClock()
	// A second instance on the same directory, with its own FileStorage.
	a, dir := newCA(t, func(c *Config) { c.Now = clk.Now; c.RevocationRefresh = time.Second })
	cfgB := testConfig(dir)
	cfgB.Now, cfgB.RevocationRefresh = clk.Now, time.Second
	b, _, err := Open(context.Background(), cfgB, false)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pub := mustECDSA(t, elliptic.P256()).Public()
	c1 := issue(t, a, pub, "one", 24*time.Hour)
	c2 := issue(t, a, pub, "two", 24*time.Hour)

	for _, x := range []*Authority{a, b} {
		if r, err := x.IsRevoked(ctx, c1.SerialNumber); err != nil || r {
			t.Fatalf("IsRevoked before revocation: %v, %v", r, err)
		}
	}
	rec, err := a.Revoke(ctx, c1.SerialNumber, 4)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != StatusRevoked || rec.RevokedAt == nil || !rec.RevokedAt.Equal(clk.Now()) || rec.RevocationReason != "superseded" {
		t.Errorf("Revoke returned %+v", rec)
	}
	if r, err := a.IsRevoked(ctx, c1.SerialNumber); err != nil || !r {
		t.Errorf("IsRevoked on the revoking instance: %v, %v; want true at once", r, err)
	}
	if r, _ := a.IsRevoked(ctx, c2.SerialNumber); r {
		t.Error("an unrevoked certificate reads as revoked")
	}
	// The other instance answers from memory until RevocationRefresh...
	if r, _ := b.IsRevoked(ctx, c1.SerialNumber); r {
		t.Error("the other instance reloaded before RevocationRefresh (the test expects the cache)")
	}
	// Lookup reads the stored revocations...
	if got, err := b.Lookup(ctx, c1.SerialNumber); err != nil || got.Status != StatusRevoked || got.RevocationReason != "superseded" {
		t.Errorf("stored record after Revoke: %+v, %v", got, err)
	}
	// ...and handshakes see it after RevocationRefresh.
	clk.Add(2 * time.Second)
	if r, err := b.IsRevoked(ctx, c1.SerialNumber); err != nil || !r {
		t.Errorf("the other instance after RevocationRefresh: %v, %v; want revoked", r, err)
	}

	if _, err := b.Revoke(ctx, c1.SerialNumber, 1); !errors.Is(err, ErrRevoked) {
		t.Errorf("second Revoke: %v, want ErrRevoked", err)
	}
	if _, err := a.Revoke(ctx, big.NewInt(12345), 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("Revoke of an unknown serial: %v, want ErrNotFound", err)
	}
	for _, reason := range []int{-1, 7, 8, 11} {
		if _, err := a.Revoke(ctx, c2.SerialNumber, reason); !errors.Is(err, ErrPolicy) {
			t.Errorf("Revoke with reason %d: %v, want ErrPolicy", reason, err)
		}
	}
	if got, _ := a.Lookup(ctx, c2.SerialNumber); got.Status != StatusValid {
		t.Errorf("a refused Revoke changed the record: %+v", got)
	}
	// Revocations by b are seen by a the same way.
	if _, err := b.Revoke(ctx, c2.SerialNumber, 0); err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Second)
	if r, _ := a.IsRevoked(ctx, c2.SerialNumber); !r {
		t.Error("a does not see b's revocation after RevocationRefresh")
	}
}

func parseCRL(t testing.TB, a *Authority, der []byte) *x509.RevocationList {
	t.Helper()
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("ParseRevocationList: %v", err)
	}
	if err := crl.CheckSignatureFrom(a.Certificate()); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}
	if !bytes.Equal(crl.RawIssuer, a.Certificate().RawSubject) || !bytes.Equal(crl.AuthorityKeyId, a.Certificate().SubjectKeyId) {
		t.Error("CRL issuer or AKI is not the CA's")
	}
	return crl
}

func TestCRL(t *testing.T) {
	t.Parallel()
	clk := newClock()
	const validity = 48 * time.Hour
	a, dir := newCA(t, func(c *Config) { c.Now = clk.Now; c.CRLValidity = validity })
	ctx := context.Background()
	pub := mustECDSA(t, elliptic.P256()).Public()

	der, err := a.CRL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	crl := parseCRL(t, a, der)
	if crl.Number.Int64() != 1 || len(crl.RevokedCertificateEntries) != 0 {
		t.Errorf("first CRL: number %v, %d entries", crl.Number, len(crl.RevokedCertificateEntries))
	}
	if !crl.NextUpdate.Equal(crl.ThisUpdate.Add(validity)) || !crl.ThisUpdate.Equal(clk.Now()) {
		t.Errorf("thisUpdate %v nextUpdate %v, want now and now+%v", crl.ThisUpdate, crl.NextUpdate, validity)
	}

	reasons := []int{1, 0, 5}
	serials := make([]*big.Int, len(reasons))
	last := crl.Number.Int64()
	for i, reason := range reasons {
		serials[i] = issue(t, a, pub, "r", 24*time.Hour).SerialNumber
		clk.Add(time.Minute)
		if _, err := a.Revoke(ctx, serials[i], reason); err != nil {
			t.Fatal(err)
		}
		der, err := a.CRL(ctx)
		if err != nil {
			t.Fatal(err)
		}
		crl := parseCRL(t, a, der)
		if n := crl.Number.Int64(); n <= last {
			t.Errorf("CRL number %d after revocation %d, want more than %d", n, i+1, last)
		}
		last = crl.Number.Int64()
		if len(crl.RevokedCertificateEntries) != i+1 {
			t.Fatalf("CRL lists %d entries, want %d", len(crl.RevokedCertificateEntries), i+1)
		}
		for j, e := range crl.RevokedCertificateEntries {
			if e.SerialNumber.Cmp(serials[j]) != 0 || e.ReasonCode != reasons[j] {
				t.Errorf("entry %d: serial %x reason %d, want %x reason %d", j, e.SerialNumber, e.ReasonCode, serials[j], reasons[j])
			}
		}
		if e := crl.RevokedCertificateEntries[i]; !e.RevocationTime.Equal(clk.Now()) {
			t.Errorf("revocation time %v, want %v", e.RevocationTime, clk.Now())
		}
	}

	// Until half its validity CRL() serves the stored CRL, from any instance.
	stored, _ := a.CRL(ctx)
	clk.Add(validity/2 - time.Minute)
	cfgB := testConfig(dir)
	cfgB.Now, cfgB.CRLValidity = clk.Now, validity
	b, _, err := Open(ctx, cfgB, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []*Authority{a, b} {
		if got, err := x.CRL(ctx); err != nil || !bytes.Equal(got, stored) {
			t.Errorf("CRL() before half its validity made a new CRL (err=%v)", err)
		}
	}
	// Then a new one, with a higher number and the same entries.
	clk.Add(2 * time.Minute)
	der, err = b.CRL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	renewed := parseCRL(t, a, der)
	if renewed.Number.Int64() != last+1 || !renewed.ThisUpdate.Equal(clk.Now()) || len(renewed.RevokedCertificateEntries) != len(reasons) {
		t.Errorf("renewed CRL: number %v (want %d), thisUpdate %v, %d entries", renewed.Number, last+1, renewed.ThisUpdate, len(renewed.RevokedCertificateEntries))
	}
	if again, _ := a.CRL(ctx); !bytes.Equal(again, der) {
		t.Error("the renewed CRL is not the one served next")
	}
	st := &certmagic.FileStorage{Path: dir}
	var onDisk storedCRL
	if b, _ := st.Load(ctx, "bankedge/ca/crl.json"); json.Unmarshal(b, &onDisk) != nil || !bytes.Equal(onDisk.DER, der) {
		t.Error("the renewed CRL is not stored")
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	clk := newClock()
	a, _ := newCA(t, func(c *Config) { c.Now = clk.Now; c.RevocationRefresh = time.Hour })
	ctx := context.Background()
	pub := mustECDSA(t, elliptic.P256()).Public()
	good := issue(t, a, pub, "good", 24*time.Hour)
	bad := issue(t, a, pub, "bad", 24*time.Hour)
	if _, err := a.Revoke(ctx, bad.SerialNumber, 1); err != nil {
		t.Fatal(err)
	}

	// A foreign CA with the very same subject name.
	fk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ftmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: a.Certificate().Subject, NotBefore: clk.Now().Add(-time.Hour), NotAfter: clk.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	fder, _ := x509.CreateCertificate(rand.Reader, ftmpl, ftmpl, fk.Public(), fk)
	fca, _ := x509.ParseCertificate(fder)
	lder, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: good.SerialNumber, Subject: pkix.Name{CommonName: "good"}, NotBefore: good.NotBefore, NotAfter: good.NotAfter}, fca, pub, fk)
	if err != nil {
		t.Fatal(err)
	}
	foreign, _ := x509.ParseCertificate(lder)

	reason := func(err error) string {
		var ve *VerifyError
		if errors.As(err, &ve) {
			if ve.Err == nil || ve.Error() == "" {
				t.Errorf("VerifyError %q has no message", ve.Reason)
			}
			return ve.Reason
		}
		if err != nil {
			return "other: " + err.Error()
		}
		return ""
	}
	if err := a.Verify(ctx, good); err != nil {
		t.Errorf("Verify(good) = %v", err)
	}
	for _, tc := range []struct {
		name string
		cert *x509.Certificate
		at   time.Duration
		want string
	}{
		{"foreign", foreign, 0, "not_ours"},
		{"revoked", bad, 0, "revoked"},
		{"not yet valid", good, -10 * time.Minute, "not_yet_valid"},
		{"expired", good, 25 * time.Hour, "expired"},
	} {
		clk.Add(tc.at)
		if got := reason(a.Verify(ctx, tc.cert)); got != tc.want {
			t.Errorf("Verify(%s) reason %q, want %q", tc.name, got, tc.want)
		}
		clk.Add(-tc.at)
	}
}

// Instances revoking at the same time lose no revocation: the storage lock
// serialises the read-modify-write of the revocation list and the CRL.
func TestConcurrentRevoke(t *testing.T) {
	t.Parallel()
	a, dir := newCA(t, nil)
	ctx := context.Background()
	pub := mustECDSA(t, elliptic.P256()).Public()
	const n = 3
	var serials [n]*big.Int
	var peers [n]*Authority
	for i := range n {
		serials[i] = issue(t, a, pub, "concurrent", time.Hour).SerialNumber
		p, _, err := Open(ctx, testConfig(dir), false) // own FileStorage value
		if err != nil {
			t.Fatal(err)
		}
		peers[i] = p
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := peers[i].Revoke(ctx, serials[i], 1); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	der, err := a.CRL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	crl := parseCRL(t, a, der)
	if len(crl.RevokedCertificateEntries) != n || crl.Number.Int64() != n {
		t.Errorf("CRL number %v with %d entries, want %d and %d", crl.Number, len(crl.RevokedCertificateEntries), n, n)
	}
	for _, s := range serials {
		if r, err := a.IsRevoked(ctx, s); err != nil || !r {
			t.Errorf("serial %x: revoked=%v err=%v", s, r, err)
		}
	}
}

// flakyStore fails writes of keys containing fail while it is set.
type flakyStore struct {
	*certmagic.FileStorage
	mu   sync.Mutex
	fail string
}

func (s *flakyStore) failing(part string) {
	s.mu.Lock()
	s.fail = part
	s.mu.Unlock()
}

func (s *flakyStore) Store(ctx context.Context, key string, value []byte) error {
	s.mu.Lock()
	fail := s.fail != "" && strings.Contains(key, s.fail)
	s.mu.Unlock()
	if fail {
		return errors.New("storage unavailable at " + key)
	}
	return s.FileStorage.Store(ctx, key, value)
}

// A revocation whose CRL cannot be stored is in force at once, is never
// hidden by a stale CRL, and the next read of the CRL (on any instance)
// publishes it; the retry says it is revoked. (Issue 7, point 5: the CRL
// used to miss the serial for half its validity, across restarts.)
func TestRevokeWhenTheCRLCannotBeStored(t *testing.T) {
	t.Parallel()
	st := &flakyStore{FileStorage: &certmagic.FileStorage{Path: t.TempDir()}}
	a, _ := newCA(t, func(c *Config) { c.Storage = st })
	ctx := context.Background()
	cert := issue(t, a, mustECDSA(t, elliptic.P256()).Public(), "retry", time.Hour)
	before := parseCRL(t, a, must(a.CRL(ctx)))

	st.failing("crl.json")
	rec, err := a.Revoke(ctx, cert.SerialNumber, 1)
	if !errors.Is(err, ErrCRLNotPublished) || rec.Status != StatusRevoked {
		t.Fatalf("Revoke with failing CRL writes: %+v, %v; want the revoked record and ErrCRLNotPublished", rec, err)
	}
	if r, err := a.IsRevoked(ctx, cert.SerialNumber); err != nil || !r {
		t.Fatalf("IsRevoked after a revocation whose CRL failed: %v, %v", r, err)
	}
	if der, err := a.CRL(ctx); err == nil {
		t.Fatalf("CRL() served a CRL (number %v) that misses a revocation", parseCRL(t, a, der).Number)
	}
	if _, err := a.Revoke(ctx, cert.SerialNumber, 1); !errors.Is(err, ErrCRLNotPublished) {
		t.Fatalf("retry while the CRL still fails: %v", err)
	}

	st.failing("")
	// Another instance (a restart) reads the CRL first.
	b, _, err := Open(ctx, a.cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	crl := parseCRL(t, b, must(b.CRL(ctx)))
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(cert.SerialNumber) != 0 {
		t.Fatalf("CRL after the storage recovered lists %+v", crl.RevokedCertificateEntries)
	}
	if crl.Number.Int64() != before.Number.Int64()+1 {
		t.Errorf("CRL number %v after %v: failed attempts must not use numbers", crl.Number, before.Number)
	}
	if _, err := a.Revoke(ctx, cert.SerialNumber, 1); !errors.Is(err, ErrRevoked) {
		t.Fatalf("retry after the repair: %v, want ErrRevoked", err)
	}
	if again := parseCRL(t, a, must(a.CRL(ctx))); again.Number.Cmp(crl.Number) != 0 {
		t.Errorf("a current CRL was made again: number %v after %v", again.Number, crl.Number)
	}
}

// A crash between the revocation list and the CRL (simulated by writing
// the list as Revoke does) is repaired by the next read; the inventory
// shows the revocation at once, the list being its one record.
func TestCRLBehindTheRevocationListIsRepaired(t *testing.T) {
	t.Parallel()
	a, dir := newCA(t, nil)
	ctx := context.Background()
	cert := issue(t, a, mustECDSA(t, elliptic.P256()).Public(), "crash", time.Hour)
	must(a.CRL(ctx))
	list, _ := json.Marshal([]Revocation{{Serial: strings.ToLower(cert.SerialNumber.Text(16)), RevokedAt: time.Now().UTC().Truncate(time.Second), Reason: 1}})
	st := &certmagic.FileStorage{Path: dir}
	if err := st.Store(ctx, "bankedge/ca/revocations.json", list); err != nil {
		t.Fatal(err)
	}
	b, _, err := Open(ctx, testConfig(dir), false)
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := b.Lookup(ctx, cert.SerialNumber); err != nil || rec.Status != StatusRevoked || rec.RevocationReason != "keyCompromise" || rec.Serial != SerialString(cert.SerialNumber) {
		t.Fatalf("inventory record: %+v, %v", rec, err)
	}
	crl := parseCRL(t, b, must(b.CRL(ctx)))
	if len(crl.RevokedCertificateEntries) != 1 {
		t.Fatalf("CRL behind the revocation list was served: %d entries", len(crl.RevokedCertificateEntries))
	}
	info, err := b.RegenerateCRL(ctx)
	if err != nil || info.Number.Int64() != crl.Number.Int64()+1 || info.Entries != 1 {
		t.Fatalf("RegenerateCRL: %+v, %v", info, err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

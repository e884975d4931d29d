package authority

import (
	"context"
	"crypto/elliptic"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

// heldLoads is a storage whose loads of the revocation log can be held
// after they read it, as a slow storage would.
type heldLoads struct {
	*certmagic.FileStorage
	mu      sync.Mutex
	hold    chan struct{}
	holding chan struct{}
}

func (s *heldLoads) Load(ctx context.Context, key string) ([]byte, error) {
	b, err := s.FileStorage.Load(ctx, key)
	s.mu.Lock()
	hold := s.hold
	s.mu.Unlock()
	if hold != nil && strings.Contains(key, "/"+revocationsDir+"/") {
		s.holding <- struct{}{}
		<-hold
	}
	return b, err
}

// A gateway told that another revoked a certificate (ForgetRevocations)
// refuses it at once, instead of after its 30 s refresh, even when a load
// of the old log was under way when it was told; the revoking gateway
// reports the revocation to OnRevoke.
func TestForgetRevocations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var revoked []*big.Int
	a, dir := newCA(t, func(c *Config) {
		c.OnRevoke = func(_ context.Context, serial *big.Int) { revoked = append(revoked, serial) }
	})
	st := &heldLoads{FileStorage: &certmagic.FileStorage{Path: dir}}
	cfgB := testConfig(dir)
	cfgB.Storage = st
	b, _, err := Open(ctx, cfgB, false)
	if err != nil {
		t.Fatal(err)
	}
	c1 := issue(t, a, mustECDSA(t, elliptic.P256()).Public(), "one", time.Hour)
	c2 := issue(t, a, mustECDSA(t, elliptic.P256()).Public(), "two", time.Hour)
	for _, c := range []*big.Int{c1.SerialNumber, c2.SerialNumber} {
		if r, err := b.IsRevoked(ctx, c); err != nil || r {
			t.Fatalf("IsRevoked before any revocation: %v %v", r, err)
		}
	}

	if _, err := a.Revoke(ctx, c1.SerialNumber, 1); err != nil {
		t.Fatal(err)
	}
	if len(revoked) != 1 || revoked[0].Cmp(c1.SerialNumber) != 0 {
		t.Fatalf("OnRevoke got %v, want %v", revoked, c1.SerialNumber)
	}
	if r, _ := b.IsRevoked(ctx, c1.SerialNumber); r {
		t.Fatal("the other gateway's view refreshed by itself within its refresh interval: the test proves nothing")
	}
	b.ForgetRevocations()
	if r, err := b.IsRevoked(ctx, c1.SerialNumber); err != nil || !r {
		t.Fatalf("IsRevoked after ForgetRevocations: %v %v, want revoked", r, err)
	}

	// A load that read the log before the second revocation ends after
	// the gateway was told of it: what it read is not taken for fresh.
	b.ForgetRevocations()
	st.mu.Lock()
	st.hold, st.holding = make(chan struct{}), make(chan struct{})
	st.mu.Unlock()
	done := make(chan bool)
	go func() {
		r, _ := b.IsRevoked(ctx, c2.SerialNumber)
		done <- r
	}()
	<-st.holding
	if _, err := a.Revoke(ctx, c2.SerialNumber, 1); err != nil {
		t.Fatal(err)
	}
	b.ForgetRevocations()
	st.mu.Lock()
	close(st.hold)
	st.hold = nil
	st.mu.Unlock()
	if r := <-done; r {
		t.Fatal("the held load saw the second revocation: the test proves nothing")
	}
	if r, err := b.IsRevoked(ctx, c2.SerialNumber); err != nil || !r {
		t.Fatalf("IsRevoked after a stale load ended: %v %v, want revoked", r, err)
	}
}

// failingLoads fails the loads of keys containing part, as an
// unreachable storage would.
type failingLoads struct {
	*certmagic.FileStorage
	part string
}

func (s failingLoads) Load(ctx context.Context, key string) ([]byte, error) {
	if strings.Contains(key, s.part) {
		return nil, errors.New("storage unreachable")
	}
	return s.FileStorage.Load(ctx, key)
}

// An inventory that cannot be read fails the listing, instead of an
// inventory that silently lacks what could not be read: the index
// segments, and the records where there is no index yet.
func TestIssuedWhenTheInventoryCannotBeRead(t *testing.T) {
	t.Parallel()
	a, dir := newCA(t, nil)
	a.indexSegSize = 2
	for _, cn := range []string{"one", "two", "three", "four", "five"} {
		issue(t, a, mustECDSA(t, elliptic.P256()).Public(), cn, time.Hour)
	}
	ctx := context.Background()
	open := func(part string, readOnly bool) *Authority {
		cfg := testConfig(dir)
		cfg.Storage, cfg.ReadOnly = failingLoads{&certmagic.FileStorage{Path: dir}, part}, readOnly
		b, _, err := Open(ctx, cfg, false)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, part := range []string{"/index/g", "/index/g1/all/0000000000"} {
		if recs, err := open(part, false).Issued(ctx); err == nil {
			t.Errorf("Issued with %s unreadable: %d records and no error", part, len(recs))
		}
	}
	// Without an index (a read-only check of storage written before it),
	// the records are read.
	if err := a.cfg.Storage.Delete(ctx, a.cfg.key(indexStateName)); err != nil {
		t.Fatal(err)
	}
	if recs, err := open("/issued/", true).Issued(ctx); err == nil {
		t.Errorf("Issued with unreadable records: %d records and no error", len(recs))
	}
}

package registry

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

// cheapArgon keeps the tests fast: the PHC format is the same, only the
// cost differs. TestHashFormat checks the production parameters.
var cheapArgon = argonParams{memory: 64, time: 1, threads: 1}

// strong is a password that satisfies DefaultPolicy.
const strong = "ComplexPassword123!"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newClock() *clock {
	return &clock{t: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)}
}

func newTestRegistry(t testing.TB) (*Registry, *clock) {
	t.Helper()
	c := newClock()
	p := cheapArgon
	return &Registry{
		Storage: &certmagic.FileStorage{Path: t.TempDir()},
		Now:     c.Now,
		argon:   &p,
	}, c
}

func ptr[T any](v T) *T { return &v }

func mustCreate(t testing.TB, r *Registry, in Input) Partner {
	t.Helper()
	p, err := r.Create(context.Background(), in)
	if err != nil {
		t.Fatalf("Create(%v): %v", in, err)
	}
	return p
}

func newCert(t testing.TB, cn string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Bank XYZ"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func wantValidation(t *testing.T, err error, field string) *ValidationError {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want *ValidationError on %s, got %v", field, err)
	}
	if ve.Field != field {
		t.Fatalf("want ValidationError on field %q, got %q (%v)", field, ve.Field, ve)
	}
	return ve
}

func wantReason(t *testing.T, err error, reason AuthReason) {
	t.Helper()
	var ae *AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("want *AuthError %s, got %v", reason, err)
	}
	if ae.Reason != reason {
		t.Fatalf("want reason %s, got %s (%v)", reason, ae.Reason, ae)
	}
	if !errors.Is(err, &AuthError{Reason: reason}) {
		t.Fatalf("errors.Is does not match reason %s", reason)
	}
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

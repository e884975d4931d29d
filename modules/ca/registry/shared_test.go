package registry

import (
	"context"
	"net/netip"
	"slices"
	"testing"
)

// OnChange hears of every stored change, and only of those; a gateway told
// of a change elsewhere empties its verification cache.
func TestOnChangeAndForgetAuthentications(t *testing.T) {
	r, _ := newTestRegistry(t)
	var changed []string
	r.OnChange = func(_ context.Context, id string) { changed = append(changed, id) }
	ctx := context.Background()
	const pw = "Partner-Pass-2024!"
	if _, err := r.Create(ctx, Input{PartnerID: ptr("P1"), Password: ptr(pw)}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Create(ctx, Input{PartnerID: ptr("P1"), Password: ptr(pw)}); err == nil {
		t.Fatal("second create succeeded")
	}
	if _, err := r.Update(ctx, "P1", Input{Enabled: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Update(ctx, "P1", Input{MaxConnections: ptr(-1)}); err == nil {
		t.Fatal("invalid update succeeded")
	}
	if err := r.Delete(ctx, "NOBODY"); err == nil {
		t.Fatal("deleting an unknown partner succeeded")
	}
	if _, err := r.Create(ctx, Input{PartnerID: ptr("P2"), Password: ptr(pw)}); err != nil {
		t.Fatal(err)
	}
	if err := r.Delete(ctx, "P1"); err != nil {
		t.Fatal(err)
	}
	if want := []string{"P1", "P1", "P2", "P1"}; !slices.Equal(changed, want) {
		t.Fatalf("OnChange heard %v, want %v", changed, want)
	}

	req := AuthRequest{PartnerID: "P2", Passwords: []string{pw}, RemoteIP: netip.MustParseAddr("192.0.2.1")}
	auth := func() int64 {
		t.Helper()
		before := r.hashes.Load()
		if _, err := r.Authenticate(ctx, req); err != nil {
			t.Fatal(err)
		}
		return r.hashes.Load() - before
	}
	auth()
	if n := auth(); n != 0 {
		t.Fatalf("a repeated authentication hashed %d times, want a cache hit", n)
	}
	r.ForgetAuthentications()
	if n := auth(); n != 1 {
		t.Fatalf("after ForgetAuthentications, authentication hashed %d times, want 1", n)
	}
}

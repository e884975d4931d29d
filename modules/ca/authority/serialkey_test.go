package authority

import (
	"context"
	"crypto/elliptic"
	"math/big"
	"math/rand/v2"
	"testing"
	"time"
)

func TestAppendSerialString(t *testing.T) {
	serials := []*big.Int{
		big.NewInt(0), big.NewInt(1), big.NewInt(0xf), big.NewInt(0x10), big.NewInt(0xabc), big.NewInt(-0xabc),
		new(big.Int).Lsh(big.NewInt(1), 8*maxKeySerialBytes-1),
		new(big.Int).Lsh(big.NewInt(1), 8*maxKeySerialBytes),
		new(big.Int).Lsh(big.NewInt(1), 8*maxKeySerialBytes+5),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		b := make([]byte, 1+rng.IntN(40))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		b[0] >>= rng.UintN(8)
		serials = append(serials, new(big.Int).SetBytes(b))
	}
	for _, n := range serials {
		if got, want := string(appendSerialString([]byte("x"), n)), "x"+SerialString(n); got != want {
			t.Errorf("appendSerialString(%x) = %q, want %q", n, got, want)
		}
	}
}

// TestIsRevokedAllocatesNothing: the check answers from memory for every
// PSD2 request and handshake, without building the serial's string.
func TestIsRevokedAllocatesNothing(t *testing.T) {
	a, _ := newCA(t, func(c *Config) { c.RevocationRefresh = time.Hour })
	ctx := context.Background()
	pub := mustECDSA(t, elliptic.P256()).Public()
	revoked, good := issue(t, a, pub, "revoked", time.Hour), issue(t, a, pub, "good", time.Hour)
	if _, err := a.Revoke(ctx, revoked.SerialNumber, 1); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		r1, err1 := a.IsRevoked(ctx, revoked.SerialNumber)
		r2, err2 := a.IsRevoked(ctx, good.SerialNumber)
		if !r1 || r2 || err1 != nil || err2 != nil {
			t.Fatalf("IsRevoked: revoked %v %v, good %v %v", r1, err1, r2, err2)
		}
	})
	if allocs != 0 {
		t.Errorf("IsRevoked: %.1f allocations per pair of checks, want 0", allocs)
	}
}

package authority

import (
	"context"
	"crypto"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
	"time"
)

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
}

// BenchmarkIssue measures Issue: signing plus the inventory write to a
// FileStorage. Leaf keys are made beforehand.
func BenchmarkIssue(b *testing.B) {
	rsaLeaf, _ := testRSAKeys(b)
	leaves := []struct {
		name string
		pub  crypto.PublicKey
	}{
		{"ecdsa-leaf", mustECDSA(b, elliptic.P256()).Public()},
		{"rsa-2048-leaf", rsaLeaf.Public()},
	}
	for _, ca := range []struct {
		name string
		kt   KeyType
	}{{"ecdsa-p256-ca", ECDSAP256}, {"rsa-3072-ca", RSA3072}} {
		b.Run(ca.name, func(b *testing.B) {
			a, _ := newCA(b, func(c *Config) { c.KeyType = ca.kt })
			for _, leaf := range leaves {
				b.Run(leaf.name, func(b *testing.B) {
					ctx := context.Background()
					req := Request{PublicKey: leaf.pub, Template: &x509.Certificate{Subject: pkix.Name{CommonName: "bench.example.com"}},
						Purpose: PurposeClient, Validity: 365 * 24 * time.Hour, PartnerID: "BENCH", IssuedBy: "bench"}
					b.ReportAllocs()
					for b.Loop() {
						if _, err := a.Issue(ctx, req); err != nil {
							b.Fatal(err)
						}
					}
					reportRate(b)
				})
			}
		})
	}
}

// BenchmarkGenerate measures Generate: holder key generation, signing and
// the inventory write, on an ECDSA P-256 CA.
func BenchmarkGenerate(b *testing.B) {
	a, _ := newCA(b, nil)
	for _, kt := range []KeyType{ECDSAP256, RSA2048} {
		b.Run(string(kt), func(b *testing.B) {
			ctx := context.Background()
			req := Request{Template: &x509.Certificate{Subject: pkix.Name{CommonName: "bank-xyz.example.com"}},
				Purpose: PurposeClient, Validity: 365 * 24 * time.Hour, PartnerID: "BANK_XYZ"}
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := a.Generate(ctx, kt, req); err != nil {
					b.Fatal(err)
				}
			}
			reportRate(b)
		})
	}
}

// BenchmarkIsRevoked measures the per-handshake check answered from memory.
func BenchmarkIsRevoked(b *testing.B) {
	a, _ := newCA(b, func(c *Config) { c.RevocationRefresh = time.Hour })
	ctx := context.Background()
	cert := issue(b, a, mustECDSA(b, elliptic.P256()).Public(), "revoked", time.Hour)
	if _, err := a.Revoke(ctx, cert.SerialNumber, 1); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if r, err := a.IsRevoked(ctx, cert.SerialNumber); err != nil || !r {
			b.Fatalf("IsRevoked = %v, %v", r, err)
		}
	}
}

package authority

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"testing"
	"time"
)

// TestCRLEncodingMatchesX509: the CRL signCRL splices together is, but
// for its (randomised) signature, the one x509.CreateRevocationList makes
// of the same revocations: the same bytes to be signed, for CA keys of
// every type, every reason, serials with the high bit set and times on
// both sides of the UTCTime range.
func TestCRLEncodingMatchesX509(t *testing.T) {
	t.Parallel()
	big127 := new(big.Int).Lsh(big.NewInt(1), 127)
	var revs []Revocation
	times := []time.Time{
		time.Date(1949, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(2049, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(2050, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Now().Truncate(time.Second),
		time.Now().Add(-time.Hour), // sub-second part, another zone
	}
	for i, reason := range []int{0, 1, 2, 3, 4, 5, 6, 9, 10} {
		for j, at := range times {
			n, _ := rand.Int(rand.Reader, big127)
			if (i+j)%2 == 0 {
				n.SetBit(n, 127, 1) // a leading 0x00 in DER
			}
			if i == 0 && j == 0 {
				n = big.NewInt(1)
			}
			revs = append(revs, Revocation{Serial: SerialString(n), RevokedAt: at.In(time.FixedZone("X", 3600*(j-2))), Reason: reason})
		}
	}
	revs = append(revs, Revocation{Serial: "not a serial", RevokedAt: time.Now(), Reason: 1})
	for _, kt := range []KeyType{ECDSAP256, ECDSAP384, RSA3072} {
		t.Run(string(kt), func(t *testing.T) {
			a, _ := newCA(t, func(c *Config) { c.KeyType = kt })
			now := time.Now().UTC()
			number := big.NewInt(1<<40 + 7)
			for _, list := range [][]Revocation{nil, revs[:1], revs} {
				// Part of the list sealed, whose encoding is kept.
				k := len(list) / 3
				state := revocationState{sealed: &sealedRevocations{list: list[:k]}, head: list[k:]}
				der, n, err := a.signCRL(number, now, now.Add(24*time.Hour), state)
				if err != nil {
					t.Fatal(err)
				}
				got, err := x509.ParseRevocationList(der)
				if err != nil {
					t.Fatalf("ParseRevocationList: %v", err)
				}
				if err := got.CheckSignatureFrom(a.Certificate()); err != nil {
					t.Fatalf("signature: %v", err)
				}
				want := len(list)
				if want > 1 {
					want-- // the unparsable serial
				}
				if n != want || len(got.RevokedCertificateEntries) != want {
					t.Fatalf("%d entries reported, %d in the CRL, want %d", n, len(got.RevokedCertificateEntries), want)
				}
				tmpl := &x509.RevocationList{Number: number, ThisUpdate: now, NextUpdate: now.Add(24 * time.Hour)}
				ref, _, err := a.signCRLSlowly(tmpl, list)
				if err != nil {
					t.Fatal(err)
				}
				refList, err := x509.ParseRevocationList(ref)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got.RawTBSRevocationList, refList.RawTBSRevocationList) {
					t.Fatalf("the list to be signed differs from crypto/x509's (%d entries)", len(list))
				}
			}
		})
	}
}

// BenchmarkSignCRL compares signCRL with crypto/x509 alone for a CRL of
// 10,000 revocations.
func BenchmarkSignCRL(b *testing.B) {
	a, _ := newCA(b, nil)
	revs := make([]Revocation, 10_000)
	big127 := new(big.Int).Lsh(big.NewInt(1), 127)
	for i := range revs {
		n, _ := rand.Int(rand.Reader, big127)
		revs[i] = Revocation{Serial: SerialString(n.Add(n, big.NewInt(1))), RevokedAt: time.Now().Truncate(time.Second), Reason: i % 6}
	}
	now := time.Now()
	b.Run("spliced", func(b *testing.B) {
		state := revocationState{sealed: &sealedRevocations{list: revs[:9_000]}, head: revs[9_000:]}
		for b.Loop() {
			if _, _, err := a.signCRL(big.NewInt(2), now, now.Add(time.Hour), state); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("spliced-uncached", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := a.signCRL(big.NewInt(2), now, now.Add(time.Hour), revocationState{head: revs}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("x509", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := a.signCRLSlowly(&x509.RevocationList{Number: big.NewInt(2), ThisUpdate: now, NextUpdate: now.Add(time.Hour)}, revs); err != nil {
				b.Fatal(err)
			}
		}
	})
}

package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/bankedge/bankedge/modules/ca/authority"
)

// BenchmarkVerifyClientCertificate is the verifier's cost per TLS
// handshake once a certificate's purpose is cached: the signature check,
// the in-memory revocation set and the purpose cache.
func BenchmarkVerifyClientCertificate(b *testing.B) {
	ctx := context.Background()
	auth, _, err := authority.Open(ctx, authority.Config{Storage: &certmagic.FileStorage{Path: b.TempDir()}, Passphrase: []byte("bench-passphrase")}, true)
	if err != nil {
		b.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	issue := func(p authority.Purpose) []byte {
		cert, err := auth.Issue(ctx, authority.Request{PublicKey: key.Public(), Template: &x509.Certificate{Subject: pkix.Name{CommonName: "bench"}, DNSNames: []string{"bench.example"}},
			Purpose: p, Validity: time.Hour, PartnerID: "P"})
		if err != nil {
			b.Fatal(err)
		}
		return cert.Raw
	}
	v := &Verifier{app: &App{authority: auth}, purposes: []authority.Purpose{authority.PurposeClient}}
	v.cache.init(purposeCacheSize)
	for _, c := range []struct {
		name string
		raw  []byte
		ok   bool
	}{{"client", issue(authority.PurposeClient), true}, {"server refused", issue(authority.PurposeServer), false}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if err := v.VerifyClientCertificate([][]byte{c.raw}, nil); (err == nil) != c.ok {
					b.Fatal(err)
				}
			}
		})
	}
}

// Package testjwt is a small identity provider for tests: keys made at test
// time, their JWKS, and tokens signed with them, including the malformed
// and hostile ones a verifier must refuse.
package testjwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Key is a signing key with its key id and algorithm.
type Key struct {
	ID        string
	Algorithm jose.SignatureAlgorithm
	Private   crypto.Signer
}

// NewRSA makes an RS256 key (2048 bits).
func NewRSA(t testing.TB, kid string) Key {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return Key{ID: kid, Algorithm: jose.RS256, Private: k}
}

// NewEC makes an ES256 key.
func NewEC(t testing.TB, kid string) Key {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return Key{ID: kid, Algorithm: jose.ES256, Private: k}
}

// JWKS returns the public JWKS of keys.
func JWKS(t testing.TB, keys ...Key) []byte {
	t.Helper()
	set := jose.JSONWebKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.Private.Public(), KeyID: k.ID, Algorithm: string(k.Algorithm), Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Claims are the claims of a test token; Extra is merged in.
type Claims struct {
	Issuer    string
	Subject   string
	Audience  []string
	Expiry    time.Time
	NotBefore time.Time
	Extra     map[string]any
}

// Valid returns claims that a verifier expecting iss and aud accepts, for
// sub, valid for an hour.
func Valid(iss, aud, sub string) Claims {
	return Claims{Issuer: iss, Subject: sub, Audience: []string{aud}, Expiry: time.Now().Add(time.Hour)}
}

func (c Claims) payload() map[string]any {
	m := map[string]any{}
	for k, v := range c.Extra {
		m[k] = v
	}
	std := jwt.Claims{Issuer: c.Issuer, Subject: c.Subject, Audience: c.Audience, IssuedAt: jwt.NewNumericDate(time.Now().Add(-time.Minute))}
	if !c.Expiry.IsZero() {
		std.Expiry = jwt.NewNumericDate(c.Expiry)
	}
	if !c.NotBefore.IsZero() {
		std.NotBefore = jwt.NewNumericDate(c.NotBefore)
	}
	b, _ := json.Marshal(std)
	_ = json.Unmarshal(b, &m)
	return m
}

// Sign signs c with k.
func Sign(t testing.TB, k Key, c Claims) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Algorithm, Key: jose.JSONWebKey{Key: k.Private, KeyID: k.ID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.Signed(sig).Claims(c.payload()).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Unsigned returns c as an "alg":"none" token naming key id kid.
func Unsigned(t testing.TB, kid string, c Claims) string {
	t.Helper()
	return compact(t, map[string]any{"alg": "none", "typ": "JWT", "kid": kid}, c, func([]byte) []byte { return nil })
}

// HMACWithPublicKey returns c signed with HS256 using the PEM of k's public
// key as the shared secret: the classic confusion attack on verifiers that
// let the token choose the algorithm.
func HMACWithPublicKey(t testing.TB, k Key, c Claims) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(k.Private.Public())
	if err != nil {
		t.Fatal(err)
	}
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	return compact(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": k.ID}, c, func(in []byte) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write(in)
		return m.Sum(nil)
	})
}

func compact(t testing.TB, header map[string]any, c Claims, sign func([]byte) []byte) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	p, err := json.Marshal(c.payload())
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding
	in := enc.EncodeToString(h) + "." + enc.EncodeToString(p)
	return in + "." + enc.EncodeToString(sign([]byte(in)))
}

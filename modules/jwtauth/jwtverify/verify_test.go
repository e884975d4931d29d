package jwtverify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/bankedge/bankedge/internal/testjwt"
)

const (
	iss = "https://idp.bank.example"
	aud = "bankedge-admin"
)

func newVerifier(f Fetcher) *Verifier {
	return &Verifier{Keys: &KeySet{Fetch: f, MinRefetchInterval: time.Nanosecond}, Issuer: iss, Audiences: []string{aud}}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	// Write then rename, as a deployment would, so a reader never sees half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// refusal asserts that err is a refusal whose text contains want.
func refusal(t *testing.T, name string, err error, want string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Errorf("%s: got %v, want a refusal", name, err)
		return
	}
	if !strings.Contains(e.Description, want) {
		t.Errorf("%s: refusal %q, want it to say %q", name, e.Description, want)
	}
}

func TestVerifyTokens(t *testing.T) {
	rsaKey, ecKey, other := testjwt.NewRSA(t, "rsa-1"), testjwt.NewEC(t, "ec-1"), testjwt.NewRSA(t, "rsa-1")
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	writeFile(t, jwks, testjwt.JWKS(t, rsaKey, ecKey))
	v := newVerifier(FileFetcher(jwks))
	ctx := context.Background()

	valid := testjwt.Valid(iss, aud, "alice")
	valid.Extra = map[string]any{"roles": []string{"security_admin", "auditor"}}
	for _, k := range []testjwt.Key{rsaKey, ecKey} {
		id, err := v.Verify(ctx, testjwt.Sign(t, k, valid))
		if err != nil {
			t.Fatalf("%s: valid token refused: %v", k.Algorithm, err)
		}
		if id.Subject != "alice" || strings.Join(id.Roles, " ") != "security_admin auditor" {
			t.Fatalf("%s: identity %+v", k.Algorithm, id)
		}
	}

	// Without a key id (go-jose's signer sets none unless told), the keys
	// of the set that fit the algorithm are tried.
	for _, k := range []testjwt.Key{rsaKey, ecKey} {
		k.ID = ""
		if _, err := v.Verify(ctx, testjwt.Sign(t, k, valid)); err != nil {
			t.Fatalf("%s without kid: valid token refused: %v", k.Algorithm, err)
		}
	}
	stranger := testjwt.NewEC(t, "")
	if _, err := v.Verify(ctx, testjwt.Sign(t, stranger, valid)); err == nil || !strings.Contains(err.Error(), "signature does not verify") {
		t.Fatalf("a token without kid by a key outside the set: %v", err)
	}

	mod := func(f func(*testjwt.Claims)) testjwt.Claims {
		c := testjwt.Valid(iss, aud, "alice")
		f(&c)
		return c
	}
	for _, tc := range []struct {
		name, token, want string
	}{
		{"expired", testjwt.Sign(t, rsaKey, mod(func(c *testjwt.Claims) { c.Expiry = time.Now().Add(-2 * time.Minute) })), "expired"},
		{"not yet valid", testjwt.Sign(t, ecKey, mod(func(c *testjwt.Claims) { c.NotBefore = time.Now().Add(5 * time.Minute) })), "not valid yet"},
		{"no expiry", testjwt.Sign(t, rsaKey, mod(func(c *testjwt.Claims) { c.Expiry = time.Time{} })), "no expiry"},
		{"wrong audience", testjwt.Sign(t, rsaKey, mod(func(c *testjwt.Claims) { c.Audience = []string{"payments"} })), "audience"},
		{"wrong issuer", testjwt.Sign(t, ecKey, mod(func(c *testjwt.Claims) { c.Issuer = "https://evil.example" })), "issuer"},
		{"no subject", testjwt.Sign(t, rsaKey, mod(func(c *testjwt.Claims) { c.Subject = "" })), "subject"},
		{"alg none", testjwt.Unsigned(t, "rsa-1", valid), "algorithm"},
		{"HMAC with the public key", testjwt.HMACWithPublicKey(t, rsaKey, valid), "algorithm"},
		{"unknown kid", testjwt.Sign(t, testjwt.NewEC(t, "ec-unknown"), valid), "key id"},
		{"right kid, other key", testjwt.Sign(t, other, valid), "signature does not verify"},
		{"bad roles claim", testjwt.Sign(t, rsaKey, mod(func(c *testjwt.Claims) { c.Extra = map[string]any{"roles": 7} })), "roles claim"},
		{"garbage", "not.a.token", "not a signed JWT"},
		{"huge", strings.Repeat("a", MaxTokenSize+1), "larger"},
	} {
		_, err := v.Verify(ctx, tc.token)
		refusal(t, tc.name, err, tc.want)
	}

	// Allowed skew: expired 10 s ago is still fine with the default 30 s.
	if _, err := v.Verify(ctx, testjwt.Sign(t, rsaKey, mod(func(c *testjwt.Claims) { c.Expiry = time.Now().Add(-10 * time.Second) }))); err != nil {
		t.Fatalf("token within the clock skew refused: %v", err)
	}
	// An algorithm allow-list narrower than the default refuses the rest.
	strict := *v
	strict.Algorithms = []jose.SignatureAlgorithm{jose.ES256}
	_, err := strict.Verify(ctx, testjwt.Sign(t, rsaKey, valid))
	refusal(t, "RS256 when only ES256 is allowed", err, "algorithm")
}

func TestRolesClaimShapes(t *testing.T) {
	for _, tc := range []struct {
		claims string
		name   string
		want   string
		err    bool
	}{
		{`{"roles":["a","b"]}`, "", "a b", false},
		{`{"roles":"a  b"}`, "roles", "a b", false},
		{`{}`, "roles", "", false},
		{`{"realm_access":{"roles":["auditor"]}}`, "realm_access.roles", "auditor", false},
		{`{"realm_access":"x"}`, "realm_access.roles", "", false},
		{`{"roles":{"a":1}}`, "roles", "", true},
		{`{"roles":[1]}`, "roles", "", true},
	} {
		var m map[string]any
		if err := json.Unmarshal([]byte(tc.claims), &m); err != nil {
			t.Fatal(err)
		}
		got, err := Roles(m, tc.name)
		if (err != nil) != tc.err || strings.Join(got, " ") != tc.want {
			t.Errorf("Roles(%s, %q) = %q, %v", tc.claims, tc.name, got, err)
		}
	}
}

func TestKeyRotationOverHTTP(t *testing.T) {
	oldKey, newKey := testjwt.NewRSA(t, "2024"), testjwt.NewEC(t, "2025")
	var current atomic.Value
	current.Store(testjwt.JWKS(t, oldKey))
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(current.Load().([]byte))
	}))
	defer srv.Close()
	f, err := HTTPFetcher(srv.URL+"/jwks", srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	v := newVerifier(f)
	v.Keys.MinRefetchInterval = time.Hour
	ctx := context.Background()
	claims := testjwt.Valid(iss, aud, "svc")
	if _, err := v.Verify(ctx, testjwt.Sign(t, oldKey, claims)); err != nil {
		t.Fatal(err)
	}
	// The provider rotates; a token with the new kid right after the first
	// fetch is refused while refetches are rate-limited…
	current.Store(testjwt.JWKS(t, newKey))
	_, err = v.Verify(ctx, testjwt.Sign(t, newKey, claims))
	refusal(t, "new kid within the refetch interval", err, "key id")
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1: unknown key ids must not cause a fetch each", n)
	}
	// …and accepted once a refetch is allowed, without waiting for the
	// periodic refresh.
	v.Keys.MinRefetchInterval = time.Nanosecond
	if _, err := v.Verify(ctx, testjwt.Sign(t, newKey, claims)); err != nil {
		t.Fatalf("rotated key not picked up: %v", err)
	}
	_, err = v.Verify(ctx, testjwt.Sign(t, oldKey, claims))
	refusal(t, "retired key", err, "key id")
}

func TestRefreshFailureKeepsKeys(t *testing.T) {
	k := testjwt.NewEC(t, "k")
	var fail atomic.Bool
	now := time.Now()
	clock := func() time.Time { return now }
	ks := &KeySet{Now: clock, RefreshInterval: time.Minute, MinRefetchInterval: time.Nanosecond,
		Fetch: func(context.Context) ([]byte, error) {
			if fail.Load() {
				return nil, errors.New("idp down")
			}
			return testjwt.JWKS(t, k), nil
		}}
	v := &Verifier{Keys: ks, Issuer: iss, Audiences: []string{aud}}
	tok := testjwt.Sign(t, k, testjwt.Valid(iss, aud, "svc"))
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	fail.Store(true)
	now = now.Add(2 * time.Minute)
	if err := ks.refresh(context.Background()); err == nil {
		t.Fatal("refresh should have failed")
	}
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("keys lost after a failed refresh: %v", err)
	}
}

func TestParseJWKS(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := json.Marshal(jose.JSONWebKey{Key: ec.Public(), KeyID: "ec", Use: "sig"})
	enc, _ := json.Marshal(jose.JSONWebKey{Key: ec.Public(), KeyID: "enc", Use: "enc"})
	priv, _ := json.Marshal(jose.JSONWebKey{Key: ec, KeyID: "leak"})
	oct := `{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0","kid":"hmac"}`
	odd := `{"kty":"XYZ","kid":"future"}`

	keys, err := ParseJWKS([]byte(`{"keys":[` + oct + `,` + odd + `,` + string(enc) + `,` + string(pub) + `]}`))
	if err != nil || len(keys) != 1 || keys[0].KeyID != "ec" {
		t.Fatalf("keys %v, %v: want only the EC signature key", keys, err)
	}
	if _, err := ParseJWKS([]byte(`{"keys":[` + string(priv) + `]}`)); err == nil || !strings.Contains(err.Error(), "private") {
		t.Fatalf("a JWKS with a private key: %v", err)
	}
	if _, err := ParseJWKS([]byte(`{"keys":[` + oct + `]}`)); err == nil {
		t.Fatal("a JWKS of only a symmetric key was accepted")
	}
	if _, err := ParseJWKS([]byte(`[]`)); err == nil {
		t.Fatal("not an object")
	}
}

func TestFetchBounds(t *testing.T) {
	if _, err := HTTPFetcher("http://idp.example/jwks", http.DefaultClient); err == nil {
		t.Fatal("http to a non-loopback host was accepted")
	}
	if _, err := HTTPFetcher("ftp://idp.example/jwks", http.DefaultClient); err == nil {
		t.Fatal("ftp was accepted")
	}
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"keys":[` + strings.Repeat(" ", MaxJWKSSize) + `]}`))
	}))
	defer big.Close()
	f, _ := HTTPFetcher(big.URL, big.Client())
	if _, err := f(context.Background()); err == nil || !strings.Contains(err.Error(), "larger") {
		t.Fatalf("oversized JWKS: %v", err)
	}
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://idp.example/jwks", http.StatusFound)
	}))
	defer redirect.Close()
	f, _ = HTTPFetcher(redirect.URL, redirect.Client())
	if _, err := f(context.Background()); err == nil {
		t.Fatal("a redirect to plain http elsewhere was followed")
	}
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer slow.Close()
	f, _ = HTTPFetcher(slow.URL, slow.Client())
	ks := &KeySet{Fetch: f, FetchTimeout: 50 * time.Millisecond}
	if _, err := ks.Keys(context.Background(), "x"); err == nil {
		t.Fatal("a hanging JWKS endpoint did not time out")
	}
}

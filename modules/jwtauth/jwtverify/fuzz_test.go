package jwtverify

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/bankedge/bankedge/internal/testjwt"
)

// FuzzVerify feeds arbitrary bearer tokens to a verifier with a real key
// set: nothing may panic, and nothing but the tokens signed by the set's
// keys may pass.
func FuzzVerify(f *testing.F) {
	k := testjwt.NewEC(f, "k1")
	jwks := testjwt.JWKS(f, k)
	v := &Verifier{Keys: &KeySet{Fetch: func(context.Context) ([]byte, error) { return jwks, nil }, RefreshInterval: time.Hour, MinRefetchInterval: time.Hour},
		Issuer: iss, Audiences: []string{aud}}
	good := testjwt.Sign(f, k, testjwt.Valid(iss, aud, "alice"))
	f.Add(good)
	f.Add(testjwt.Unsigned(f, "k1", testjwt.Valid(iss, aud, "alice")))
	f.Add(testjwt.HMACWithPublicKey(f, k, testjwt.Valid(iss, aud, "alice")))
	f.Add("eyJhbGciOiJFUzI1NiJ9..")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		id, err := v.Verify(context.Background(), token)
		if err == nil && token != good {
			// A different string may still be the same token (base64
			// padding bits); it must then carry the same identity.
			if id.Subject != "alice" {
				t.Fatalf("forged token accepted: %q → %+v", token, id)
			}
		}
	})
}

// FuzzParseJWKS: arbitrary key set documents never panic, and what is
// accepted is only public signature keys.
func FuzzParseJWKS(f *testing.F) {
	f.Add(testjwt.JWKS(f, testjwt.NewEC(f, "a")))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"AAAA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"","y":""}]}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := ParseJWKS(b)
		if err != nil {
			return
		}
		for _, k := range keys {
			if !k.IsPublic() || !usableKey(k.Key) {
				t.Fatalf("unusable key accepted: %#v", k)
			}
		}
	})
}

// FuzzRoles: any claims document gives roles or an error, never a panic.
func FuzzRoles(f *testing.F) {
	f.Add([]byte(`{"roles":["a","b"]}`), "roles")
	f.Add([]byte(`{"realm_access":{"roles":"x y"}}`), "realm_access.roles")
	f.Add([]byte(`{"roles":[null]}`), "roles")
	f.Fuzz(func(t *testing.T, b []byte, name string) {
		var m map[string]any
		if json.Unmarshal(b, &m) != nil {
			return
		}
		roles, err := Roles(m, name)
		if err == nil && len(roles) > maxRoles {
			t.Fatalf("%d roles", len(roles))
		}
	})
}

package jwtauth_test

import (
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bankedge/bankedge/internal/testcaddy"
	"github.com/bankedge/bankedge/internal/testjwt"
	_ "github.com/bankedge/bankedge/modules/jwtauth"
)

func TestMain(m *testing.M) { os.Exit(testcaddy.Main(m)) }

const (
	issuer   = "https://idp.bank.example/realms/ops"
	audience = "bankedge-admin"
)

type site struct{ url string }

// get sends a request with the given Authorization header (none when
// empty) and returns status, the challenge and the body.
func (s site) get(t *testing.T, authz string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.url+"/whoami", nil)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), string(b)
}

// TestJWTAuthInCaddy runs jwt_auth in a real Caddy: one site with the JWKS
// served over HTTPS by a local identity provider that rotates its keys,
// one with the JWKS in a file.
func TestJWTAuthInCaddy(t *testing.T) {
	dir := t.TempDir()
	rsaKey, ecKey, nextKey := testjwt.NewRSA(t, "rsa-2025"), testjwt.NewEC(t, "ec-2025"), testjwt.NewEC(t, "ec-2026")

	var jwks atomic.Value
	jwks.Store(testjwt.JWKS(t, rsaKey, ecKey))
	idp := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(jwks.Load().([]byte))
	}))
	defer idp.Close()
	idpCA := filepath.Join(dir, "idp-ca.pem")
	if err := os.WriteFile(idpCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: idp.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	jwksFile := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwksFile, testjwt.JWKS(t, ecKey), 0o600); err != nil {
		t.Fatal(err)
	}

	urlSite, fileSite := site{fmt.Sprintf("http://127.0.0.1:%d", testcaddy.FreePort(t))}, site{fmt.Sprintf("http://127.0.0.1:%d", testcaddy.FreePort(t))}
	testcaddy.Load(t, testcaddy.Globals(filepath.Join(dir, "storage"), "")+fmt.Sprintf(`
%s {
	jwt_auth {
		jwks        %s/jwks
		jwks_ca     %s
		issuer      %s
		audience    %s
		roles_claim roles
		min_refetch 1ns
	}
	respond "{http.auth.user.id}|{http.auth.user.roles}"
	handle_errors 401 {
		respond "refused: {http.auth.jwt.error}" 401
	}
}
%s {
	jwt_auth {
		jwks        %s
		issuer      %s
		audience    other-api %s
		roles_claim realm_access.roles
	}
	respond "{http.auth.user.id}|{http.auth.user.roles}"
}
`, urlSite.url, idp.URL, idpCA, issuer, audience, fileSite.url, jwksFile, issuer, audience))

	claims := testjwt.Valid(issuer, audience, "alice")
	claims.Extra = map[string]any{"roles": []string{"security_admin", "auditor"}, "realm_access": map[string]any{"roles": "partner_admin"}}
	for _, tc := range []struct {
		site site
		key  testjwt.Key
		want string
	}{
		{urlSite, rsaKey, "alice|security_admin auditor"},
		{urlSite, ecKey, "alice|security_admin auditor"},
		{fileSite, ecKey, "alice|partner_admin"},
	} {
		status, _, body := tc.site.get(t, "Bearer "+testjwt.Sign(t, tc.key, claims))
		if status != http.StatusOK || body != tc.want {
			t.Fatalf("%s %s: %d %q, want 200 %q", tc.site.url, tc.key.Algorithm, status, body, tc.want)
		}
	}
	// A token without the roles claim sets no roles placeholder (respond
	// leaves an unknown placeholder as written): its roles are the
	// configuration's, as a basic_auth user's are. An empty claim sets an
	// empty one: no roles.
	if status, _, body := urlSite.get(t, "Bearer "+testjwt.Sign(t, ecKey, testjwt.Valid(issuer, audience, "svc"))); status != 200 || body != "svc|{http.auth.user.roles}" {
		t.Fatalf("token without roles: %d %q", status, body)
	}
	empty := testjwt.Valid(issuer, audience, "svc")
	empty.Extra = map[string]any{"roles": []string{}}
	if status, _, body := urlSite.get(t, "Bearer "+testjwt.Sign(t, ecKey, empty)); status != 200 || body != "svc|" {
		t.Fatalf("token with an empty roles claim: %d %q", status, body)
	}

	mod := func(f func(*testjwt.Claims)) testjwt.Claims {
		c := testjwt.Valid(issuer, audience, "alice")
		f(&c)
		return c
	}
	for _, tc := range []struct {
		name, authz, wantErr string
		missing              bool
	}{
		{"no header", "", "a bearer token is required", true},
		{"basic credentials", "Basic YWRtaW46YWRtaW4=", "a bearer token is required", true},
		{"expired", "Bearer " + testjwt.Sign(t, rsaKey, mod(func(c *testjwt.Claims) { c.Expiry = time.Now().Add(-time.Hour) })), "the token has expired", false},
		{"wrong audience", "Bearer " + testjwt.Sign(t, ecKey, mod(func(c *testjwt.Claims) { c.Audience = []string{"payments-api"} })), "the token's audience is not accepted", false},
		{"wrong issuer", "Bearer " + testjwt.Sign(t, rsaKey, mod(func(c *testjwt.Claims) { c.Issuer = "https://idp.evil.example" })), "the token's issuer is not accepted", false},
		{"alg none", "Bearer " + testjwt.Unsigned(t, "rsa-2025", claims), "the token's signature algorithm is not allowed", false},
		{"HMAC with the public key", "Bearer " + testjwt.HMACWithPublicKey(t, rsaKey, claims), "the token's signature algorithm is not allowed", false},
		{"unknown kid", "Bearer " + testjwt.Sign(t, testjwt.NewRSA(t, "rsa-rogue"), claims), "the token's key id is not in the key set", false},
		{"two tokens", "Bearer a b", "the Authorization header does not hold one bearer token", false},
	} {
		// No body of jwt_auth's own: the site's error handling writes it,
		// here from {http.auth.jwt.error}.
		status, challenge, body := urlSite.get(t, tc.authz)
		if status != http.StatusUnauthorized || body != "refused: "+tc.wantErr {
			t.Errorf("%s: %d %q, want 401 %q", tc.name, status, body, "refused: "+tc.wantErr)
		}
		wantChallenge := `Bearer realm="bankedge"`
		if !tc.missing {
			wantChallenge += `, error="invalid_token", error_description=` + fmt.Sprintf("%q", tc.wantErr)
		}
		if challenge != wantChallenge {
			t.Errorf("%s: WWW-Authenticate %q, want %q", tc.name, challenge, wantChallenge)
		}
	}

	// Key rotation: the provider publishes a new key and retires the RSA
	// one; the gateway picks it up on the first token that names it.
	jwks.Store(testjwt.JWKS(t, nextKey, ecKey))
	if status, _, body := urlSite.get(t, "Bearer "+testjwt.Sign(t, nextKey, claims)); status != http.StatusOK {
		t.Fatalf("token of the rotated-in key: %d %s", status, body)
	}
	if status, _, _ := urlSite.get(t, "Bearer "+testjwt.Sign(t, rsaKey, claims)); status != http.StatusUnauthorized {
		t.Fatalf("token of the retired key: %d, want 401", status)
	}
}

func TestJWTAuthConfigErrors(t *testing.T) {
	dir := t.TempDir()
	jwksFile := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwksFile, testjwt.JWKS(t, testjwt.NewEC(t, "k")), 0o600); err != nil {
		t.Fatal(err)
	}
	port := testcaddy.FreePort(t)
	for _, tc := range []struct{ body, want string }{
		{"jwks " + jwksFile + "\n audience a", "issuer is required"},
		{"jwks " + jwksFile + "\n issuer i", "audience is required"},
		{"issuer i\n audience a", "jwks is required"},
		{"jwks " + jwksFile + "\n issuer i\n audience a\n algorithms HS256", "not allowed"},
		{"jwks " + jwksFile + "\n issuer i\n audience a\n clock_skew 1h", "clock skew"},
		{"jwks http://idp.example/jwks\n issuer i\n audience a", "only https"},
	} {
		err := testcaddy.LoadError(t, testcaddy.Globals(filepath.Join(dir, "storage"), "")+fmt.Sprintf(`
http://127.0.0.1:%d {
	jwt_auth {
		%s
	}
	respond ok
}`, port, tc.body))
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.body, err, tc.want)
		}
	}
}

package ca

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bankedge/bankedge/internal/testcaddy"
	"github.com/bankedge/bankedge/internal/testjwt"
	"github.com/bankedge/bankedge/modules/ca/roles"
)

// apiRoutes are the endpoints with a request that reaches their handler.
var apiRoutes = []struct {
	method, path string
	needs        roles.Action
}{
	{"POST", "/api/v1/certificates/ca/initialize", roles.CAInitialize},
	{"GET", "/api/v1/certificates/ca/certificate", roles.CADownload},
	{"POST", "/api/v1/certificates/ca/csr", roles.CACSR},
	{"POST", "/api/v1/certificates/ca/sign", roles.CASign},
	{"POST", "/api/v1/certificates/ca/partner/NOBODY/generate", roles.CAGenerate},
	{"POST", "/api/v1/certificates/ca/psd2/tpp1/generate", roles.CAPSD2Generate},
	{"POST", "/api/v1/certificates/ca/verify", roles.CAVerify},
	{"GET", "/api/v1/certificates/ca/truststore?format=pem", roles.CADownload},
	{"GET", "/api/v1/certificates/ca/issued", roles.CAInventory},
	{"POST", "/api/v1/certificates/ca/revoke", roles.CARevoke},
	{"GET", "/api/v1/certificates/ca/crl", roles.CACRL},
	{"POST", "/api/v1/certificates/ca/crl/regenerate", roles.CARegenerateCRL},
	{"GET", "/api/v1/config/partners", roles.PartnerRead},
	{"POST", "/api/v1/config/partners", roles.PartnerWrite},
	{"GET", "/api/v1/config/partners/NOBODY", roles.PartnerRead},
	{"PUT", "/api/v1/config/partners/NOBODY", roles.PartnerWrite},
	{"DELETE", "/api/v1/config/partners/NOBODY", roles.PartnerWrite},
	{"GET", "/api/v1/audit", roles.AuditRead},
	{"GET", "/api/v1/metrics", roles.MetricsRead},
}

// TestAPIRoles: every endpoint refuses, with 403 in JSON and an audit line,
// exactly the users who hold none of the roles of the permission table.
func TestAPIRoles(t *testing.T) {
	s := startConsole(t)
	users := map[string]roles.Set{"alice": roles.Of(roles.SecurityAdmin), "bob": roles.Of(roles.PartnerAdmin), "dave": roles.Of(roles.Auditor), "eve": 0}
	for user, held := range users {
		c := s.client(t, user)
		for _, rt := range apiRoutes {
			var form url.Values
			if rt.method != "GET" && rt.method != "DELETE" {
				form = url.Values{}
			}
			p := c.do(rt.method, rt.path, form, map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
			allowed := held.Allows(rt.needs)
			if allowed == (p.status == http.StatusForbidden) {
				t.Errorf("%s %s %s: %d, allowed %v\n%s", user, rt.method, rt.path, p.status, allowed, p.body)
				continue
			}
			if allowed {
				continue
			}
			var body map[string]string
			if err := json.Unmarshal([]byte(p.body), &body); err != nil || body["requestId"] == "" ||
				!strings.Contains(body["error"], string(roles.Needed(rt.needs).Roles()[0])) {
				t.Errorf("%s %s %s: 403 body %s", user, rt.method, rt.path, p.body)
			}
			if !auditHas("", map[string]string{"user": user, "outcome": "forbidden", "request_id": body["requestId"], "roles": held.String(), "via": "api"}) {
				t.Errorf("%s %s %s: no audit line naming the user and its roles", user, rt.method, rt.path)
			}
		}
	}

	// What is allowed works, and its audit line names the roles used.
	bob := s.client(t, "bob")
	p := bob.doJSON("POST", "/api/v1/config/partners", `{"partnerId":"ROLES_P","password":"Valid-Partner-Pass-1"}`)
	if p.status != http.StatusCreated {
		t.Fatalf("partner_admin creating a partner: %d %s", p.status, p.body)
	}
	if !auditHas("partner.create", map[string]string{"user": "bob", "roles": "partner_admin", "outcome": "created", "partner": "ROLES_P", "via": "api"}) {
		t.Error("no audit line naming bob and partner_admin")
	}
	alice := s.client(t, "alice")
	p = alice.do("POST", "/api/v1/certificates/ca/partner/ROLES_P/generate", url.Values{"format": {"pem"}}, map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if p.status != http.StatusOK || p.header.Get("X-Keystore-Password") == "" {
		t.Fatalf("security_admin generating: %d %s", p.status, p.body)
	}
	if !auditHas("ca.generate", map[string]string{"user": "alice", "roles": "security_admin", "outcome": "issued", "partner": "ROLES_P", "via": "api"}) {
		t.Error("no issuance audit line naming alice and security_admin")
	}
	dave := s.client(t, "dave")
	if p := dave.get("/api/v1/audit?user=alice&action=ca.generate"); p.status != http.StatusOK || !strings.Contains(p.body, `"outcome":"issued"`) {
		t.Errorf("auditor reading the audit feed: %d %s", p.status, p.body)
	}
	if p := dave.get("/api/v1/metrics"); p.status != http.StatusOK || !strings.Contains(p.body, "bankedge_ca_issued_total") {
		t.Errorf("auditor reading the metrics: %d", p.status)
	}
}

// TestAPIJWTRoles: a token's roles claim grants its roles; the roles block
// adds more; audit lines name the token's subject.
func TestAPIJWTRoles(t *testing.T) {
	s := startConsole(t)
	for _, tc := range []struct {
		sub    string
		claim  []string
		path   string
		status int
	}{
		{"svc-pki", []string{"security_admin"}, "/api/v1/certificates/ca/issued", http.StatusOK},
		{"svc-pki", []string{"security_admin"}, "/api/v1/audit", http.StatusOK},
		{"svc-partners", []string{"partner_admin", "openid"}, "/api/v1/certificates/ca/issued", http.StatusForbidden},
		{"svc-none", nil, "/api/v1/config/partners", http.StatusForbidden},
		// Named auditor by the roles block of the JWT site.
		{"svc-audit", nil, "/api/v1/certificates/ca/issued", http.StatusOK},
		{"svc-audit", []string{"partner_admin"}, "/api/v1/config/partners/NOBODY", http.StatusNotFound},
	} {
		c := s.tokenClient(t, tc.sub, tc.claim)
		if p := c.get(tc.path); p.status != tc.status {
			t.Errorf("%s %v %s: %d, want %d\n%s", tc.sub, tc.claim, tc.path, p.status, tc.status, p.body)
		}
	}
	if !auditHas("ca.issued", map[string]string{"user": "svc-partners", "roles": "partner_admin", "outcome": "forbidden"}) {
		t.Error("the refusal's audit line does not name the token's subject and roles")
	}
}

// TestOneServiceForBothDoors: the checks of an operation hold whichever
// door it is reached through. The console once took any keystore password
// and a validity the API refused.
func TestOneServiceForBothDoors(t *testing.T) {
	s := startConsole(t)
	bob, alice := s.client(t, "bob"), s.client(t, "alice")
	if p := bob.doJSON("POST", "/api/v1/config/partners", `{"partnerId":"DOORS","password":"Valid-Partner-Pass-1"}`); p.status != http.StatusCreated {
		t.Fatalf("creating the partner: %d %s", p.status, p.body)
	}
	for _, tc := range []struct {
		name    string
		form    url.Values
		message string
	}{
		{"weak keystore password", url.Values{"partnerId": {"DOORS"}, "password": {"changeit"}}, "password: "},
		{"validity that overflows", url.Values{"partnerId": {"DOORS"}, "validityDays": {"999999999999"}}, "exceeds the maximum validity"},
		{"unknown partner", url.Values{"partnerId": {"NOBODY"}}, "not found"},
		{"a name the policy refuses", url.Values{"partnerId": {"DOORS"}, "commonName": {"x\u202ey"}}, "policy"},
	} {
		api := alice.do("POST", "/api/v1/certificates/ca/partner/"+tc.form.Get("partnerId")+"/generate", tc.form, map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
		if api.status/100 != 4 {
			t.Errorf("%s: API %d", tc.name, api.status)
		}
		form := url.Values{"csrf_token": {alice.token()}}
		for k, v := range tc.form {
			form[k] = v
		}
		ui := alice.post("/ui/certificates/generate", form)
		if ui.status != http.StatusUnprocessableEntity || !fieldError(ui.body, tc.message) || !strings.Contains(api.body, tc.message) {
			t.Errorf("%s: console %d, API %d %s\n%s", tc.name, ui.status, api.status, api.body, ui.body)
		}
	}
	if p := alice.get("/api/v1/certificates/ca/issued?partnerId=DOORS"); p.status != http.StatusOK || strings.TrimSpace(p.body) != "[]" {
		t.Fatalf("a refused request issued a certificate: %s", p.body)
	}
}

// fieldError reports whether a page shows an error next to a form field
// that contains msg.
func fieldError(body, msg string) bool {
	for _, part := range strings.Split(body, `<p class="field-error">`)[1:] {
		if text, _, _ := strings.Cut(part, "</p>"); strings.Contains(text, msg) {
			return true
		}
	}
	return false
}

// TestAPIWithoutAuthentication: with a roles block and nothing in front to
// authenticate, the anonymous caller holds no role (but reads the public
// CRL), and the console, which needs a user, answers 401.
func TestAPIWithoutAuthentication(t *testing.T) {
	port := testcaddy.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	testcaddy.Load(t, testcaddy.Globals(filepath.Join(t.TempDir(), "storage"), `
	bankedge {
		ca {
			key_passphrase test-ca-passphrase
		}
	}`)+fmt.Sprintf(`
%s {
	bankedge_api {
		roles {
			security_admin alice
		}
	}
}
`, base))
	for path, want := range map[string]int{
		"/api/v1/certificates/ca/crl":         http.StatusOK,
		"/api/v1/certificates/ca/certificate": http.StatusForbidden,
		"/api/v1/config/partners":             http.StatusForbidden,
		"/ui/":                                http.StatusUnauthorized,
	} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	if !auditHas("partner.list", map[string]string{"user": "anonymous", "roles": "", "outcome": "forbidden"}) {
		t.Error("no audit line for the anonymous refusal")
	}
}

// TestJWTWithoutRolesBlock: on an API without a roles block, a token
// without the roles claim holds every role, as a basic_auth user does; a
// token with the claim holds what it says, an empty claim nothing. An
// unauthenticated caller's audit line names no role.
func TestJWTWithoutRolesBlock(t *testing.T) {
	dir := t.TempDir()
	key := testjwt.NewEC(t, "bare")
	jwks := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwks, testjwt.JWKS(t, key), 0o600); err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", testcaddy.FreePort(t))
	testcaddy.Load(t, testcaddy.Globals(filepath.Join(dir, "storage"), `
	bankedge {
		ca {
			key_passphrase test-ca-passphrase
		}
	}`)+fmt.Sprintf(`
%s {
	jwt_auth {
		jwks     %s
		issuer   %s
		audience %s
	}
	bankedge_api
}
`, base, jwks, consoleIssuer, consoleAudience))
	token := func(sub string, roleClaim any) string {
		c := testjwt.Valid(consoleIssuer, consoleAudience, sub)
		if roleClaim != nil {
			c.Extra = map[string]any{"roles": roleClaim}
		}
		return testjwt.Sign(t, key, c)
	}
	status := func(method, path, bearer string) int {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(`{"partnerId":"BARE_P","password":"ComplexPassword123!"}`))
		req.Header.Set("Content-Type", "application/json")
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		name         string
		bearer       string
		method, path string
		want         int
	}{
		{"no roles claim, read", token("svc-all", nil), "GET", "/api/v1/config/partners", http.StatusOK},
		{"no roles claim, CA", token("svc-all", nil), "GET", "/api/v1/certificates/ca/issued", http.StatusOK},
		{"no roles claim, write", token("svc-all", nil), "POST", "/api/v1/config/partners", http.StatusCreated},
		{"auditor claim, write", token("svc-audit", []string{"auditor"}), "POST", "/api/v1/config/partners", http.StatusForbidden},
		{"auditor claim, read", token("svc-audit", []string{"auditor"}), "GET", "/api/v1/config/partners", http.StatusOK},
		{"empty claim", token("svc-none", []string{}), "GET", "/api/v1/config/partners", http.StatusForbidden},
		{"no token", "", "GET", "/api/v1/config/partners", http.StatusUnauthorized},
	} {
		if got := status(tc.method, tc.path, tc.bearer); got != tc.want {
			t.Errorf("%s: %s %s = %d, want %d", tc.name, tc.method, tc.path, got, tc.want)
		}
	}
	if !auditHas("api.authenticate", map[string]string{"user": "anonymous", "roles": "", "outcome": "refused"}) {
		t.Error("the unauthenticated caller's audit line does not say it used no role")
	}
}

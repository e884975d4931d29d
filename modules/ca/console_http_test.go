package ca

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bankedge/bankedge/internal/auditlog"
	"github.com/bankedge/bankedge/internal/testjwt"
)

func partnerForm(id, password string) url.Values {
	return url.Values{"partnerId": {id}, "password": {password}, "passwordConfirm": {password}, "enabled": {"on"}, "accessType": {"both"}}
}

// auditHas reports whether the feed has a line of action (any when "")
// with these fields.
func auditHas(action string, fields map[string]string) bool {
	return len(auditlog.Recent.Latest(1, func(e auditlog.Entry) bool {
		if action != "" && e.Action != action {
			return false
		}
		for k, v := range fields {
			if e.Str(k) != v {
				return false
			}
		}
		return true
	})) == 1
}

func TestConsoleHeadersAndCSRF(t *testing.T) {
	s := startConsole(t)
	bob := s.client(t, "bob")
	tok := bob.token()

	p := bob.get("/ui/")
	csp := p.header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe") || strings.Contains(csp, "*") ||
		!strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "form-action 'self'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	if p.header.Get("X-Frame-Options") != "DENY" || p.header.Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v", p.header)
	}
	if ck := p.header.Get("Set-Cookie"); ck != "" {
		t.Errorf("a second page set a new session cookie: %s", ck)
	}
	if r := bob.get("/ui"); r.status != http.StatusSeeOther || r.header.Get("Location") != "/ui/" {
		t.Errorf("/ui: %d %s", r.status, r.header.Get("Location"))
	}
	if r := bob.get("/ui/nothing-here"); r.status != http.StatusNotFound || !strings.Contains(r.body, "no such page") {
		t.Errorf("unknown page: %d", r.status)
	}

	form := partnerForm("CSRF_TEST", "Valid-Partner-Pass-1")
	form.Set("csrf_token", tok)
	other := s.client(t, "bob")
	otherTok := other.token()
	for _, tc := range []struct {
		name   string
		form   url.Values
		header map[string]string
	}{
		{"another origin, valid token", form, map[string]string{"Origin": "http://evil.example"}},
		{"another origin in Referer only", form, map[string]string{"Referer": "http://evil.example/page"}},
		{"no Origin, no Referer", form, nil},
		{"cross-site fetch metadata", form, map[string]string{"Origin": bob.base, "Sec-Fetch-Site": "cross-site"}},
		{"same origin, no token", partnerForm("CSRF_TEST", "Valid-Partner-Pass-1"), map[string]string{"Origin": bob.base}},
		{"same origin, token of another session", func() url.Values {
			f := partnerForm("CSRF_TEST", "Valid-Partner-Pass-1")
			f.Set("csrf_token", otherTok)
			return f
		}(), map[string]string{"Origin": bob.base}},
	} {
		r := bob.do(http.MethodPost, "/ui/partners", tc.form, tc.header)
		if r.status != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", tc.name, r.status)
		}
	}
	if r := bob.get("/ui/partners/CSRF_TEST"); r.status != http.StatusNotFound {
		t.Fatalf("a refused POST created the partner: %d", r.status)
	}
	if !auditHas("partner.write", map[string]string{"user": "bob", "outcome": "forbidden"}) {
		t.Error("no audit line for the refused forms")
	}
	// The same form from the console's origin, Referer only, works.
	if r := bob.do(http.MethodPost, "/ui/partners", form, map[string]string{"Referer": bob.base + "/ui/partners"}); r.status != http.StatusSeeOther {
		t.Fatalf("genuine form: %d\n%s", r.status, r.body)
	}
	if r := bob.get("/ui/partners/CSRF_TEST"); r.status != http.StatusOK {
		t.Fatalf("partner not created: %d", r.status)
	}
}

func TestConsoleRoles(t *testing.T) {
	s := startConsole(t)
	alice, bob, dave, eve := s.client(t, "alice"), s.client(t, "bob"), s.client(t, "dave"), s.client(t, "eve")

	// What each role sees.
	for _, tc := range []struct {
		c       *consoleClient
		path    string
		status  int
		present []string
		absent  []string
	}{
		{alice, "/ui/certificates", 200, []string{"Generate keystore", "Sign CSR"}, nil},
		{alice, "/ui/partners", 200, nil, []string{"Create partner"}},
		{bob, "/ui/partners", 200, []string{"Create partner"}, nil},
		{bob, "/ui/certificates", 403, nil, nil},
		{bob, "/ui/audit", 403, nil, nil},
		{bob, "/ui/", 200, []string{`href="/ui/partners"`, `href="/ui/ca"`}, []string{`href="/ui/certificates"`, `href="/ui/audit"`}},
		{dave, "/ui/certificates", 200, nil, []string{"Generate keystore", "Sign CSR", "Revoke"}},
		{dave, "/ui/partners", 200, nil, []string{"Create partner"}},
		{dave, "/ui/audit", 200, nil, nil},
		{dave, "/ui/ca", 403, nil, nil},
		{dave, "/ui/", 200, []string{`href="/ui/certificates"`, `href="/ui/audit"`}, []string{`href="/ui/ca"`}},
		{eve, "/ui/", 200, []string{"none"}, []string{`href="/ui/partners"`}},
		{eve, "/ui/partners", 403, nil, nil},
	} {
		p := tc.c.get(tc.path)
		if p.status != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.c.user, tc.path, p.status, tc.status)
		}
		for _, s := range tc.present {
			if !strings.Contains(p.body, s) {
				t.Errorf("%s %s: %q missing", tc.c.user, tc.path, s)
			}
		}
		for _, s := range tc.absent {
			if strings.Contains(p.body, s) {
				t.Errorf("%s %s: %q shown", tc.c.user, tc.path, s)
			}
		}
	}

	// An auditor posting anyway, with a valid token from its own origin.
	form := partnerForm("AUDITOR_MADE", "Valid-Partner-Pass-1")
	form.Set("csrf_token", dave.token())
	if r := dave.post("/ui/partners", form); r.status != http.StatusForbidden {
		t.Fatalf("auditor created a partner: %d", r.status)
	}
	if !auditHas("partner.write", map[string]string{"user": "dave", "roles": "auditor", "outcome": "forbidden", "reason": "missing role"}) {
		t.Error("no audit line for the auditor's refused POST")
	}
	if r := dave.post("/ui/certificates/revoke", url.Values{"csrf_token": {dave.token()}, "serial": {"01"}, "confirm": {"on"}}); r.status != http.StatusForbidden {
		t.Fatalf("auditor revoke: %d", r.status)
	}

	// The password policy's errors come back next to the field, and the
	// typed password is not echoed.
	form = partnerForm("WEAK_PW", "short")
	form.Set("csrf_token", bob.token())
	r := bob.post("/ui/partners", form)
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, `id="password-error"`) || !strings.Contains(r.body, "password policy") {
		t.Fatalf("weak password: %d\n%s", r.status, r.body)
	}
	if strings.Contains(r.body, `value="short"`) {
		t.Fatal("the refused password was sent back to the browser")
	}
	if !strings.Contains(r.body, `value="WEAK_PW"`) {
		t.Fatal("the partner id typed was lost")
	}
}

// TestConsoleJWTRoles: behind jwt_auth, the token's roles claim decides,
// and the audit line names the token's subject and roles.
func TestConsoleJWTRoles(t *testing.T) {
	s := startConsole(t)
	sec := s.tokenClient(t, "svc-pki", []string{"security_admin"})
	if p := sec.get("/ui/certificates"); p.status != http.StatusOK || !strings.Contains(p.body, "Sign CSR") {
		t.Fatalf("security_admin token: %d", p.status)
	}
	form := partnerForm("JWT_MADE", "Valid-Partner-Pass-1")
	form.Set("csrf_token", sec.token())
	if p := sec.post("/ui/partners", form); p.status != http.StatusForbidden {
		t.Fatalf("security_admin created a partner: %d", p.status)
	}
	if !auditHas("partner.write", map[string]string{"user": "svc-pki", "roles": "security_admin", "outcome": "forbidden"}) {
		t.Error("audit line does not name the token's subject and roles")
	}
	none := s.tokenClient(t, "svc-none", nil)
	if p := none.get("/ui/partners"); p.status != http.StatusForbidden {
		t.Fatalf("a token without roles read partners: %d (no roles block must not mean all roles for a token)", p.status)
	}
}

// TestAPIAnswersARefusedBearerOnce: behind jwt_auth, the admin API answers
// a missing or refused token with one JSON error that says why, and the
// RFC 6750 challenge; jwt_auth writes no body of its own.
func TestAPIAnswersARefusedBearerOnce(t *testing.T) {
	s := startConsole(t)
	expired := testjwt.Valid(consoleIssuer, consoleAudience, "svc-audit")
	expired.Expiry = time.Now().Add(-time.Hour)
	for _, tc := range []struct{ name, authz, reason string }{
		{"no token", "", "a bearer token is required"},
		{"expired token", "Bearer " + testjwt.Sign(t, s.jwtKey, expired), "the token has expired"},
		{"basic credentials", "Basic YWxpY2U6cHc=", "a bearer token is required"},
	} {
		req, _ := http.NewRequest(http.MethodGet, s.jwtBase+"/api/v1/config/partners", nil)
		if tc.authz != "" {
			req.Header.Set("Authorization", tc.authz)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		dec := json.NewDecoder(bytes.NewReader(body))
		var e struct{ Error string }
		if err := dec.Decode(&e); err != nil || dec.More() {
			t.Errorf("%s: the body is not one JSON object: %q", tc.name, body)
		}
		if resp.StatusCode != http.StatusUnauthorized || e.Error != "authentication required: "+tc.reason {
			t.Errorf("%s: %d %q, want 401 saying %q", tc.name, resp.StatusCode, body, tc.reason)
		}
		if ch := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, `Bearer realm="bankedge"`) {
			t.Errorf("%s: challenge %q", tc.name, ch)
		}
	}
}

package psd2_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/bankedge/bankedge/internal/testpki"
	"github.com/bankedge/bankedge/modules/psd2/httpsig"
)

// TestHostileRequests replays the security test's findings on paths, roles
// and headers against a running gateway with real mTLS: a TPP holding only
// PSP_AI must not reach a payment, funds-confirmation or signing-basket
// service by any spelling of its path, and what the gateway verified is
// what the ASPSP gets.
func TestHostileRequests(t *testing.T) {
	f := newFixture(t)

	// What reached the mock ASPSP echoes a "path"; a refusal is JSON with
	// tppMessages. Either way the answer says whether it was forwarded.
	forwarded := func(r response) bool { return r.echo["path"] != nil }

	t.Run("non-canonical paths are refused, not forwarded without the payment role", func(t *testing.T) {
		for _, target := range []string{
			"/v1/payments%00/sepa-credit-transfers",
			"/v1/payments%20/sepa-credit-transfers",
			"/v1/payments%09/sepa-credit-transfers",
			"/v1/payments./sepa-credit-transfers",
			"/v1/payments.json",
			`/v1\payments/sepa-credit-transfers`,
			"/v1/%2570ayments/sepa-credit-transfers",
			"/v1/%70ayments/sepa-credit-transfers",
			"/v1%2Fpayments/sepa-credit-transfers",
			"/v1/payments;jsessionid=1/sepa-credit-transfers",
			"/v1/accounts/..;/payments/sepa-credit-transfers",
			"/v1/accounts/../payments/sepa-credit-transfers",
			"/v1//payments/sepa-credit-transfers",
			"/v1/payments/sepa-credit-transfers/",
		} {
			h, body := signed(t, f.qwacAIOnly, f.qseal, http.MethodPost, target, paymentBody)
			r := f.rawRequest(t, f.piraeusURL, f.qwacAIOnly, http.MethodPost, target, h, body)
			if forwarded(r) || r.status != http.StatusBadRequest || r.code != "FORMAT_ERROR" || r.path != "path" {
				t.Errorf("%s: got %d %s %s, want 400 FORMAT_ERROR (path), not forwarded", target, r.status, r.code, r.body)
			}
		}
		// The canonical spelling is a payment, which PSP_AI may not use.
		h, body := signed(t, f.qwacAIOnly, f.qseal, http.MethodPost, paymentPath, paymentBody)
		expectError(t, f.rawRequest(t, f.piraeusURL, f.qwacAIOnly, http.MethodPost, paymentPath, h, body), 401, "ROLE_INVALID", "PSP_PI")
	})

	t.Run("the role map covers the Berlin Group 1.3 and 2.x services", func(t *testing.T) {
		cases := []struct {
			path     string
			allowed  *testpki.Leaf
			refused  []*testpki.Leaf
			wantRole string
		}{
			{"/v2/funds-confirmations", f.qwacICOnly, []*testpki.Leaf{f.qwacAIOnly, f.qwacPIOnly}, "PSP_IC"},
			{"/v1/funds-confirmations", f.qwacICOnly, []*testpki.Leaf{f.qwacAIOnly}, "PSP_IC"},
			{"/v2/consents/confirmation-of-funds", f.qwacICOnly, []*testpki.Leaf{f.qwacAIOnly}, "PSP_IC"},
			{"/v1/signing-baskets", f.qwacPIOnly, []*testpki.Leaf{f.qwacAIOnly, f.qwacICOnly}, "PSP_PI"},
			{"/v1/signing-baskets/1234-basket/authorisations", f.qwacPIOnly, []*testpki.Leaf{f.qwacAIOnly}, "PSP_PI"},
			{"/v2/payments/sepa-credit-transfers", f.qwacPIOnly, []*testpki.Leaf{f.qwacAIOnly, f.qwacICOnly}, "PSP_PI"},
			{"/v2/periodic-payments/sepa-credit-transfers", f.qwacPIOnly, []*testpki.Leaf{f.qwacAIOnly}, "PSP_PI"},
			// The list of trusted beneficiaries is an AIS service (an AIS
			// consent grants it): PSP_AI, and only PSP_AI.
			{"/v1/trusted-beneficiaries", f.qwacAIOnly, []*testpki.Leaf{f.qwacPIOnly, f.qwacICOnly}, "PSP_AI"},
			{"/v2/accounts/1/balances", f.qwacAIOnly, []*testpki.Leaf{f.qwacPIOnly}, "PSP_AI"},
			{"/v2/consents/account-access", f.qwacAIOnly, []*testpki.Leaf{f.qwacICOnly}, "PSP_AI"},
		}
		for _, c := range cases {
			for _, q := range c.refused {
				expectError(t, f.do(t, request{profile: httpsig.Piraeus, tls: q, qseal: f.qseal, url: f.piraeusURL + c.path, body: paymentBody}), 401, "ROLE_INVALID", c.wantRole)
			}
			r := f.do(t, request{profile: httpsig.Piraeus, tls: c.allowed, qseal: f.qseal, url: f.piraeusURL + c.path, body: paymentBody})
			if !forwarded(r) || r.echo["path"] != c.path {
				t.Errorf("%s with %s: got %d %s, want it forwarded", c.path, c.wantRole, r.status, r.body)
			}
		}
	})

	t.Run("paths outside the map are refused unless the route allows them", func(t *testing.T) {
		for _, p := range []string{"/v1/other", "/v2/consents", "/v3/payments/x", "/admin", "/"} {
			r := f.do(t, request{profile: httpsig.Piraeus, tls: f.qwac, qseal: f.qseal, url: f.piraeusURL + p, body: paymentBody})
			if forwarded(r) {
				t.Errorf("%s was forwarded", p)
			}
			expectError(t, r, 404, "RESOURCE_UNKNOWN", "")
		}
		// allow_unmapped: a valid QWAC, no particular role.
		r := f.do(t, request{tls: f.qwacAIOnly, method: http.MethodGet, url: f.bgURL + "/oauth/token"})
		if r.status != 200 || string(r.body) != "oauth "+orgID+" ok" {
			t.Fatalf("allow_unmapped route: %d %s", r.status, r.body)
		}
		expectError(t, f.do(t, request{tls: f.qwacUntrusted, method: http.MethodGet, url: f.bgURL + "/oauth/token"}), 401, "CERTIFICATE_INVALID", "")
	})

	t.Run("routing headers from the client do not reach the ASPSP", func(t *testing.T) {
		h := http.Header{}
		for _, k := range []string{"X-Original-URL", "X-Rewrite-URL", "X-HTTP-Method-Override", "X-HTTP-Method",
			"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Prefix", "Forwarded", "X-Real-IP"} {
			h.Set(k, "evil")
		}
		// Spellings that CGI-style servers read as the same headers.
		h["X_forwarded_for"] = []string{"evil"}
		h["X_real_ip"] = []string{"evil"}
		r := f.do(t, request{profile: httpsig.Piraeus, tls: f.qwac, qseal: f.qseal, url: f.piraeusURL + paymentPath, body: paymentBody, header: h})
		expectOK(t, r)
		got, _ := r.echo["headers"].(map[string]any)
		for k, v := range got {
			if strings.Contains(strings.ToLower(k), "forward") || strings.Contains(strings.ToLower(k), "real") ||
				strings.Contains(strings.ToLower(k), "method") || strings.Contains(strings.ToLower(k), "url") {
				if strings.Contains(strings.ToLower(k), "x-forwarded-") {
					// reverse_proxy's own, true values.
					if s, _ := v.([]any); len(s) == 1 && s[0] != "evil" {
						continue
					}
				}
				t.Errorf("the ASPSP got %s: %v", k, v)
			}
		}
		if got["X-Forwarded-For"] == nil {
			t.Error("reverse_proxy's X-Forwarded-For is missing")
		}
	})

	t.Run("identity and signature headers sent twice are refused", func(t *testing.T) {
		for _, name := range []string{"X-Client-Certificate", "TPP-Signature-Certificate", "Signature", "Digest", "X-Request-ID"} {
			r := f.do(t, request{profile: httpsig.Piraeus, tls: f.qwac, qseal: f.qseal, url: f.piraeusURL + paymentPath, body: paymentBody,
				mutate: func(h http.Header, _ *[]byte) {
					v := h.Get(name)
					if name == "X-Request-ID" {
						v = uuid.NewString()
					}
					h.Add(name, v)
				}})
			expectError(t, r, 400, "FORMAT_ERROR", name)
			if r.path != name {
				t.Errorf("%s twice: path = %q", name, r.path)
			}
		}
	})
}

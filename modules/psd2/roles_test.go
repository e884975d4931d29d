package psd2

import (
	"net/url"
	"slices"
	"testing"

	"github.com/bankedge/bankedge/internal/certprofile/qcstatements"
)

func TestRolesForPath(t *testing.T) {
	const unmapped = qcstatements.Role("unmapped")
	for p, want := range map[string]qcstatements.Role{
		"/v1/payments/sepa-credit-transfers":          qcstatements.RolePI,
		"/v1/payments":                                qcstatements.RolePI,
		"/v2/payments/sepa-credit-transfers":          qcstatements.RolePI,
		"/v1/bulk-payments/x":                         qcstatements.RolePI,
		"/v2/periodic-payments/x":                     qcstatements.RolePI,
		"/v1/signing-baskets/1234/authorisations":     qcstatements.RolePI,
		"/v2/signing-baskets":                         qcstatements.RolePI,
		"/v1/accounts":                                qcstatements.RoleAI,
		"/v2/card-accounts/1/transactions":            qcstatements.RoleAI,
		"/v1/consents/abc/status":                     qcstatements.RoleAI,
		"/v2/consents/account-access":                 qcstatements.RoleAI,
		"/v1/trusted-beneficiaries":                   qcstatements.RoleAI,
		"/v1/funds-confirmations":                     qcstatements.RoleIC,
		"/v2/funds-confirmations":                     qcstatements.RoleIC,
		"/v1/consents/confirmation-of-funds":          qcstatements.RoleIC,
		"/v2/consents/confirmation-of-funds/1/status": qcstatements.RoleIC,
		"/V1/Payments/sepa-credit-transfers":          qcstatements.RolePI,
		"/v1/FUNDS-CONFIRMATIONS":                     qcstatements.RoleIC,
		"/v1/paymentsx":                               unmapped,
		"/v1/other":                                   unmapped,
		"/v2/consents":                                unmapped,
		"/v3/payments":                                unmapped,
		"/":                                           unmapped,
	} {
		roles, mapped := rolesForPath(p)
		switch {
		case want == unmapped && mapped:
			t.Errorf("%q is mapped to %v, want it outside the map", p, roles)
		case want != unmapped && !slices.Equal(roles, []qcstatements.Role{want}):
			t.Errorf("rolesForPath(%q) = %v, %v; want [%s]", p, roles, mapped, want)
		}
	}
}

func TestCheckCanonicalPath(t *testing.T) {
	for _, raw := range []string{
		"/v1/payments/sepa-credit-transfers",
		"/v1/payments/pain.001-sepa-credit-transfers/1234-abcd",
		"/v1/accounts/DE89370400440532013000/transactions",
		"/",
		"/special/x",
		"/.well-known/oauth-authorization-server",
		"/v1/consents/a~b_c$d&e+f,g=h:i@j",
		"/V1/Payments",
	} {
		u, err := url.ParseRequestURI(raw)
		if err != nil {
			t.Fatal(err)
		}
		if rej := checkCanonicalPath(u); rej != nil {
			t.Errorf("%q refused: %v", raw, rej)
		}
	}
	for _, raw := range []string{
		"/v1/payments%00/sepa-credit-transfers",
		"/v1/payments%20/x",
		"/v1/payments%09/x",
		"/v1/payments./x",
		"/v1/payments.",
		"/v1/payments.json",
		"/v1/payments.json/x",
		`/v1\payments`,
		"/v1/%2570ayments",
		"/v1/%70ayments",
		"/v1%2Fpayments",
		"/v1/payments;jsessionid=1/x",
		"/v1;x/payments",
		"/v1/accounts/..;/payments/x",
		"/v1//payments/x",
		"/x/../v1/payments",
		"/v1/./payments",
		"/v1/payments/",
		"/v1/payments/x%2F..%2F",
		"/v1/pay(ments",
		"/v1/payments/é",
		"*",
	} {
		u, err := url.ParseRequestURI(raw)
		if err != nil {
			// What Go's server cannot parse never reaches a handler.
			continue
		}
		rej := checkCanonicalPath(u)
		if rej == nil || rej.Code != FormatError || rej.Status != 400 {
			t.Errorf("%q: got %v, want 400 FORMAT_ERROR", raw, rej)
		}
	}
}

func TestStripRoutingHeaders(t *testing.T) {
	h := map[string][]string{
		"X-Original-Url": {"/admin"}, "X-Rewrite-Url": {"/admin"}, "X-Http-Method-Override": {"DELETE"},
		"X-Http-Method": {"DELETE"}, "X-Method-Override": {"DELETE"}, "Forwarded": {"for=1.2.3.4"},
		"X-Real-Ip": {"1.2.3.4"}, "X-Forwarded-For": {"1.2.3.4"}, "X-Forwarded-Host": {"evil"},
		"X-Forwarded-Prefix": {"/x"}, "X_forwarded_for": {"1.2.3.4"}, "X_Real_IP": {"1.2.3.4"},
		"X-Request-Id": {"keep"}, "Digest": {"keep"}, "Fx": {"keep"}, "X-Forwarded": {"keep"},
	}
	stripRoutingHeaders(h)
	if len(h) != 4 || h["X-Request-Id"] == nil || h["Digest"] == nil || h["Fx"] == nil || h["X-Forwarded"] == nil {
		t.Errorf("left %v", h)
	}
}

package psd2

import (
	"testing"

	"github.com/bankedge/bankedge/internal/certprofile/qcstatements"
)

func TestRequiredRoleForPath(t *testing.T) {
	for p, want := range map[string]qcstatements.Role{
		"/v1/payments/sepa-credit-transfers":   qcstatements.RolePI,
		"/v1/payments":                         qcstatements.RolePI,
		"/v1//payments/x":                      qcstatements.RolePI,
		"/x/../v1/payments":                    qcstatements.RolePI,
		"/v1/accounts":                         qcstatements.RoleAI,
		"/v2/consents/confirmation-of-funds/1": qcstatements.RoleIC,
		"/v1/paymentsx":                        "",
		"/v1/other":                            "",
		"/":                                    "",
		// Path parameters and case must not dodge the map.
		"/v1/payments;jsessionid=1/sepa-credit-transfers": qcstatements.RolePI,
		"/v1;x/payments/sepa-credit-transfers":            qcstatements.RolePI,
		"/v1/accounts/..;/payments/x":                     qcstatements.RolePI,
		"/v1/payments;":                                   qcstatements.RolePI,
		"/V1/Payments/sepa-credit-transfers":              qcstatements.RolePI,
		"/v1/FUNDS-CONFIRMATIONS":                         qcstatements.RoleIC,
		"/v1/paymentsx;y":                                 "",
	} {
		if got := requiredRoleForPath(p); got != want {
			t.Errorf("requiredRoleForPath(%q) = %q, want %q", p, got, want)
		}
	}
}

package psd2

import (
	"path"
	"strings"

	"github.com/bankedge/bankedge/modules/psd2/qcstatements"
)

// roleRoute maps a Berlin Group path prefix to the role it needs.
type roleRoute struct {
	prefix string
	role   qcstatements.Role
}

// defaultRoleRoutes is the Berlin Group NextGenPSD2 service map.
var defaultRoleRoutes = []roleRoute{
	{"/v1/accounts", qcstatements.RoleAI},
	{"/v1/card-accounts", qcstatements.RoleAI},
	{"/v1/consents", qcstatements.RoleAI},
	{"/v1/payments", qcstatements.RolePI},
	{"/v1/bulk-payments", qcstatements.RolePI},
	{"/v1/periodic-payments", qcstatements.RolePI},
	{"/v1/funds-confirmations", qcstatements.RoleIC},
	{"/v2/consents/confirmation-of-funds", qcstatements.RoleIC},
}

// requiredRoleForPath returns the role the Berlin Group map demands for p,
// matching whole path segments, or "" when the path is not in the map.
func requiredRoleForPath(p string) qcstatements.Role {
	// Clean so that "/v1//payments" or "/x/../v1/payments" cannot dodge
	// the map; most paths are clean already and need no copy.
	if !isClean(p) {
		p = path.Clean("/" + p)
	}
	for _, r := range defaultRoleRoutes {
		if p == r.prefix || strings.HasPrefix(p, r.prefix) && p[len(r.prefix)] == '/' {
			return r.role
		}
	}
	return ""
}

// isClean reports whether path.Clean would leave p unchanged.
func isClean(p string) bool {
	if p == "" || p[0] != '/' || len(p) > 1 && p[len(p)-1] == '/' {
		return false
	}
	return !strings.Contains(p, "//") && !strings.Contains(p, "/./") && !strings.Contains(p, "/../") &&
		!strings.HasSuffix(p, "/.") && !strings.HasSuffix(p, "/..")
}

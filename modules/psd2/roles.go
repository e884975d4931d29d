package psd2

import (
	"path"
	"strings"

	"github.com/bankedge/bankedge/internal/certprofile/qcstatements"
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
	// Servlet containers and Spring drop path parameters before routing,
	// so "/v1/payments;x" and "/v1/accounts/..;/payments" reach the
	// payments API: drop them here too.
	if strings.IndexByte(p, ';') >= 0 {
		p = stripPathParams(p)
	}
	// Clean so that "/v1//payments" or "/x/../v1/payments" cannot dodge
	// the map; most paths are clean already and need no copy.
	if !isClean(p) {
		p = path.Clean("/" + p)
	}
	// Case-insensitive, as Caddy's path matcher is: a route that
	// "handle /v1/payments*" sends upstream also takes "/V1/Payments".
	for _, r := range defaultRoleRoutes {
		n := len(r.prefix)
		if len(p) >= n && strings.EqualFold(p[:n], r.prefix) && (len(p) == n || p[n] == '/') {
			return r.role
		}
	}
	return ""
}

// stripPathParams removes the ";params" of every path segment.
func stripPathParams(p string) string {
	var b strings.Builder
	b.Grow(len(p))
	for {
		i := strings.IndexByte(p, ';')
		if i < 0 {
			b.WriteString(p)
			return b.String()
		}
		b.WriteString(p[:i])
		j := strings.IndexByte(p[i:], '/')
		if j < 0 {
			return b.String()
		}
		p = p[i+j:]
	}
}

// isClean reports whether path.Clean would leave p unchanged.
func isClean(p string) bool {
	if p == "" || p[0] != '/' || len(p) > 1 && p[len(p)-1] == '/' {
		return false
	}
	return !strings.Contains(p, "//") && !strings.Contains(p, "/./") && !strings.Contains(p, "/../") &&
		!strings.HasSuffix(p, "/.") && !strings.HasSuffix(p, "/..")
}

package psd2

import (
	"net/url"
	"strings"

	"github.com/bankedge/bankedge/internal/certprofile/qcstatements"
)

// roleRoute maps a Berlin Group service path to the roles that may use it.
type roleRoute struct {
	prefix string
	roles  []qcstatements.Role
}

var (
	needAI = []qcstatements.Role{qcstatements.RoleAI}
	needPI = []qcstatements.Role{qcstatements.RolePI}
	needIC = []qcstatements.Role{qcstatements.RoleIC}
)

// defaultRoleRoutes is the Berlin Group NextGenPSD2 service map, versions
// 1.3.x (/v1, and /v2 for the PIIS consent) and 2.x (/v2). A path matches a
// prefix on whole segments; the first match wins, so the longer prefixes
// come first.
var defaultRoleRoutes = []roleRoute{
	// PIIS consents live under the consent paths of AIS.
	{"/v1/consents/confirmation-of-funds", needIC},
	{"/v2/consents/confirmation-of-funds", needIC},
	{"/v2/consents/account-access", needAI},

	// AIS: accounts, card accounts, consents, trusted beneficiaries (an
	// AIS consent grants the list).
	{"/v1/accounts", needAI},
	{"/v2/accounts", needAI},
	{"/v1/card-accounts", needAI},
	{"/v2/card-accounts", needAI},
	{"/v1/consents", needAI},
	{"/v1/trusted-beneficiaries", needAI},
	{"/v2/trusted-beneficiaries", needAI},

	// PIS, and signing baskets, which bundle payment initiations for one
	// SCA.
	{"/v1/payments", needPI},
	{"/v2/payments", needPI},
	{"/v1/bulk-payments", needPI},
	{"/v2/bulk-payments", needPI},
	{"/v1/periodic-payments", needPI},
	{"/v2/periodic-payments", needPI},
	{"/v1/signing-baskets", needPI},
	{"/v2/signing-baskets", needPI},

	// PIIS: confirmation of funds.
	{"/v1/funds-confirmations", needIC},
	{"/v2/funds-confirmations", needIC},
}

// rolesForPath returns the roles the Berlin Group map grants p, one of
// which the TPP must hold, and whether p is in the map at all. p must be
// canonical (see checkCanonicalPath). Matching ignores case, as Caddy's path
// matcher does: a route that sends "/v1/payments*" upstream also takes
// "/V1/Payments".
func rolesForPath(p string) ([]qcstatements.Role, bool) {
	for _, r := range defaultRoleRoutes {
		n := len(r.prefix)
		if len(p) >= n && strings.EqualFold(p[:n], r.prefix) && (len(p) == n || p[n] == '/') {
			return r.roles, true
		}
	}
	return nil, false
}

// pathByte marks the bytes a canonical path may hold: RFC 3986 unreserved
// characters and the sub-delimiters that neither Go's URL encoding nor
// servlet containers treat specially. ';' (path parameters, which Spring
// and servlet containers drop before routing), '%' (every byte is sent as
// itself), '\' (a separator on some servers), spaces, controls and
// non-ASCII are not among them.
var pathByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-._~$&+,=:@/" {
		t[c] = true
	}
	return t
}()

// checkCanonicalPath refuses a request whose path could be read as another
// path by the ASPSP: anything percent-encoded, path parameters, backslashes,
// empty, "." or ".." segments, segments ending in a dot (stripped by some
// servers), a trailing slash, and a suffix on a Berlin Group service name
// ("/v1/payments.json", which Spring's suffix matching routes to
// /v1/payments). What is checked is r.URL, which reverse_proxy forwards, so
// the path checked is the path forwarded.
func checkCanonicalPath(u *url.URL) *rejection {
	p := u.Path
	if u.RawPath != "" || u.Opaque != "" || p == "" || p[0] != '/' {
		return nonCanonical()
	}
	for i := 0; i < len(p); i++ {
		if !pathByte[p[i]] {
			return nonCanonical()
		}
	}
	if p == "/" {
		return nil
	}
	var first string
	for i, rest := 0, p[1:]; ; i++ {
		seg, tail, more := strings.Cut(rest, "/")
		if seg == "" || seg[len(seg)-1] == '.' {
			// Empty ("//" or a trailing slash), ".", ".." or "x.".
			return nonCanonical()
		}
		switch i {
		case 0:
			first = seg
		case 1:
			if isVersion(first) && !isServiceName(seg) {
				return nonCanonical()
			}
		}
		if !more {
			return nil
		}
		rest = tail
	}
}

// isVersion reports whether the first path segment s is a Berlin Group
// version such as "v1".
func isVersion(s string) bool {
	if len(s) < 2 || s[0] != 'v' && s[0] != 'V' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isServiceName reports whether s may name a Berlin Group service: letters,
// digits and hyphens only.
func isServiceName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func nonCanonical() *rejection {
	return rejectPath(FormatError, "path", "the request path is not in canonical form: no percent-encoding, path parameters, "+
		"backslashes, empty, dot or trailing-dot segments, trailing slash or suffix on the service name")
}

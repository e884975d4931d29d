// Package roles is the separation of duties of bankedge's administration:
// three roles, what each may do, and how a user comes to hold them. Both
// the admin REST API and the admin console ask it, so that the two never
// disagree about who may do what.
//
//   - security_admin: everything of the CA (initialize, sign, generate
//     keystores, revoke, sign a new CRL, the PSD2 blocklist) and reading the inventory, partners,
//     audit feed and metrics;
//   - partner_admin: the partner registry (create, update, disable, delete,
//     passwords), downloads of the CA certificate, truststores and CRL, and
//     the metrics;
//   - auditor: read only: the inventory, partners (never password hashes),
//     the audit feed, the metrics, the CA certificate and CRL.
//
// The CRL is public: relying parties fetch it from the URL in every
// certificate, without credentials.
package roles

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Role is one of the three administration roles.
type Role string

// The roles.
const (
	SecurityAdmin Role = "security_admin"
	PartnerAdmin  Role = "partner_admin"
	Auditor       Role = "auditor"
)

// all lists the roles in a fixed order, which is also their bit order in a
// Set.
var all = [...]Role{SecurityAdmin, PartnerAdmin, Auditor}

// Parse returns the role called s (exact, lower case).
func Parse(s string) (Role, error) {
	for _, r := range all {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("unknown role %q (known: security_admin, partner_admin, auditor)", s)
}

// Set is a set of roles. The zero value holds none.
type Set uint8

// AllRoles holds every role: the user of an API without a roles block.
const AllRoles Set = 1<<len(all) - 1

// Of returns the set of the given roles.
func Of(rs ...Role) Set {
	var s Set
	for _, r := range rs {
		if i := slices.Index(all[:], r); i >= 0 {
			s |= 1 << i
		}
	}
	return s
}

// Has reports whether the set holds r.
func (s Set) Has(r Role) bool { return s&Of(r) != 0 }

// Roles lists the roles of the set in a fixed order.
func (s Set) Roles() []Role {
	var out []Role
	for i, r := range all {
		if s&(1<<i) != 0 {
			out = append(out, r)
		}
	}
	return out
}

// String is the space-separated role names, as audit lines carry them.
func (s Set) String() string {
	names := make([]string, 0, len(all))
	for _, r := range s.Roles() {
		names = append(names, string(r))
	}
	return strings.Join(names, " ")
}

// FromClaim reads roles as an authentication provider hands them on in a
// placeholder such as {http.auth.user.roles}: names separated by spaces or
// commas. Names that are not bankedge roles (a token may carry roles for
// other applications) are ignored.
func FromClaim(s string) Set {
	var set Set
	for _, name := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' }) {
		if r, err := Parse(name); err == nil {
			set |= Of(r)
		}
	}
	return set
}

// Assignments grants roles to users, as the roles block of bankedge_api
// does: role name → user ids as Caddy's authentication handler identifies
// them ({http.auth.user.id}).
type Assignments map[Role][]string

// Validate refuses unknown roles and empty user ids.
func (a Assignments) Validate() error {
	for r, users := range a {
		if _, err := Parse(string(r)); err != nil {
			return err
		}
		for _, u := range users {
			if strings.TrimSpace(u) == "" {
				return fmt.Errorf("role %s: empty user id", r)
			}
		}
	}
	return nil
}

// UnmarshalJSON refuses unknown role names when the configuration is
// loaded, rather than when the first request comes.
func (a *Assignments) UnmarshalJSON(b []byte) error {
	var m map[Role][]string
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	if err := Assignments(m).Validate(); err != nil {
		return err
	}
	*a = m
	return nil
}

// Resolve returns the roles of an authenticated user.
//
// With no assignments at all (an API configured without a roles block) a
// user whose authentication carried no roles holds every role: that is
// what a single basic_auth user always could do. When the authentication
// carried roles (hasClaim: a JWT with the roles claim, even an empty one),
// those roles apply, and the assignments may add more.
func (a Assignments) Resolve(user string, claimed Set, hasClaim bool) Set {
	if a == nil && !hasClaim {
		return AllRoles
	}
	set := claimed
	for r, users := range a {
		if slices.Contains(users, user) {
			set |= Of(r)
		}
	}
	return set
}

// Action is something an administrator does, as the audit log names it.
type Action string

// The actions of the admin API and console.
const (
	CAInitialize   Action = "ca.initialize"
	CASign         Action = "ca.sign"
	CAGenerate     Action = "ca.generate"
	CAPSD2Generate Action = "ca.psd2.generate"
	CACSR          Action = "ca.csr"
	CARevoke       Action = "ca.revoke"
	// CARegenerateCRL signs a new CRL on demand.
	CARegenerateCRL Action = "ca.crl.regenerate"
	// CABlocklist changes the PSD2 blocklist; CABlocklistRead lists it.
	CABlocklist     Action = "ca.blocklist"
	CABlocklistRead Action = "ca.blocklist.read"
	CAVerify        Action = "ca.verify"
	CAInventory     Action = "ca.issued"
	// CADownload is the CA certificate, truststores and the CRL.
	CADownload Action = "ca.download"
	// CACRL is the CRL at its public URL, which needs no role.
	CACRL        Action = "ca.crl"
	PartnerRead  Action = "partner.read"
	PartnerWrite Action = "partner.write"
	AuditRead    Action = "audit.read"
	MetricsRead  Action = "metrics.read"
)

// needed is who may do what: any one of the roles suffices.
var needed = map[Action]Set{
	CAInitialize:    Of(SecurityAdmin),
	CASign:          Of(SecurityAdmin),
	CAGenerate:      Of(SecurityAdmin),
	CAPSD2Generate:  Of(SecurityAdmin),
	CACSR:           Of(SecurityAdmin),
	CARevoke:        Of(SecurityAdmin),
	CARegenerateCRL: Of(SecurityAdmin),
	CABlocklist:     Of(SecurityAdmin),
	CABlocklistRead: Of(SecurityAdmin, Auditor),
	CAVerify:        AllRoles,
	CAInventory:     Of(SecurityAdmin, Auditor),
	CADownload:      Of(SecurityAdmin, PartnerAdmin),
	PartnerRead:     AllRoles,
	PartnerWrite:    Of(PartnerAdmin),
	AuditRead:       Of(SecurityAdmin, Auditor),
	MetricsRead:     AllRoles,
}

// public are the actions anyone may do, authenticated or not.
var public = map[Action]bool{CACRL: true}

// Needed returns the roles of which a user must hold one to do a; an
// unknown action needs a role nobody holds, a public one none (see
// Public).
func Needed(a Action) Set { return needed[a] }

// Public reports whether a needs no role at all.
func Public(a Action) bool { return public[a] }

// Allows reports whether a holder of s may do a.
func (s Set) Allows(a Action) bool { return public[a] || s&needed[a] != 0 }

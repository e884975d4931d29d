package roles

import (
	"encoding/json"
	"testing"
)

func TestResolve(t *testing.T) {
	a := Assignments{SecurityAdmin: {"alice"}, PartnerAdmin: {"bob", "carol"}, Auditor: {"dave", "carol"}}
	for _, tc := range []struct {
		name     string
		a        Assignments
		user     string
		claimed  Set
		hasClaim bool
		want     Set
	}{
		{"no roles block, basic auth", nil, "admin", 0, false, AllRoles},
		{"no roles block, token with roles", nil, "svc", Of(Auditor), true, Of(Auditor)},
		{"no roles block, token with an empty claim", nil, "svc", 0, true, 0},
		{"assigned", a, "alice", 0, false, Of(SecurityAdmin)},
		{"two roles", a, "carol", 0, false, Of(PartnerAdmin, Auditor)},
		{"unknown user", a, "mallory", 0, false, 0},
		{"claim plus block", a, "dave", Of(PartnerAdmin), true, Of(PartnerAdmin, Auditor)},
		{"user ids are exact", a, "Alice", 0, false, 0},
	} {
		if got := tc.a.Resolve(tc.user, tc.claimed, tc.hasClaim); got != tc.want {
			t.Errorf("%s: Resolve = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestMatrix(t *testing.T) {
	for _, tc := range []struct {
		role    Role
		allowed []Action
		refused []Action
	}{
		{SecurityAdmin, []Action{CAInitialize, CASign, CAGenerate, CARevoke, CARegenerateCRL, CAInventory, CADownload, PartnerRead, AuditRead, MetricsRead},
			[]Action{PartnerWrite}},
		{PartnerAdmin, []Action{PartnerRead, PartnerWrite, CADownload, MetricsRead},
			[]Action{CASign, CAGenerate, CARevoke, CARegenerateCRL, CAInitialize, CAInventory, AuditRead}},
		{Auditor, []Action{CAInventory, PartnerRead, AuditRead, CAVerify, MetricsRead},
			[]Action{CASign, CAGenerate, CARevoke, CARegenerateCRL, CAInitialize, CACSR, CAPSD2Generate, PartnerWrite, CADownload}},
	} {
		s := Of(tc.role)
		for _, a := range tc.allowed {
			if !s.Allows(a) {
				t.Errorf("%s may not %s", tc.role, a)
			}
		}
		for _, a := range tc.refused {
			if s.Allows(a) {
				t.Errorf("%s may %s", tc.role, a)
			}
		}
	}
	if Set(0).Allows(CAVerify) || AllRoles.Allows("no.such.action") {
		t.Error("an empty set or an unknown action must allow nothing")
	}
	if !Set(0).Allows(CACRL) || !Public(CACRL) || Public(CADownload) {
		t.Error("the CRL is public, and only it")
	}
}

func TestFromClaimAndString(t *testing.T) {
	s := FromClaim("auditor, security_admin openid  other")
	if s != Of(SecurityAdmin, Auditor) {
		t.Fatalf("FromClaim = %q", s)
	}
	if s.String() != "security_admin auditor" {
		t.Fatalf("String = %q", s.String())
	}
}

func TestAssignmentsJSON(t *testing.T) {
	var a Assignments
	if err := json.Unmarshal([]byte(`{"auditor":["dave"]}`), &a); err != nil || !a.Resolve("dave", 0, false).Has(Auditor) {
		t.Fatalf("valid assignments: %v %v", a, err)
	}
	if err := json.Unmarshal([]byte(`{"superuser":["eve"]}`), &a); err == nil {
		t.Fatal("an unknown role was accepted")
	}
	if err := json.Unmarshal([]byte(`{"auditor":[" "]}`), &a); err == nil {
		t.Fatal("an empty user id was accepted")
	}
}

package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"golang.org/x/crypto/bcrypt"
)

func TestCRUDRoundTrip(t *testing.T) {
	ctx := context.Background()
	r, clk := newTestRegistry(t)

	in := Input{
		PartnerID:          ptr("BANK_XYZ"),
		Password:           ptr(strong),
		AllowedIPs:         &[]string{"203.0.113.0/24", "10.1.2.3"},
		CertificateBinding: ptr("bank-xyz.example.com"),
		AccessType:         ptr("WRITE"),
		MaxConnections:     ptr(3),
		AllowedFiles:       &[]string{"PAY*.XML"},
		Description:        ptr("Bank XYZ payments"),
	}
	created := mustCreate(t, r, in)
	want := Partner{
		PartnerID:          "BANK_XYZ",
		Enabled:            true,
		AllowedIPs:         []string{"203.0.113.0/24", "10.1.2.3/32"},
		CertificateBinding: "CN=bank-xyz.example.com",
		AccessType:         "write",
		MaxConnections:     3,
		AllowedFiles:       []string{"PAY*.XML"},
		Description:        "Bank XYZ payments",
		PasswordChangedAt:  clk.Now(),
		PasswordExpiresAt:  ptr(clk.Now().Add(90 * 24 * time.Hour)),
		CreatedAt:          clk.Now(),
		UpdatedAt:          clk.Now(),
	}
	if !reflect.DeepEqual(created, want) {
		t.Fatalf("Create returned\n%+v\nwant\n%+v", created, want)
	}
	got, err := r.Get(ctx, "BANK_XYZ")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Get returned\n%+v\nwant\n%+v", got, want)
	}
	fsPath := r.Storage.(*certmagic.FileStorage).Path
	if _, err := os.Stat(filepath.Join(fsPath, "bankedge", "partners", "BANK_XYZ.json")); err != nil {
		t.Fatalf("record not at <prefix>/<id>.json: %v", err)
	}

	if _, err := r.Create(ctx, in); !errors.Is(err, ErrExists) {
		t.Fatalf("second Create: want ErrExists, got %v", err)
	}

	mustCreate(t, r, Input{PartnerID: ptr("ALPHA"), Password: ptr(strong), Enabled: ptr(false)})
	mustCreate(t, r, Input{PartnerID: ptr("zeta.1"), Password: ptr(strong)})
	list, err := r.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range list {
		ids = append(ids, p.PartnerID)
	}
	if !reflect.DeepEqual(ids, []string{"ALPHA", "BANK_XYZ", "zeta.1"}) {
		t.Fatalf("List ids = %v", ids)
	}
	if list[0].Enabled {
		t.Fatal("ALPHA was created with enabled=false")
	}

	clk.Advance(time.Hour)
	upd, err := r.Update(ctx, "BANK_XYZ", Input{
		PartnerID:   ptr("BANK_XYZ"),
		Enabled:     ptr(false),
		AllowedIPs:  &[]string{},
		Description: ptr("moved"),
	})
	if err != nil {
		t.Fatal(err)
	}
	want.Enabled, want.AllowedIPs, want.Description, want.UpdatedAt = false, nil, "moved", clk.Now()
	if !reflect.DeepEqual(upd, want) {
		t.Fatalf("Update returned\n%+v\nwant\n%+v", upd, want)
	}
	if got, _ := r.Get(ctx, "BANK_XYZ"); !reflect.DeepEqual(got, want) {
		t.Fatalf("Get after Update\n%+v\nwant\n%+v", got, want)
	}

	_, err = r.Update(ctx, "BANK_XYZ", Input{PartnerID: ptr("OTHER")})
	wantValidation(t, err, "partnerId")
	if _, err := r.Update(ctx, "NOPE", Input{Description: ptr("x")}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Update of a missing partner: want ErrNotFound, got %v", err)
	}

	if err := r.Delete(ctx, "BANK_XYZ"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(ctx, "BANK_XYZ"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: want ErrNotFound, got %v", err)
	}
	if err := r.Delete(ctx, "BANK_XYZ"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Delete: want ErrNotFound, got %v", err)
	}
	if list, _ := r.List(ctx); len(list) != 2 {
		t.Fatalf("List after Delete has %d partners", len(list))
	}
}

func TestListEmptyAndForeignKeys(t *testing.T) {
	ctx := context.Background()
	r, _ := newTestRegistry(t)
	list, err := r.List(ctx)
	if err != nil || len(list) != 0 {
		t.Fatalf("List on empty storage = %v, %v", list, err)
	}
	mustCreate(t, r, Input{PartnerID: ptr("A"), Password: ptr(strong)})
	// Keys that are not partner records must be ignored.
	for _, k := range []string{"bankedge/partners/notes.txt", "bankedge/partners/.tmp123.json", "bankedge/partners/sub/B.json"} {
		if err := r.Storage.Store(ctx, k, []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	list, err = r.List(ctx)
	if err != nil || len(list) != 1 || list[0].PartnerID != "A" {
		t.Fatalf("List = %+v, %v", list, err)
	}
}

func TestPartnerJSONHasNoSecrets(t *testing.T) {
	ctx := context.Background()
	r, _ := newTestRegistry(t)
	const pw = "Sup3r-Secret-Passw0rd"
	mustCreate(t, r, Input{PartnerID: ptr("BANK_XYZ"), Password: ptr("Old-Passw0rd-Value")})
	p, err := r.Update(ctx, "BANK_XYZ", Input{Password: ptr(pw)})
	if err != nil {
		t.Fatal(err)
	}

	// The stored record does hold the hashes (otherwise the search below
	// would prove nothing).
	raw, err := r.Storage.Load(ctx, "bankedge/partners/BANK_XYZ.json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), "passwordHash") || !strings.Contains(string(raw), "previousPasswordHashes") {
		t.Fatalf("stored record lacks the hashes: %s", raw)
	}
	if strings.Contains(string(raw), pw) {
		t.Fatal("stored record contains the clear-text password")
	}

	list, _ := r.List(ctx)
	got, _ := r.Get(ctx, "BANK_XYZ")
	for name, v := range map[string]any{"Update": p, "Get": got, "List": list} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ToLower(string(b))
		for _, bad := range []string{"hash", "argon", strings.ToLower(pw), "$2"} {
			if strings.Contains(s, strings.ToLower(bad)) {
				t.Errorf("JSON of %s contains %q: %s", name, bad, b)
			}
		}
		for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
			if s := fmt.Sprintf(f, v); strings.Contains(s, "argon") || strings.Contains(s, pw) {
				t.Errorf("%s of %s leaks a secret: %s", f, name, s)
			}
		}
	}

	in := Input{PartnerID: ptr("X"), Password: ptr(pw), PasswordHash: ptr("$argon2id$secret")}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(f, in); strings.Contains(s, pw) || strings.Contains(s, "argon") || !strings.Contains(s, "REDACTED") {
			t.Errorf("%s of Input = %s", f, s)
		}
	}
}

func TestSeedExampleCreatesPartner(t *testing.T) {
	ctx := context.Background()
	r, _ := newTestRegistry(t)
	body := `{"partnerId":"BANK_XYZ","password":"ComplexPassword123!","enabled":true}`
	var in Input
	if err := json.Unmarshal([]byte(body), &in); err != nil {
		t.Fatal(err)
	}
	p, err := r.Create(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if p.PartnerID != "BANK_XYZ" || !p.Enabled || p.AccessType != "both" {
		t.Fatalf("created %+v", p)
	}
	if _, err := r.Authenticate(ctx, AuthRequest{PartnerID: "BANK_XYZ", Passwords: []string{"ComplexPassword123!"}, RemoteIP: addr("203.0.113.50")}); err != nil {
		t.Fatalf("the seed partner cannot authenticate: %v", err)
	}
	// enabled defaults to true when absent.
	if err := json.Unmarshal([]byte(`{"partnerId":"BANK_2","password":"ComplexPassword123!"}`), &in); err != nil {
		t.Fatal(err)
	}
	if p, err := r.Create(ctx, in); err != nil || !p.Enabled {
		t.Fatalf("Create without enabled: %+v, %v", p, err)
	}
}

func TestPolicyRules(t *testing.T) {
	pol := DefaultPolicy()
	cases := []struct {
		pw, want string
	}{
		{"Short1!a", "at least 12 characters"},
		{"complexpassword123!", "upper-case"},
		{"COMPLEXPASSWORD123!", "lower-case"},
		{"ComplexPassword!!!", "digit"},
		{"ComplexPassword123", "symbol"},
		{"", "required"},
		{"ComplexPässword123!", "printable ASCII"},
		{"ComplexPassword123!\n", "printable ASCII"},
		{"Aa1!" + strings.Repeat("x", 125), "at most 128"},
	}
	for _, c := range cases {
		err := pol.Check(c.pw)
		ve := wantValidation(t, err, "password")
		if !strings.Contains(ve.Message, c.want) {
			t.Errorf("Check(%q) = %q, want it to name %q", c.pw, ve.Message, c.want)
		}
		if c.pw != "" && strings.Contains(err.Error(), c.pw) {
			t.Errorf("error echoes the password: %v", err)
		}
	}
	if err := pol.Check(strong); err != nil {
		t.Fatalf("Check(%q) = %v", strong, err)
	}
	// All missing rules are listed together.
	msg := pol.Check("abc").Error()
	for _, w := range []string{"12 characters", "upper-case", "digit", "symbol"} {
		if !strings.Contains(msg, w) {
			t.Errorf("%q does not name %q", msg, w)
		}
	}
	// A lax policy accepts what the default refuses.
	if err := (Policy{MinLength: 4}).Check("abcd"); err != nil {
		t.Fatal(err)
	}

	// The registry applies the policy, and the zero Policy means the default.
	r, _ := newTestRegistry(t)
	_, err := r.Create(context.Background(), Input{PartnerID: ptr("P"), Password: ptr("test123")})
	wantValidation(t, err, "password")

	if err := (Policy{MinLength: -1}).Validate(); err == nil {
		t.Fatal("negative MinLength accepted")
	}
	if err := DefaultPolicy().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestPasswordHistory(t *testing.T) {
	ctx := context.Background()
	r, _ := newTestRegistry(t)
	pw := func(i int) string { return fmt.Sprintf("ComplexPassword%d!", i) }
	mustCreate(t, r, Input{PartnerID: ptr("H"), Password: ptr(pw(0))})
	for i := 1; i <= 6; i++ {
		if _, err := r.Update(ctx, "H", Input{Password: ptr(pw(i))}); err != nil {
			t.Fatalf("setting password %d: %v", i, err)
		}
	}
	// Current: 6; previous, newest first: 5 4 3 2 1 (History 5); 0 dropped.
	for i := 6; i >= 1; i-- {
		_, err := r.Update(ctx, "H", Input{Password: ptr(pw(i))})
		ve := wantValidation(t, err, "password")
		if !strings.Contains(ve.Message, "previous") {
			t.Errorf("reuse of %d: message %q does not mention the history", i, ve.Message)
		}
	}
	if _, err := r.Update(ctx, "H", Input{Password: ptr(pw(0))}); err != nil {
		t.Fatalf("the 6th-oldest password should be allowed again: %v", err)
	}
	// Now 0 is current and 6 is among the last 5 again.
	if _, err := r.Update(ctx, "H", Input{Password: ptr(pw(6))}); err == nil {
		t.Fatal("reuse of a password from the last 5 was allowed")
	}
	raw, _ := r.Storage.Load(ctx, "bankedge/partners/H.json")
	defer func() {
		// A policy lowered to History 2 applies at once to the stored
		// history: current 6, then 0 and 5 are refused, 4 is allowed.
		pol := DefaultPolicy()
		pol.History = 2
		r2 := &Registry{Storage: r.Storage, Policy: pol, argon: &cheapArgon}
		for _, i := range []int{6, 0, 5} {
			_, err := r2.Update(ctx, "H", Input{Password: ptr(pw(i))})
			wantValidation(t, err, "password")
		}
		if _, err := r2.Update(ctx, "H", Input{Password: ptr(pw(4))}); err != nil {
			t.Fatalf("History 2: the 3rd previous password should be allowed: %v", err)
		}
	}()
	var rec storedPartner
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	if len(rec.PreviousPasswordHashes) != 5 {
		t.Fatalf("history holds %d hashes, want 5", len(rec.PreviousPasswordHashes))
	}
}

func TestLegacyPassword(t *testing.T) {
	ctx := context.Background()
	r, _ := newTestRegistry(t)

	_, err := r.Create(ctx, Input{PartnerID: ptr("L0"), Password: ptr("test123"), PesitLegacyPassword: ptr(true)})
	ve := wantValidation(t, err, "pesitLegacyPassword")
	for _, w := range []string{"requires certificateBinding or allowedIps", "too weak"} {
		if !strings.Contains(ve.Message, w) {
			t.Errorf("message %q does not say %q", ve.Message, w)
		}
	}

	p := mustCreate(t, r, Input{PartnerID: ptr("L1"), Password: ptr("test123"), PesitLegacyPassword: ptr(true), AllowedIPs: &[]string{"192.0.2.10"}})
	if !p.PesitLegacyPassword {
		t.Fatal("flag not stored")
	}
	mustCreate(t, r, Input{PartnerID: ptr("L2"), Password: ptr("test123"), PesitLegacyPassword: ptr(true), CertificateBinding: ptr("CN=l2")})
	if _, err := r.Authenticate(ctx, AuthRequest{PartnerID: "L1", Passwords: []string{"test123 ", "test123"}, RemoteIP: addr("192.0.2.10")}); err != nil {
		t.Fatalf("legacy partner cannot authenticate: %v", err)
	}

	_, err = r.Create(ctx, Input{PartnerID: ptr("L3"), Password: ptr("test12345"), PesitLegacyPassword: ptr(true), AllowedIPs: &[]string{"192.0.2.10"}})
	ve = wantValidation(t, err, "password")
	if !strings.Contains(ve.Message, "1 to 8") || !strings.Contains(ve.Message, "PI 5") {
		t.Errorf("message %q does not explain the 8-character limit", ve.Message)
	}
	_, err = r.Create(ctx, Input{PartnerID: ptr("L3"), Password: ptr("abc é"), PesitLegacyPassword: ptr(true), AllowedIPs: &[]string{"192.0.2.10"}})
	wantValidation(t, err, "password")

	// Removing the last safeguard of a legacy partner is refused.
	_, err = r.Update(ctx, "L1", Input{AllowedIPs: &[]string{}})
	wantValidation(t, err, "pesitLegacyPassword")
	_, err = r.Update(ctx, "L2", Input{CertificateBinding: ptr("")})
	wantValidation(t, err, "pesitLegacyPassword")

	// Turning the flag off needs a policy-compliant password.
	_, err = r.Update(ctx, "L1", Input{PesitLegacyPassword: ptr(false)})
	wantValidation(t, err, "password")
	_, err = r.Update(ctx, "L1", Input{PesitLegacyPassword: ptr(false), Password: ptr("short1")})
	wantValidation(t, err, "password")
	if _, err := r.Update(ctx, "L1", Input{PesitLegacyPassword: ptr(false), Password: ptr(strong)}); err != nil {
		t.Fatal(err)
	}
	// ...after which the safeguards may go.
	if _, err := r.Update(ctx, "L1", Input{AllowedIPs: &[]string{}}); err != nil {
		t.Fatal(err)
	}
}

func TestPasswordExpiry(t *testing.T) {
	ctx := context.Background()
	r, clk := newTestRegistry(t)
	p := mustCreate(t, r, Input{PartnerID: ptr("E"), Password: ptr(strong)})
	if p.PasswordExpiresAt == nil || !p.PasswordExpiresAt.Equal(clk.Now().Add(90*24*time.Hour)) {
		t.Fatalf("PasswordExpiresAt = %v", p.PasswordExpiresAt)
	}
	req := AuthRequest{PartnerID: "E", Passwords: []string{strong}}
	clk.Advance(90*24*time.Hour - time.Second)
	if _, err := r.Authenticate(ctx, req); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	clk.Advance(time.Second)
	_, err := r.Authenticate(ctx, req)
	wantReason(t, err, ReasonPasswordExpired)

	// A wrong password on an expired account is a wrong password: the
	// expiry is only revealed to whoever knows the password.
	_, err = r.Authenticate(ctx, AuthRequest{PartnerID: "E", Passwords: []string{"nope"}})
	wantReason(t, err, ReasonBadPassword)

	// A new password restarts the clock.
	if _, err := r.Update(ctx, "E", Input{Password: ptr(strong + "x")}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Authenticate(ctx, AuthRequest{PartnerID: "E", Passwords: []string{strong + "x"}}); err != nil {
		t.Fatalf("after change: %v", err)
	}

	// MaxAge 0: no expiry at all.
	r2 := &Registry{Storage: r.Storage, Now: clk.Now, argon: &cheapArgon, Policy: Policy{MinLength: 12, History: 5}}
	p, err = r2.Get(ctx, "E")
	if err != nil || p.PasswordExpiresAt != nil {
		t.Fatalf("PasswordExpiresAt without MaxAge = %v, %v", p.PasswordExpiresAt, err)
	}
	clk.Advance(10 * 365 * 24 * time.Hour)
	if _, err := r2.Authenticate(ctx, AuthRequest{PartnerID: "E", Passwords: []string{strong + "x"}}); err != nil {
		t.Fatalf("MaxAge 0 should never expire: %v", err)
	}
}

func TestEnsure(t *testing.T) {
	ctx := context.Background()
	r, _ := newTestRegistry(t)
	in := Input{PartnerID: ptr("SEED"), Password: ptr(strong), Description: ptr("from Caddyfile")}
	created, err := r.Ensure(ctx, in)
	if err != nil || !created {
		t.Fatalf("first Ensure = %v, %v", created, err)
	}
	if _, err := r.Update(ctx, "SEED", Input{Description: ptr("edited by admin")}); err != nil {
		t.Fatal(err)
	}
	in.Description = ptr("changed in Caddyfile")
	created, err = r.Ensure(ctx, in)
	if err != nil || created {
		t.Fatalf("second Ensure = %v, %v", created, err)
	}
	if p, _ := r.Get(ctx, "SEED"); p.Description != "edited by admin" {
		t.Fatalf("Ensure overwrote the partner: %q", p.Description)
	}
	_, err = r.Ensure(ctx, Input{PartnerID: ptr("WEAK"), Password: ptr("weak")})
	wantValidation(t, err, "password")
}

func TestInvalidIDs(t *testing.T) {
	ctx := context.Background()
	r, _ := newTestRegistry(t)
	mustCreate(t, r, Input{PartnerID: ptr("A"), Password: ptr(strong)})
	for _, id := range []string{"", "../A", "a/b", `a\b`, ".hidden", "..", "A B", "é", strings.Repeat("x", 25), "A\x00"} {
		_, err := r.Create(ctx, Input{PartnerID: ptr(id), Password: ptr(strong)})
		wantValidation(t, err, "partnerId")
		_, err = r.Get(ctx, id)
		wantValidation(t, err, "partnerId")
		_, err = r.Update(ctx, id, Input{})
		wantValidation(t, err, "partnerId")
		wantValidation(t, r.Delete(ctx, id), "partnerId")
		_, err = r.Authenticate(ctx, AuthRequest{PartnerID: id, Passwords: []string{strong}})
		wantReason(t, err, ReasonUnknownPartner)
	}
	mustCreate(t, r, Input{PartnerID: ptr(strings.Repeat("x", 24)), Password: ptr(strong)})
	mustCreate(t, r, Input{PartnerID: ptr("a.b-c_D9"), Password: ptr(strong)})
	_, err := r.Create(ctx, Input{Password: ptr(strong)})
	wantValidation(t, err, "partnerId")
}

func TestFieldValidation(t *testing.T) {
	ctx := context.Background()
	r, _ := newTestRegistry(t)
	cases := []struct {
		in    Input
		field string
	}{
		{Input{AllowedIPs: &[]string{"10.0.0.0/33"}}, "allowedIps"},
		{Input{AllowedIPs: &[]string{"example.com"}}, "allowedIps"},
		{Input{AllowedIPs: &[]string{""}}, "allowedIps"},
		{Input{AllowedIPs: &[]string{"fe80::1%eth0"}}, "allowedIps"},
		{Input{CertificateBinding: ptr("sha256:abcd")}, "certificateBinding"},
		{Input{CertificateBinding: ptr("CN=")}, "certificateBinding"},
		{Input{CertificateBinding: ptr("O=Bank,CN=x")}, "certificateBinding"},
		{Input{AccessType: ptr("admin")}, "accessType"},
		{Input{MaxConnections: ptr(-1)}, "maxConnections"},
		{Input{AllowedFiles: &[]string{"[a"}}, "allowedFiles"},
		{Input{AllowedFiles: &[]string{""}}, "allowedFiles"},
		{Input{Description: ptr("a\x1b[31m")}, "description"},
		{Input{PasswordHash: ptr("plain")}, "passwordHash"},
		{Input{PasswordHash: ptr("$argon2id$v=19$m=99999999,t=2,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5")}, "passwordHash"},
		// Issue 7, point 12: weak imported hashes.
		{Input{PasswordHash: ptr(weakBcrypt)}, "passwordHash"},
		{Input{PasswordHash: ptr("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5")}, "passwordHash"},
		{Input{PasswordHash: ptr("$argon2id$v=19$m=7168,t=4,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5")}, "passwordHash"},
	}
	for i, c := range cases {
		in := c.in
		in.PartnerID = ptr(fmt.Sprintf("F%d", i))
		if in.PasswordHash == nil {
			in.Password = ptr(strong)
		}
		_, err := r.Create(ctx, in)
		wantValidation(t, err, c.field)
	}
	_, err := r.Create(ctx, Input{PartnerID: ptr("BOTH"), Password: ptr(strong), PasswordHash: ptr("$2a$10$x")})
	wantValidation(t, err, "passwordHash")
	_, err = r.Create(ctx, Input{PartnerID: ptr("WEAK"), PasswordHash: ptr(weakBcrypt)})
	if ve := wantValidation(t, err, "passwordHash"); !strings.Contains(ve.Message, "cost 4 is too weak") {
		t.Errorf("bcrypt cost 4: %v", ve)
	}
}

// weakBcrypt is a bcrypt hash of cost 4, as the security test imported.
var weakBcrypt = func() string {
	h, err := bcrypt.GenerateFromPassword([]byte("imported-pw"), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	return string(h)
}()

// CheckEnsure finds what Ensure would refuse and writes nothing.
func TestCheckEnsureWritesNothing(t *testing.T) {
	r, _ := newTestRegistry(t)
	ctx := context.Background()
	if err := r.CheckEnsure(ctx, Input{PartnerID: ptr("NEW"), Password: ptr("short")}); err == nil {
		t.Fatal("a weak password passed the check")
	}
	if err := r.CheckEnsure(ctx, Input{PartnerID: ptr("NEW"), Password: ptr(strong)}); err != nil {
		t.Fatal(err)
	}
	if list, err := r.List(ctx); err != nil || len(list) != 0 {
		t.Fatalf("CheckEnsure stored partners: %v %v", list, err)
	}
}

package registry

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"golang.org/x/crypto/bcrypt"
)

func TestAuthenticateReasons(t *testing.T) {
	ctx := context.Background()
	r, _ := newTestRegistry(t)
	cert := newCert(t, "bank-xyz.example.com")
	other := newCert(t, "intruder.example.com")
	mustCreate(t, r, Input{PartnerID: ptr("OK"), Password: ptr(strong), AllowedIPs: &[]string{"203.0.113.0/24"}, CertificateBinding: ptr("CN=bank-xyz.example.com")})
	mustCreate(t, r, Input{PartnerID: ptr("OFF"), Password: ptr(strong), Enabled: ptr(false)})

	good := AuthRequest{PartnerID: "OK", Passwords: []string{strong}, RemoteIP: addr("203.0.113.50"), ClientCert: cert}
	p, err := r.Authenticate(ctx, good)
	if err != nil || p.PartnerID != "OK" {
		t.Fatalf("good request: %+v, %v", p, err)
	}

	with := func(f func(*AuthRequest)) AuthRequest { q := good; f(&q); return q }
	cases := []struct {
		name   string
		req    AuthRequest
		reason AuthReason
	}{
		{"unknown", with(func(q *AuthRequest) { q.PartnerID = "NOBODY" }), ReasonUnknownPartner},
		// Disabled wins over a wrong password: the order is fixed.
		{"disabled", AuthRequest{PartnerID: "OFF", Passwords: []string{"wrong"}}, ReasonDisabled},
		{"ip", with(func(q *AuthRequest) { q.RemoteIP = addr("198.51.100.1"); q.Passwords = []string{"wrong"} }), ReasonIPNotAllowed},
		{"no ip", with(func(q *AuthRequest) { q.RemoteIP = addr("0.0.0.0").Prev() }), ReasonIPNotAllowed},
		{"cert required", with(func(q *AuthRequest) { q.ClientCert = nil; q.Passwords = []string{"wrong"} }), ReasonCertificateRequired},
		{"cert mismatch", with(func(q *AuthRequest) { q.ClientCert = other; q.Passwords = []string{"wrong"} }), ReasonCertificateMismatch},
		{"bad password", with(func(q *AuthRequest) { q.Passwords = []string{"Wrong-Password-1"} }), ReasonBadPassword},
		{"no password", with(func(q *AuthRequest) { q.Passwords = nil }), ReasonBadPassword},
		{"too many candidates", with(func(q *AuthRequest) { q.Passwords = []string{"a", "b", "c", "d", strong} }), ReasonBadPassword},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := r.Authenticate(ctx, c.req)
			wantReason(t, err, c.reason)
			if p.PartnerID != "" {
				t.Errorf("partner returned on failure: %+v", p)
			}
			for _, pw := range c.req.Passwords {
				if len(pw) > 1 && strings.Contains(err.Error(), pw) {
					t.Errorf("error %q contains a password", err)
				}
			}
		})
	}

	// The expiry reason is covered by TestPasswordExpiry; here it must come
	// after the password check.
	r2, clk := newTestRegistry(t)
	mustCreate(t, r2, Input{PartnerID: ptr("OLD"), Password: ptr(strong)})
	clk.Advance(91 * 24 * time.Hour)
	_, err = r2.Authenticate(ctx, AuthRequest{PartnerID: "OLD", Passwords: []string{"x", strong}})
	wantReason(t, err, ReasonPasswordExpired)

	// Storage failures are not authentication refusals.
	r3 := &Registry{Storage: failingStorage{r.Storage}}
	_, err = r3.Authenticate(ctx, good)
	var ae *AuthError
	if err == nil || errors.As(err, &ae) {
		t.Fatalf("storage failure reported as %v", err)
	}
}

func TestAllowedIPs(t *testing.T) {
	ctx := context.Background()
	r, _ := newTestRegistry(t)
	p := mustCreate(t, r, Input{PartnerID: ptr("NET"), Password: ptr(strong), AllowedIPs: &[]string{
		"10.1.2.3/8", " 203.0.113.7 ", "2001:db8:abcd::/48", "2001:db8::1", "::ffff:192.0.2.0/120", "10.0.0.0/8",
	}})
	want := []string{"10.0.0.0/8", "203.0.113.7/32", "2001:db8:abcd::/48", "2001:db8::1/128", "192.0.2.0/24"}
	if fmt.Sprint(p.AllowedIPs) != fmt.Sprint(want) {
		t.Fatalf("normalised AllowedIPs = %v, want %v", p.AllowedIPs, want)
	}
	for ip, ok := range map[string]bool{
		"10.200.0.1":          true,
		"11.0.0.1":            false,
		"203.0.113.7":         true,
		"203.0.113.8":         false,
		"::ffff:10.9.9.9":     true, // IPv4 client on a dual-stack listener
		"192.0.2.77":          true,
		"2001:db8:abcd:1::5":  true,
		"2001:db8:abce::5":    false,
		"2001:db8::1":         true,
		"2001:db8::2":         false,
		"fe80::1%eth0":        false,
		"::ffff:203.0.113.99": false,
	} {
		_, err := r.Authenticate(ctx, AuthRequest{PartnerID: "NET", Passwords: []string{strong}, RemoteIP: addr(ip)})
		if ok && err != nil {
			t.Errorf("%s refused: %v", ip, err)
		}
		if !ok {
			wantReason(t, err, ReasonIPNotAllowed)
		}
	}
	// No allowlist: any address, even none.
	mustCreate(t, r, Input{PartnerID: ptr("ANY"), Password: ptr(strong)})
	if _, err := r.Authenticate(ctx, AuthRequest{PartnerID: "ANY", Passwords: []string{strong}}); err != nil {
		t.Fatal(err)
	}
}

func colonHex(b []byte) string {
	h := strings.ToUpper(hex.EncodeToString(b))
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

func TestCertificateBinding(t *testing.T) {
	ctx := context.Background()
	r, _ := newTestRegistry(t)
	cert := newCert(t, "bank-xyz.example.com")
	other := newCert(t, "bank-xyz.example.com") // same CN, different key
	fp := Fingerprint(cert)
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(fp) {
		t.Fatalf("Fingerprint = %q", fp)
	}
	sum, _ := hex.DecodeString(strings.TrimPrefix(fp, "sha256:"))

	for i, in := range []string{
		fp,
		"SHA256:" + strings.ToUpper(fp[7:]),
		"sha256:" + colonHex(sum),
		colonHex(sum),
		strings.ToUpper(fp[7:]),
	} {
		id := fmt.Sprintf("FP%d", i)
		p := mustCreate(t, r, Input{PartnerID: ptr(id), Password: ptr(strong), CertificateBinding: ptr(in)})
		if p.CertificateBinding != fp {
			t.Errorf("binding %q stored as %q, want %q", in, p.CertificateBinding, fp)
		}
		if !p.MatchesCertificate(cert) || p.MatchesCertificate(other) || p.MatchesCertificate(nil) {
			t.Errorf("fingerprint binding %q matches wrongly", in)
		}
		if _, err := r.Authenticate(ctx, AuthRequest{PartnerID: id, Passwords: []string{strong}, ClientCert: cert}); err != nil {
			t.Errorf("fingerprint %q: %v", in, err)
		}
		_, err := r.Authenticate(ctx, AuthRequest{PartnerID: id, Passwords: []string{strong}, ClientCert: other})
		wantReason(t, err, ReasonCertificateMismatch)
	}

	for i, in := range []string{"CN=bank-xyz.example.com", "cn=bank-xyz.example.com", "bank-xyz.example.com"} {
		id := fmt.Sprintf("CN%d", i)
		p := mustCreate(t, r, Input{PartnerID: ptr(id), Password: ptr(strong), CertificateBinding: ptr(in)})
		if p.CertificateBinding != "CN=bank-xyz.example.com" {
			t.Errorf("binding %q stored as %q", in, p.CertificateBinding)
		}
		if !p.MatchesCertificate(cert) || !p.MatchesCertificate(other) {
			t.Errorf("CN binding %q does not match", in)
		}
	}
	p, _ := r.Get(ctx, "CN0")
	for _, cn := range []string{"BANK-XYZ.example.com", "bank-xyz.example.com.", "x.bank-xyz.example.com", ""} {
		if p.MatchesCertificate(newCert(t, cn)) {
			t.Errorf("CN binding matched %q; it must compare exactly", cn)
		}
	}
	if !(Partner{}).MatchesCertificate(nil) {
		t.Error("a partner without binding must accept any certificate or none")
	}
}

func TestBcryptAndArgonHashes(t *testing.T) {
	ctx := context.Background()
	r, _ := newTestRegistry(t)
	for _, prefix := range []string{"$2a$", "$2b$"} {
		h, err := bcrypt.GenerateFromPassword([]byte("imported-pw"), bcrypt.DefaultCost)
		if err != nil {
			t.Fatal(err)
		}
		hs := prefix + strings.TrimPrefix(string(h), string(h[:4]))
		id := "BC" + prefix[2:3]
		mustCreate(t, r, Input{PartnerID: ptr(id), PasswordHash: ptr(hs)})
		if _, err := r.Authenticate(ctx, AuthRequest{PartnerID: id, Passwords: []string{"imported-pw"}}); err != nil {
			t.Errorf("%s hash refused: %v", prefix, err)
		}
		_, err = r.Authenticate(ctx, AuthRequest{PartnerID: id, Passwords: []string{"imported-px"}})
		wantReason(t, err, ReasonBadPassword)
		// A hash import counts as a password change for the history.
		if _, err := r.Update(ctx, id, Input{Password: ptr(strong)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Create(ctx, Input{PartnerID: ptr("BCX"), PasswordHash: ptr("$2a$31$" + strings.Repeat("a", 53))}); err == nil {
		t.Error("bcrypt cost 31 accepted")
	}

	// New passwords are argon2id PHC strings with the production parameters.
	h, err := hashPassword(strong, defaultArgon)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	if !re.MatchString(h) {
		t.Fatalf("hash %q is not the expected PHC string", h)
	}
	if h2, _ := hashPassword(strong, defaultArgon); h2 == h {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
	for pw, want := range map[string]bool{strong: true, strong + " ": false, "": false} {
		if ok, err := verifyPassword(h, pw); ok != want || err != nil {
			t.Errorf("verify(%q) = %v, %v", pw, ok, err)
		}
	}
	// An argon2id hash made elsewhere (production parameters) can be imported.
	mustCreate(t, r, Input{PartnerID: ptr("AR"), PasswordHash: ptr(h)})
	if _, err := r.Authenticate(ctx, AuthRequest{PartnerID: "AR", Passwords: []string{strong}}); err != nil {
		t.Fatal(err)
	}
	// The registry stores argon2id.
	raw, _ := r.Storage.Load(ctx, "bankedge/partners/BCa.json")
	if !strings.Contains(string(raw), `"passwordHash":"$argon2id$v=19$m=64,t=1,p=1$`) {
		t.Fatalf("stored record: %s", raw)
	}
}

func TestAllowsFile(t *testing.T) {
	p := Partner{AllowedFiles: []string{"PAY*.XML", "REPORT_??.CSV", "exact.txt", "[ab]*"}}
	for name, want := range map[string]bool{
		"PAY001.XML":     true,
		"PAY.XML":        true,
		"pay001.xml":     false,
		"PAY001.XMLX":    false,
		"REPORT_01.CSV":  true,
		"REPORT_001.CSV": false,
		"exact.txt":      true,
		"exact.txt2":     false,
		"alpha":          true,
		"PAY/1.XML":      false, // * does not cross '/'
		"":               false,
	} {
		if got := p.AllowsFile(name); got != want {
			t.Errorf("AllowsFile(%q) = %v, want %v", name, got, want)
		}
	}
	if !(Partner{}).AllowsFile("anything") {
		t.Error("empty AllowedFiles must allow any file")
	}
}

func TestAllowsAccess(t *testing.T) {
	for _, c := range []struct {
		access      string
		write, read bool
	}{
		{"both", true, true},
		{"write", true, false},
		{"read", false, true},
		{"", false, false},
		{"bogus", false, false},
	} {
		p := Partner{AccessType: c.access}
		if p.AllowsAccess(true) != c.write || p.AllowsAccess(false) != c.read {
			t.Errorf("accessType %q: write=%v read=%v", c.access, p.AllowsAccess(true), p.AllowsAccess(false))
		}
	}
}

func TestAuthCacheInvalidatedByPasswordChange(t *testing.T) {
	ctx := context.Background()
	r, _ := newTestRegistry(t)
	mustCreate(t, r, Input{PartnerID: ptr("C"), Password: ptr(strong)})
	req := AuthRequest{PartnerID: "C", Passwords: []string{strong}}
	for range 3 {
		if _, err := r.Authenticate(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.cache.len(); n != 1 {
		t.Fatalf("cache holds %d entries after repeated success, want 1", n)
	}
	const newPW = "An0ther-Strong-Password"
	if _, err := r.Update(ctx, "C", Input{Password: ptr(newPW)}); err != nil {
		t.Fatal(err)
	}
	_, err := r.Authenticate(ctx, req)
	wantReason(t, err, ReasonBadPassword)
	if _, err := r.Authenticate(ctx, AuthRequest{PartnerID: "C", Passwords: []string{newPW}}); err != nil {
		t.Fatal(err)
	}
	// A disabled partner is refused even with a cached password.
	if _, err := r.Update(ctx, "C", Input{Enabled: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	_, err = r.Authenticate(ctx, AuthRequest{PartnerID: "C", Passwords: []string{newPW}})
	wantReason(t, err, ReasonDisabled)

	// The change is seen by another Registry (another instance) on the
	// same storage, which had cached the old password.
	r2 := &Registry{Storage: r.Storage, argon: &cheapArgon}
	if _, err := r.Update(ctx, "C", Input{Enabled: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Authenticate(ctx, AuthRequest{PartnerID: "C", Passwords: []string{newPW}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Update(ctx, "C", Input{Password: ptr(strong + "2")}); err != nil {
		t.Fatal(err)
	}
	_, err = r2.Authenticate(ctx, AuthRequest{PartnerID: "C", Passwords: []string{newPW}})
	wantReason(t, err, ReasonBadPassword)
}

func TestAuthCacheBoundedAndOpaque(t *testing.T) {
	c := newAuthCache(4)
	for i := range 10 {
		c.add("P", "hash", fmt.Sprint("pw", i))
	}
	if c.len() != 4 {
		t.Fatalf("cache holds %d entries, want 4", c.len())
	}
	if c.hit("P", "hash", "pw0") || !c.hit("P", "hash", "pw9") {
		t.Fatal("eviction is not oldest-first")
	}
	if c.hit("P", "hash2", "pw9") || c.hit("Q", "hash", "pw9") {
		t.Fatal("cache key ignores the id or the hash")
	}
	// The id/hash/password boundaries are unambiguous.
	c.add("AB", "C", "D")
	if c.hit("A", "BC", "D") {
		t.Fatal("ambiguous cache key encoding")
	}
	for k := range c.entries {
		if strings.Contains(string(k[:]), "pw9") {
			t.Fatal("cache key holds the plaintext")
		}
	}
}

func TestConcurrentAuthenticate(t *testing.T) {
	ctx := context.Background()
	r, _ := newTestRegistry(t)
	r.CacheSize = 8
	for i := range 4 {
		mustCreate(t, r, Input{PartnerID: ptr(fmt.Sprint("P", i)), Password: ptr(fmt.Sprint(strong, i))})
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 16 {
		wg.Go(func() {
			for j := range 10 {
				i := (g + j) % 4
				pw := fmt.Sprint(strong, i)
				if j%3 == 0 {
					pw += "wrong"
				}
				_, err := r.Authenticate(ctx, AuthRequest{PartnerID: fmt.Sprint("P", i), Passwords: []string{pw}})
				if (err == nil) == (j%3 == 0) {
					errs <- fmt.Errorf("P%d j=%d: %v", i, j, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// slowStorage widens the window between reading and writing a record, so
// that a read-modify-write without the storage lock would lose updates.
type slowStorage struct {
	*certmagic.FileStorage
}

func (s slowStorage) Load(ctx context.Context, key string) ([]byte, error) {
	time.Sleep(3 * time.Millisecond)
	return s.FileStorage.Load(ctx, key)
}

func TestConcurrentUpdatesTwoInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("waits on FileStorage lock polling")
	}
	ctx := context.Background()
	dir := t.TempDir()
	// Two instances: separate Registries and separate FileStorage values
	// on one directory, as two gateway processes would have.
	a := &Registry{Storage: slowStorage{&certmagic.FileStorage{Path: dir}}, argon: &cheapArgon}
	b := &Registry{Storage: slowStorage{&certmagic.FileStorage{Path: dir}}, argon: &cheapArgon}
	mustCreate(t, a, Input{PartnerID: ptr("SHARED"), Password: ptr(strong)})

	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for name, r := range map[string]*Registry{"a": a, "b": b} {
		wg.Go(func() {
			for i := range n {
				// Append a token to the description: the new value depends on
				// the current one, like a counter.
				_, err := r.Modify(ctx, "SHARED", func(cur Partner) (Input, error) {
					return Input{Description: ptr(cur.Description + fmt.Sprintf("%s%02d,", name, i))}, nil
				})
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	p, err := b.Get(ctx, "SHARED")
	if err != nil {
		t.Fatal(err)
	}
	tokens := strings.Split(strings.TrimSuffix(p.Description, ","), ",")
	if len(tokens) != 2*n {
		t.Fatalf("%d of %d updates survived: %q", len(tokens), 2*n, p.Description)
	}
	seen := map[string]bool{}
	for _, tok := range tokens {
		seen[tok] = true
	}
	for _, name := range []string{"a", "b"} {
		for i := range n {
			if !seen[fmt.Sprintf("%s%02d", name, i)] {
				t.Errorf("update %s%02d lost", name, i)
			}
		}
	}
	// Each instance applied its own updates in order.
	for _, name := range []string{"a", "b"} {
		last := -1
		for _, tok := range tokens {
			if tok[:1] == name {
				var i int
				fmt.Sscanf(tok[1:], "%d", &i)
				if i <= last {
					t.Errorf("instance %s: update %d after %d", name, i, last)
				}
				last = i
			}
		}
	}
}

// strictUnlockStorage fails to unlock with a done context, as a network
// storage would, to check that locks are released with a fresh context.
type strictUnlockStorage struct {
	*certmagic.FileStorage
}

func (s strictUnlockStorage) Unlock(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.FileStorage.Unlock(ctx, name)
}

func TestLockReleasedAfterCancel(t *testing.T) {
	st := strictUnlockStorage{&certmagic.FileStorage{Path: t.TempDir()}}
	r := &Registry{Storage: st, argon: &cheapArgon}
	mustCreate(t, r, Input{PartnerID: ptr("K"), Password: ptr(strong)})
	ctx, cancel := context.WithCancel(context.Background())
	_, err := r.Modify(ctx, "K", func(Partner) (Input, error) {
		cancel() // the client went away while we held the lock
		return Input{Description: ptr("x")}, nil
	})
	if err != nil {
		t.Fatalf("Modify: %v", err)
	}
	// With the lock left behind, this would wait for staleness (10 s).
	ctx2, cancel2 := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel2()
	if _, err := r.Update(ctx2, "K", Input{Description: ptr("y")}); err != nil {
		t.Fatalf("lock not released: %v", err)
	}
}

// foldStorage maps keys to lower case, like a case-insensitive file system.
type foldStorage struct {
	*certmagic.FileStorage
}

func (s foldStorage) Store(ctx context.Context, k string, v []byte) error {
	return s.FileStorage.Store(ctx, strings.ToLower(k), v)
}
func (s foldStorage) Load(ctx context.Context, k string) ([]byte, error) {
	return s.FileStorage.Load(ctx, strings.ToLower(k))
}
func (s foldStorage) Delete(ctx context.Context, k string) error {
	return s.FileStorage.Delete(ctx, strings.ToLower(k))
}

func TestCaseInsensitiveStorage(t *testing.T) {
	ctx := context.Background()
	r := &Registry{Storage: foldStorage{&certmagic.FileStorage{Path: t.TempDir()}}, argon: &cheapArgon}
	mustCreate(t, r, Input{PartnerID: ptr("BANK"), Password: ptr(strong)})
	if _, err := r.Create(ctx, Input{PartnerID: ptr("bank"), Password: ptr(strong + "x")}); !errors.Is(err, ErrExists) {
		t.Fatalf("Create of a case variant: want ErrExists, got %v", err)
	}
	if _, err := r.Get(ctx, "bank"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a case variant: %v", err)
	}
	if err := r.Delete(ctx, "bank"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Delete of a case variant: %v", err)
	}
	_, err := r.Authenticate(ctx, AuthRequest{PartnerID: "bank", Passwords: []string{strong}})
	wantReason(t, err, ReasonUnknownPartner)
	if _, err := r.Authenticate(ctx, AuthRequest{PartnerID: "BANK", Passwords: []string{strong}}); err != nil {
		t.Fatal(err)
	}
}

type failingStorage struct{ certmagic.Storage }

func (failingStorage) Load(context.Context, string) ([]byte, error) {
	return nil, errors.New("storage unreachable")
}

func BenchmarkAuthenticate(b *testing.B) {
	ctx := context.Background()
	st := &certmagic.FileStorage{Path: b.TempDir()}
	// Production argon2id parameters: the miss case is what a connection
	// with a new (or evicted) password costs.
	setup := &Registry{Storage: st}
	if _, err := setup.Create(ctx, Input{PartnerID: ptr("BANK_XYZ"), Password: ptr(strong), AllowedIPs: &[]string{"203.0.113.0/24"}}); err != nil {
		b.Fatal(err)
	}
	req := AuthRequest{PartnerID: "BANK_XYZ", Passwords: []string{"Complex", strong}, RemoteIP: addr("203.0.113.50")}
	for _, c := range []struct {
		name  string
		cache int
	}{{"hit", 0}, {"miss", -1}} {
		b.Run(c.name, func(b *testing.B) {
			r := &Registry{Storage: st, CacheSize: c.cache}
			if _, err := r.Authenticate(ctx, req); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Authenticate(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestRefusalsCostAsMuchAsAWrongPassword: an unknown partner, a disabled
// one, or one refused for its address or certificate must cost the same
// password hashing as a wrong password, or the answer's timing tells
// which partners exist.
func TestRefusalsCostAsMuchAsAWrongPassword(t *testing.T) {
	ctx := context.Background()
	r, _ := newTestRegistry(t)
	r.CacheSize = -1
	cert := newCert(t, "bank-xyz.example.com")
	other := newCert(t, "intruder.example.com")
	mustCreate(t, r, Input{PartnerID: ptr("OK"), Password: ptr(strong), AllowedIPs: &[]string{"203.0.113.0/24"}, CertificateBinding: ptr("CN=bank-xyz.example.com")})
	mustCreate(t, r, Input{PartnerID: ptr("OFF"), Password: ptr(strong), Enabled: ptr(false)})
	base := AuthRequest{PartnerID: "OK", Passwords: []string{"Wrong-Password-1", "Wrong-Pa"}, RemoteIP: addr("203.0.113.50"), ClientCert: cert}
	with := func(f func(*AuthRequest)) AuthRequest { q := base; f(&q); return q }
	cases := []struct {
		name   string
		req    AuthRequest
		reason AuthReason
	}{
		{"bad password", base, ReasonBadPassword},
		{"unknown", with(func(q *AuthRequest) { q.PartnerID = "NOBODY" }), ReasonUnknownPartner},
		{"invalid id", with(func(q *AuthRequest) { q.PartnerID = "../x" }), ReasonUnknownPartner},
		{"disabled", with(func(q *AuthRequest) { q.PartnerID = "OFF" }), ReasonDisabled},
		{"ip", with(func(q *AuthRequest) { q.RemoteIP = addr("198.51.100.1") }), ReasonIPNotAllowed},
		{"cert required", with(func(q *AuthRequest) { q.ClientCert = nil }), ReasonCertificateRequired},
		{"cert mismatch", with(func(q *AuthRequest) { q.ClientCert = other }), ReasonCertificateMismatch},
	}
	for _, c := range cases {
		before := r.hashes.Load()
		_, err := r.Authenticate(ctx, c.req)
		wantReason(t, err, c.reason)
		if n := r.hashes.Load() - before; n != 2 {
			t.Errorf("%s: %d password hashes, want 2 like a wrong password", c.name, n)
		}
	}
	// No password at all costs nothing, whoever the partner.
	for _, id := range []string{"OK", "NOBODY"} {
		before := r.hashes.Load()
		_, _ = r.Authenticate(ctx, AuthRequest{PartnerID: id, RemoteIP: addr("203.0.113.50"), ClientCert: cert})
		if n := r.hashes.Load() - before; n != 0 {
			t.Errorf("%s without a password: %d hashes", id, n)
		}
	}
}

// TestAuthenticateHashSlotDeadline: a caller that cannot get a hash slot
// before its deadline gets the context's error, never a refusal.
func TestAuthenticateHashSlotDeadline(t *testing.T) {
	r, _ := newTestRegistry(t)
	r.MaxConcurrentHashes = 1
	mustCreate(t, r, Input{PartnerID: ptr("OK"), Password: ptr(strong)})
	r.hashSem <- struct{}{} // the only slot, held
	defer func() { <-r.hashSem }()
	for _, id := range []string{"OK", "NOBODY"} {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		start := time.Now()
		_, err := r.Authenticate(ctx, AuthRequest{PartnerID: id, Passwords: []string{"Wrong-Password-1"}})
		cancel()
		var ae *AuthError
		if !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ae) {
			t.Errorf("%s: %v, want the deadline", id, err)
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("%s: waited %s", id, time.Since(start))
		}
	}
}

// outageStorage fails every Load while down is set, as the Redis storage
// does while Redis is unreachable.
type outageStorage struct {
	certmagic.Storage
	down *atomic.Bool
}

func (s outageStorage) Load(ctx context.Context, key string) ([]byte, error) {
	if s.down.Load() {
		return nil, errors.New("storage unreachable")
	}
	return s.Storage.Load(ctx, key)
}

// While the storage is unavailable, a partner whose password the cache
// holds for the record it last authenticated with is let in on that
// record; anyone else gets the storage error, without a password
// verification; after a partner change nobody is let in from memory.
func TestStorageOutageKeepsCachedPartners(t *testing.T) {
	ctx := context.Background()
	r, _ := newTestRegistry(t)
	down := new(atomic.Bool)
	r.Storage = outageStorage{r.Storage, down}
	mustCreate(t, r, Input{PartnerID: ptr("BANK"), Password: ptr(strong), AllowedIPs: &[]string{"10.0.0.0/8"}})
	mustCreate(t, r, Input{PartnerID: ptr("LATE"), Password: ptr(strong)})
	if _, err := r.Authenticate(ctx, AuthRequest{PartnerID: "BANK", Passwords: []string{strong}, RemoteIP: netip.MustParseAddr("10.1.2.3")}); err != nil {
		t.Fatal(err)
	}

	down.Store(true)
	before := r.hashes.Load()
	if p, err := r.Authenticate(ctx, AuthRequest{PartnerID: "BANK", Passwords: []string{strong}, RemoteIP: netip.MustParseAddr("10.1.2.3")}); err != nil || p.PartnerID != "BANK" {
		t.Fatalf("cached partner during the outage: %v", err)
	}
	if n := r.hashes.Load() - before; n != 0 {
		t.Errorf("%d password verifications for the cached partner, want none", n)
	}
	// The cached record's checks still run.
	_, err := r.Authenticate(ctx, AuthRequest{PartnerID: "BANK", Passwords: []string{strong}, RemoteIP: netip.MustParseAddr("192.0.2.1")})
	wantReason(t, err, ReasonIPNotAllowed)
	before = r.hashes.Load()
	var ae *AuthError
	for _, req := range []AuthRequest{
		{PartnerID: "BANK", Passwords: []string{"Wrong-Password-1"}, RemoteIP: netip.MustParseAddr("10.1.2.3")},
		{PartnerID: "LATE", Passwords: []string{strong}},
		{PartnerID: "NOBODY", Passwords: []string{strong}},
	} {
		if _, err := r.Authenticate(ctx, req); err == nil || errors.As(err, &ae) {
			t.Errorf("%s during the outage: %v, want the storage error", req.PartnerID, err)
		}
	}
	if n := r.hashes.Load() - before; n != 0 {
		t.Errorf("%d password verifications during the outage, want none", n)
	}
	r.ForgetAuthentications()
	if _, err := r.Authenticate(ctx, AuthRequest{PartnerID: "BANK", Passwords: []string{strong}, RemoteIP: netip.MustParseAddr("10.1.2.3")}); err == nil {
		t.Error("a partner let in from memory after a partner change")
	}

	// CachedOnly (the caller cannot count failures): nothing is verified,
	// storage up or not; only a cached password lets the partner in.
	down.Store(false)
	before = r.hashes.Load()
	for _, req := range []AuthRequest{
		{PartnerID: "LATE", Passwords: []string{strong}, CachedOnly: true},
		{PartnerID: "LATE", Passwords: []string{"Wrong-Password-1"}, CachedOnly: true},
		{PartnerID: "NOBODY", Passwords: []string{strong}, CachedOnly: true},
	} {
		if _, err := r.Authenticate(ctx, req); err == nil {
			t.Errorf("CachedOnly let %s in without a cached password", req.PartnerID)
		}
	}
	if n := r.hashes.Load() - before; n != 0 {
		t.Errorf("%d password verifications for CachedOnly requests, want none", n)
	}
	if _, err := r.Authenticate(ctx, AuthRequest{PartnerID: "LATE", Passwords: []string{strong}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Authenticate(ctx, AuthRequest{PartnerID: "LATE", Passwords: []string{strong}, CachedOnly: true}); err != nil {
		t.Errorf("CachedOnly refused a cached password: %v", err)
	}
}

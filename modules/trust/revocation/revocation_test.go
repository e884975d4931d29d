package revocation_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/bankedge/bankedge/internal/testpki"
	"github.com/bankedge/bankedge/internal/testrevocation"
	"github.com/bankedge/bankedge/modules/trust/fetch"
	"github.com/bankedge/bankedge/modules/trust/revocation"
)

func leaf(t testing.TB, ca *testpki.CA, ocspURL, crlURL string) *x509.Certificate {
	tmpl := &x509.Certificate{
		Subject:   pkix.Name{CommonName: "TPP"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if ocspURL != "" {
		tmpl.OCSPServer = []string{ocspURL}
	}
	if crlURL != "" {
		tmpl.CRLDistributionPoints = []string{crlURL}
	}
	return ca.Issue(t, tmpl, testpki.ECKey(t).Public())
}

func check(c *revocation.Checker, cert, issuer *x509.Certificate, prefer revocation.Prefer) revocation.Result {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return c.Check(ctx, sha256.Sum256(cert.Raw), cert, issuer, prefer)
}

func newChecker() *revocation.Checker {
	return revocation.New(revocation.Options{HTTP: &fetch.Client{HTTP: fetch.NewHTTPClient(5 * time.Second)}})
}

// newClockedChecker returns a checker whose clock runs offset ahead.
func newClockedChecker() (*revocation.Checker, *atomic.Int64) {
	offset := new(atomic.Int64)
	return revocation.New(revocation.Options{
		HTTP: &fetch.Client{HTTP: fetch.NewHTTPClient(5 * time.Second)},
		Now:  func() time.Time { return time.Now().Add(time.Duration(offset.Load())) },
	}), offset
}

func TestOCSPGoodRevokedAndCached(t *testing.T) {
	ca := testpki.NewCA(t, "QTSP CA")
	r := testrevocation.NewResponder(t, ca)
	good := leaf(t, ca, r.URL, "")
	revoked := leaf(t, ca, r.URL, "")
	r.Set(func(r *testrevocation.Responder) { r.Status[revoked.SerialNumber.Text(16)] = ocsp.Revoked })
	c := newChecker()

	res := check(c, good, ca.Cert, revocation.PreferOCSP)
	if res.Status != revocation.Good || res.Source != "ocsp" {
		t.Fatalf("good: %+v", res)
	}
	if res.Until.Before(time.Now().Add(50*time.Minute)) || res.Until.After(time.Now().Add(61*time.Minute)) {
		t.Fatalf("cached until %s, want the nextUpdate in an hour", res.Until)
	}
	res = check(c, revoked, ca.Cert, revocation.PreferOCSP)
	if res.Status != revocation.Revoked || res.Reason != 0 || res.RevokedAt.IsZero() {
		t.Fatalf("revoked: %+v", res)
	}
	hits := r.Hits()
	for i := 0; i < 5; i++ {
		check(c, good, ca.Cert, revocation.PreferOCSP)
		check(c, revoked, ca.Cert, revocation.PreferOCSP)
	}
	if r.Hits() != hits {
		t.Fatalf("cached answers fetched again: %d hits, want %d", r.Hits(), hits)
	}
	if _, ok := c.Cached(sha256.Sum256(good.Raw)); !ok {
		t.Fatal("no cached answer")
	}
}

func TestOCSPResponsesRefused(t *testing.T) {
	ca := testpki.NewCA(t, "QTSP CA")
	other := testpki.NewCA(t, "Other CA")
	r := testrevocation.NewResponder(t, ca)
	cert := leaf(t, ca, r.URL, "")
	respKey := testpki.ECKey(t)
	delegated := func(eku bool, issuer *testpki.CA) *x509.Certificate {
		tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: "OCSP responder"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
		if eku {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}
		}
		return issuer.Issue(t, tmpl, respKey.Public())
	}
	cases := map[string]struct {
		set  func(r *testrevocation.Responder)
		want string
	}{
		"delegated with OCSPSigning":    {func(r *testrevocation.Responder) { r.Signer, r.SignCert = respKey, delegated(true, ca) }, ""},
		"delegated without OCSPSigning": {func(r *testrevocation.Responder) { r.Signer, r.SignCert = respKey, delegated(false, ca) }, "lacks id-kp-OCSPSigning"},
		"delegated by another CA":       {func(r *testrevocation.Responder) { r.Signer, r.SignCert = respKey, delegated(true, other) }, "not issued by the certificate's issuer"},
		"signed by another CA":          {func(r *testrevocation.Responder) { r.Signer, r.SignCert = other.Key, nil }, "not signed by the issuer"},
		"stale":                         {func(r *testrevocation.Responder) { r.ThisUpdate, r.NextUpdate = -3*time.Hour, -time.Hour }, "stale"},
		"future":                        {func(r *testrevocation.Responder) { r.ThisUpdate = time.Hour }, "in the future"},
		"old without nextUpdate":        {func(r *testrevocation.Responder) { r.ThisUpdate, r.NextUpdate = -2*time.Hour, 0 }, "without nextUpdate is stale"},
		"fresh without nextUpdate":      {func(r *testrevocation.Responder) { r.NextUpdate = 0 }, ""},
		"unknown to the responder":      {func(r *testrevocation.Responder) { r.Status[cert.SerialNumber.Text(16)] = ocsp.Unknown }, "does not know"},
		"tryLater":                      {func(r *testrevocation.Responder) { r.Raw = ocsp.TryLaterErrorResponse }, "try later"},
		"garbage":                       {func(r *testrevocation.Responder) { r.Raw = []byte("<html>") }, "malformed"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r.Set(func(r *testrevocation.Responder) {
				r.Status, r.Signer, r.SignCert, r.ThisUpdate, r.NextUpdate, r.Raw = map[string]int{}, nil, nil, -time.Minute, time.Hour, nil
				tc.set(r)
			})
			res := check(newChecker(), cert, ca.Cert, revocation.PreferOCSP)
			if tc.want == "" {
				if res.Status != revocation.Good {
					t.Fatalf("refused: %+v", res)
				}
				return
			}
			if res.Status != revocation.Unknown || !strings.Contains(res.Detail, tc.want) {
				t.Fatalf("got %+v, want unknown saying %q", res, tc.want)
			}
		})
	}
}

func TestFallbackAndPreference(t *testing.T) {
	ca := testpki.NewCA(t, "QTSP CA")
	r := testrevocation.NewResponder(t, ca)
	crls := testrevocation.NewCRLServer(t)
	cert := leaf(t, ca, r.URL, crls.URL+"/ca.crl")
	crls.Put(testrevocation.MakeCRL(t, ca, time.Now().Add(-time.Minute), time.Now().Add(2*time.Hour), cert))

	// OCSP says good, the CRL revoked: the preference decides.
	if res := check(newChecker(), cert, ca.Cert, revocation.PreferOCSP); res.Status != revocation.Good || res.Source != "ocsp" {
		t.Fatalf("prefer ocsp: %+v", res)
	}
	if res := check(newChecker(), cert, ca.Cert, revocation.PreferCRL); res.Status != revocation.Revoked || res.Source != "crl" || res.Reason != 1 {
		t.Fatalf("prefer crl: %+v", res)
	}

	// Responder down: the CRL answers.
	r.Set(func(r *testrevocation.Responder) { r.Raw = ocsp.InternalErrorErrorResponse })
	if res := check(newChecker(), cert, ca.Cert, revocation.PreferOCSP); res.Status != revocation.Revoked || res.Source != "crl" {
		t.Fatalf("fallback to crl: %+v", res)
	}
	// Both down: unknown, saying why, cached shortly.
	crls.Put(nil)
	res := check(newChecker(), cert, ca.Cert, revocation.PreferOCSP)
	if res.Status != revocation.Unknown || !strings.Contains(res.Detail, "OCSP") || !strings.Contains(res.Detail, "CRL") || !strings.Contains(res.Detail, "404") {
		t.Fatalf("both down: %+v", res)
	}
	if res.Until.After(time.Now().Add(31 * time.Second)) {
		t.Fatalf("unknown cached until %s", res.Until)
	}

	bare := leaf(t, ca, "", "")
	if res := check(newChecker(), bare, ca.Cert, revocation.PreferOCSP); res.Status != revocation.Unknown || !strings.Contains(res.Detail, "no OCSP responder and no CRL") {
		t.Fatalf("no AIA, no CDP: %+v", res)
	}
	fileOnly := leaf(t, ca, "file:///etc/passwd", "ldap://x/cn=crl")
	if res := check(newChecker(), fileOnly, ca.Cert, revocation.PreferOCSP); res.Status != revocation.Unknown {
		t.Fatalf("file and ldap URLs followed: %+v", res)
	}
}

func TestCRLRefused(t *testing.T) {
	ca := testpki.NewCA(t, "QTSP CA")
	other := testpki.NewCA(t, "Other CA")
	crls := testrevocation.NewCRLServer(t)
	cert := leaf(t, ca, "", crls.URL+"/ca.crl")
	now := time.Now()
	cases := map[string]struct {
		der  []byte
		want string
	}{
		"stale":          {testrevocation.MakeCRL(t, ca, now.Add(-3*time.Hour), now.Add(-time.Hour)), "stale"},
		"future":         {testrevocation.MakeCRL(t, ca, now.Add(time.Hour), now.Add(2*time.Hour)), "in the future"},
		"other issuer":   {testrevocation.MakeCRL(t, other, now, now.Add(time.Hour)), "not the certificate's issuer"},
		"bad signature":  {corrupt(testrevocation.MakeCRL(t, ca, now, now.Add(time.Hour))), "CRL"},
		"not a CRL":      {[]byte("-----BEGIN X509 CRL-----"), "malformed CRL"},
		"over the limit": {make([]byte, 2<<10), "too large"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			crls.Put(tc.der)
			c := revocation.New(revocation.Options{HTTP: &fetch.Client{HTTP: fetch.NewHTTPClient(5 * time.Second)}, MaxCRLBytes: 1 << 10})
			if name != "over the limit" {
				c = newChecker()
			}
			res := check(c, cert, ca.Cert, revocation.PreferCRL)
			if res.Status != revocation.Unknown || !strings.Contains(res.Detail, tc.want) {
				t.Fatalf("got %+v, want unknown saying %q", res, tc.want)
			}
		})
	}
}

func corrupt(der []byte) []byte {
	out := append([]byte{}, der...)
	out[len(out)-3] ^= 0xff
	return out
}

// A CRL is downloaded once for all the certificates it covers.
func TestCRLSharedBetweenCertificates(t *testing.T) {
	ca := testpki.NewCA(t, "QTSP CA")
	crls := testrevocation.NewCRLServer(t)
	var certs []*x509.Certificate
	for i := 0; i < 5; i++ {
		certs = append(certs, leaf(t, ca, "", crls.URL+"/ca.crl"))
	}
	crls.Put(testrevocation.MakeCRL(t, ca, time.Now(), time.Now().Add(time.Hour), certs[2]))
	c := newChecker()
	for i, cert := range certs {
		res := check(c, cert, ca.Cert, revocation.PreferOCSP)
		if want := i == 2; (res.Status == revocation.Revoked) != want || res.Status == revocation.Unknown {
			t.Fatalf("cert %d: %+v", i, res)
		}
	}
	if crls.Hits() != 1 {
		t.Fatalf("%d CRL downloads, want 1", crls.Hits())
	}
}

// A responder that never answers costs each caller at most its own
// timeout, and concurrent callers share one request.
func TestTimeoutAndSingleFlight(t *testing.T) {
	ca := testpki.NewCA(t, "QTSP CA")
	r := testrevocation.NewResponder(t, ca)
	r.Set(func(r *testrevocation.Responder) { r.Hang = true })
	cert := leaf(t, ca, r.URL, "")
	c := newChecker()
	sum := sha256.Sum256(cert.Raw)

	start := time.Now()
	var wg sync.WaitGroup
	results := make([]revocation.Result, 20)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			results[i] = c.Check(ctx, sum, cert, ca.Cert, revocation.PreferOCSP)
		}()
	}
	wg.Wait()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("callers waited %s past a 300ms timeout", d)
	}
	for _, res := range results {
		if res.Status != revocation.Unknown {
			t.Fatalf("%+v", res)
		}
	}
	if h := r.Hits(); h != 1 {
		t.Fatalf("%d OCSP requests for one certificate, want 1", h)
	}
	r.Set(func(r *testrevocation.Responder) { r.Hang = false })
}

// The cache hit is the hot path of every PSD2 request: no allocation.
func TestCachedCheckDoesNotAllocate(t *testing.T) {
	ca := testpki.NewCA(t, "QTSP CA")
	r := testrevocation.NewResponder(t, ca)
	cert := leaf(t, ca, r.URL, "")
	c := newChecker()
	sum := sha256.Sum256(cert.Raw)
	ctx := context.Background()
	if res := c.Check(ctx, sum, cert, ca.Cert, revocation.PreferOCSP); res.Status != revocation.Good {
		t.Fatal(res)
	}
	if n := testing.AllocsPerRun(100, func() { c.Check(ctx, sum, cert, ca.Cert, revocation.PreferOCSP) }); n != 0 {
		t.Fatalf("%v allocations per cached check", n)
	}
}

func BenchmarkCheckCached(b *testing.B) {
	ca := testpki.NewCA(b, "QTSP CA")
	r := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {}))
	defer r.Close()
	crls := testrevocation.MakeCRL(b, ca, time.Now(), time.Now().Add(time.Hour))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { _, _ = w.Write(crls) }))
	defer srv.Close()
	cert := leaf(b, ca, "", srv.URL)
	c := newChecker()
	sum := sha256.Sum256(cert.Raw)
	ctx := context.Background()
	if res := c.Check(ctx, sum, cert, ca.Cert, revocation.PreferOCSP); res.Status != revocation.Good {
		b.Fatal(res)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if c.Check(ctx, sum, cert, ca.Cert, revocation.PreferOCSP).Status != revocation.Good {
				b.Fatal("not good")
			}
		}
	})
}

// A good answer is renewed in the background during the last fifth of its
// life: requests meanwhile get the cached answer at once, and a failed
// renewal keeps it until it ends.
func TestRefreshAhead(t *testing.T) {
	ca := testpki.NewCA(t, "QTSP CA")
	r := testrevocation.NewResponder(t, ca)
	cert := leaf(t, ca, r.URL, "")
	c, offset := newClockedChecker()
	if res := check(c, cert, ca.Cert, revocation.PreferOCSP); res.Status != revocation.Good {
		t.Fatal(res)
	}
	hits := r.Hits()

	// Half-way through the hour: cached, no request.
	offset.Store(int64(30 * time.Minute))
	if res := check(c, cert, ca.Cert, revocation.PreferOCSP); res.Status != revocation.Good || r.Hits() != hits {
		t.Fatalf("%+v after %d requests", res, r.Hits()-hits)
	}
	// 50 minutes in, the responder is down: the cached answer stays.
	r.Set(func(r *testrevocation.Responder) { r.Raw = ocsp.InternalErrorErrorResponse })
	offset.Store(int64(50 * time.Minute))
	if res := check(c, cert, ca.Cert, revocation.PreferOCSP); res.Status != revocation.Good {
		t.Fatal(res)
	}
	waitFor(t, func() bool { return r.Hits() > hits })
	if res := check(c, cert, ca.Cert, revocation.PreferOCSP); res.Status != revocation.Good {
		t.Fatalf("a failed renewal dropped the good answer: %+v", res)
	}
	// The responder is back and the certificate revoked: after the retry
	// delay a renewal brings the news.
	r.Set(func(r *testrevocation.Responder) { r.Raw = nil; r.Status[cert.SerialNumber.Text(16)] = ocsp.Revoked })
	offset.Store(int64(51 * time.Minute))
	check(c, cert, ca.Cert, revocation.PreferOCSP)
	waitFor(t, func() bool { return check(c, cert, ca.Cert, revocation.PreferOCSP).Status == revocation.Revoked })
}

// A CRL that ends with the answer is downloaded again during the last
// fifth: a revocation in the publisher's next CRL counts before the cached
// one ends, and a CRL not yet renewed is asked for again only after a
// quarter of what is left, not on every request.
func TestRefreshAheadCRL(t *testing.T) {
	ca := testpki.NewCA(t, "QTSP CA")
	crls := testrevocation.NewCRLServer(t)
	cert := leaf(t, ca, "", crls.URL+"/ca.crl")
	crls.Put(testrevocation.MakeCRL(t, ca, time.Now(), time.Now().Add(time.Hour)))
	c, offset := newClockedChecker()
	if res := check(c, cert, ca.Cert, revocation.PreferCRL); res.Status != revocation.Good {
		t.Fatal(res)
	}
	// 50 minutes in, the same CRL is still published: one download, then
	// none on the following requests.
	offset.Store(int64(50 * time.Minute))
	check(c, cert, ca.Cert, revocation.PreferCRL)
	waitFor(t, func() bool { return crls.Hits() == 2 })
	for range 5 {
		check(c, cert, ca.Cert, revocation.PreferCRL)
	}
	if h := crls.Hits(); h != 2 {
		t.Fatalf("%d CRL downloads, want 2: an unchanged CRL is fetched again on every request", h)
	}
	// The publisher's next CRL revokes the certificate; 53 minutes in (a
	// quarter of the 10 minutes left has passed) it is found.
	crls.Put(testrevocation.MakeCRL(t, ca, time.Now().Add(50*time.Minute), time.Now().Add(2*time.Hour), cert))
	offset.Store(int64(53 * time.Minute))
	waitFor(t, func() bool { return check(c, cert, ca.Cert, revocation.PreferCRL).Status == revocation.Revoked })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not reached in 5s")
}

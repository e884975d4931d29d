package trust_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/bankedge/bankedge/internal/testpki"
	"github.com/bankedge/bankedge/modules/trust"
	"github.com/bankedge/bankedge/modules/trust/fetch"
	"github.com/bankedge/bankedge/modules/trust/revocation"
)

func TestRevocationPolicyCaddyfile(t *testing.T) {
	var p trust.RevocationPolicy
	d := caddyfile.NewTestDispenser(`revocation {
		mode    soft
		prefer  crl
		timeout 2s
	}`)
	d.Next()
	if err := p.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if p.Mode != "soft" || p.Prefer != "crl" || time.Duration(p.Timeout) != 2*time.Second {
		t.Fatalf("%+v", p)
	}
	for _, bad := range []string{"revocation maybe", "revocation { prefer ldap }", "revocation { timeout 0s }", "revocation { retries 3 }", "revocation hard soft"} {
		var p trust.RevocationPolicy
		d := caddyfile.NewTestDispenser(bad)
		d.Next()
		if err := p.UnmarshalCaddyfile(d); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
	if err := (&trust.RevocationPolicy{Mode: "lenient"}).Provision(); err == nil {
		t.Fatal("mode lenient provisioned")
	}
}

func TestRevocationPolicyVerdicts(t *testing.T) {
	ca := testpki.NewCA(t, "QTSP CA")
	var crl atomic.Pointer[[]byte]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		der := crl.Load()
		if der == nil {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write(*der)
	}))
	defer srv.Close()
	issue := func() *x509.Certificate {
		return ca.Issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "TPP"}, NotBefore: time.Now().Add(-time.Hour),
			NotAfter: time.Now().Add(time.Hour), CRLDistributionPoints: []string{srv.URL + "/ca.crl"}}, testpki.ECKey(t).Public())
	}
	good, revoked, unknown := issue(), issue(), issue()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: revoked.SerialNumber, RevocationTime: time.Now()}}}, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	policy := func(mode string) *trust.RevocationPolicy {
		p := &trust.RevocationPolicy{Mode: mode}
		p.UseChecker(revocation.New(revocation.Options{HTTP: &fetch.Client{HTTP: fetch.NewHTTPClient(time.Second)}}))
		if err := p.Provision(); err != nil {
			t.Fatal(err)
		}
		return p
	}
	check := func(p *trust.RevocationPolicy, c *x509.Certificate) trust.Verdict {
		v, _ := p.Check(context.Background(), sha256.Sum256(c.Raw), c, ca.Cert)
		return v
	}
	// The distribution point is down: unknown.
	for mode, want := range map[string]trust.Verdict{"": trust.RefuseUnknown, "hard": trust.RefuseUnknown, "soft": trust.AllowUnknown, "off": trust.Allow} {
		if v := check(policy(mode), unknown); v != want {
			t.Fatalf("mode %q, status unknown: verdict %d, want %d", mode, v, want)
		}
	}
	crl.Store(&der)
	for _, mode := range []string{"hard", "soft"} {
		p := policy(mode)
		if v := check(p, good); v != trust.Allow {
			t.Fatalf("mode %s, good: %d", mode, v)
		}
		if v := check(p, revoked); v != trust.Refuse {
			t.Fatalf("mode %s, revoked: %d", mode, v)
		}
		sum := sha256.Sum256(good.Raw)
		if n := testing.AllocsPerRun(100, func() { p.Check(context.Background(), sum, good, ca.Cert) }); n != 0 {
			t.Fatalf("%v allocations per cached check", n)
		}
	}
}

// BenchmarkRevocationPolicyCached is the per-request cost of revocation in
// a PSD2 handler once the answer is cached.
func BenchmarkRevocationPolicyCached(b *testing.B) {
	ca := testpki.NewCA(b, "QTSP CA")
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour)}, ca.Cert, ca.Key)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(der) }))
	defer srv.Close()
	cert := ca.Issue(b, &x509.Certificate{Subject: pkix.Name{CommonName: "TPP"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), CRLDistributionPoints: []string{srv.URL}}, testpki.ECKey(b).Public())
	p := &trust.RevocationPolicy{}
	p.UseChecker(revocation.New(revocation.Options{}))
	if err := p.Provision(); err != nil {
		b.Fatal(err)
	}
	sum := sha256.Sum256(cert.Raw)
	ctx := context.Background()
	if v, res := p.Check(ctx, sum, cert, ca.Cert); v != trust.Allow {
		b.Fatal(res)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if v, _ := p.Check(ctx, sum, cert, ca.Cert); v != trust.Allow {
			b.Fatal("refused")
		}
	}
}

// The policy renews answers ahead of their end like the checker does: a
// certificate in use is checked again in the background before its cached
// answer ends, so a revocation in the publisher's next CRL counts without
// waiting for the cached one to end, and no request waits on the fetch.
func TestRevocationPolicyRefreshesAhead(t *testing.T) {
	ca := testpki.NewCA(t, "QTSP CA")
	var crl atomic.Pointer[[]byte]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(*crl.Load()) }))
	defer srv.Close()
	cert := ca.Issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "TPP"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(3 * time.Hour), CRLDistributionPoints: []string{srv.URL + "/ca.crl"}}, testpki.ECKey(t).Public())
	publish := func(from time.Time, revoked ...x509.RevocationListEntry) {
		der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(from.UnixNano()), ThisUpdate: from,
			NextUpdate: from.Add(time.Hour), RevokedCertificateEntries: revoked}, ca.Cert, ca.Key)
		if err != nil {
			t.Fatal(err)
		}
		crl.Store(&der)
	}
	publish(time.Now())
	var offset atomic.Int64
	p := &trust.RevocationPolicy{Prefer: "crl"}
	p.UseChecker(revocation.New(revocation.Options{HTTP: &fetch.Client{HTTP: fetch.NewHTTPClient(time.Second)},
		Now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }}))
	if err := p.Provision(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.Raw)
	if v, res := p.Check(context.Background(), sum, cert, ca.Cert); v != trust.Allow {
		t.Fatal(res)
	}
	publish(time.Now().Add(45*time.Minute), x509.RevocationListEntry{SerialNumber: cert.SerialNumber, RevocationTime: time.Now()})
	offset.Store(int64(50 * time.Minute))
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		v, _ := p.Check(context.Background(), sum, cert, ca.Cert)
		if v == trust.Refuse {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the revocation in the next CRL was not found before the cached answer ended")
		}
	}
}

package psd2

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	_ "github.com/caddyserver/caddy/v2/modules/caddytls"

	"github.com/bankedge/bankedge/internal/certprofile/qcstatements"
	"github.com/bankedge/bankedge/internal/certprofile/tppcert"
	"github.com/bankedge/bankedge/internal/testpki"
	"github.com/bankedge/bankedge/internal/testrevocation"
	"github.com/bankedge/bankedge/modules/psd2/httpsig"
	"github.com/bankedge/bankedge/modules/psd2/tppclient"
	"github.com/bankedge/bankedge/modules/trust"
)

func newBenchHandlers(tb testing.TB, ca *testpki.CA, profile string, revocation func() *trust.RevocationPolicy) (*QWAC, *QSEAL) {
	tb.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	tb.Cleanup(cancel)
	return provisionBoth(tb, ctx, ca, profile, revocation)
}

// provisionBoth provisions the handlers trusting ca, with the revocation
// block that revocation makes (nil: none).
func provisionBoth(tb testing.TB, ctx caddy.Context, ca *testpki.CA, profile string, revocation func() *trust.RevocationPolicy) (*QWAC, *QSEAL) {
	pool, _ := json.Marshal(map[string]any{
		"provider":         "inline",
		"trusted_ca_certs": []string{base64.StdEncoding.EncodeToString(ca.Cert.Raw)},
	})
	if revocation == nil {
		revocation = func() *trust.RevocationPolicy { return nil }
	}
	qwac := &QWAC{TrustPoolRaw: pool, Revocation: revocation()}
	if err := qwac.Provision(ctx); err != nil {
		tb.Fatal(err)
	}
	// The real local store, journal included, so that its cost is in the
	// figures.
	store, _ := json.Marshal(map[string]any{"store": "local", "journal": filepath.Join(tb.TempDir(), "replay.journal")})
	qseal := &QSEAL{TrustPoolRaw: pool, Profile: profile, ReplayWindow: caddy.Duration(time.Nanosecond), ReplayStoreRaw: store, Revocation: revocation()}
	if err := qseal.Provision(ctx); err != nil {
		tb.Fatal(err)
	}
	return qwac, qseal
}

// BenchmarkVerifyPath measures psd2_qwac followed by psd2_qseal on a signed
// 1.5 KB (or 100 KB) JSON POST, with the certificate caches warm (hit) and
// emptied before every request (miss). Replays are allowed by a 1ns window
// so that a small set of pre-signed requests can cycle, while the replay
// store still does its real work (map, per-organisation queue and journal).
func BenchmarkVerifyPath(b *testing.B) {
	benchCA := testpki.NewCA(b, "Bench QTSP")
	subject := tppcert.Subject{OrgID: "PSDGR-BOG-123456", Roles: []qcstatements.Role{qcstatements.RolePI, qcstatements.RoleAI}}
	qwac := benchCA.TPP(b, tppcert.QWAC, subject, testpki.ECKey(b))
	for _, bits := range []int{2048, 3072} {
		qseal := benchCA.TPP(b, tppcert.QSEAL, subject, testpki.RSAKey(b, bits, 0))
		for _, size := range []int{1500, 100 << 10} {
			for _, profile := range []string{"piraeus", "berlingroup"} {
				for _, mode := range []string{"hit", "miss"} {
					name := fmt.Sprintf("rsa%d/%s/%s/%s", bits, sizeName(size), profile, mode)
					b.Run(name, func(b *testing.B) {
						benchVerify(b, benchCA, qwac, qseal, size, profile, mode == "miss", nil)
					})
				}
			}
		}
	}
}

func sizeName(n int) string {
	if n >= 1<<10 && n%(1<<10) == 0 {
		return fmt.Sprintf("%dKB", n>>10)
	}
	return fmt.Sprintf("%.1fKB", float64(n)/1000)
}

// jsonBody returns pretty-printed JSON of about n bytes, so that a profile
// that compacts JSON has real work to do.
func jsonBody(n int) []byte {
	var buf bytes.Buffer
	buf.WriteString("{\n    \"instructedAmount\": {\"currency\": \"EUR\", \"amount\": \"123.50\"},\n    \"remittance\": [\n")
	for i := 0; buf.Len() < n-40; i++ {
		fmt.Fprintf(&buf, "        \"line %06d of the remittance information\",\n", i)
	}
	buf.WriteString("        \"end\"\n    ]\n}")
	return buf.Bytes()
}

// BenchmarkVerifyPathRevocation is the verify path on a revocation cache
// hit against the same path without a revocation block, in one run: the
// block costs a map lookup per certificate. The certificates name a Go
// OCSP responder; the first request fills the shared cache.
func BenchmarkVerifyPathRevocation(b *testing.B) {
	benchCA := testpki.NewCA(b, "Bench QTSP")
	ocspSrv := testrevocation.NewResponder(b, benchCA)
	subject := tppcert.Subject{OrgID: "PSDGR-BOG-123456", Roles: []qcstatements.Role{qcstatements.RolePI, qcstatements.RoleAI}}
	urls := func(c *x509.Certificate) { c.OCSPServer = []string{ocspSrv.URL} }
	qwac := benchCA.TPP(b, tppcert.QWAC, subject, testpki.ECKey(b), urls)
	qseal := benchCA.TPP(b, tppcert.QSEAL, subject, testpki.RSAKey(b, 2048, 0), urls)
	policies := []struct {
		name   string
		policy func() *trust.RevocationPolicy
	}{
		{"none", nil},
		{"hard-cached", func() *trust.RevocationPolicy { return &trust.RevocationPolicy{Mode: "hard"} }},
	}
	for _, rc := range policies {
		b.Run("rsa2048/1.5KB/piraeus/hit/revocation="+rc.name, func(b *testing.B) {
			benchVerify(b, benchCA, qwac, qseal, 1500, "piraeus", false, rc.policy)
		})
	}
	// psd2_qwac alone, where no RSA verification hides the difference.
	for _, rc := range policies {
		b.Run("qwac-only/hit/revocation="+rc.name, func(b *testing.B) {
			benchQWAC(b, benchCA, qwac, rc.policy)
		})
	}
	if h := ocspSrv.Hits(); h == 0 || h > 2 {
		b.Fatalf("the responder was asked %d times, want once for the QWAC and once for the QSEAL", h)
	}
}

func benchVerify(b *testing.B, ca *testpki.CA, qwac, qseal *testpki.Leaf, size int, profileName string, miss bool, revocation func() *trust.RevocationPolicy) {
	hq, hs := newBenchHandlers(b, ca, profileName, revocation)
	profile, _ := httpsig.ProfileByName(profileName)
	signer := tppclient.Signer{Profile: profile, QSEAL: qseal.Cert, QSEALKey: qseal.Key, QWAC: qwac.Cert}
	const n = 64
	type signedReq struct {
		header http.Header
		body   []byte
	}
	reqs := make([]signedReq, n)
	raw := jsonBody(size)
	// Sign the raw pretty body: the Piraeus verifier then matches on the
	// first hash and never compacts, which is the path a well-behaved TPP
	// takes when it sends what it hashed.
	profile.CompactJSON = false
	signer.Profile = profile
	for i := range reqs {
		h := http.Header{}
		body, err := signer.Sign(http.MethodPost, "/v1/payments/sepa-credit-transfers", h, raw)
		if err != nil {
			b.Fatal(err)
		}
		reqs[i] = signedReq{h, body}
	}
	state := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{qwac.Cert}}
	// next consumes the body as reverse_proxy's transport does: reads it
	// all, then closes it.
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return err
		}
		return r.Body.Close()
	})
	chain := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return hq.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			return hs.ServeHTTP(w, r, next)
		}))
	})
	rec := &discardWriter{h: http.Header{}}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b, processCPUNanos())
	for i := 0; i < b.N; i++ {
		sr := reqs[i%n]
		r := httptest.NewRequest(http.MethodPost, "https://localhost/v1/payments/sepa-credit-transfers", bytes.NewReader(sr.body))
		r.Header = sr.header
		r.TLS = state
		// The variables and the replacer as Caddy's server prepares them.
		r = r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey,
			map[string]any{caddyhttp.TrustedProxyVarKey: false, caddyhttp.ClientIPVarKey: "192.0.2.1"}))
		caddyhttp.NewTestReplacer(r)
		if miss {
			for _, v := range []*certVerifier{hq.verifier, hs.verifier} {
				v.cache = map[[32]byte]*verifiedCert{}
				v.byHeader = map[string]*verifiedCert{}
				for i := range v.peers {
					v.peers[i].Store(nil)
				}
			}
		}
		rec.code = 0
		if err := chain.ServeHTTP(rec, r); err != nil || rec.code != 0 {
			b.Fatalf("request refused: %v %d", err, rec.code)
		}
	}
}

// benchQWAC measures psd2_qwac alone on a GET with the QWAC's
// verification cached.
func benchQWAC(b *testing.B, ca *testpki.CA, qwac *testpki.Leaf, revocation func() *trust.RevocationPolicy) {
	hq, _ := newBenchHandlers(b, ca, "piraeus", revocation)
	state := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{qwac.Cert}}
	h := http.Header{"X-Client-Certificate": {base64.StdEncoding.EncodeToString(qwac.Cert.Raw)}}
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { return nil })
	rec := &discardWriter{h: http.Header{}}
	r := httptest.NewRequest(http.MethodGet, "https://localhost/v1/accounts", nil)
	r.Header = h
	r.TLS = state
	base := context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer())
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b, processCPUNanos())
	for i := 0; i < b.N; i++ {
		ctx := context.WithValue(base, caddyhttp.VarsCtxKey, map[string]any{})
		rec.code = 0
		if err := hq.ServeHTTP(rec, r.WithContext(ctx), next); err != nil || rec.code != 0 {
			b.Fatalf("request refused: %v %d", err, rec.code)
		}
	}
}

// processCPUNanos is the user and system CPU time of this process, which
// other processes on a shared machine disturb far less than wall time.
func processCPUNanos() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// reportCPU reports the CPU time per operation since start (cpu-ns/op).
func reportCPU(b *testing.B, start int64) {
	b.ReportMetric(float64(processCPUNanos()-start)/float64(b.N), "cpu-ns/op")
}

type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

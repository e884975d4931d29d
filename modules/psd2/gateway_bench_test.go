package psd2_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bankedge/bankedge/internal/certprofile/qcstatements"
	"github.com/bankedge/bankedge/internal/certprofile/tppcert"
	"github.com/bankedge/bankedge/internal/testcaddy"
	"github.com/bankedge/bankedge/internal/testpki"
	"github.com/bankedge/bankedge/modules/psd2/httpsig"
	"github.com/bankedge/bankedge/modules/psd2/tppclient"
)

// BenchmarkGateway is bench/psd2.sh in one process, to attribute and guard
// what the PSD2 site costs beyond plain Caddy: one Caddy with two sites of
// the same TLS policy (mTLS, ECDSA server key), reverse_proxy alone and
// psd2_qwac + psd2_qseal (profile piraeus) + reverse_proxy, an in-process
// upstream, and a client presenting an RSA QWAC of each size with signed
// 1.5 KB JSON POSTs (QSEAL of the same size), on one keep-alive connection
// (keepalive) or on a new TLS connection per request (newconn).
//
// One iteration sends one request to each site; the sites take turns in
// blocks. Besides ns/op (the pair), it reports per request, for each site,
// the process's CPU time and heap allocations over its blocks, and:
//
//	Δallocs/req   gateway − plain heap allocations per request (exact)
//	Δcpu-µs/req   gateway − plain CPU per request
//	x_vs_plain    plain CPU / gateway CPU per request
//
// Client, upstream and Caddy share the process, so the CPU figures include
// the client's and the upstream's work, equal on both sites: Δ is the
// gateway's, x_vs_plain is closer to 1 than bench/psd2.sh's server-only
// ratio. Δallocs/req is exact and steady; it is the figure to watch.
func BenchmarkGateway(b *testing.B) {
	dir := b.TempDir()
	qtsp := testpki.NewCA(b, "Bench QTSP")
	serverCA := testpki.NewCA(b, "Bench Server CA")
	certFile, keyFile := serverCA.ServerFiles(b, dir, "localhost")
	qtspFile := testpki.WriteFile(b, dir, "qtsp.pem", testpki.CertPEM(qtsp.Cert))

	upstream := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = upstream.Serve(ln) }()
	b.Cleanup(func() { _ = upstream.Close() })

	plainPort, gwPort := testcaddy.FreePort(b), testcaddy.FreePort(b)
	// As bench/psd2.sh: errors only in the log, reverse_proxy's logger
	// out of it as in Caddyfile.example, a replay window short enough for
	// the pre-signed requests to cycle (each id is still claimed in the
	// local store and its journal).
	testcaddy.Load(b, testcaddy.Globals(filepath.Join(dir, "storage"), "\tlog {\n\t\tlevel ERROR\n\t\texclude http.handlers.reverse_proxy\n\t}")+fmt.Sprintf(`
(mtls) {
	bind 127.0.0.1
	tls %[1]s %[2]s {
		client_auth {
			mode require
		}
	}
}
https://localhost:%[3]d {
	import mtls
	reverse_proxy %[5]s
}
https://localhost:%[4]d {
	import mtls
	psd2_qwac {
		trust_pool file %[6]s
	}
	psd2_qseal {
		profile piraeus
		trust_pool file %[6]s
		require_signature
		replay_window 1ms
		max_body_size 256KiB
	}
	reverse_proxy %[5]s {
		header_up X-TPP-Org-Id {psd2.tpp.org_id}
		header_up X-TPP-Roles {psd2.tpp.roles}
	}
}
`, certFile, keyFile, plainPort, gwPort, ln.Addr(), qtspFile))

	subject := tppcert.Subject{OrgID: "PSDGR-BOG-123456", Organization: "Bench TPP", Roles: []qcstatements.Role{qcstatements.RolePI, qcstatements.RoleAI}}
	body := benchBody(1500)
	roots := x509.NewCertPool()
	roots.AddCert(serverCA.Cert)
	// The keys and signed requests of a size, made once and only for the
	// sizes that run: RSA key generation and signing are slow.
	type keySetup struct {
		reqs      []signedRequest
		tlsConfig *tls.Config
	}
	setups := map[int]*keySetup{}
	setup := func(b *testing.B, bits int) *keySetup {
		if s := setups[bits]; s != nil {
			return s
		}
		qwac := qtsp.TPP(b, tppcert.QWAC, subject, testpki.RSAKey(b, bits, 0))
		qseal := qtsp.TPP(b, tppcert.QSEAL, subject, testpki.RSAKey(b, bits, 1))
		signer := tppclient.Signer{Profile: httpsig.Piraeus, QSEAL: qseal.Cert, QSEALKey: qseal.Key, QWAC: qwac.Cert}
		// Enough requests that none comes back within the replay window.
		s := &keySetup{reqs: make([]signedRequest, 128)}
		for i := range s.reqs {
			h := http.Header{}
			sent, err := signer.Sign(http.MethodPost, paymentPath, h, body)
			if err != nil {
				b.Fatal(err)
			}
			s.reqs[i] = signedRequest{h, sent}
		}
		s.tlsConfig = &tls.Config{RootCAs: roots, ServerName: "localhost",
			Certificates: []tls.Certificate{{Certificate: [][]byte{qwac.Cert.Raw}, PrivateKey: qwac.Key, Leaf: qwac.Cert}}}
		setups[bits] = s
		return s
	}
	for _, bits := range []int{2048, 3072, 4096} {
		for _, scenario := range []string{"keepalive", "newconn"} {
			b.Run(fmt.Sprintf("%s/rsa%d", scenario, bits), func(b *testing.B) {
				s := setup(b, bits)
				reqs := s.reqs
				client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
					TLSClientConfig: s.tlsConfig, DisableKeepAlives: scenario == "newconn", MaxIdleConnsPerHost: 1}}
				defer client.CloseIdleConnections()
				sites := []*benchSite{
					{name: "plain", url: fmt.Sprintf("https://localhost:%d%s", plainPort, paymentPath)},
					{name: "gw", url: fmt.Sprintf("https://localhost:%d%s", gwPort, paymentPath)},
				}
				// Warm up: connections, caches, pools.
				for _, s := range sites {
					s.send(b, client, reqs, 32)
					s.reset()
				}
				block := 64
				if scenario == "newconn" {
					block = 16
				}
				b.ResetTimer()
				for done, turn := 0, 0; done < b.N; turn++ {
					n := min(block, b.N-done)
					// Alternate which site goes first, so that neither
					// always runs after the other's garbage.
					sites[turn%2].measure(b, client, reqs, n)
					sites[1-turn%2].measure(b, client, reqs, n)
					done += n
				}
				b.StopTimer()
				plain, gw := sites[0], sites[1]
				b.ReportMetric(plain.allocsPerReq(), "plain-allocs/req")
				b.ReportMetric(gw.allocsPerReq(), "gw-allocs/req")
				b.ReportMetric(gw.allocsPerReq()-plain.allocsPerReq(), "Δallocs/req")
				b.ReportMetric(plain.cpuPerReq(), "plain-cpu-µs/req")
				b.ReportMetric(gw.cpuPerReq(), "gw-cpu-µs/req")
				b.ReportMetric(gw.cpuPerReq()-plain.cpuPerReq(), "Δcpu-µs/req")
				b.ReportMetric(plain.cpuPerReq()/gw.cpuPerReq(), "x_vs_plain")
			})
		}
	}
}

type signedRequest struct {
	header http.Header
	body   []byte
}

// benchSite accumulates the cost of one site's requests.
type benchSite struct {
	name, url      string
	next           int
	requests       int
	cpuNs, mallocs uint64
}

func (s *benchSite) reset() { s.requests, s.cpuNs, s.mallocs = 0, 0, 0 }

func (s *benchSite) allocsPerReq() float64 { return float64(s.mallocs) / float64(s.requests) }
func (s *benchSite) cpuPerReq() float64    { return float64(s.cpuNs) / 1e3 / float64(s.requests) }

// measure sends n requests and adds their process CPU time and heap
// allocations to the site's.
func (s *benchSite) measure(b *testing.B, client *http.Client, reqs []signedRequest, n int) {
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	c0 := processCPU()
	s.send(b, client, reqs, n)
	c1 := processCPU()
	runtime.ReadMemStats(&m1)
	s.requests += n
	s.cpuNs += uint64(c1 - c0)
	s.mallocs += m1.Mallocs - m0.Mallocs
}

var okBody = []byte(`{"status":"ok"}`)

func (s *benchSite) send(b *testing.B, client *http.Client, reqs []signedRequest, n int) {
	var buf [64]byte
	for range n {
		sr := reqs[s.next%len(reqs)]
		s.next++
		req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, s.url, bytes.NewReader(sr.body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header = sr.header
		resp, err := client.Do(req)
		if err != nil {
			b.Fatalf("%s: %v", s.name, err)
		}
		got, _ := io.ReadFull(resp.Body, buf[:])
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Equal(buf[:got], okBody) {
			b.Fatalf("%s: %d %s", s.name, resp.StatusCode, buf[:got])
		}
	}
}

// processCPU is the process's user and system CPU time in nanoseconds.
func processCPU() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// benchBody is minified JSON of about n bytes, as bench/psd2.sh sends.
func benchBody(n int) []byte {
	var sb strings.Builder
	sb.WriteString(`{"instructedAmount":{"currency":"EUR","amount":"123.50"},"remittance":[`)
	for i := 0; sb.Len() < n-50; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `"line %06d of the remittance information"`, i)
	}
	sb.WriteString(`]}`)
	return []byte(sb.String())
}

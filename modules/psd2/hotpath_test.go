package psd2

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/bankedge/bankedge/internal/certprofile/qcstatements"
	"github.com/bankedge/bankedge/internal/certprofile/tppcert"
	"github.com/bankedge/bankedge/internal/testpki"
)

// caddyRequest makes a request as Caddy's server hands it to the first
// handler: its variables and replacer in the context.
func caddyRequest(method, target string, h http.Header, body []byte, state *tls.ConnectionState) *http.Request {
	r := httptest.NewRequest(method, target, bytes.NewReader(body))
	r.Header = h
	r.TLS = state
	r = r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey,
		map[string]any{caddyhttp.TrustedProxyVarKey: false, caddyhttp.ClientIPVarKey: "192.0.2.1"}))
	caddyhttp.NewTestReplacer(r)
	return r
}

// TestAcceptedRequestAllocations guards the hot path: on an accepted
// request with the certificates' verifications cached, psd2_qwac and
// psd2_qseal together allocate once, the {psd2.*} placeholder provider
// (a closure over the request's variables), whatever the QSEAL's size and
// the profile. crypto/rsa alone would allocate 9 (RSA-2048) to 101
// (RSA-4096) times.
func TestAcceptedRequestAllocations(t *testing.T) {
	body := jsonBody(1500)
	forEachQSEAL(t, []int{2048, 4096}, func(t *testing.T, bits int, c *qsealCase) {
		hq, hs, qwac, signer := c.hq, c.hs, c.qwac, c.signer
		h := http.Header{}
		sent, err := signer.Sign(http.MethodPost, paymentPath, h, body)
		if err != nil {
			t.Fatal(err)
		}
		state := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{qwac.Cert}}
		// The replay window of the handlers is 1ns: one request
		// can be sent again and again.
		const runs = 50
		reqs := make([]*http.Request, runs+2)
		for i := range reqs {
			reqs[i] = caddyRequest(http.MethodPost, "https://localhost"+paymentPath, h, sent, state)
		}
		var forwarded atomic.Int64
		// next reads and closes the body as reverse_proxy's
		// transport does.
		next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			n, _ := io.Copy(io.Discard, r.Body)
			forwarded.Add(n)
			return r.Body.Close()
		})
		chain := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			return hs.ServeHTTP(w, r, next)
		})
		w := &discardWriter{h: http.Header{}}
		i := 0
		serve := func() {
			r := reqs[i]
			i++
			if err := hq.ServeHTTP(w, r, chain); err != nil || w.code != 0 {
				t.Fatalf("refused: %v %d", err, w.code)
			}
		}
		serve() // fills the caches
		allocs := testing.AllocsPerRun(runs, serve)
		if allocs > 1 && !raceEnabled {
			t.Errorf("%.0f allocations per accepted request, want at most 1", allocs)
		}
		if forwarded.Load() != int64((runs+2)*len(sent)) {
			t.Errorf("forwarded %d body bytes, want %d", forwarded.Load(), (runs+2)*len(sent))
		}
	})
}

// TestQWACConnectionMemo checks what psd2_qwac remembers per TLS
// connection: the requests of a connection find its certificate's
// verification by the certificate object, but X-Client-Certificate is
// still compared on every request, and a change of the trust pool ends
// the memo.
func TestQWACConnectionMemo(t *testing.T) {
	ca := testpki.NewCA(t, "Memo QTSP")
	subject := tppcert.Subject{OrgID: "PSDGR-BOG-123456", Roles: []qcstatements.Role{qcstatements.RoleAI}}
	qwac := ca.TPP(t, tppcert.QWAC, subject, testpki.ECKey(t))
	other := ca.TPP(t, tppcert.QWAC, subject, testpki.ECKey(t))
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	live := &fakeLivePool{}
	live.pool.Store(pool)
	hq := &QWAC{logger: zap.NewNop()}
	hq.verifier = newCertVerifier(trustRoots{live: live}, qcstatements.QcTypeWeb, 16, certStatus{}, zap.NewNop())

	conn := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{qwac.Cert}}
	send := func(state *tls.ConnectionState, header string) string {
		t.Helper()
		r := caddyRequest(http.MethodGet, "https://localhost/v1/accounts", http.Header{"X-Client-Certificate": {header}}, nil, state)
		rec := httptest.NewRecorder()
		reached := false
		if err := hq.ServeHTTP(rec, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { reached = true; return nil })); err != nil {
			t.Fatal(err)
		}
		if reached {
			return ""
		}
		return rec.Body.String()
	}
	b64 := func(c *x509.Certificate) string { return base64.StdEncoding.EncodeToString(c.Raw) }
	if got := send(conn, b64(qwac.Cert)); got != "" {
		t.Fatalf("first request: %s", got)
	}
	if hq.verifier.lookupPeer(qwac.Cert, hq.verifier.now()) == nil {
		t.Fatal("the connection's certificate is not remembered")
	}
	// The same connection, another certificate in the header.
	if got := send(conn, b64(other.Cert)); !bytes.Contains([]byte(got), []byte("not the certificate presented in the TLS handshake")) {
		t.Errorf("other certificate in X-Client-Certificate on a remembered connection: %q", got)
	}
	// The same certificate in another encoding is decoded and compared.
	pemText := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: qwac.Cert.Raw}))
	if got := send(conn, url.PathEscape(pemText)); got != "" {
		t.Errorf("the QWAC as URL-encoded PEM: %s", got)
	}
	// A new trust pool without the QTSP: the memo must not let the
	// connection's next request through.
	live.pool.Store(x509.NewCertPool())
	if hq.verifier.lookupPeer(qwac.Cert, hq.verifier.now()) != nil {
		t.Error("the memo outlived a change of the trust pool")
	}
	if got := send(conn, b64(qwac.Cert)); !bytes.Contains([]byte(got), []byte("CERTIFICATE_INVALID")) {
		t.Errorf("after the QTSP left the trust pool: %q", got)
	}
}

type fakeLivePool struct{ pool atomic.Pointer[x509.CertPool] }

func (p *fakeLivePool) CurrentCertPool() *x509.CertPool { return p.pool.Load() }

package psd2_test

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bankedge/bankedge/internal/certprofile/qcstatements"
	"github.com/bankedge/bankedge/internal/certprofile/tppcert"
	"github.com/bankedge/bankedge/internal/testcaddy"
	"github.com/bankedge/bankedge/internal/testpki"
	"github.com/bankedge/bankedge/internal/testrevocation"
)

// revocationURLs puts an OCSP responder and a CRL distribution point in a
// certificate; empty ones are left out.
func revocationURLs(ocspURL, crlURL string) testpki.TPPOption {
	return func(c *x509.Certificate) {
		if ocspURL != "" {
			c.OCSPServer = []string{ocspURL}
		}
		if crlURL != "" {
			c.CRLDistributionPoints = []string{crlURL}
		}
	}
}

// xs2aSites is a Caddy with one XS2A site per psd2 handler configuration,
// all trusting qtsp, in front of the echoing upstream.
type xs2aSites struct {
	serverCA *testpki.CA
	urls     map[string]string
}

// startXS2ASites runs a site for each named block of psd2 options (the
// same in psd2_qwac and psd2_qseal), with extra global options.
func startXS2ASites(t *testing.T, qtsp *testpki.CA, globals string, options map[string]string) *xs2aSites {
	t.Helper()
	dir := t.TempDir()
	s := &xs2aSites{serverCA: testpki.NewCA(t, "Gateway Server CA"), urls: map[string]string{}}
	certFile, keyFile := s.serverCA.ServerFiles(t, dir, "localhost")
	roots := testpki.WriteFile(t, dir, "qtsp.pem", testpki.CertPEM(qtsp.Cert))
	up := testcaddy.FreePort(t)
	var b strings.Builder
	b.WriteString(testcaddy.Globals(filepath.Join(dir, "storage"), globals))
	for name, opts := range options {
		port := testcaddy.FreePort(t)
		s.urls[name] = fmt.Sprintf("https://localhost:%d", port)
		fmt.Fprintf(&b, `
https://localhost:%[1]d {
	bind 127.0.0.1
	tls %[2]s %[3]s {
		client_auth {
			mode request
		}
	}
	psd2_qwac {
		trust_pool file %[4]s
		%[5]s
	}
	psd2_qseal {
		profile piraeus
		trust_pool file %[4]s
		require_signature
		%[5]s
	}
	reverse_proxy 127.0.0.1:%[6]d {
		header_up X-TPP-Org-Id {psd2.tpp.org_id}
		header_up X-TPP-Roles {psd2.tpp.roles}
	}
}
`, port, certFile, keyFile, roots, opts, up)
	}
	fmt.Fprintf(&b, `
http://:%d {
	bind 127.0.0.1
	respond "forwarded for {http.request.header.X-TPP-Org-Id} roles {http.request.header.X-TPP-Roles}"
}
`, up)
	testcaddy.Load(t, b.String())
	return s
}

// pay sends a signed payment initiation to the named site over mTLS with
// qwac, signed with qseal.
func (s *xs2aSites) pay(t *testing.T, site string, qwac, qseal *testpki.Leaf) response {
	t.Helper()
	h, body := signed(t, qwac, qseal, http.MethodPost, paymentPath, paymentBody)
	req, _ := http.NewRequest(http.MethodPost, s.urls[site]+paymentPath, bytes.NewReader(body))
	req.Header = h
	resp, err := testpki.Client(s.serverCA.Cert, qwac).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return readResponse(t, resp)
}

// closedURL is an http URL where nothing listens.
func closedURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + l.Addr().String() + "/"
	l.Close()
	return u
}

// OCSP and CRL revocation of QWACs and QSEALs through Caddy with real mTLS:
// a Go responder and CRLs, a real `openssl ocsp` responder and CRLs by
// `openssl ca` where installed; hard and soft modes with the responder
// down or hanging; certificates without revocation information; and no
// block, which keeps the behaviour from before it existed.
func TestRevocationOCSPAndCRL(t *testing.T) {
	qtsp := testpki.NewCA(t, "Revocation QTSP Qualified CA")
	ocspGo := testrevocation.NewResponder(t, qtsp)
	hanging := testrevocation.NewResponder(t, qtsp)
	hanging.Set(func(r *testrevocation.Responder) { r.Hang = true })
	crls := testrevocation.NewCRLServer(t)
	down := closedURL(t)

	main := subject(orgID, qcstatements.RolePI, qcstatements.RoleAI)
	issue := func(kind tppcert.Kind, ocspURL, crlURL string) *testpki.Leaf {
		key := testpki.ECKey(t)
		if kind == tppcert.QSEAL {
			key = testpki.RSAKey(t, 2048, 0)
		}
		return qtsp.TPP(t, kind, main, key, revocationURLs(ocspURL, crlURL))
	}
	qwac, qseal := issue(tppcert.QWAC, ocspGo.URL, ""), issue(tppcert.QSEAL, ocspGo.URL, "")
	qwacRevoked, qsealRevoked := issue(tppcert.QWAC, ocspGo.URL, ""), issue(tppcert.QSEAL, ocspGo.URL, "")
	ocspGo.Revoke(qwacRevoked.Cert)
	ocspGo.Revoke(qsealRevoked.Cert)
	qwacCRLRevoked, qsealCRL := issue(tppcert.QWAC, "", crls.URL+"/qtsp.crl"), issue(tppcert.QSEAL, "", crls.URL+"/qtsp.crl")
	crls.Put(testrevocation.MakeCRL(t, qtsp, time.Now(), time.Now().Add(time.Hour), qwacCRLRevoked.Cert))
	qwacDown, qwacDownSoft := issue(tppcert.QWAC, down, ""), issue(tppcert.QWAC, down, "")
	qwacHang, qwacHangSoft := issue(tppcert.QWAC, hanging.URL, ""), issue(tppcert.QWAC, hanging.URL, "")
	qwacBare := issue(tppcert.QWAC, "", "")

	g := startXS2ASites(t, qtsp, "", map[string]string{
		"hard": "revocation {\n\t\t\tmode hard\n\t\t\ttimeout 500ms\n\t\t}",
		"soft": "revocation soft {\n\t\t\ttimeout 500ms\n\t\t}",
		"crl":  "revocation {\n\t\t\tprefer crl\n\t\t}",
		"none": "",
	})

	t.Run("good QWAC and QSEAL pass, and are checked once", func(t *testing.T) {
		if r := g.pay(t, "hard", qwac, qseal); r.status != http.StatusOK || !strings.HasPrefix(string(r.body), "forwarded for "+orgID) {
			t.Fatalf("%d %s", r.status, r.body)
		}
		hits := ocspGo.Hits()
		for range 3 {
			expectOK(t, g.pay(t, "hard", qwac, qseal))
			expectOK(t, g.pay(t, "soft", qwac, qseal))
		}
		if ocspGo.Hits() != hits {
			t.Fatalf("the responder was asked %d more times: answers are cached until nextUpdate, for every handler", ocspGo.Hits()-hits)
		}
	})
	t.Run("revoked QWAC and QSEAL by OCSP", func(t *testing.T) {
		for _, site := range []string{"hard", "soft", "crl"} {
			expectError(t, g.pay(t, site, qwacRevoked, qseal), http.StatusUnauthorized, "CERTIFICATE_REVOKED", "QWAC")
			r := g.pay(t, site, qwac, qsealRevoked)
			expectError(t, r, http.StatusUnauthorized, "CERTIFICATE_REVOKED", "QSEAL")
			if r.path != "TPP-Signature-Certificate" {
				t.Errorf("path = %q", r.path)
			}
		}
	})
	t.Run("revoked QWAC by CRL, good QSEAL by CRL", func(t *testing.T) {
		for _, site := range []string{"hard", "crl"} {
			expectError(t, g.pay(t, site, qwacCRLRevoked, qsealCRL), http.StatusUnauthorized, "CERTIFICATE_REVOKED", "QWAC")
			expectOK(t, g.pay(t, site, qwac, qsealCRL))
		}
	})
	t.Run("responder down: hard refuses, soft allows", func(t *testing.T) {
		expectError(t, g.pay(t, "hard", qwacDown, qseal), http.StatusUnauthorized, "CERTIFICATE_INVALID", "the revocation status could not be established for the QWAC")
		r := g.pay(t, "hard", qwacDown, qseal)
		expectError(t, r, http.StatusUnauthorized, "CERTIFICATE_INVALID", "the revocation status could not be established for the QWAC")
		expectOK(t, g.pay(t, "soft", qwacDownSoft, qseal))
		// The unknown status is cached for all handlers: soft lets the
		// certificate hard refused in at once.
		expectOK(t, g.pay(t, "soft", qwacDown, qseal))
	})
	t.Run("responder hanging: the timeout bounds the wait", func(t *testing.T) {
		start := time.Now()
		expectError(t, g.pay(t, "hard", qwacHang, qseal), http.StatusUnauthorized, "CERTIFICATE_INVALID", "the revocation status could not be established for the QWAC")
		expectOK(t, g.pay(t, "soft", qwacHangSoft, qseal))
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("two requests with a 500ms revocation timeout took %s", d)
		}
	})
	t.Run("no AIA and no CRL: hard refuses, no block keeps today's behaviour", func(t *testing.T) {
		expectError(t, g.pay(t, "hard", qwacBare, qseal), http.StatusUnauthorized, "CERTIFICATE_INVALID", "the revocation status could not be established for the QWAC")
		expectOK(t, g.pay(t, "soft", qwacBare, qseal))
		for _, q := range []*testpki.Leaf{qwacBare, qwacRevoked, qwacDown} {
			expectOK(t, g.pay(t, "none", q, qseal))
		}
	})

	t.Run("openssl ocsp responder and openssl ca CRL", func(t *testing.T) {
		o := testrevocation.NewOpenSSLCA(t, qtsp)
		port := testcaddy.FreePort(t)
		osslURL := fmt.Sprintf("http://127.0.0.1:%d", port)
		osslCRLs := testrevocation.NewCRLServer(t)
		good, revoked := issue(tppcert.QWAC, osslURL, ""), issue(tppcert.QWAC, osslURL, "")
		sealGood, sealRevoked := issue(tppcert.QSEAL, "", osslCRLs.URL+"/ca.crl"), issue(tppcert.QSEAL, "", osslCRLs.URL+"/ca.crl")
		o.Record("good.pem", good.Cert)
		o.Record("seal-good.pem", sealGood.Cert)
		o.Revoke("revoked.pem", revoked.Cert)
		o.Revoke("seal-revoked.pem", sealRevoked.Cert)
		osslCRLs.Put(o.CRL())
		o.StartResponder(port)

		expectOK(t, g.pay(t, "hard", good, sealGood))
		expectError(t, g.pay(t, "hard", revoked, sealGood), http.StatusUnauthorized, "CERTIFICATE_REVOKED", "QWAC")
		expectError(t, g.pay(t, "hard", good, sealRevoked), http.StatusUnauthorized, "CERTIFICATE_REVOKED", "QSEAL")
	})
}

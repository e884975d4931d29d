package psd2_test

import (
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/bankedge/bankedge/internal/certprofile/qcstatements"
	"github.com/bankedge/bankedge/internal/certprofile/tppcert"
	"github.com/bankedge/bankedge/internal/testcaddy"
	"github.com/bankedge/bankedge/internal/testpki"
	"github.com/bankedge/bankedge/internal/testrevocation"
)

// sfCert is a certificate as RFC 9440 writes it: an RFC 8941 byte sequence.
func sfCert(c *x509.Certificate) string { return ":" + base64.StdEncoding.EncodeToString(c.Raw) + ":" }

// lbGateway is a Caddy behind a TLS-terminating load balancer: plain HTTP
// listeners whose psd2_qwac takes the QWAC from Client-Cert, one where the
// test's address (127.0.0.1) is a trusted proxy and one where it is not,
// and a TLS listener with the default client_certificate tls.
type lbGateway struct {
	trusted, untrusted, tls string
	serverCA                *testpki.CA
}

func startLBGateway(t *testing.T, root *testpki.CA) *lbGateway {
	t.Helper()
	dir := t.TempDir()
	g := &lbGateway{serverCA: testpki.NewCA(t, "Gateway Server CA")}
	certFile, keyFile := g.serverCA.ServerFiles(t, dir, "localhost")
	roots := testpki.WriteFile(t, dir, "qtsp.pem", testpki.CertPEM(root.Cert))
	pt, pu, ptls, up := testcaddy.FreePort(t), testcaddy.FreePort(t), testcaddy.FreePort(t), testcaddy.FreePort(t)
	g.trusted, g.untrusted = fmt.Sprintf("http://127.0.0.1:%d", pt), fmt.Sprintf("http://127.0.0.1:%d", pu)
	g.tls = fmt.Sprintf("https://localhost:%d", ptls)
	echo := fmt.Sprintf(`reverse_proxy 127.0.0.1:%d {
			header_up X-TPP-Org-Id {psd2.tpp.org_id}
			header_up X-TPP-Roles {psd2.tpp.roles}
		}`, up)
	qwac := func(extra string) string {
		return fmt.Sprintf(`psd2_qwac {
			trust_pool file %s
			%s
		}`, roots, extra)
	}
	header := qwac("client_certificate header\n\t\t\trevocation {\n\t\t\t\tmode hard\n\t\t\t}")
	testcaddy.Load(t, testcaddy.Globals(filepath.Join(dir, "storage"), fmt.Sprintf(`
	servers 127.0.0.1:%[1]d {
		trusted_proxies static 127.0.0.1/32
	}
	servers 127.0.0.1:%[2]d {
		trusted_proxies static 10.0.0.0/8
	}`, pt, pu))+fmt.Sprintf(`
http://:%[1]d {
	bind 127.0.0.1
	route {
		%[4]s
		%[5]s
	}
}

http://:%[2]d {
	bind 127.0.0.1
	route {
		%[4]s
		%[5]s
	}
}

https://localhost:%[3]d {
	bind 127.0.0.1
	tls %[7]s %[8]s {
		client_auth {
			mode request
		}
	}
	handle /vop/* {
		%[9]s
		respond "vop roles={psd2.tpp.roles}"
	}
	handle {
		%[6]s
		%[5]s
	}
}

http://:%[10]d {
	bind 127.0.0.1
	respond "org={http.request.header.X-TPP-Org-Id} roles={http.request.header.X-TPP-Roles} cc=[{http.request.header.Client-Cert}] chain=[{http.request.header.Client-Cert-Chain}]"
}
`, pt, pu, ptls, header, echo, qwac(""), certFile, keyFile, qwac("allow_unmapped"), up))
	return g
}

// send makes a request to base, with a TLS client certificate when tlsLeaf
// is set, and headers h (an X-Request-ID is added).
func (g *lbGateway) send(t *testing.T, base, method, path string, tlsLeaf *testpki.Leaf, h http.Header) response {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, nil)
	req.Header = h.Clone()
	req.Header.Set("X-Request-ID", uuid.NewString())
	resp, err := testpki.Client(g.serverCA.Cert, tlsLeaf).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return readResponse(t, resp)
}

// The QWAC from a load balancer that ended TLS: RFC 9440 Client-Cert (and
// Client-Cert-Chain) count only from a peer in trusted_proxies; from any
// other peer the request has no certificate. Equality with
// X-Client-Certificate, the chain and revocation are checked as with a
// certificate from the handshake, and the headers never reach upstream.
func TestClientCertFromLoadBalancer(t *testing.T) {
	root := testpki.NewCA(t, "LB QTSP Root CA")
	inter := root.Intermediate(t, "LB QTSP Qualified CA")
	ocsp := testrevocation.NewResponder(t, inter)
	main := subject(orgID, qcstatements.RoleAI, qcstatements.RolePI)
	qwac := inter.TPP(t, tppcert.QWAC, main, testpki.ECKey(t), revocationURLs(ocsp.URL, ""))
	revoked := inter.TPP(t, tppcert.QWAC, main, testpki.ECKey(t), revocationURLs(ocsp.URL, ""))
	ocsp.Revoke(revoked.Cert)
	other := inter.TPP(t, tppcert.QWAC, subject("PSDGR-BOG-999999", qcstatements.RoleAI), testpki.ECKey(t), revocationURLs(ocsp.URL, ""))
	g := startLBGateway(t, root)

	forwarded := func(c *testpki.Leaf, chain bool) http.Header {
		h := http.Header{"Client-Cert": {sfCert(c.Cert)}, "X-Client-Certificate": {base64.StdEncoding.EncodeToString(c.Cert.Raw)}}
		if chain {
			h.Set("Client-Cert-Chain", sfCert(inter.Cert))
		}
		return h
	}
	t.Run("trusted proxy", func(t *testing.T) {
		for range 2 { // verified, then from the cache
			r := g.send(t, g.trusted, http.MethodGet, "/v1/accounts", nil, forwarded(qwac, true))
			expectOK(t, r)
			if want := "org=" + orgID + " roles=PSP_AI,PSP_PI cc=[] chain=[]"; string(r.body) != want {
				t.Fatalf("upstream saw %q, want %q", r.body, want)
			}
		}
		r := g.send(t, g.trusted, http.MethodGet, "/v1/accounts", nil, forwarded(revoked, true))
		expectError(t, r, http.StatusUnauthorized, "CERTIFICATE_REVOKED", "QWAC")
	})
	t.Run("trusted proxy, wrong or missing parts", func(t *testing.T) {
		expectError(t, g.send(t, g.trusted, http.MethodGet, "/v1/accounts", nil, forwarded(other, false)),
			http.StatusUnauthorized, "CERTIFICATE_INVALID", "does not chain to a trusted QTSP")
		h := forwarded(qwac, true)
		h.Set("X-Client-Certificate", base64.StdEncoding.EncodeToString(other.Cert.Raw))
		expectError(t, g.send(t, g.trusted, http.MethodGet, "/v1/accounts", nil, h),
			http.StatusUnauthorized, "CERTIFICATE_INVALID", "not the certificate presented")
		h = forwarded(qwac, true)
		h.Set("Client-Cert", base64.StdEncoding.EncodeToString(qwac.Cert.Raw))
		r := g.send(t, g.trusted, http.MethodGet, "/v1/accounts", nil, h)
		expectError(t, r, http.StatusUnauthorized, "CERTIFICATE_INVALID", "Client-Cert cannot be decoded")
		if r.path != "Client-Cert" {
			t.Errorf("path = %q", r.path)
		}
		h = forwarded(qwac, true)
		h.Del("Client-Cert")
		expectError(t, g.send(t, g.trusted, http.MethodGet, "/v1/accounts", nil, h), http.StatusUnauthorized, "CERTIFICATE_MISSING", "")
	})
	t.Run("untrusted peer: as if no certificate", func(t *testing.T) {
		r := g.send(t, g.untrusted, http.MethodGet, "/v1/accounts", nil, forwarded(qwac, true))
		expectError(t, r, http.StatusUnauthorized, "CERTIFICATE_MISSING", "")
	})
	t.Run("tls mode: a Client-Cert from the client is not taken nor forwarded", func(t *testing.T) {
		h := forwarded(other, true)
		h.Set("X-Client-Certificate", base64.StdEncoding.EncodeToString(qwac.Cert.Raw))
		// Over TLS the handshake's certificate counts; qwac chains through
		// inter, which the handshake does not carry here: refused as not
		// chaining, whatever Client-Cert says.
		expectError(t, g.send(t, g.tls, http.MethodGet, "/v1/accounts", qwac, h), http.StatusUnauthorized, "CERTIFICATE_INVALID", "does not chain")
		rootQWAC := root.TPP(t, tppcert.QWAC, main, testpki.ECKey(t))
		h.Set("X-Client-Certificate", base64.StdEncoding.EncodeToString(rootQWAC.Cert.Raw))
		r := g.send(t, g.tls, http.MethodGet, "/v1/accounts", rootQWAC, h)
		expectOK(t, r)
		if !strings.HasSuffix(string(r.body), "cc=[] chain=[]") {
			t.Fatalf("upstream saw %q", r.body)
		}
	})
}

// A QCStatement role this version does not know is not invalid: it is
// carried upstream by its name in {psd2.tpp.roles}, it grants nothing a
// known role is needed for, and it never poses as a known role.
func TestUnknownRolesCarriedUpstream(t *testing.T) {
	root := testpki.NewCA(t, "Roles QTSP")
	g := startLBGateway(t, root)
	others := func(roles ...qcstatements.OtherRole) tppcert.Subject {
		s := subject(orgID)
		s.OtherRoles = roles
		return s
	}
	vopRS := qcstatements.OtherRole{OID: asn1.ObjectIdentifier{0, 4, 0, 19495, 1, 7}, Name: "VOP_RS"}
	pspCB := qcstatements.OtherRole{OID: asn1.ObjectIdentifier{0, 4, 0, 19495, 1, 5}, Name: "PSP_CB"}
	spoof := qcstatements.OtherRole{OID: asn1.ObjectIdentifier{0, 4, 0, 19495, 1, 99}, Name: "PSP_AI"}

	pi := subject(orgID, qcstatements.RolePI)
	pi.OtherRoles = []qcstatements.OtherRole{vopRS, pspCB}
	mixed := root.TPP(t, tppcert.QWAC, pi, testpki.ECKey(t))
	vopOnly := root.TPP(t, tppcert.QWAC, others(vopRS), testpki.ECKey(t))
	spoofing := root.TPP(t, tppcert.QWAC, others(spoof), testpki.ECKey(t))
	h := func(l *testpki.Leaf) http.Header {
		return http.Header{"X-Client-Certificate": {base64.StdEncoding.EncodeToString(l.Cert.Raw)}}
	}

	r := g.send(t, g.tls, http.MethodPost, paymentPath, mixed, h(mixed))
	expectOK(t, r)
	if !strings.Contains(string(r.body), "roles=PSP_PI,VOP_RS,PSP_CB ") {
		t.Fatalf("upstream saw %q", r.body)
	}
	expectError(t, g.send(t, g.tls, http.MethodGet, "/v1/accounts", mixed, h(mixed)), http.StatusUnauthorized, "ROLE_INVALID", "PSP_PI,VOP_RS,PSP_CB")
	expectError(t, g.send(t, g.tls, http.MethodPost, paymentPath, vopOnly, h(vopOnly)), http.StatusUnauthorized, "ROLE_INVALID", "VOP_RS")
	if r := g.send(t, g.tls, http.MethodGet, "/vop/verify", vopOnly, h(vopOnly)); r.status != http.StatusOK || string(r.body) != "vop roles=VOP_RS" {
		t.Fatalf("unmapped route: %d %q", r.status, r.body)
	}
	r = g.send(t, g.tls, http.MethodGet, "/v1/accounts", spoofing, h(spoofing))
	expectError(t, r, http.StatusUnauthorized, "ROLE_INVALID", "0.4.0.19495.1.99")
}

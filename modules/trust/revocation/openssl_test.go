package revocation_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bankedge/bankedge/internal/testcaddy"
	"github.com/bankedge/bankedge/internal/testpki"
	"github.com/bankedge/bankedge/internal/testrevocation"
	"github.com/bankedge/bankedge/modules/trust/fetch"
	"github.com/bankedge/bankedge/modules/trust/revocation"
)

// opensslChecker does not keep connections alive: openssl ocsp would wait
// on an idle one while the next request comes on another.
func opensslChecker() *revocation.Checker {
	hc := fetch.NewHTTPClient(5 * time.Second)
	hc.Transport.(*http.Transport).DisableKeepAlives = true
	return revocation.New(revocation.Options{HTTP: &fetch.Client{HTTP: hc}})
}

// A real `openssl ocsp` responder (delegated, with id-kp-OCSPSigning) and
// CRLs signed by `openssl ca` give the same answers.
func TestOpenSSLResponderAndCRL(t *testing.T) {
	ca := testpki.NewCA(t, "QTSP CA")
	o := testrevocation.NewOpenSSLCA(t, ca)
	port := testcaddy.FreePort(t)
	crlDER := make(chan []byte, 1)
	crlSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		der := <-crlDER
		crlDER <- der
		_, _ = w.Write(der)
	}))
	defer crlSrv.Close()
	ocspURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	good := leaf(t, ca, ocspURL, crlSrv.URL+"/qtsp.crl")
	revoked := leaf(t, ca, ocspURL, crlSrv.URL+"/qtsp.crl")
	o.Record("good.pem", good)
	o.Revoke("revoked.pem", revoked)
	crlDER <- o.CRL()
	o.StartResponder(port)

	for _, prefer := range []revocation.Prefer{revocation.PreferOCSP, revocation.PreferCRL} {
		source := map[revocation.Prefer]string{revocation.PreferOCSP: "ocsp", revocation.PreferCRL: "crl"}[prefer]
		c := opensslChecker()
		if res := check(c, good, ca.Cert, prefer); res.Status != revocation.Good || res.Source != source {
			t.Fatalf("%s: good certificate: %+v", source, res)
		}
		res := check(c, revoked, ca.Cert, prefer)
		if res.Status != revocation.Revoked || res.Source != source || res.Reason != 1 {
			t.Fatalf("%s: revoked certificate: %+v", source, res)
		}
	}

	// A certificate the CA never recorded: openssl answers "unknown", and
	// the CRL (which does not list it) decides.
	stranger := leaf(t, ca, ocspURL, "")
	if res := check(opensslChecker(), stranger, ca.Cert, revocation.PreferOCSP); res.Status != revocation.Unknown || !strings.Contains(res.Detail, "does not know") {
		t.Fatalf("unrecorded certificate: %+v", res)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	other := testpki.NewCA(t, "Other CA")
	if res := opensslChecker().Check(ctx, sha256.Sum256(good.Raw), good, other.Cert, revocation.PreferOCSP); res.Status != revocation.Unknown {
		t.Fatalf("answers checked against the wrong issuer: %+v", res)
	}
}

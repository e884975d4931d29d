package psd2_test

import (
	"net/http"
	"testing"
)

// TestRevokedCertificates: a QWAC or QSEAL that the bankedge CA revoked is
// refused at once, although its verification is cached from the requests
// before (issue "Hostile traffic", point 2).
func TestRevokedCertificates(t *testing.T) {
	g := startCAGateway(t, t.TempDir())
	qwac := g.api.issuePSD2(t, "qwac", orgID, "PSP_PI,PSP_AI")
	qseal := g.api.issuePSD2(t, "qseal", orgID, "PSP_PI,PSP_AI")
	for range 2 {
		if r := g.pay(t, qwac, qseal); r.status != http.StatusOK || string(r.body) != "forwarded for "+orgID {
			t.Fatalf("before revocation: %d %s", r.status, r.body)
		}
	}

	g.api.revoke(t, qwac.Cert)
	r := g.pay(t, qwac, qseal)
	expectError(t, r, http.StatusUnauthorized, "CERTIFICATE_REVOKED", "QWAC")

	// A new QWAC works with the same QSEAL, until the QSEAL is revoked.
	qwac2 := g.api.issuePSD2(t, "qwac", orgID, "PSP_PI")
	if r := g.pay(t, qwac2, qseal); r.status != http.StatusOK {
		t.Fatalf("new QWAC: %d %s", r.status, r.body)
	}
	g.api.revoke(t, qseal.Cert)
	r = g.pay(t, qwac2, qseal)
	expectError(t, r, http.StatusUnauthorized, "CERTIFICATE_REVOKED", "QSEAL")
	if r.path != "TPP-Signature-Certificate" {
		t.Errorf("path = %q", r.path)
	}
}

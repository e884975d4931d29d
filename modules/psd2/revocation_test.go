package psd2_test

import (
	"net/http"
	"testing"
)

// TestRevokedCertificates: a QWAC or QSEAL that the bankedge CA revoked is
// refused at once, although its verification is cached from the requests
// before (issue "Hostile traffic", point 2). With a revocation block in
// hard mode the CA's own view still answers for its certificates, which
// name no OCSP responder nor CRL here: they pass until revoked.
func TestRevokedCertificates(t *testing.T) {
	for name, opts := range map[string]string{"no revocation block": "", "revocation hard": "revocation {\n\t\t\tmode hard\n\t\t}"} {
		t.Run(name, func(t *testing.T) { revokedCertificates(t, opts) })
	}
}

func revokedCertificates(t *testing.T, psd2Options string) {
	g := startCAGateway(t, t.TempDir(), psd2Options)
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

package ca

import (
	"bytes"
	"crypto/x509"
)

// IsIssuer reports whether issuer is this app's CA certificate
// (psd2.IssuerRevocationChecker): for the certificates it issued, the CA's
// own revocation view (CertificateRevoked) is authoritative and fresher
// than its CRL, so the PSD2 handlers ask neither OCSP nor the CRL.
func (a *App) IsIssuer(issuer *x509.Certificate) bool {
	auth, err := a.Authority()
	return err == nil && issuer != nil && bytes.Equal(issuer.Raw, auth.Certificate().Raw)
}

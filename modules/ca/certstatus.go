package ca

import (
	"bytes"
	"context"
	"crypto/x509"
)

// CertificateRevoked reports whether cert, whose verified chain names
// issuer as its issuer, was revoked by this CA. Certificates of other
// issuers are none of its business: false, nil. It answers from the
// authority's in-memory revocation view, which a revocation through this
// gateway updates at once and one made elsewhere on the same storage
// within the refresh interval, so that it is cheap enough for every request.
//
// It is the revocation check of the PSD2 handlers (psd2.RevocationChecker),
// which find this app by name and do not import this package.
func (a *App) CertificateRevoked(ctx context.Context, cert, issuer *x509.Certificate) (bool, error) {
	auth, err := a.Authority()
	if err != nil || issuer == nil {
		// A CA not initialized yet has issued nothing.
		return false, nil
	}
	if !bytes.Equal(issuer.Raw, auth.Certificate().Raw) {
		return false, nil
	}
	return auth.IsRevoked(ctx, cert.SerialNumber)
}

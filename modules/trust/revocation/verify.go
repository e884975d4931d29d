package revocation

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/ocsp"
)

// VerifyOCSP parses an OCSP response about cert and checks it: signed by
// issuer, or by a delegated responder that issuer certified for
// id-kp-OCSPSigning and that is valid now; about cert's serial; thisUpdate
// not in the future and nextUpdate not past (both with skew). A response
// without nextUpdate must be younger than maxAgeNoNext. The returned
// response may still have Status ocsp.Unknown.
func VerifyOCSP(der []byte, cert, issuer *x509.Certificate, now time.Time, skew, maxAgeNoNext time.Duration) (*ocsp.Response, error) {
	// Parse without an issuer: the x/crypto check of an embedded
	// certificate covers neither the EKU nor its validity, and refuses an
	// issuer that includes its own certificate.
	resp, err := ocsp.ParseResponseForCert(der, cert, nil)
	if err != nil {
		var re ocsp.ResponseError
		if errors.As(err, &re) {
			return nil, fmt.Errorf("responder answered %s", re.Status)
		}
		return nil, fmt.Errorf("malformed OCSP response: %w", err)
	}
	if resp.SerialNumber == nil || resp.SerialNumber.Cmp(cert.SerialNumber) != 0 {
		return nil, errors.New("OCSP response is about another certificate")
	}
	switch {
	case resp.Certificate == nil:
		if err := resp.CheckSignatureFrom(issuer); err != nil {
			return nil, fmt.Errorf("OCSP response not signed by the issuer: %w", err)
		}
	case bytes.Equal(resp.Certificate.Raw, issuer.Raw):
		// Signed by the issuer, which sent its own certificate along;
		// ParseResponseForCert checked the signature with it.
	default:
		responder := resp.Certificate
		if err := responder.CheckSignatureFrom(issuer); err != nil {
			return nil, fmt.Errorf("OCSP responder certificate %q not issued by the certificate's issuer: %w", responder.Subject.CommonName, err)
		}
		if !hasOCSPSigning(responder) {
			return nil, fmt.Errorf("OCSP responder certificate %q lacks id-kp-OCSPSigning", responder.Subject.CommonName)
		}
		if now.Before(responder.NotBefore) || now.After(responder.NotAfter) {
			return nil, fmt.Errorf("OCSP responder certificate %q is outside its validity", responder.Subject.CommonName)
		}
	}
	if resp.ThisUpdate.After(now.Add(skew)) {
		return nil, fmt.Errorf("OCSP response thisUpdate %s is in the future", resp.ThisUpdate.UTC().Format(time.RFC3339))
	}
	if resp.NextUpdate.IsZero() {
		if now.Sub(resp.ThisUpdate) > maxAgeNoNext {
			return nil, fmt.Errorf("OCSP response without nextUpdate is stale: thisUpdate %s", resp.ThisUpdate.UTC().Format(time.RFC3339))
		}
	} else if now.After(resp.NextUpdate.Add(skew)) {
		return nil, fmt.Errorf("OCSP response is stale: nextUpdate was %s", resp.NextUpdate.UTC().Format(time.RFC3339))
	}
	return resp, nil
}

func hasOCSPSigning(c *x509.Certificate) bool {
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageOCSPSigning {
			return true
		}
	}
	return false
}

var (
	oidIssuingDistributionPoint = asn1.ObjectIdentifier{2, 5, 29, 28}
	oidDeltaCRLIndicator        = asn1.ObjectIdentifier{2, 5, 29, 27}
)

// issuingDistributionPoint is RFC 5280 5.2.5.
type issuingDistributionPoint struct {
	DistributionPoint          asn1.RawValue  `asn1:"optional,tag:0"`
	OnlyContainsUserCerts      bool           `asn1:"optional,tag:1"`
	OnlyContainsCACerts        bool           `asn1:"optional,tag:2"`
	OnlySomeReasons            asn1.BitString `asn1:"optional,tag:3"`
	IndirectCRL                bool           `asn1:"optional,tag:4"`
	OnlyContainsAttributeCerts bool           `asn1:"optional,tag:5"`
}

// VerifyCRL parses a CRL and checks that issuer signed it, that it names
// issuer, that it is complete for end-entity certificates (no delta, no
// indirect or reason-partitioned CRL) and fresh: thisUpdate not in the
// future and nextUpdate present and not past (both with skew).
func VerifyCRL(der []byte, issuer *x509.Certificate, now time.Time, skew time.Duration) (*x509.RevocationList, error) {
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("malformed CRL: %w", err)
	}
	if !bytes.Equal(crl.RawIssuer, issuer.RawSubject) {
		return nil, errors.New("CRL issuer is not the certificate's issuer")
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		return nil, fmt.Errorf("CRL signature: %w", err)
	}
	for _, ext := range crl.Extensions {
		switch {
		case ext.Id.Equal(oidDeltaCRLIndicator):
			return nil, errors.New("delta CRLs are not supported")
		case ext.Id.Equal(oidIssuingDistributionPoint):
			var idp issuingDistributionPoint
			if rest, err := asn1.Unmarshal(ext.Value, &idp); err != nil || len(rest) > 0 {
				return nil, errors.New("malformed issuing distribution point")
			}
			if idp.OnlyContainsCACerts || idp.OnlyContainsAttributeCerts || idp.IndirectCRL || idp.OnlySomeReasons.BitLength > 0 {
				return nil, errors.New("CRL does not cover end-entity certificates for all reasons")
			}
		case ext.Critical:
			return nil, fmt.Errorf("CRL has an unsupported critical extension %s", ext.Id)
		}
	}
	if crl.ThisUpdate.After(now.Add(skew)) {
		return nil, fmt.Errorf("CRL thisUpdate %s is in the future", crl.ThisUpdate.UTC().Format(time.RFC3339))
	}
	if crl.NextUpdate.IsZero() {
		return nil, errors.New("CRL has no nextUpdate")
	}
	if now.After(crl.NextUpdate.Add(skew)) {
		return nil, fmt.Errorf("CRL is stale: nextUpdate was %s", crl.NextUpdate.UTC().Format(time.RFC3339))
	}
	return crl, nil
}

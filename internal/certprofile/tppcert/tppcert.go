// Package tppcert builds certificate templates for PSD2 sandbox QWACs and
// QSEALs: the subject with its organizationIdentifier, the key usages of
// each kind and the qcStatements of ETSI TS 119 495. The templates are
// signed elsewhere, by a local sandbox QTSP or by the bankedge CA.
package tppcert

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"time"

	"github.com/bankedge/bankedge/internal/certprofile/qcstatements"
)

// Kind is the kind of PSD2 certificate.
type Kind int

// The two kinds of PSD2 certificate.
const (
	QWAC  Kind = iota // website authentication, used for mTLS
	QSEAL             // electronic seal, used to sign requests
)

func (k Kind) String() string {
	if k == QSEAL {
		return "qseal"
	}
	return "qwac"
}

// ParseKind parses "qwac" or "qseal", case-insensitively.
func ParseKind(s string) (Kind, error) {
	switch s {
	case "qwac", "QWAC":
		return QWAC, nil
	case "qseal", "QSEAL":
		return QSEAL, nil
	}
	return 0, fmt.Errorf("certificate type %q is not qwac or qseal", s)
}

// Subject describes the TPP a certificate is for.
type Subject struct {
	// OrgID is the organizationIdentifier, e.g. PSDGR-BOG-123456.
	OrgID string
	// Organization is the subject O; CommonName the subject CN.
	Organization string
	CommonName   string
	Country      string
	Roles        []qcstatements.Role
	// OtherRoles are roles this version does not know (a later TS 119 495
	// or an NCA's), for certificates of newer profiles.
	OtherRoles []qcstatements.OtherRole
	// NCAName is the competent authority's name; NCAID defaults to the
	// one in OrgID (e.g. GR-BOG).
	NCAName string
	NCAID   string
	// DNSNames go into the QWAC's subjectAltName.
	DNSNames []string
}

// Template returns an unsigned certificate for kind and s, valid from
// notBefore to notAfter. The serial number is left for the signer.
func Template(kind Kind, s Subject, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	org, err := qcstatements.ParseOrgID(s.OrgID)
	if err != nil {
		return nil, err
	}
	if len(s.Roles)+len(s.OtherRoles) == 0 {
		return nil, fmt.Errorf("a PSD2 certificate needs at least one role")
	}
	if s.NCAID == "" {
		s.NCAID = org.NCAID()
	}
	if s.NCAID != org.NCAID() {
		return nil, fmt.Errorf("NCA id %s does not match organizationIdentifier %s", s.NCAID, s.OrgID)
	}
	if s.NCAName == "" {
		s.NCAName = "Sandbox NCA " + s.NCAID
	}
	if s.Country == "" {
		s.Country = org.Country
	}
	if s.Organization == "" {
		s.Organization = "Sandbox TPP " + s.OrgID
	}
	if s.CommonName == "" {
		s.CommonName = s.Organization
	}
	qcType := qcstatements.QcTypeWeb
	if kind == QSEAL {
		qcType = qcstatements.QcTypeESeal
	}
	ext, err := qcstatements.Extension(qcstatements.Statements{
		Compliance:  true,
		LegalPerson: true,
		SSCD:        kind == QSEAL,
		Types:       []qcstatements.QcType{qcType},
		PSD2:        &qcstatements.PSD2{Roles: s.Roles, Others: s.OtherRoles, NCAName: s.NCAName, NCAID: s.NCAID},
	}, false)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(0),
		Subject: pkix.Name{
			Country:      []string{s.Country},
			Organization: []string{s.Organization},
			CommonName:   s.CommonName,
			ExtraNames: []pkix.AttributeTypeAndValue{
				{Type: qcstatements.OIDOrganizationIdentifier, Value: s.OrgID},
			},
		},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		ExtraExtensions:       []pkix.Extension{ext},
	}
	switch kind {
	case QWAC:
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = s.DNSNames
	case QSEAL:
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment
	}
	return tmpl, nil
}

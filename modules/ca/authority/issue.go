package authority

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"
)

// Purpose says what an issued certificate is for; it decides the key
// usages, never the request.
type Purpose string

// The purposes the CA issues for.
const (
	PurposeClient Purpose = "CLIENT" // TLS client authentication (partners' mTLS)
	PurposeServer Purpose = "SERVER" // TLS server authentication
	PurposeQWAC   Purpose = "QWAC"   // PSD2 sandbox website certificate (client and server auth)
	PurposeQSEAL  Purpose = "QSEAL"  // PSD2 sandbox electronic seal (signatures)
)

// ParsePurpose accepts CLIENT or SERVER in any case (and QWAC, QSEAL).
func ParsePurpose(s string) (Purpose, error) {
	switch p := Purpose(strings.ToUpper(strings.TrimSpace(s))); p {
	case PurposeClient, PurposeServer, PurposeQWAC, PurposeQSEAL:
		return p, nil
	}
	return "", fmt.Errorf("purpose %q is not CLIENT or SERVER", s)
}

// CheckKey applies the key policy: RSA of at least 2048 bits, ECDSA on
// P-256 or P-384, or Ed25519.
func CheckKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("%w: RSA key of %d bits, at least 2048 required", ErrPolicy, k.N.BitLen())
		}
		if k.E < 3 || k.E%2 == 0 {
			return fmt.Errorf("%w: RSA public exponent %d", ErrPolicy, k.E)
		}
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("%w: ECDSA curve %s, P-256 or P-384 required", ErrPolicy, k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("%w: unsupported key type %T", ErrPolicy, pub)
	}
	return nil
}

// Request asks for a certificate.
type Request struct {
	PublicKey crypto.PublicKey
	// Template carries the subject, SANs and extra extensions; key usages,
	// validity, serial and CA constraints are set by the CA.
	Template *x509.Certificate
	Purpose  Purpose
	Validity time.Duration
	// PartnerID and IssuedBy are recorded in the inventory.
	PartnerID string
	IssuedBy  string
}

// Issue signs a certificate and records it in the inventory. Every call,
// issued or refused, is reported to Config.OnIssue.
func (a *Authority) Issue(ctx context.Context, req Request) (*x509.Certificate, error) {
	cert, err := a.issue(ctx, req)
	a.report(ctx, req, cert, err)
	return cert, err
}

func (a *Authority) report(ctx context.Context, req Request, cert *x509.Certificate, err error) {
	if a.cfg.OnIssue != nil {
		a.cfg.OnIssue(ctx, req, cert, err)
	}
}

func (a *Authority) issue(ctx context.Context, req Request) (*x509.Certificate, error) {
	if a.cfg.ReadOnly {
		return nil, ErrReadOnly
	}
	cert, rec, err := a.sign(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := a.recordIssued(ctx, cert.SerialNumber, &rec); err != nil {
		return nil, fmt.Errorf("recording issued certificate: %w", err)
	}
	return cert, nil
}

// sign applies the policy to req and signs its certificate, returning it
// with its inventory record, not stored yet.
func (a *Authority) sign(ctx context.Context, req Request) (*x509.Certificate, Record, error) {
	if err := CheckKey(req.PublicKey); err != nil {
		return nil, Record{}, err
	}
	if req.Validity <= 0 {
		return nil, Record{}, fmt.Errorf("%w: validity must be positive", ErrPolicy)
	}
	if req.Validity > a.cfg.MaxValidity {
		return nil, Record{}, fmt.Errorf("%w: validity of %d days exceeds the maximum of %d days",
			ErrPolicy, int(req.Validity.Hours()/24), int(a.cfg.MaxValidity.Hours()/24))
	}
	if req.Template == nil {
		return nil, Record{}, fmt.Errorf("%w: the request has no certificate template", ErrPolicy)
	}
	t := *req.Template
	if err := CheckNames(&t); err != nil {
		return nil, Record{}, err
	}
	// x509.CreateCertificate lets ExtraExtensions override the fields set
	// below, so a template could otherwise turn its certificate into a CA.
	for _, ext := range t.ExtraExtensions {
		if caControlled(ext.Id, req.Purpose) {
			return nil, Record{}, fmt.Errorf("%w: extension %s is set by the CA, not by the request", ErrPolicy, ext.Id)
		}
	}
	now := a.cfg.Now()
	t.NotBefore = now.Add(-5 * time.Minute)
	t.NotAfter = now.Add(req.Validity)
	if t.NotAfter.After(a.cert.NotAfter) {
		// A certificate cannot outlive its issuer.
		t.NotAfter = a.cert.NotAfter
	}
	t.IsCA, t.BasicConstraintsValid, t.MaxPathLen, t.MaxPathLenZero = false, true, 0, false
	t.SubjectKeyId = subjectKeyID(req.PublicKey)
	t.AuthorityKeyId = nil
	// The CA alone says where its CRL is.
	t.CRLDistributionPoints = nil
	if a.cfg.CRLURL != "" {
		t.CRLDistributionPoints = []string{a.cfg.CRLURL}
	}
	_, isRSA := req.PublicKey.(*rsa.PublicKey)
	switch req.Purpose {
	case PurposeClient:
		t.KeyUsage = x509.KeyUsageDigitalSignature
		if isRSA {
			t.KeyUsage |= x509.KeyUsageKeyEncipherment
		}
		t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		t.UnknownExtKeyUsage = nil
	case PurposeServer:
		t.KeyUsage = x509.KeyUsageDigitalSignature
		if isRSA {
			t.KeyUsage |= x509.KeyUsageKeyEncipherment
		}
		t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		t.UnknownExtKeyUsage = nil
		if len(t.DNSNames)+len(t.IPAddresses) == 0 {
			return nil, Record{}, fmt.Errorf("%w: a SERVER certificate needs a DNS name or IP address", ErrPolicy)
		}
	case PurposeQWAC, PurposeQSEAL:
		// The PSD2 templates set their own ETSI key usages.
	default:
		return nil, Record{}, fmt.Errorf("%w: unknown purpose %q", ErrPolicy, req.Purpose)
	}
	for attempt := 0; ; attempt++ {
		serial, err := randomSerial()
		if err != nil {
			return nil, Record{}, err
		}
		// A collision among 2^127 serials is not expected, but a serial
		// must never be issued twice, so check the inventory.
		if a.cfg.Storage.Exists(ctx, a.recordKey(serial)) {
			if attempt > 3 {
				return nil, Record{}, errors.New("could not find an unused serial number")
			}
			continue
		}
		t.SerialNumber = serial
		break
	}
	der, err := x509.CreateCertificate(rand.Reader, &t, a.cert, req.PublicKey, a.key)
	if err != nil {
		return nil, Record{}, fmt.Errorf("signing certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, Record{}, err
	}
	rec := Record{
		Serial:    SerialString(cert.SerialNumber),
		Subject:   cert.Subject.String(),
		PartnerID: req.PartnerID,
		Purpose:   req.Purpose,
		NotBefore: cert.NotBefore,
		NotAfter:  cert.NotAfter,
		IssuedAt:  now,
		IssuedBy:  req.IssuedBy,
		DER:       der,
	}
	return cert, rec, nil
}

// SignCSR checks a certificate signing request and signs it for purpose.
// The subject and SANs come from the CSR; key usages from the purpose.
func (a *Authority) SignCSR(ctx context.Context, csr *x509.CertificateRequest, purpose Purpose, validity time.Duration, partnerID, by string) (*x509.Certificate, error) {
	if err := csr.CheckSignature(); err != nil {
		err = fmt.Errorf("%w: the CSR signature does not verify: %v", ErrPolicy, err)
		a.report(ctx, Request{Template: &x509.Certificate{Subject: csr.Subject}, Purpose: purpose, PartnerID: partnerID, IssuedBy: by}, nil, err)
		return nil, err
	}
	if err := refuseCARequest(csr); err != nil {
		a.report(ctx, Request{Template: &x509.Certificate{Subject: csr.Subject}, Purpose: purpose, PartnerID: partnerID, IssuedBy: by}, nil, err)
		return nil, err
	}
	// Local copies: the caller's CSR is left as it was.
	dnsNames, ips := csr.DNSNames, csr.IPAddresses
	if purpose == PurposeServer && len(dnsNames)+len(ips) == 0 {
		// A CSR with only a CN still gets a usable server certificate.
		if ip := net.ParseIP(csr.Subject.CommonName); ip != nil {
			ips = []net.IP{ip}
		} else if csr.Subject.CommonName != "" {
			dnsNames = []string{csr.Subject.CommonName}
		}
	}
	tmpl := &x509.Certificate{
		Subject:        csr.Subject,
		DNSNames:       dnsNames,
		IPAddresses:    ips,
		EmailAddresses: csr.EmailAddresses,
		URIs:           csr.URIs,
	}
	return a.Issue(ctx, Request{PublicKey: csr.PublicKey, Template: tmpl, Purpose: purpose, Validity: validity, PartnerID: partnerID, IssuedBy: by})
}

// refuseCARequest refuses a CSR that asks for basicConstraints CA=true.
func refuseCARequest(csr *x509.CertificateRequest) error {
	for _, ext := range csr.Extensions {
		if !ext.Id.Equal(oidBasicConstraints) {
			continue
		}
		var bc struct {
			IsCA       bool `asn1:"optional"`
			MaxPathLen int  `asn1:"optional,default:-1"`
		}
		if _, err := asn1.Unmarshal(ext.Value, &bc); err != nil {
			return fmt.Errorf("%w: unreadable basicConstraints in the CSR", ErrPolicy)
		}
		if bc.IsCA {
			return fmt.Errorf("%w: the CSR asks for a CA certificate (basicConstraints CA=true)", ErrPolicy)
		}
	}
	return nil
}

// Extensions the CA sets itself. ExtraExtensions carrying them are refused.
var (
	oidSubjectKeyID     = asn1.ObjectIdentifier{2, 5, 29, 14}
	oidKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidAuthorityKeyID   = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidExtKeyUsage      = asn1.ObjectIdentifier{2, 5, 29, 37}
)

// caControlled reports whether the extension id is the CA's to set for
// purpose: CA constraints and key identifiers always, key usages for CLIENT
// and SERVER (the PSD2 templates bring their own).
func caControlled(id asn1.ObjectIdentifier, purpose Purpose) bool {
	switch {
	case id.Equal(oidBasicConstraints), id.Equal(oidSubjectKeyID), id.Equal(oidAuthorityKeyID):
		return true
	case id.Equal(oidKeyUsage), id.Equal(oidExtKeyUsage):
		return purpose == PurposeClient || purpose == PurposeServer
	}
	return false
}

// subjectKeyID computes the key identifier of RFC 5280 §4.2.1.2 method 1.
func subjectKeyID(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil
	}
	sum := sha1.Sum(spki.PublicKey.Bytes)
	return sum[:]
}

// Record is an entry of the issued-certificate inventory.
type Record struct {
	Serial           string     `json:"serial"`
	Subject          string     `json:"subject"`
	PartnerID        string     `json:"partnerId,omitempty"`
	Purpose          Purpose    `json:"purpose"`
	NotBefore        time.Time  `json:"notBefore"`
	NotAfter         time.Time  `json:"notAfter"`
	IssuedAt         time.Time  `json:"issuedAt"`
	IssuedBy         string     `json:"issuedBy,omitempty"`
	Status           string     `json:"status"`
	RevokedAt        *time.Time `json:"revokedAt,omitempty"`
	RevocationReason string     `json:"revocationReason,omitempty"`
	DER              []byte     `json:"certificate"`
}

// Statuses of an inventory record.
const (
	StatusValid   = "valid"
	StatusExpired = "expired"
	StatusRevoked = "revoked"
)

// recordKey is the storage key of a serial's inventory record.
func (a *Authority) recordKey(serial *big.Int) string {
	return a.cfg.key(a.recordName(serial))
}

func (a *Authority) recordName(serial *big.Int) string {
	return "issued/" + storageSerial(serial) + ".json"
}

func (a *Authority) storeRecord(ctx context.Context, serial *big.Int, rec Record) error {
	// Derived on read: the status from the clock, the revocation from the
	// revocation log, which is the one record of revocations.
	rec.Status, rec.RevokedAt, rec.RevocationReason = "", nil, ""
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return a.store(ctx, a.recordName(serial), b)
}

// withStatus fills the record's derived fields: the serial in SerialString
// notation, the revocation from the revocation log and the status.
func (a *Authority) withStatus(rec Record, revoked revocationState) Record {
	if n, err := ParseSerial(rec.Serial); err == nil {
		rec.Serial = SerialString(n)
	}
	rec.RevokedAt, rec.RevocationReason = nil, ""
	if r, ok := revoked.get(rec.Serial); ok {
		at := r.RevokedAt
		rec.RevokedAt, rec.RevocationReason = &at, ReasonName(r.Reason)
	}
	switch {
	case rec.RevokedAt != nil:
		rec.Status = StatusRevoked
	case a.cfg.Now().After(rec.NotAfter):
		rec.Status = StatusExpired
	default:
		rec.Status = StatusValid
	}
	return rec
}

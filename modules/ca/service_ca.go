package ca

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/bankedge/bankedge/internal/certprofile/qcstatements"
	"github.com/bankedge/bankedge/internal/certprofile/tppcert"
	"github.com/bankedge/bankedge/modules/ca/authority"
	"github.com/bankedge/bankedge/modules/ca/console"
	"github.com/bankedge/bankedge/modules/ca/keystore"
)

// initializeCA creates the CA; created is false (and the CA returned)
// when it exists already.
func (a *App) initializeCA(ctx context.Context) (auth *authority.Authority, created bool, err error) {
	t := trailOf(ctx, "ca.initialize")
	auth, err = a.Initialize(ctx)
	switch {
	case errors.Is(err, authority.ErrCAExists):
		t.log(a.audit, "exists")
		return auth, false, nil
	case err != nil:
		return nil, false, err
	}
	t.log(a.audit, "created", zap.String("serial", authority.SerialString(auth.Certificate().SerialNumber)))
	a.gauges.changed()
	return auth, true, nil
}

// leafKey makes the key a partner gets when the CA generates it: RSA-2048
// by default, which every PeSIT and Java peer reads.
func leafKey(name string) (crypto.Signer, error) {
	name = strings.ToLower(strings.TrimSpace(name))
	if name == "" {
		name = string(authority.RSA2048)
	}
	if rest, ok := strings.CutPrefix(name, "rsa"); ok && !strings.HasPrefix(rest, "-") {
		name = "rsa-" + rest // rsa2048, as openssl spells it
	}
	kt, err := authority.ParseKeyType(name)
	if err != nil {
		return nil, failField(http.StatusBadRequest, "keyType", "keyType: %v", err)
	}
	return authority.NewKey(kt)
}

// csrRequest asks for a key and a CSR.
type csrRequest struct {
	CommonName, Organization, OrganizationalUnit, Country, State, Locality string
	Email, KeyType, Password                                               string
	// DNSNames are DNS names and IP addresses.
	DNSNames []string
}

// csrMade is a key and its CSR, the key encrypted when a password was given.
type csrMade struct {
	CSRPEM, KeyPEM []byte
	KeyEncrypted   bool
}

// makeCSR makes a key and a CSR that this CA would sign.
func (a *App) makeCSR(ctx context.Context, req csrRequest) (csrMade, error) {
	t := trailOf(ctx, "ca.csr")
	if err := required("commonName", req.CommonName); err != nil {
		return csrMade{}, err
	}
	subject := pkix.Name{CommonName: req.CommonName}
	for _, f := range []struct {
		dst *[]string
		v   string
	}{{&subject.Organization, req.Organization}, {&subject.OrganizationalUnit, req.OrganizationalUnit},
		{&subject.Country, req.Country}, {&subject.Province, req.State}, {&subject.Locality, req.Locality}} {
		if f.v != "" {
			*f.dst = []string{f.v}
		}
	}
	tmpl := &x509.CertificateRequest{Subject: subject}
	for _, n := range req.DNSNames {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	if req.Email != "" {
		tmpl.EmailAddresses = []string{req.Email}
	}
	// The CSR is signed later by this CA: refuse now what it would refuse.
	if err := authority.CheckNames(&x509.Certificate{Subject: subject, DNSNames: tmpl.DNSNames, IPAddresses: tmpl.IPAddresses, EmailAddresses: tmpl.EmailAddresses}); err != nil {
		return csrMade{}, caError(err)
	}
	if req.Password != "" {
		if err := keystore.CheckPassword(req.Password); err != nil {
			return csrMade{}, failField(http.StatusBadRequest, "password", "password: %v", err)
		}
	}
	key, err := leafKey(req.KeyType)
	if err != nil {
		return csrMade{}, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return csrMade{}, fmt.Errorf("making the CSR: %w", err)
	}
	keyPEM, err := keystore.EncodePrivateKeyPEM(key, req.Password)
	if err != nil {
		return csrMade{}, err
	}
	t.log(a.audit, "created", zap.String("subject", subject.String()), zap.Bool("key_encrypted", req.Password != ""))
	return csrMade{
		CSRPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), KeyPEM: keyPEM, KeyEncrypted: req.Password != "",
	}, nil
}

// issuePurpose reads a purpose (default CLIENT), which must be CLIENT or
// SERVER: QWACs and QSEALs have their own operation.
func issuePurpose(v string) (authority.Purpose, error) {
	purpose, err := authority.ParsePurpose(orDefault(strings.TrimSpace(v), "CLIENT"))
	if err != nil || purpose == authority.PurposeQWAC || purpose == authority.PurposeQSEAL {
		return "", failField(http.StatusBadRequest, "purpose", "purpose must be CLIENT or SERVER")
	}
	return purpose, nil
}

// knownPartner refuses a partner id that the registry does not hold: 400
// for an id that cannot be one, 404 for an unknown one.
func (a *App) knownPartner(ctx context.Context, id string) error {
	if _, err := a.Registry().Get(ctx, id); err != nil {
		err = partnerError(err)
		var ae *apiError
		if errors.As(err, &ae) {
			ae.field = "partnerId"
		}
		return err
	}
	return nil
}

// signRequest asks to sign a CSR.
type signRequest struct {
	CSRPEM, Purpose, ValidityDays, PartnerID string
}

// signCSR signs a CSR for a partner (or none) after the checks of the
// request; the CA checks the CSR's signature, key and names.
func (a *App) signCSR(ctx context.Context, req signRequest) (*x509.Certificate, error) {
	t := trailOf(ctx, "ca.sign")
	auth, err := a.authorityOrConflict()
	if err != nil {
		return nil, err
	}
	block, err := parsePEM("csrPem", req.CSRPEM, "CERTIFICATE REQUEST")
	if err != nil {
		return nil, err
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, failField(http.StatusBadRequest, "csrPem", "csrPem is not a certificate signing request: %v", err)
	}
	purpose, err := issuePurpose(req.Purpose)
	if err != nil {
		return nil, err
	}
	validity, err := parseValidity(req.ValidityDays)
	if err != nil {
		return nil, err
	}
	partnerID := strings.TrimSpace(req.PartnerID)
	t.with(zap.String("partner", partnerID))
	if partnerID != "" {
		if err := a.knownPartner(ctx, partnerID); err != nil {
			return nil, err
		}
	}
	cert, err := auth.SignCSR(ctx, csr, purpose, validity, partnerID, t.user)
	if err != nil {
		return nil, caError(err)
	}
	return cert, nil
}

// generateRequest asks for a key, its certificate and the CA chain in a
// keystore, for a partner of the registry.
type generateRequest struct {
	PartnerID, CommonName, Organization, Purpose, ValidityDays string
	// DNSNames are DNS names and IP addresses, for a SERVER certificate.
	DNSNames []string
	// Format is p12 (default), jks or pem; Password the keystore's (empty:
	// the CA chooses one); EncryptKey "false" leaves a PEM key unencrypted.
	Format, Password, EncryptKey, KeyType string
}

// generatePartner issues a key and certificate for a partner and returns
// them as a keystore.
func (a *App) generatePartner(ctx context.Context, req generateRequest) (download, error) {
	t := trailOf(ctx, "ca.generate")
	auth, err := a.authorityOrConflict()
	if err != nil {
		return download{}, err
	}
	id := strings.TrimSpace(req.PartnerID)
	t.with(zap.String("partner", id))
	if err := required("partnerId", id); err != nil {
		return download{}, err
	}
	// As sign does: a keystore for a partner the registry does not know
	// would authenticate nobody, or someone not yet declared.
	if err := a.knownPartner(ctx, id); err != nil {
		return download{}, err
	}
	purpose, err := issuePurpose(req.Purpose)
	if err != nil {
		return download{}, err
	}
	validity, format, err := validityAndFormat(req.ValidityDays, req.Format)
	if err != nil {
		return download{}, err
	}
	cn := orDefault(strings.TrimSpace(req.CommonName), id)
	tmpl := &x509.Certificate{}
	tmpl.Subject.CommonName = cn
	if o := strings.TrimSpace(req.Organization); o != "" {
		tmpl.Subject.Organization = []string{o}
	}
	if purpose == authority.PurposeServer {
		for _, n := range slices.Compact(append([]string{cn}, req.DNSNames...)) {
			if ip := net.ParseIP(n); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, n)
			}
		}
	}
	key, err := leafKey(req.KeyType)
	if err != nil {
		return download{}, err
	}
	return issueKeystore(ctx, t, auth, key, authority.Request{Template: tmpl, Purpose: purpose, Validity: validity, PartnerID: id},
		format, req.Password, req.EncryptKey)
}

// validityAndFormat reads the validity and keystore format of a keystore
// request.
func validityAndFormat(validityDays, format string) (time.Duration, keystore.Format, error) {
	validity, err := parseValidity(validityDays)
	if err != nil {
		return 0, "", err
	}
	f, err := parseFormat(format)
	return validity, f, err
}

// issueKeystore issues the certificate of req for key, the holder being
// req.PartnerID, and returns both in a keystore. Everything the keystore
// needs is checked before the certificate is issued: a refusal after
// issuance would leave an undelivered certificate in the inventory.
func issueKeystore(ctx context.Context, t *auditTrail, auth *authority.Authority, key crypto.Signer, req authority.Request,
	format keystore.Format, password, encryptKey string) (download, error) {
	secret, err := keystorePassword(t, format, password, encryptKey)
	if err != nil {
		return download{}, err
	}
	t.with(zap.String("format", string(format)))
	req.PublicKey, req.IssuedBy = key.Public(), t.user
	cert, err := auth.Issue(ctx, req)
	if err != nil {
		return download{}, caError(err)
	}
	return keystoreOf(auth, req.PartnerID, key, cert, format, secret)
}

// keystoreOf puts a key, its certificate and the CA chain in a keystore,
// the key entry named after holder.
func keystoreOf(auth *authority.Authority, holder string, key crypto.Signer, cert *x509.Certificate, format keystore.Format, secret keystoreSecret) (download, error) {
	ks, err := keystore.EncodeKeystore(keystore.Entry{
		Alias: holder, Key: key, Cert: cert, Chain: []*x509.Certificate{auth.Certificate()}, CAAlias: "bankedge-ca",
	}, format, secret.password)
	if err != nil {
		return download{}, fmt.Errorf("encoding the keystore: %w", err)
	}
	d := download{Name: console.SafeFilename(holder, "keystore") + format.Extension(), ContentType: format.ContentType(), Body: ks, Unencrypted: secret.unencrypted}
	if secret.chosen {
		d.Password = secret.password
	}
	return d, nil
}

// tppIDRE is the syntax of a sandbox TPP id: it names the certificates in
// the inventory and the download.
var tppIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// psd2Request asks for a sandbox QWAC or QSEAL.
type psd2Request struct {
	TPPID, Type, OrgID, Roles, NCAName, NCAID, CommonName, Organization string
	ValidityDays, Format, Password, EncryptKey, KeyType                 string
}

// generatePSD2 issues a sandbox QWAC or QSEAL with ETSI TS 119 495
// qcStatements, as a keystore.
func (a *App) generatePSD2(ctx context.Context, req psd2Request) (download, error) {
	t := trailOf(ctx, "ca.psd2.generate")
	auth, err := a.authorityOrConflict()
	if err != nil {
		return download{}, err
	}
	if !tppIDRE.MatchString(req.TPPID) {
		return download{}, failField(http.StatusBadRequest, "tppId", "the TPP id must be 1 to 64 characters among A-Z, a-z, 0-9, '_', '.', '-', starting with a letter or digit")
	}
	t.with(zap.String("partner", req.TPPID))
	kind, err := tppcert.ParseKind(strings.ToLower(strings.TrimSpace(req.Type)))
	if err != nil {
		return download{}, failField(http.StatusBadRequest, "type", "type must be qwac or qseal")
	}
	if err := required("orgId", req.OrgID); err != nil {
		return download{}, err
	}
	if err := required("roles", req.Roles); err != nil {
		return download{}, err
	}
	var roles []qcstatements.Role
	for _, r := range splitList(req.Roles) {
		role, err := qcstatements.ParseRole(r)
		if err != nil {
			return download{}, failField(http.StatusBadRequest, "roles", "roles: %v", err)
		}
		if !slices.Contains(roles, role) {
			roles = append(roles, role)
		}
	}
	for _, p := range []struct{ name, v string }{{"ncaName", req.NCAName}, {"ncaId", req.NCAID}} {
		if len(p.v) > 128 || strings.ContainsFunc(p.v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return download{}, failField(http.StatusBadRequest, p.name, "%s must be at most 128 characters of text", p.name)
		}
	}
	validity, format, err := validityAndFormat(req.ValidityDays, req.Format)
	if err != nil {
		return download{}, err
	}
	cn := orDefault(strings.TrimSpace(req.CommonName), req.TPPID)
	tmpl, err := tppcert.Template(kind, tppcert.Subject{
		OrgID: strings.TrimSpace(req.OrgID), Organization: strings.TrimSpace(req.Organization), CommonName: cn, Roles: roles,
		NCAName: req.NCAName, NCAID: req.NCAID, DNSNames: []string{cn},
	}, auth.Certificate().NotBefore, auth.Certificate().NotAfter)
	if err != nil {
		return download{}, failField(http.StatusBadRequest, "", "%v", err)
	}
	// A QSEAL signs with rsa-sha256 or rsa-sha512, so the default key is RSA.
	key, err := leafKey(req.KeyType)
	if err != nil {
		return download{}, err
	}
	if _, ok := key.(*rsa.PrivateKey); !ok && kind == tppcert.QSEAL {
		return download{}, failField(http.StatusBadRequest, "keyType", "a QSEAL needs an RSA key: PSD2 signatures are rsa-sha256 or rsa-sha512")
	}
	purpose := authority.PurposeQWAC
	if kind == tppcert.QSEAL {
		purpose = authority.PurposeQSEAL
	}
	return issueKeystore(ctx, t, auth, key, authority.Request{Template: tmpl, Purpose: purpose, Validity: validity, PartnerID: req.TPPID},
		format, req.Password, req.EncryptKey)
}

// verifyCertificate checks that a PEM certificate is this CA's, valid and
// not revoked; a refusal's reason is malformed, not_ours, expired,
// not_yet_valid or revoked.
func (a *App) verifyCertificate(ctx context.Context, certPEM string) error {
	t := trailOf(ctx, "ca.verify")
	auth, err := a.authorityOrConflict()
	if err != nil {
		return err
	}
	block, err := parsePEM("certificatePem", certPEM, "CERTIFICATE")
	if err != nil {
		err.(*apiError).reason = "malformed"
		return err
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return &apiError{status: http.StatusBadRequest, field: "certificatePem", msg: "certificatePem is not a valid certificate: " + err.Error(), reason: "malformed"}
	}
	t.with(zap.String("serial", authority.SerialString(cert.SerialNumber)))
	err = auth.Verify(ctx, cert)
	var verr *authority.VerifyError
	if errors.As(err, &verr) {
		t.log(a.audit, "invalid", zap.String("reason", verr.Reason))
		return &apiError{status: http.StatusUnprocessableEntity, msg: verr.Error(), reason: verr.Reason, cause: err}
	}
	if err != nil {
		return err
	}
	t.log(a.audit, "valid")
	return nil
}

// caCertificatePEM is the CA certificate.
func (a *App) caCertificatePEM() ([]byte, error) {
	auth, err := a.authorityOrConflict()
	if err != nil {
		return nil, err
	}
	return auth.CertificatePEM(), nil
}

// truststore returns the CA certificate as a truststore. A truststore
// holds no secret: its password only guards integrity, and is not held to
// the keystore rules; without one the CA chooses it.
func (a *App) truststore(ctx context.Context, format, password string) (download, error) {
	t := trailOf(ctx, "ca.truststore")
	auth, err := a.authorityOrConflict()
	if err != nil {
		return download{}, err
	}
	f, err := parseFormat(format)
	if err != nil {
		return download{}, err
	}
	d := download{Name: "truststore" + f.Extension(), ContentType: f.ContentType()}
	if password == "" && f != keystore.FormatPEM {
		if password, err = keystore.RandomPassword(); err != nil {
			return d, err
		}
		d.Password = password
	}
	if d.Body, err = keystore.EncodeTruststore([]*x509.Certificate{auth.Certificate()}, f, "bankedge-ca", password); err != nil {
		return d, fmt.Errorf("encoding the truststore: %w", err)
	}
	t.log(a.audit, "sent", zap.String("format", string(f)))
	return d, nil
}

// inventoryFilter selects inventory records; empty fields select all.
type inventoryFilter struct {
	Partner string
	// Purpose is CLIENT, SERVER, QWAC or QSEAL (any case).
	Purpose string
	// Status is valid, expired or revoked.
	Status string
	// ExpiringWithin keeps valid certificates that expire within it.
	ExpiringWithin time.Duration
	// Limit is the most records of a page, 0 for all; Cursor, the next
	// page's cursor of an earlier answer, continues after it.
	Limit  int
	Cursor string
}

// inventory returns a page of the issued certificates matching f, newest
// first, without their DER, and the cursor of the next page ("" when none
// remains). The authority answers from its index.
func (a *App) inventory(ctx context.Context, f inventoryFilter) ([]authority.Record, string, error) {
	auth, err := a.authorityOrConflict()
	if err != nil {
		return nil, "", err
	}
	q := authority.Query{PartnerID: f.Partner, Purpose: f.Purpose, Status: f.Status, Limit: f.Limit, Cursor: f.Cursor}
	if f.ExpiringWithin > 0 {
		switch q.Status {
		case "", authority.StatusValid:
			q.Status, q.ExpiresBefore = authority.StatusValid, time.Now().Add(f.ExpiringWithin)
		default:
			return []authority.Record{}, "", nil
		}
	}
	page, err := auth.Query(ctx, q)
	if errors.Is(err, authority.ErrBadCursor) {
		return nil, "", failField(http.StatusBadRequest, "cursor", "cursor is not one this API gave: ask for the first page again")
	}
	if err != nil {
		return nil, "", err
	}
	for i := range page.Records {
		page.Records[i].DER = nil
	}
	return page.Records, page.Next, nil
}

// certificatePEM returns an issued certificate by its serial.
func (a *App) certificatePEM(ctx context.Context, s string) ([]byte, error) {
	auth, err := a.authorityOrConflict()
	if err != nil {
		return nil, err
	}
	n, err := authority.ParseSerial(s)
	if err != nil {
		return nil, failField(http.StatusBadRequest, "serial", "%v", err)
	}
	rec, err := auth.Lookup(ctx, n)
	if err != nil {
		return nil, caError(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rec.DER}), nil
}

// crlPending answers a revocation that is in force while its CRL is not
// published yet: not an internal detail, but what the operator must know.
type crlPending struct{ err error }

func (e *crlPending) Error() string {
	return "the certificate is revoked, but the new CRL could not be published yet: the next read of the CRL (GET /api/v1/certificates/ca/crl) or POST /api/v1/certificates/ca/crl/regenerate publishes it"
}
func (e *crlPending) Unwrap() error { return e.err }

// revoke revokes a certificate of this CA, by serial, for an RFC 5280
// reason (name or number), and publishes a new CRL.
func (a *App) revoke(ctx context.Context, serial, reason string) (authority.Record, error) {
	t := trailOf(ctx, "ca.revoke")
	auth, err := a.authorityOrConflict()
	if err != nil {
		return authority.Record{}, err
	}
	if err := required("serial", serial); err != nil {
		return authority.Record{}, err
	}
	n, err := authority.ParseSerial(strings.TrimSpace(serial))
	if err != nil {
		return authority.Record{}, failField(http.StatusBadRequest, "serial", "%v", err)
	}
	t.with(zap.String("serial", authority.SerialString(n)))
	code, err := authority.ParseReason(strings.TrimSpace(reason))
	if err != nil {
		return authority.Record{}, failField(http.StatusBadRequest, "reason", "%v", err)
	}
	rec, err := auth.Revoke(ctx, n, code)
	if errors.Is(err, authority.ErrCRLNotPublished) {
		a.revoked()
		t.log(a.audit, "revoked", zap.String("partner", rec.PartnerID), zap.String("revocation_reason", rec.RevocationReason), zap.Bool("crl_published", false))
		return rec, &crlPending{err}
	}
	if err != nil {
		return rec, caError(err)
	}
	a.revoked()
	t.log(a.audit, "revoked", zap.String("partner", rec.PartnerID), zap.String("revocation_reason", rec.RevocationReason))
	rec.DER = nil
	return rec, nil
}

// crl returns the current DER CRL, publishing a new one when it is behind.
func (a *App) crl(ctx context.Context) ([]byte, error) {
	auth, err := a.authorityOrConflict()
	if err != nil {
		return nil, err
	}
	// A CRL made by this read reaches the gauge with the next periodic
	// refresh: every read would be too many.
	return auth.CRL(ctx)
}

// regenerateCRL signs and publishes a new CRL now.
func (a *App) regenerateCRL(ctx context.Context) (authority.CRLInfo, error) {
	t := trailOf(ctx, "ca.crl.regenerate")
	auth, err := a.authorityOrConflict()
	if err != nil {
		return authority.CRLInfo{}, err
	}
	info, err := auth.RegenerateCRL(ctx)
	if err != nil {
		return info, err
	}
	a.gauges.changed()
	t.log(a.audit, "published", zap.String("crl_number", info.Number.String()), zap.Int("entries", info.Entries))
	return info, nil
}

package ca

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/bankedge/bankedge/internal/certprofile/qcstatements"
	"github.com/bankedge/bankedge/internal/certprofile/tppcert"
	"github.com/bankedge/bankedge/modules/ca/authority"
	"github.com/bankedge/bankedge/modules/ca/keystore"
)

// POST /api/v1/certificates/ca/initialize
func (h *API) initialize(c *call) error {
	auth, err := h.app.Initialize(c.r.Context())
	switch {
	case errors.Is(err, authority.ErrCAExists):
		c.audit.log(h.app.audit, "exists")
		writeJSON(c.w, http.StatusConflict, map[string]string{
			"error":       "the CA already exists",
			"certificate": string(auth.CertificatePEM()),
			"requestId":   c.audit.requestID,
		})
		return nil
	case err != nil:
		return err
	}
	c.audit.log(h.app.audit, "created", zap.String("serial", authority.SerialString(auth.Certificate().SerialNumber)))
	writeJSON(c.w, http.StatusCreated, map[string]string{
		"message":     "CA initialized",
		"certificate": string(auth.CertificatePEM()),
	})
	return nil
}

// GET /api/v1/certificates/ca/certificate
func (h *API) caCertificate(c *call) error {
	auth, err := h.authority()
	if err != nil {
		return err
	}
	writeFile(c.w, "application/x-pem-file", "ca-cert.pem", auth.CertificatePEM())
	return nil
}

// leafKey makes the key a partner gets when the CA generates it: RSA-2048
// by default, which every PeSIT and Java peer reads.
func leafKey(name string) (crypto.Signer, error) {
	if name == "" {
		name = string(authority.RSA2048)
	}
	name = strings.ToLower(name)
	if rest, ok := strings.CutPrefix(name, "rsa"); ok && !strings.HasPrefix(rest, "-") {
		name = "rsa-" + rest // rsa2048, as openssl spells it
	}
	kt, err := authority.ParseKeyType(name)
	if err != nil {
		return nil, fail(http.StatusBadRequest, "keyType: %v", err)
	}
	return authority.NewKey(kt)
}

// POST /api/v1/certificates/ca/csr: a key and a CSR for the given subject.
func (h *API) makeCSR(c *call) error {
	subject, err := c.subjectFromForm()
	if err != nil {
		return err
	}
	tmpl := &x509.CertificateRequest{Subject: subject}
	for _, n := range splitList(c.param("dnsNames")) {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	if e := c.param("email"); e != "" {
		tmpl.EmailAddresses = []string{e}
	}
	// The CSR is signed later by this CA: refuse now what it would refuse.
	if err := authority.CheckNames(&x509.Certificate{Subject: subject, DNSNames: tmpl.DNSNames, IPAddresses: tmpl.IPAddresses, EmailAddresses: tmpl.EmailAddresses}); err != nil {
		return caError(err)
	}
	password := c.form.Get("password")
	if password != "" {
		if err := keystore.CheckPassword(password); err != nil {
			return fail(http.StatusBadRequest, "password: %v", err)
		}
	}
	key, err := leafKey(c.param("keyType"))
	if err != nil {
		return err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return fmt.Errorf("making the CSR: %w", err)
	}
	keyPEM, err := keystore.EncodePrivateKeyPEM(key, password)
	if err != nil {
		return err
	}
	c.audit.log(h.app.audit, "created", zap.String("subject", subject.String()), zap.Bool("key_encrypted", password != ""))
	writeJSON(c.w, http.StatusOK, map[string]any{
		"csrPem":        string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})),
		"privateKeyPem": string(keyPEM),
		"keyEncrypted":  password != "",
	})
	return nil
}

// issuePurpose reads purpose (default CLIENT), which must be CLIENT or
// SERVER: QWACs and QSEALs have their own endpoint.
func (c *call) issuePurpose() (authority.Purpose, error) {
	purpose, err := authority.ParsePurpose(orDefault(c.param("purpose"), "CLIENT"))
	if err != nil || purpose == authority.PurposeQWAC || purpose == authority.PurposeQSEAL {
		return "", fail(http.StatusBadRequest, "purpose must be CLIENT or SERVER")
	}
	return purpose, nil
}

// knownPartner refuses a partner id that the registry does not hold: 400
// for an id that cannot be one, 404 for an unknown one.
func (h *API) knownPartner(c *call, id string) error {
	if _, err := h.app.Registry().Get(c.r.Context(), id); err != nil {
		return partnerError(err)
	}
	return nil
}

// POST /api/v1/certificates/ca/sign: csrPem, purpose, validityDays, partnerId.
func (h *API) signCSR(c *call) error {
	auth, err := h.authority()
	if err != nil {
		return err
	}
	block, err := c.pemParam("csrPem", "CERTIFICATE REQUEST")
	if err != nil {
		return err
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return fail(http.StatusBadRequest, "csrPem is not a certificate signing request: %v", err)
	}
	purpose, err := c.issuePurpose()
	if err != nil {
		return err
	}
	validity, err := c.validity()
	if err != nil {
		return err
	}
	partnerID := c.param("partnerId")
	c.audit.with(zap.String("partner", partnerID))
	if partnerID != "" {
		if err := h.knownPartner(c, partnerID); err != nil {
			return err
		}
	}
	cert, err := auth.SignCSR(c.r.Context(), csr, purpose, validity, partnerID, c.user)
	if err != nil {
		return caError(err)
	}
	writeFile(c.w, "application/x-pem-file", "", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
	return nil
}

// POST /api/v1/certificates/ca/partner/{id}/generate: a complete keystore.
func (h *API) generatePartner(c *call) error {
	auth, err := h.authority()
	if err != nil {
		return err
	}
	id := c.r.PathValue("id")
	c.audit.with(zap.String("partner", id))
	// As sign does: a keystore for a partner the registry does not know
	// would authenticate nobody, or someone not yet declared.
	if err := h.knownPartner(c, id); err != nil {
		return err
	}
	purpose, err := c.issuePurpose()
	if err != nil {
		return err
	}
	validity, err := c.validity()
	if err != nil {
		return err
	}
	format, err := c.keystoreFormat()
	if err != nil {
		return err
	}
	cn := orDefault(c.param("commonName"), id)
	tmpl := &x509.Certificate{}
	tmpl.Subject.CommonName = cn
	if o := c.param("organization"); o != "" {
		tmpl.Subject.Organization = []string{o}
	}
	if purpose == authority.PurposeServer {
		for _, n := range slices.Compact(append([]string{cn}, splitList(c.param("dnsNames"))...)) {
			if ip := net.ParseIP(n); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, n)
			}
		}
	}
	key, err := leafKey(c.param("keyType"))
	if err != nil {
		return err
	}
	// Everything the keystore needs is checked before the certificate is
	// issued: a refusal after issuance would leave an undelivered
	// certificate in the inventory.
	password, err := c.keystorePassword(format)
	if err != nil {
		return err
	}
	c.audit.with(zap.String("format", string(format)))
	cert, err := auth.Issue(c.r.Context(), authority.Request{
		PublicKey: key.Public(), Template: tmpl, Purpose: purpose, Validity: validity, PartnerID: id, IssuedBy: c.user,
	})
	if err != nil {
		return caError(err)
	}
	return h.sendKeystore(c, auth, id, key, cert, format, password)
}

// sendKeystore answers with a key, its certificate and the CA chain, the
// key entry named after holder.
func (h *API) sendKeystore(c *call, auth *authority.Authority, holder string, key crypto.Signer, cert *x509.Certificate, format keystore.Format, password string) error {
	ks, err := keystore.EncodeKeystore(keystore.Entry{
		Alias: holder, Key: key, Cert: cert, Chain: []*x509.Certificate{auth.Certificate()}, CAAlias: "bankedge-ca",
	}, format, password)
	if err != nil {
		return fmt.Errorf("encoding the keystore: %w", err)
	}
	writeFile(c.w, format.ContentType(), safeFilename(holder)+format.Extension(), ks)
	return nil
}

// tppIDRE is the syntax of the {tppId} path segment: it names the
// certificates in the inventory and the download.
var tppIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// POST /api/v1/certificates/ca/psd2/{tppId}/generate: a sandbox QWAC or QSEAL.
func (h *API) generatePSD2(c *call) error {
	auth, err := h.authority()
	if err != nil {
		return err
	}
	tppID := c.r.PathValue("tppId")
	if !tppIDRE.MatchString(tppID) {
		return fail(http.StatusBadRequest, "the TPP id must be 1 to 64 characters among A-Z, a-z, 0-9, '_', '.', '-', starting with a letter or digit")
	}
	c.audit.with(zap.String("partner", tppID))
	kind, err := tppcert.ParseKind(strings.ToLower(c.param("type")))
	if err != nil {
		return fail(http.StatusBadRequest, "type must be qwac or qseal")
	}
	orgID, err := c.required("orgId")
	if err != nil {
		return err
	}
	rolesParam, err := c.required("roles")
	if err != nil {
		return err
	}
	var roles []qcstatements.Role
	for _, r := range splitList(rolesParam) {
		role, err := qcstatements.ParseRole(r)
		if err != nil {
			return fail(http.StatusBadRequest, "roles: %v", err)
		}
		if !slices.Contains(roles, role) {
			roles = append(roles, role)
		}
	}
	for _, p := range []string{"ncaName", "ncaId"} {
		if v := c.param(p); len(v) > 128 || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return fail(http.StatusBadRequest, "%s must be at most 128 characters of text", p)
		}
	}
	validity, err := c.validity()
	if err != nil {
		return err
	}
	format, err := c.keystoreFormat()
	if err != nil {
		return err
	}
	cn := orDefault(c.param("commonName"), tppID)
	tmpl, err := tppcert.Template(kind, tppcert.Subject{
		OrgID: orgID, Organization: c.param("organization"), CommonName: cn, Roles: roles,
		NCAName: c.param("ncaName"), NCAID: c.param("ncaId"), DNSNames: []string{cn},
	}, auth.Certificate().NotBefore, auth.Certificate().NotAfter)
	if err != nil {
		return fail(http.StatusBadRequest, "%v", err)
	}
	// A QSEAL signs with rsa-sha256 or rsa-sha512, so the default key is RSA.
	key, err := leafKey(c.param("keyType"))
	if err != nil {
		return err
	}
	if _, ok := key.(*rsa.PrivateKey); !ok && kind == tppcert.QSEAL {
		return fail(http.StatusBadRequest, "a QSEAL needs an RSA key: PSD2 signatures are rsa-sha256 or rsa-sha512")
	}
	purpose := authority.PurposeQWAC
	if kind == tppcert.QSEAL {
		purpose = authority.PurposeQSEAL
	}
	password, err := c.keystorePassword(format)
	if err != nil {
		return err
	}
	c.audit.with(zap.String("format", string(format)))
	cert, err := auth.Issue(c.r.Context(), authority.Request{
		PublicKey: key.Public(), Template: tmpl, Purpose: purpose, Validity: validity, PartnerID: tppID, IssuedBy: c.user,
	})
	if err != nil {
		return caError(err)
	}
	return h.sendKeystore(c, auth, tppID, key, cert, format, password)
}

// POST /api/v1/certificates/ca/verify: certificatePem.
func (h *API) verify(c *call) error {
	auth, err := h.authority()
	if err != nil {
		return err
	}
	block, err := c.pemParam("certificatePem", "CERTIFICATE")
	if err != nil {
		err.(*apiError).reason = "malformed"
		return err
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return &apiError{status: http.StatusBadRequest, msg: "certificatePem is not a valid certificate: " + err.Error(), reason: "malformed"}
	}
	c.audit.with(zap.String("serial", authority.SerialString(cert.SerialNumber)))
	err = auth.Verify(c.r.Context(), cert)
	var verr *authority.VerifyError
	if errors.As(err, &verr) {
		c.audit.log(h.app.audit, "invalid", zap.String("reason", verr.Reason))
		return &apiError{status: http.StatusUnprocessableEntity, msg: verr.Error(), reason: verr.Reason}
	}
	if err != nil {
		return err
	}
	c.audit.log(h.app.audit, "valid")
	writeJSON(c.w, http.StatusOK, map[string]string{"message": "Certificate is valid and signed by our CA"})
	return nil
}

// GET /api/v1/certificates/ca/truststore?format=p12|jks|pem
func (h *API) truststore(c *call) error {
	auth, err := h.authority()
	if err != nil {
		return err
	}
	format, err := c.keystoreFormat()
	if err != nil {
		return err
	}
	// A truststore holds no secret: its password only guards integrity,
	// and is not held to the keystore rules.
	password := c.form.Get("password")
	if password == "" && format != keystore.FormatPEM {
		if password, err = keystore.RandomPassword(); err != nil {
			return err
		}
		c.w.Header().Set("X-Keystore-Password", password)
	}
	ts, err := keystore.EncodeTruststore([]*x509.Certificate{auth.Certificate()}, format, "bankedge-ca", password)
	if err != nil {
		return fmt.Errorf("encoding the truststore: %w", err)
	}
	c.audit.log(h.app.audit, "sent", zap.String("format", string(format)))
	writeFile(c.w, format.ContentType(), "truststore"+format.Extension(), ts)
	return nil
}

// maxIssuedPage is the default and the largest page of the inventory.
const maxIssuedPage = 1000

// GET /api/v1/certificates/ca/issued[?partnerId=…&status=…&limit=…&cursor=…]:
// a page of the inventory, newest first. When records remain, a Link
// header (RFC 8288) gives the next page's address: the same query with
// the cursor of the next page.
func (h *API) issued(c *call) error {
	auth, err := h.authority()
	if err != nil {
		return err
	}
	limit := maxIssuedPage
	if s := c.param("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxIssuedPage {
			return fail(http.StatusBadRequest, "limit must be a whole number from 1 to %d", maxIssuedPage)
		}
		limit = n
	}
	page, err := auth.Query(c.r.Context(), authority.Query{
		PartnerID: c.param("partnerId"), Status: c.param("status"), Limit: limit, Cursor: c.param("cursor"),
	})
	if errors.Is(err, authority.ErrBadCursor) {
		return fail(http.StatusBadRequest, "cursor is not one this API gave: ask for the first page again")
	}
	if err != nil {
		return err
	}
	if page.Next != "" {
		q := c.r.URL.Query()
		q.Set("cursor", page.Next)
		c.w.Header().Set("Link", "</api/v1/certificates/ca/issued?"+q.Encode()+`>; rel="next"`)
	}
	for i := range page.Records {
		page.Records[i].DER = nil
	}
	writeJSON(c.w, http.StatusOK, page.Records)
	return nil
}

// crlPending answers a revocation that is in force while its CRL is not
// published yet: not an internal detail, but what the operator must know.
type crlPending struct{ err error }

func (e *crlPending) Error() string {
	return "the certificate is revoked, but the new CRL could not be published yet: the next read of the CRL (GET /api/v1/certificates/ca/crl) or POST /api/v1/certificates/ca/crl/regenerate publishes it"
}
func (e *crlPending) Unwrap() error { return e.err }

// POST /api/v1/certificates/ca/revoke: serial, reason.
func (h *API) revoke(c *call) error {
	auth, err := h.authority()
	if err != nil {
		return err
	}
	s, err := c.required("serial")
	if err != nil {
		return err
	}
	serial, err := authority.ParseSerial(s)
	if err != nil {
		return fail(http.StatusBadRequest, "%v", err)
	}
	c.audit.with(zap.String("serial", authority.SerialString(serial)))
	reason, err := authority.ParseReason(c.param("reason"))
	if err != nil {
		return fail(http.StatusBadRequest, "%v", err)
	}
	rec, err := auth.Revoke(c.r.Context(), serial, reason)
	if errors.Is(err, authority.ErrCRLNotPublished) {
		c.audit.log(h.app.audit, "revoked", zap.String("partner", rec.PartnerID), zap.String("revocation_reason", rec.RevocationReason), zap.Bool("crl_published", false))
		return &crlPending{err}
	}
	if err != nil {
		return caError(err)
	}
	c.audit.log(h.app.audit, "revoked", zap.String("partner", rec.PartnerID), zap.String("revocation_reason", rec.RevocationReason))
	rec.DER = nil
	writeJSON(c.w, http.StatusOK, rec)
	return nil
}

// GET /api/v1/certificates/ca/crl
func (h *API) crl(c *call) error {
	auth, err := h.authority()
	if err != nil {
		return err
	}
	der, err := auth.CRL(c.r.Context())
	if err != nil {
		return err
	}
	writeFile(c.w, "application/pkix-crl", "ca.crl", der)
	return nil
}

// POST /api/v1/certificates/ca/crl/regenerate: a new CRL now.
func (h *API) regenerateCRL(c *call) error {
	auth, err := h.authority()
	if err != nil {
		return err
	}
	info, err := auth.RegenerateCRL(c.r.Context())
	if err != nil {
		return err
	}
	c.audit.log(h.app.audit, "published", zap.String("crl_number", info.Number.String()), zap.Int("entries", info.Entries))
	writeJSON(c.w, http.StatusOK, map[string]any{
		"message": "CRL published", "crlNumber": info.Number.String(),
		"thisUpdate": info.ThisUpdate, "nextUpdate": info.NextUpdate, "entries": info.Entries,
	})
	return nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		out = append(out, strings.TrimSpace(f))
	}
	return out
}

// safeFilename keeps a download name to harmless characters.
func safeFilename(s string) string {
	out := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
	if out == "" {
		return "keystore"
	}
	return out
}

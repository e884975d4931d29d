package ca

import (
	"encoding/pem"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// The REST door of the CA's operations (service_ca.go): each handler reads
// the form parameters into the operation's request and writes its answer.

// POST /api/v1/certificates/ca/initialize
func (h *API) initialize(c *call) error {
	auth, created, err := h.app.initializeCA(c.r.Context())
	switch {
	case err != nil:
		return err
	case !created:
		writeJSON(c.w, http.StatusConflict, map[string]string{
			"error":       "the CA already exists",
			"certificate": string(auth.CertificatePEM()),
			"requestId":   c.audit.requestID,
		})
		return nil
	}
	writeJSON(c.w, http.StatusCreated, map[string]string{
		"message":     "CA initialized",
		"certificate": string(auth.CertificatePEM()),
	})
	return nil
}

// GET /api/v1/certificates/ca/certificate
func (h *API) caCertificate(c *call) error {
	b, err := h.app.caCertificatePEM()
	if err != nil {
		return err
	}
	writeFile(c.w, "application/x-pem-file", "ca-cert.pem", b)
	return nil
}

// POST /api/v1/certificates/ca/csr: a key and a CSR for the given subject.
func (h *API) makeCSR(c *call) error {
	made, err := h.app.makeCSR(c.r.Context(), csrRequest{
		CommonName: c.param("commonName"), Organization: c.param("organization"), OrganizationalUnit: c.param("organizationalUnit"),
		Country: c.param("country"), State: c.param("state"), Locality: c.param("locality"), Email: c.param("email"),
		DNSNames: splitList(c.param("dnsNames")), KeyType: c.param("keyType"), Password: c.form.Get("password"),
	})
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, map[string]any{
		"csrPem":        string(made.CSRPEM),
		"privateKeyPem": string(made.KeyPEM),
		"keyEncrypted":  made.KeyEncrypted,
	})
	return nil
}

// POST /api/v1/certificates/ca/sign: csrPem, purpose, validityDays, partnerId.
func (h *API) signCSR(c *call) error {
	cert, err := h.app.signCSR(c.r.Context(), signRequest{
		CSRPEM: c.form.Get("csrPem"), Purpose: c.param("purpose"), ValidityDays: c.param("validityDays"), PartnerID: c.param("partnerId"),
	})
	if err != nil {
		return err
	}
	writeFile(c.w, "application/x-pem-file", "", certPEM(cert.Raw))
	return nil
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// POST /api/v1/certificates/ca/partner/{id}/generate: a complete keystore.
func (h *API) generatePartner(c *call) error {
	d, err := h.app.generatePartner(c.r.Context(), generateRequest{
		PartnerID: c.r.PathValue("id"), CommonName: c.param("commonName"), Organization: c.param("organization"),
		Purpose: c.param("purpose"), ValidityDays: c.param("validityDays"), DNSNames: splitList(c.param("dnsNames")),
		Format: c.param("format"), Password: c.form.Get("password"), EncryptKey: c.param("encryptKey"), KeyType: c.param("keyType"),
	})
	if err != nil {
		return err
	}
	sendDownload(c.w, d)
	return nil
}

// sendDownload answers a keystore or truststore: a password the CA chose
// goes once in X-Keystore-Password, never in a log of the gateway's own.
func sendDownload(w http.ResponseWriter, d download) {
	if d.Password != "" {
		w.Header().Set("X-Keystore-Password", d.Password)
	}
	if d.Unencrypted {
		w.Header().Set("X-Keystore-Warning", "the private key in this file is not encrypted: store it where only its user can read it")
	}
	writeFile(w, d.ContentType, d.Name, d.Body)
}

// POST /api/v1/certificates/ca/psd2/{tppId}/generate: a sandbox QWAC or QSEAL.
func (h *API) generatePSD2(c *call) error {
	d, err := h.app.generatePSD2(c.r.Context(), psd2Request{
		TPPID: c.r.PathValue("tppId"), Type: c.param("type"), OrgID: c.param("orgId"), Roles: c.param("roles"),
		NCAName: c.param("ncaName"), NCAID: c.param("ncaId"), CommonName: c.param("commonName"), Organization: c.param("organization"),
		ValidityDays: c.param("validityDays"), Format: c.param("format"), Password: c.form.Get("password"),
		EncryptKey: c.param("encryptKey"), KeyType: c.param("keyType"),
	})
	if err != nil {
		return err
	}
	sendDownload(c.w, d)
	return nil
}

// POST /api/v1/certificates/ca/verify: certificatePem.
func (h *API) verify(c *call) error {
	if err := h.app.verifyCertificate(c.r.Context(), c.form.Get("certificatePem")); err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, map[string]string{"message": "Certificate is valid and signed by our CA"})
	return nil
}

// GET /api/v1/certificates/ca/truststore?format=p12|jks|pem
func (h *API) truststore(c *call) error {
	d, err := h.app.truststore(c.r.Context(), c.param("format"), c.form.Get("password"))
	if err != nil {
		return err
	}
	sendDownload(c.w, d)
	return nil
}

// maxIssuedPage is the default and the largest page of the inventory.
const maxIssuedPage = 1000

// GET /api/v1/certificates/ca/issued[?partnerId=…&status=…&purpose=…&expiringDays=…&limit=…&cursor=…]:
// a page of the inventory, newest first. When records remain, a Link
// header (RFC 8288) gives the next page's address: the same query with
// the cursor of the next page.
func (h *API) issued(c *call) error {
	f := inventoryFilter{Partner: c.param("partnerId"), Status: c.param("status"), Purpose: c.param("purpose"),
		Limit: maxIssuedPage, Cursor: c.param("cursor")}
	if v := c.param("expiringDays"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 100000 {
			return failField(http.StatusBadRequest, "expiringDays", "expiringDays must be a number of days between 1 and 100000")
		}
		f.ExpiringWithin = time.Duration(n) * 24 * time.Hour
	}
	if v := c.param("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxIssuedPage {
			return failField(http.StatusBadRequest, "limit", "limit must be a whole number from 1 to %d", maxIssuedPage)
		}
		f.Limit = n
	}
	recs, next, err := h.app.inventory(c.r.Context(), f)
	if err != nil {
		return err
	}
	if next != "" {
		// The request's own parameters, then the cursor: …?…&cursor=….
		q := c.r.URL.Query()
		q.Del("cursor")
		query := q.Encode()
		if query != "" {
			query += "&"
		}
		query += "cursor=" + url.QueryEscape(next)
		c.w.Header().Set("Link", "</api/v1/certificates/ca/issued?"+query+`>; rel="next"`)
	}
	writeJSON(c.w, http.StatusOK, recs)
	return nil
}

// POST /api/v1/certificates/ca/revoke: serial, reason.
func (h *API) revoke(c *call) error {
	rec, err := h.app.revoke(c.r.Context(), c.param("serial"), c.param("reason"))
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, rec)
	return nil
}

// GET /api/v1/certificates/ca/crl
func (h *API) crl(c *call) error {
	der, err := h.app.crl(c.r.Context())
	if err != nil {
		return err
	}
	writeFile(c.w, "application/pkix-crl", "ca.crl", der)
	return nil
}

// POST /api/v1/certificates/ca/crl/regenerate: a new CRL now.
func (h *API) regenerateCRL(c *call) error {
	info, err := h.app.regenerateCRL(c.r.Context())
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, map[string]any{
		"message": "CRL published", "crlNumber": info.Number.String(),
		"thisUpdate": info.ThisUpdate, "nextUpdate": info.NextUpdate, "entries": info.Entries,
	})
	return nil
}

// GET /api/v1/audit[?user=…&partner=…&action=…&limit=…]: the latest audit
// lines of this instance, newest first.
func (h *API) auditFeed(c *call) error {
	limit := 200
	if v := c.param("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 2000 {
			return failField(http.StatusBadRequest, "limit", "limit must be a number between 1 and 2000")
		}
		limit = n
	}
	type line struct {
		Time   string         `json:"time"`
		Action string         `json:"action"`
		Fields map[string]any `json:"fields"`
	}
	out := []line{}
	for _, e := range auditFeed(auditFilter{User: c.param("user"), Partner: c.param("partner"), Action: c.param("action"), Limit: limit}) {
		out = append(out, line{Time: e.Time.UTC().Format(time.RFC3339Nano), Action: e.Action, Fields: e.Fields})
	}
	writeJSON(c.w, http.StatusOK, out)
	return nil
}

// GET /api/v1/metrics: Caddy's metrics, bankedge's included, in the
// Prometheus text format, for users with a role.
func (h *API) serveMetrics(c *call) error {
	if h.metrics == nil {
		return fail(http.StatusNotFound, "metrics are not enabled in this configuration")
	}
	h.metrics.ServeHTTP(c.w, c.r)
	return nil
}

package ca

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
)

// The PSD2 blocklist endpoints (role security_admin). Changes are audited
// with the organisation or fingerprint and the reason.

// GET /api/v1/psd2/blocklist: the entries, oldest first.
func (h *API) listBlocklist(c *call) error {
	entries := slices.Clone(h.app.blocklist.snapshot().entries)
	if entries == nil {
		entries = []BlockEntry{}
	}
	slices.SortStableFunc(entries, func(a, b BlockEntry) int { return a.BlockedAt.Compare(b.BlockedAt) })
	writeJSON(c.w, http.StatusOK, entries)
	return nil
}

// POST /api/v1/psd2/blocklist: {"orgId": …} or {"certSha256": …}, and an
// optional "reason"; 201 with the entry.
func (h *API) addToBlocklist(c *call) error {
	org, fp, reason := c.param("orgId"), c.param("certSha256"), c.param("reason")
	e := BlockEntry{BlockedAt: time.Now().UTC().Truncate(time.Second), BlockedBy: c.user}
	switch {
	case org != "" && fp != "":
		return fail(http.StatusBadRequest, "give orgId or certSha256, not both: each entry blocks one organisation or one certificate")
	case org != "":
		id, err := canonicalOrgID(org)
		if err != nil {
			return fail(http.StatusBadRequest, "%v", err)
		}
		e.OrgID = id
		c.audit.with(zap.String("org_id", id))
	case fp != "":
		sum, ok := canonicalFingerprint(fp)
		if !ok {
			return fail(http.StatusBadRequest, "certSha256 must be the SHA-256 of the certificate's DER in hex: 64 hex digits (colons allowed)")
		}
		e.CertSHA256 = sum
		c.audit.with(zap.String("cert_sha256", sum))
	default:
		return fail(http.StatusBadRequest, "orgId or certSha256 is required")
	}
	if len(reason) > maxBlockReason || strings.ContainsFunc(reason, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fail(http.StatusBadRequest, "reason must be at most %d characters on one line", maxBlockReason)
	}
	e.Reason = reason
	if err := h.app.blocklist.add(c.r.Context(), e); err != nil {
		if errors.Is(err, errBlockExists) {
			return fail(http.StatusConflict, "%s is %v", e.key(), errBlockExists)
		}
		return err
	}
	c.audit.log(h.app.audit, "blocked", zap.String("block_reason", reason))
	c.w.Header().Set("Location", "/api/v1/psd2/blocklist/"+e.key())
	writeJSON(c.w, http.StatusCreated, e)
	return nil
}

// DELETE /api/v1/psd2/blocklist/{entry}: entry is an organisation
// identifier or a certificate fingerprint; 204, or 404 when it is not on
// the list.
func (h *API) removeFromBlocklist(c *call) error {
	raw := c.r.PathValue("entry")
	key, ok := canonicalFingerprint(raw)
	if ok {
		c.audit.with(zap.String("cert_sha256", key))
	} else {
		id, err := canonicalOrgID(raw)
		if err != nil {
			return fail(http.StatusNotFound, "%s is %v", raw, errBlockNotFound)
		}
		key = id
		c.audit.with(zap.String("org_id", key))
	}
	removed, err := h.app.blocklist.remove(c.r.Context(), key)
	if errors.Is(err, errBlockNotFound) {
		return fail(http.StatusNotFound, "%s is %v", key, errBlockNotFound)
	}
	if err != nil {
		return err
	}
	c.audit.log(h.app.audit, "unblocked", zap.String("block_reason", removed.Reason), zap.String("blocked_by", removed.BlockedBy))
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

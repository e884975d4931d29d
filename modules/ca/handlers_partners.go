package ca

import (
	"bytes"
	"encoding/json"
	"net/http"

	"go.uber.org/zap"

	"github.com/bankedge/bankedge/modules/ca/registry"
)

// GET /api/v1/config/partners
func (h *API) listPartners(c *call, _ []string) error {
	list, err := h.app.Registry().List(c.r.Context())
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, list, "")
	return nil
}

// readInput decodes a partner document, refusing unknown fields so that a
// typo does not silently leave a setting unchanged.
func readInput(c *call) (registry.Input, error) {
	var in registry.Input
	body, err := readBody(c.r)
	if err != nil {
		return in, err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return in, fail(http.StatusBadRequest, "partner document is not valid JSON: %v", err)
	}
	return in, nil
}

// POST /api/v1/config/partners
func (h *API) createPartner(c *call, _ []string) error {
	in, err := readInput(c)
	if err != nil {
		return err
	}
	id := ""
	if in.PartnerID != nil {
		id = *in.PartnerID
	}
	p, err := h.app.Registry().Create(c.r.Context(), in)
	if err != nil {
		c.audit("partner.create", "refused", zap.String("partner", id), zap.String("reason", err.Error()))
		return partnerError(err)
	}
	c.audit("partner.create", "created", zap.String("partner", p.PartnerID))
	writeJSON(c.w, http.StatusCreated, p, "")
	return nil
}

// GET /api/v1/config/partners/{id}
func (h *API) getPartner(c *call, params []string) error {
	p, err := h.app.Registry().Get(c.r.Context(), params[0])
	if err != nil {
		return partnerError(err)
	}
	writeJSON(c.w, http.StatusOK, p, "")
	return nil
}

// PUT /api/v1/config/partners/{id}: the fields given replace the stored
// ones; absent fields, and the password when absent, stay as they are.
func (h *API) updatePartner(c *call, params []string) error {
	in, err := readInput(c)
	if err != nil {
		return err
	}
	p, err := h.app.Registry().Update(c.r.Context(), params[0], in)
	if err != nil {
		c.audit("partner.update", "refused", zap.String("partner", params[0]), zap.String("reason", err.Error()))
		return partnerError(err)
	}
	c.audit("partner.update", "updated", zap.String("partner", p.PartnerID), zap.Bool("password_changed", in.Password != nil))
	writeJSON(c.w, http.StatusOK, p, "")
	return nil
}

// DELETE /api/v1/config/partners/{id}
func (h *API) deletePartner(c *call, params []string) error {
	if err := h.app.Registry().Delete(c.r.Context(), params[0]); err != nil {
		c.audit("partner.delete", "refused", zap.String("partner", params[0]), zap.String("reason", err.Error()))
		return partnerError(err)
	}
	c.audit("partner.delete", "deleted", zap.String("partner", params[0]))
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

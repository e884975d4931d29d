package ca

import (
	"bytes"
	"encoding/json"
	"net/http"

	"go.uber.org/zap"

	"github.com/bankedge/bankedge/modules/ca/registry"
)

// The REST door of the registry's operations (service_partners.go).

// GET /api/v1/config/partners
func (h *API) listPartners(c *call) error {
	list, err := h.app.listPartners(c.r.Context())
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, list)
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
func (h *API) createPartner(c *call) error {
	in, err := readInput(c)
	if err != nil {
		return err
	}
	p, err := h.app.createPartner(c.r.Context(), in)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusCreated, p)
	return nil
}

// GET /api/v1/config/partners/{id}
func (h *API) getPartner(c *call) error {
	p, err := h.app.partner(c.r.Context(), c.r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, p)
	return nil
}

// PUT /api/v1/config/partners/{id}: the fields given replace the stored
// ones; absent fields, and the password when absent, stay as they are.
func (h *API) updatePartner(c *call) error {
	c.audit.with(zap.String("partner", c.r.PathValue("id")))
	in, err := readInput(c)
	if err != nil {
		return err
	}
	p, err := h.app.updatePartner(c.r.Context(), c.r.PathValue("id"), in)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, p)
	return nil
}

// DELETE /api/v1/config/partners/{id}
func (h *API) deletePartner(c *call) error {
	if err := h.app.deletePartner(c.r.Context(), c.r.PathValue("id")); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

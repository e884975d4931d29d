package psd2

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// Code is a Berlin Group NextGenPSD2 message code.
type Code string

// The message codes the PSD2 handlers answer with.
const (
	CertificateMissing Code = "CERTIFICATE_MISSING"
	CertificateInvalid Code = "CERTIFICATE_INVALID"
	CertificateExpired Code = "CERTIFICATE_EXPIRED"
	// CertificateRevoked is the Implementation Guidelines' spelling; some
	// Berlin Group OpenAPI files spell it CERTIFICATE_REVOKE.
	CertificateRevoked Code = "CERTIFICATE_REVOKED"
	// CertificateBlocked: the ASPSP blocked the certificate or its TPP.
	CertificateBlocked Code = "CERTIFICATE_BLOCKED"
	SignatureMissing   Code = "SIGNATURE_MISSING"
	SignatureInvalid   Code = "SIGNATURE_INVALID"
	RoleInvalid        Code = "ROLE_INVALID"
	FormatError        Code = "FORMAT_ERROR"
	TimestampInvalid   Code = "TIMESTAMP_INVALID"
	ResourceUnknown    Code = "RESOURCE_UNKNOWN"
	AccessExceeded     Code = "ACCESS_EXCEEDED"
	ServiceUnavailable Code = "SERVICE_UNAVAILABLE"
)

// status is the HTTP status the Berlin Group assigns to a code.
func (c Code) status() int {
	switch c {
	case FormatError, TimestampInvalid:
		return http.StatusBadRequest
	case ResourceUnknown:
		return http.StatusNotFound
	case AccessExceeded:
		return http.StatusTooManyRequests
	case ServiceUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusUnauthorized
}

// rejection is a refused request: a Berlin Group code, an optional path
// naming the offending header, and a text that says what was wrong. The text
// is sent to the client and logged, so it must never carry a secret or an
// internal detail.
type rejection struct {
	Status int
	Code   Code
	Path   string
	Text   string
	// RetryAfter, when set, is sent as Retry-After (whole seconds, at
	// least one).
	RetryAfter time.Duration
}

func (r *rejection) Error() string { return string(r.Code) + ": " + r.Text }

func reject(code Code, text string) *rejection {
	return &rejection{Status: code.status(), Code: code, Text: text}
}

func rejectPath(code Code, path, text string) *rejection {
	return &rejection{Status: code.status(), Code: code, Path: path, Text: text}
}

type tppMessage struct {
	Category string `json:"category"`
	Code     Code   `json:"code"`
	Path     string `json:"path,omitempty"`
	Text     string `json:"text"`
}

// maxTextLen is the Berlin Group limit on tppMessage text.
const maxTextLen = 500

// write sends the rejection as {"tppMessages":[…]} with its status.
func (r *rejection) write(w http.ResponseWriter) {
	text := r.Text
	if len(text) > maxTextLen {
		text = text[:maxTextLen]
	}
	body, err := json.Marshal(struct {
		TPPMessages []tppMessage `json:"tppMessages"`
	}{[]tppMessage{{Category: "ERROR", Code: r.Code, Path: r.Path, Text: text}}})
	if err != nil {
		// Marshalling strings cannot fail; keep the response well-formed anyway.
		body = []byte(`{"tppMessages":[{"category":"ERROR","code":"` + string(r.Code) + `","text":"request refused"}]}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	if r.RetryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(int64((r.RetryAfter+time.Second-1)/time.Second), 10))
	}
	w.WriteHeader(r.Status)
	_, _ = w.Write(body)
}

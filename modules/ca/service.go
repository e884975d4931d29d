package ca

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/bankedge/bankedge/modules/ca/authority"
	"github.com/bankedge/bankedge/modules/ca/keystore"
	"github.com/bankedge/bankedge/modules/ca/registry"
)

// The CA and registry operations (service_*.go) are the one implementation
// behind both doors of administration: the admin REST API (api.go,
// handlers_*.go) and the admin console (console_backend.go). A door reads
// its input (form fields, JSON, console forms) into the operation's
// request, checks the caller's roles, puts the request's audit trail in
// the context (withAuditTrail) and presents what the operation returns. The
// operation does everything else, the same way whichever door it came
// through: it checks every parameter and policy (password rules, name
// policy, partner existence), writes the audit lines and records the
// metrics. So no check can be reached through one door and missed through
// the other.
//
// Refusals are *apiError: a status (what the REST API answers), the
// parameter at fault (where the console shows the message) and a message
// for the user. Any other error is internal: logged, never shown.

// trailOf returns the audit trail of ctx; an operation called without one
// (by a program) audits under its own action.
func trailOf(ctx context.Context, action string) *auditTrail {
	if t := auditTrailFrom(ctx); t != nil {
		return t
	}
	return newAuditTrail(action, "", "", "")
}

// settle writes the audit line of a refused or failed operation, unless the
// operation wrote one: the refusal's status and message, or "failed" with
// the request id for an internal error, whose detail goes to the log only.
// It returns the refusal to answer.
func (a *App) settle(t *auditTrail, path string, err error) *apiError {
	var ae *apiError
	if !errors.As(err, &ae) {
		a.logger.Error("admin request failed", zap.String("request_id", t.requestID),
			zap.String("action", t.action), zap.String("path", path), zap.String("via", t.via), zap.Error(err))
		ae = &apiError{status: http.StatusInternalServerError, msg: "internal error: the gateway's log has the details under this requestId", cause: err}
		var crl *crlPending
		if errors.As(err, &crl) {
			ae.msg = crl.Error()
		}
	}
	if !t.written() {
		outcome := "refused"
		if ae.status >= 500 {
			outcome = "failed"
		}
		t.log(a.audit, outcome, zap.Int("status", ae.status), zap.String("reason", ae.msg))
	}
	return ae
}

// authorityOrConflict returns the CA, or a 409 refusal while it waits for
// its manual initialization.
func (a *App) authorityOrConflict() (*authority.Authority, error) {
	auth, err := a.Authority()
	if err != nil {
		return nil, &apiError{status: http.StatusConflict, msg: fmt.Sprintf("%v: POST /api/v1/certificates/ca/initialize first", err), cause: ErrNotInitialized}
	}
	return auth, nil
}

// required refuses an empty parameter.
func required(name, v string) error {
	if strings.TrimSpace(v) == "" {
		return failField(http.StatusBadRequest, name, "parameter %s is required", name)
	}
	return nil
}

// parseValidity reads validityDays: a positive number of days, 365 when
// empty. Bounds beyond that are the CA's (max_validity_days).
func parseValidity(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 365 * 24 * time.Hour, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, failField(http.StatusBadRequest, "validityDays", "validityDays must be a positive number of days, got %.20q", v)
	}
	// Beyond this the product overflows and wraps, possibly to a short
	// positive validity that the CA would accept.
	if n > int(math.MaxInt64/int64(24*time.Hour)) {
		return 0, failField(http.StatusBadRequest, "validityDays", "validityDays of %d days exceeds the maximum validity", n)
	}
	return time.Duration(n) * 24 * time.Hour, nil
}

// parsePEM reads a PEM parameter. curl -d sends form data unencoded, so the
// '+' of base64 arrives as a space after form decoding, and some clients
// put the PEM on one line; base64 has no spaces, so the body between the
// armour lines is read with spaces taken as '+' and line breaks dropped.
func parsePEM(name, v, blockType string) (*pem.Block, error) {
	if err := required(name, v); err != nil {
		return nil, err
	}
	for _, m := range pemBlockRE.FindAllStringSubmatch(v, -1) {
		if m[1] != m[3] || m[1] != blockType && !(blockType == "CERTIFICATE REQUEST" && m[1] == "NEW CERTIFICATE REQUEST") {
			continue
		}
		body := strings.Map(func(r rune) rune {
			switch r {
			case ' ':
				return '+'
			case '\r', '\n', '\t':
				return -1
			}
			return r
		}, m[2])
		der, err := base64.StdEncoding.DecodeString(body)
		if err != nil {
			return nil, failField(http.StatusBadRequest, name, "%s: the %s block is not valid base64", name, blockType)
		}
		return &pem.Block{Type: blockType, Bytes: der}, nil
	}
	return nil, failField(http.StatusBadRequest, name, "%s is not PEM with a %s block", name, blockType)
}

var pemBlockRE = regexp.MustCompile(`-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END ([A-Z0-9 ]+)-----`)

// parseFormat reads a keystore format (default p12).
func parseFormat(v string) (keystore.Format, error) {
	f, err := keystore.ParseFormat(strings.TrimSpace(v))
	if err != nil {
		return "", failField(http.StatusBadRequest, "format", "%v", err)
	}
	return f, nil
}

// keystoreSecret is the password of a keystore being made.
type keystoreSecret struct {
	password string
	// chosen is set when the CA chose the password: it is shown once.
	chosen bool
	// unencrypted is set for a PEM key left unencrypted on request.
	unencrypted bool
}

// keystorePassword checks the password a caller chose against the keystore
// rules, or chooses a random one. With encryptKey=false (PEM only) the key
// is left unencrypted.
func keystorePassword(t *auditTrail, f keystore.Format, password, encryptKey string) (keystoreSecret, error) {
	encrypt := true
	if v := strings.TrimSpace(encryptKey); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return keystoreSecret{}, failField(http.StatusBadRequest, "encryptKey", "encryptKey must be true or false")
		}
		encrypt = b
	}
	if !encrypt {
		switch {
		case f != keystore.FormatPEM:
			return keystoreSecret{}, failField(http.StatusBadRequest, "encryptKey", "encryptKey=false is only for format=pem: PKCS#12 and JKS keystores always have a password")
		case password != "":
			return keystoreSecret{}, failField(http.StatusBadRequest, "password", "encryptKey=false and a password contradict each other")
		}
		t.with(zap.Bool("key_encrypted", false))
		return keystoreSecret{unencrypted: true}, nil
	}
	if password != "" {
		if err := keystore.CheckPassword(password); err != nil {
			return keystoreSecret{}, failField(http.StatusBadRequest, "password", "password: %v", err)
		}
		return keystoreSecret{password: password}, nil
	}
	pw, err := keystore.RandomPassword()
	if err != nil {
		return keystoreSecret{}, err
	}
	return keystoreSecret{password: pw, chosen: true}, nil
}

// download is a file an operation made: a keystore, a truststore.
type download struct {
	Name, ContentType string
	Body              []byte
	// Password is the password the CA chose for the file (shown once),
	// empty when the caller chose it or there is none.
	Password string
	// Unencrypted is set for a private key left unencrypted on request.
	Unencrypted bool
}

// partnerError maps registry errors to refusals.
func partnerError(err error) error {
	var ve *registry.ValidationError
	switch {
	case errors.As(err, &ve):
		return failField(http.StatusBadRequest, ve.Field, "%v", ve)
	case errors.Is(err, registry.ErrNotFound):
		return &apiError{status: http.StatusNotFound, msg: registry.ErrNotFound.Error(), cause: err}
	case errors.Is(err, registry.ErrExists):
		return &apiError{status: http.StatusConflict, field: "partnerId", msg: registry.ErrExists.Error(), cause: err}
	}
	return err
}

// caError maps authority errors to refusals. Policy refusals are the
// client's and say why; the sentinel texts carry nothing internal.
func caError(err error) error {
	switch {
	case errors.Is(err, authority.ErrPolicy):
		return &apiError{status: http.StatusBadRequest, msg: err.Error(), cause: err}
	case errors.Is(err, authority.ErrNotFound):
		return &apiError{status: http.StatusNotFound, field: "serial", msg: authority.ErrNotFound.Error(), cause: err}
	case errors.Is(err, authority.ErrRevoked):
		return &apiError{status: http.StatusConflict, msg: authority.ErrRevoked.Error(), cause: err}
	case errors.Is(err, authority.ErrCAExists):
		return &apiError{status: http.StatusConflict, msg: authority.ErrCAExists.Error(), cause: err}
	}
	return err
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' }) {
		out = append(out, strings.TrimSpace(f))
	}
	return out
}

package ca

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/bankedge/bankedge/internal/caddyfileargs"
	"github.com/bankedge/bankedge/modules/ca/authority"
	"github.com/bankedge/bankedge/modules/ca/keystore"
	"github.com/bankedge/bankedge/modules/ca/registry"
)

func init() {
	caddy.RegisterModule(&API{})
	httpcaddyfile.RegisterHandlerDirective("bankedge_api", parseAPI)
	// After basic_auth, with the other terminal handlers.
	httpcaddyfile.RegisterDirectiveOrder("bankedge_api", httpcaddyfile.Before, "respond")
}

// API is the admin REST API of the bankedge CA and partner registry, under
// /api/v1/certificates/ca and /api/v1/config/partners, with PeSIT Wizard's
// paths, methods and form parameters. It is meant for an internal-only site
// protected by Caddy's basic_auth:
//
//	http://127.0.0.1:8080 {
//		bind 127.0.0.1
//		basic_auth {
//			admin {env.BANKEDGE_ADMIN_PASSWORD_HASH}
//		}
//		bankedge_api
//	}
//
// Every error is JSON {"error":"…"} with a 4xx status, and every
// administrative action is written to the bankedge.audit logger with the
// authenticated user and the outcome, never with a secret.
type API struct {
	// MaxBodySize bounds request bodies, in bytes. Default: 1 MiB.
	MaxBodySize int64 `json:"max_body_size,omitempty"`

	app *App
}

// CaddyModule returns the Caddy module information.
func (*API) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.bankedge_api",
		New: func() caddy.Module { return new(API) },
	}
}

// Provision finds the bankedge app.
func (h *API) Provision(ctx caddy.Context) error {
	app, err := appFrom(ctx)
	if err != nil {
		return err
	}
	h.app = app
	if h.MaxBodySize == 0 {
		h.MaxBodySize = 1 << 20
	}
	return nil
}

// Validate checks the configuration.
func (h *API) Validate() error {
	if h.MaxBodySize < 0 {
		return errors.New("max_body_size must be positive")
	}
	return nil
}

// apiError is an answer {"error": …} with a status.
type apiError struct {
	status int
	msg    string
	reason string
}

func (e *apiError) Error() string { return e.msg }

func fail(status int, format string, args ...any) *apiError {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

// call is one API request being served.
type call struct {
	w    http.ResponseWriter
	r    *http.Request
	user string
	form url.Values
	log  *zap.Logger
}

// route is a handler of one path pattern and method.
type route struct {
	method string
	fn     func(h *API, c *call, params []string) error
}

// routes maps path patterns, where "*" matches one segment, to handlers.
var routes = map[string][]route{
	"certificates/ca/initialize":         {{http.MethodPost, (*API).initialize}},
	"certificates/ca/certificate":        {{http.MethodGet, (*API).caCertificate}},
	"certificates/ca/csr":                {{http.MethodPost, (*API).makeCSR}},
	"certificates/ca/sign":               {{http.MethodPost, (*API).signCSR}},
	"certificates/ca/partner/*/generate": {{http.MethodPost, (*API).generatePartner}},
	"certificates/ca/psd2/*/generate":    {{http.MethodPost, (*API).generatePSD2}},
	"certificates/ca/verify":             {{http.MethodPost, (*API).verify}},
	"certificates/ca/truststore":         {{http.MethodGet, (*API).truststore}},
	"certificates/ca/issued":             {{http.MethodGet, (*API).issued}},
	"certificates/ca/revoke":             {{http.MethodPost, (*API).revoke}},
	"certificates/ca/crl":                {{http.MethodGet, (*API).crl}},
	"config/partners":                    {{http.MethodGet, (*API).listPartners}, {http.MethodPost, (*API).createPartner}},
	"config/partners/*": {
		{http.MethodGet, (*API).getPartner}, {http.MethodPut, (*API).updatePartner}, {http.MethodDelete, (*API).deletePartner},
	},
}

// match finds the routes for a path below /api/v1/ and the values of its
// "*" segments.
func match(p string) ([]route, []string) {
	rest, ok := strings.CutPrefix(p, "/api/v1/")
	if !ok {
		return nil, nil
	}
	segs := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	for pattern, rs := range routes {
		ps := strings.Split(pattern, "/")
		if len(ps) != len(segs) {
			continue
		}
		var params []string
		matched := true
		for i := range ps {
			if ps[i] == "*" {
				if segs[i] == "" {
					matched = false
					break
				}
				params = append(params, segs[i])
			} else if ps[i] != segs[i] {
				matched = false
				break
			}
		}
		if matched {
			return rs, params
		}
	}
	return nil, nil
}

// ServeHTTP serves the API. Paths outside it get a JSON 404.
func (h *API) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	c := &call{w: w, r: r, log: h.app.audit}
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		c.user = repl.ReplaceAll("{http.auth.user.id}", "")
	}
	err := h.dispatch(c)
	var ae *apiError
	if errors.As(err, &ae) {
		writeJSON(w, ae.status, map[string]string{"error": ae.msg}, ae.reason)
		return nil
	}
	if err != nil {
		// Storage failures and the like: not the client's fault, but still
		// a JSON answer rather than Caddy's error page.
		caddy.Log().Named("bankedge.api").Error("request failed", zap.String("path", r.URL.Path), zap.Error(err))
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error: " + err.Error()}, "")
	}
	return nil
}

func (h *API) dispatch(c *call) error {
	rs, params := match(c.r.URL.Path)
	if rs == nil {
		return fail(http.StatusNotFound, "no API endpoint at %s", c.r.URL.Path)
	}
	var allowed []string
	for _, rt := range rs {
		if rt.method == c.r.Method {
			if err := h.parseForm(c); err != nil {
				return err
			}
			return rt.fn(h, c, params)
		}
		allowed = append(allowed, rt.method)
	}
	c.w.Header().Set("Allow", strings.Join(allowed, ", "))
	return fail(http.StatusMethodNotAllowed, "%s is not allowed on %s (allowed: %s)", c.r.Method, c.r.URL.Path, strings.Join(allowed, ", "))
}

// parseForm reads the form parameters of the query, and of a form or JSON
// body, so that the seed's curl -d examples and JSON clients both work.
func (h *API) parseForm(c *call) error {
	r := c.r
	r.Body = http.MaxBytesReader(c.w, r.Body, h.MaxBodySize)
	c.form = r.URL.Query()
	if r.Method == http.MethodGet || r.Method == http.MethodDelete {
		return nil
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if strings.HasPrefix(c.r.URL.Path, "/api/v1/config/partners") {
		// Partners are JSON documents; their handlers read the body.
		return nil
	}
	switch ct {
	case "application/json":
		body, err := readBody(r)
		if err != nil {
			return err
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			return fail(http.StatusBadRequest, "request body is not a JSON object: %v", err)
		}
		for k, v := range m {
			switch v := v.(type) {
			case string:
				c.form.Set(k, v)
			case float64, bool:
				c.form.Set(k, fmt.Sprint(v))
			case nil:
			default:
				return fail(http.StatusBadRequest, "parameter %q must be a string, number or boolean", k)
			}
		}
	case "multipart/form-data":
		if err := r.ParseMultipartForm(h.MaxBodySize); err != nil {
			return bodyError(err)
		}
		for k, vs := range r.MultipartForm.Value {
			c.form[k] = vs
		}
	default:
		// Form encoding, which curl -d sends, is also what arrives without
		// a content type.
		body, err := readBody(r)
		if err != nil {
			return err
		}
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			return fail(http.StatusBadRequest, "request body is not form-encoded: %v", err)
		}
		for k, vs := range vals {
			c.form[k] = vs
		}
	}
	return nil
}

func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, bodyError(err)
	}
	return b, nil
}

func bodyError(err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return fail(http.StatusRequestEntityTooLarge, "request body is larger than %d bytes", tooBig.Limit)
	}
	return fail(http.StatusBadRequest, "reading the request body: %v", err)
}

func writeJSON(w http.ResponseWriter, status int, v any, reason string) {
	if reason != "" {
		if m, ok := v.(map[string]string); ok {
			m["reason"] = reason
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encoding the answer failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeFile(w http.ResponseWriter, contentType, filename string, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-store")
	if filename != "" {
		w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": filename}))
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// audit writes one line per administrative action to bankedge.audit.
func (c *call) audit(action, outcome string, fields ...zap.Field) {
	user := c.user
	if user == "" {
		user = "anonymous"
	}
	remote, _, _ := net.SplitHostPort(c.r.RemoteAddr)
	fields = append([]zap.Field{zap.String("user", user), zap.String("remote_ip", remote), zap.String("outcome", outcome)}, fields...)
	c.log.Info(action, fields...)
}

// certFields describes an issued certificate for the audit log; the user
// is added by call.audit.
func certFields(cert *x509.Certificate, purpose, partner string) []zap.Field {
	return []zap.Field{
		zap.String("serial", authority.SerialString(cert.SerialNumber)),
		zap.String("subject", cert.Subject.String()), zap.String("purpose", purpose), zap.String("partner", partner),
		zap.Time("not_after", cert.NotAfter),
	}
}

// authority returns the CA or a 409 answer while it is not initialized.
func (h *API) authority() (*authority.Authority, error) {
	auth, err := h.app.Authority()
	if err != nil {
		return nil, fail(http.StatusConflict, "%v: POST /api/v1/certificates/ca/initialize first", err)
	}
	return auth, nil
}

// param returns a trimmed form parameter.
func (c *call) param(name string) string { return strings.TrimSpace(c.form.Get(name)) }

// required returns a parameter that must be present.
func (c *call) required(name string) (string, error) {
	v := c.param(name)
	if v == "" {
		return "", fail(http.StatusBadRequest, "parameter %s is required", name)
	}
	return v, nil
}

// validity reads validityDays (default 365).
func (c *call) validity() (time.Duration, error) {
	v := c.param("validityDays")
	if v == "" {
		return 365 * 24 * time.Hour, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fail(http.StatusBadRequest, "validityDays must be a positive number of days, got %q", v)
	}
	// Beyond this the product overflows and wraps, possibly to a short
	// positive validity that the CA would accept.
	if n > int(math.MaxInt64/int64(24*time.Hour)) {
		return 0, fail(http.StatusBadRequest, "validityDays of %d days exceeds the maximum validity", n)
	}
	return time.Duration(n) * 24 * time.Hour, nil
}

// pemParam reads a PEM parameter. curl -d sends form data unencoded, so the
// '+' of base64 arrives as a space after form decoding, and some clients
// put the PEM on one line; base64 has no spaces, so the body between the
// armour lines is read with spaces taken as '+' and line breaks dropped.
func (c *call) pemParam(name, blockType string) (*pem.Block, error) {
	v, err := c.required(name)
	if err != nil {
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
			return nil, fail(http.StatusBadRequest, "%s: the %s block is not valid base64", name, blockType)
		}
		return &pem.Block{Type: blockType, Bytes: der}, nil
	}
	return nil, fail(http.StatusBadRequest, "%s is not PEM with a %s block", name, blockType)
}

var pemBlockRE = regexp.MustCompile(`-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END ([A-Z0-9 ]+)-----`)

// keystoreFormat reads format (default p12).
func (c *call) keystoreFormat() (keystore.Format, error) {
	f, err := keystore.ParseFormat(c.param("format"))
	if err != nil {
		return "", fail(http.StatusBadRequest, "%v", err)
	}
	return f, nil
}

// keystorePassword returns the password parameter, or a random one that is
// returned once in X-Keystore-Password.
func (c *call) keystorePassword(f keystore.Format) (string, error) {
	if pw := c.form.Get("password"); pw != "" {
		return pw, nil
	}
	pw, err := keystore.RandomPassword()
	if err != nil {
		return "", err
	}
	c.w.Header().Set("X-Keystore-Password", pw)
	return pw, nil
}

// subjectFromForm builds a subject from commonName, organization, … .
func (c *call) subjectFromForm() (pkix.Name, error) {
	cn, err := c.required("commonName")
	if err != nil {
		return pkix.Name{}, err
	}
	n := pkix.Name{CommonName: cn}
	add := func(dst *[]string, name string) {
		if v := c.param(name); v != "" {
			*dst = []string{v}
		}
	}
	add(&n.Organization, "organization")
	add(&n.OrganizationalUnit, "organizationalUnit")
	add(&n.Country, "country")
	add(&n.Province, "state")
	add(&n.Locality, "locality")
	return n, nil
}

// partnerError maps registry errors to answers.
func partnerError(err error) error {
	var ve *registry.ValidationError
	switch {
	case errors.As(err, &ve):
		return fail(http.StatusBadRequest, "%v", ve)
	case errors.Is(err, registry.ErrNotFound):
		return fail(http.StatusNotFound, "%v", err)
	case errors.Is(err, registry.ErrExists):
		return fail(http.StatusConflict, "%v", err)
	}
	return err
}

// caError maps authority errors to answers.
func caError(err error) error {
	switch {
	case errors.Is(err, authority.ErrPolicy):
		return fail(http.StatusBadRequest, "%v", err)
	case errors.Is(err, authority.ErrNotFound):
		return fail(http.StatusNotFound, "%v", err)
	case errors.Is(err, authority.ErrRevoked), errors.Is(err, authority.ErrCAExists):
		return fail(http.StatusConflict, "%v", err)
	}
	return err
}

// UnmarshalCaddyfile parses:
//
//	bankedge_api [<matcher>] {
//		max_body_size <bytes>
//	}
func (h *API) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "max_body_size":
			var n int
			if err := caddyfileargs.Int(d, &n); err != nil {
				return err
			}
			h.MaxBodySize = int64(n)
		default:
			return d.Errf("unrecognized bankedge_api option %q", d.Val())
		}
	}
	return nil
}

func parseAPI(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(API)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*API)(nil)
	_ caddy.Validator             = (*API)(nil)
	_ caddyhttp.MiddlewareHandler = (*API)(nil)
	_ caddyfile.Unmarshaler       = (*API)(nil)
)

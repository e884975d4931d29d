package ca

import (
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
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/bankedge/bankedge/internal/caddyfileargs"
	"github.com/bankedge/bankedge/modules/ca/authority"
	"github.com/bankedge/bankedge/modules/ca/keystore"
	"github.com/bankedge/bankedge/modules/ca/registry"
)

func init() {
	caddy.RegisterModule(&API{})
	httpcaddyfile.RegisterDirective("bankedge_api", parseAPIDirective)
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

	app    *App
	mux    *http.ServeMux
	logger *zap.Logger
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
	h.logger = ctx.Logger()
	if h.MaxBodySize == 0 {
		h.MaxBodySize = 1 << 20
	}
	h.mux = http.NewServeMux()
	for _, rt := range routes {
		h.mux.HandleFunc(rt.pattern, func(w http.ResponseWriter, r *http.Request) { h.serve(w, r, rt) })
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

// apiError is an answer {"error": …} with a status. Its message is for
// the client: it never carries an internal detail (a storage path, a
// library error); those are logged under the request id instead.
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
	w     http.ResponseWriter
	r     *http.Request
	form  url.Values
	user  string
	audit *auditTrail
}

// route is an endpoint: a ServeMux pattern (method and path), the action
// its audit lines are named after, and its handler.
type route struct {
	pattern string
	action  string
	serve   func(h *API, c *call) error
}

// routes are the endpoints, with PeSIT Wizard's paths.
var routes = []route{
	{"POST /api/v1/certificates/ca/initialize", "ca.initialize", (*API).initialize},
	{"GET /api/v1/certificates/ca/certificate", "ca.certificate", (*API).caCertificate},
	{"POST /api/v1/certificates/ca/csr", "ca.csr", (*API).makeCSR},
	{"POST /api/v1/certificates/ca/sign", "ca.sign", (*API).signCSR},
	{"POST /api/v1/certificates/ca/partner/{id}/generate", "ca.generate", (*API).generatePartner},
	{"POST /api/v1/certificates/ca/psd2/{tppId}/generate", "ca.psd2.generate", (*API).generatePSD2},
	{"POST /api/v1/certificates/ca/verify", "ca.verify", (*API).verify},
	{"GET /api/v1/certificates/ca/truststore", "ca.truststore", (*API).truststore},
	{"GET /api/v1/certificates/ca/issued", "ca.issued", (*API).issued},
	{"POST /api/v1/certificates/ca/revoke", "ca.revoke", (*API).revoke},
	{"GET /api/v1/certificates/ca/crl", "ca.crl", (*API).crl},
	{"POST /api/v1/certificates/ca/crl/regenerate", "ca.crl.regenerate", (*API).regenerateCRL},
	{"GET /api/v1/config/partners", "partner.list", (*API).listPartners},
	{"POST /api/v1/config/partners", "partner.create", (*API).createPartner},
	{"GET /api/v1/config/partners/{id}", "partner.get", (*API).getPartner},
	{"PUT /api/v1/config/partners/{id}", "partner.update", (*API).updatePartner},
	{"DELETE /api/v1/config/partners/{id}", "partner.delete", (*API).deletePartner},
	// PSD2 blocklist (issue 10; role security_admin): handlers_blocklist.go.
	{"GET /api/v1/psd2/blocklist", "psd2.blocklist.list", (*API).listBlocklist},
	{"POST /api/v1/psd2/blocklist", "psd2.blocklist.add", (*API).addToBlocklist},
	{"DELETE /api/v1/psd2/blocklist/{entry}", "psd2.blocklist.remove", (*API).removeFromBlocklist},
}

// ServeHTTP serves the API. Paths outside it get a JSON 404, methods an
// endpoint does not take a JSON 405 with Allow. In an error route
// (handle_errors, or the one the bankedge_api directive adds), it answers
// the error being handled, such as basic_auth's 401, as JSON.
func (h *API) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if err, ok := r.Context().Value(caddyhttp.ErrorCtxKey).(error); ok {
		h.serveError(w, r, err)
		return nil
	}
	// One trailing slash is tolerated, as before ServeMux.
	if p := r.URL.Path; len(p) > 1 && strings.HasSuffix(p, "/") && !strings.HasSuffix(p, "//") {
		r2 := *r
		u := *r.URL
		u.Path, u.RawPath = strings.TrimSuffix(p, "/"), strings.TrimSuffix(u.RawPath, "/")
		r2.URL = &u
		r = &r2
	}
	// An encoded slash would put a slash inside a {id}: no endpoint has one.
	if strings.Contains(strings.ToLower(r.URL.RawPath), "%2f") {
		h.finish(h.newCall(w, r, "api.request"), fail(http.StatusNotFound, "no API endpoint at %s", r.URL.Path))
		return nil
	}
	handler, pattern := h.mux.Handler(r)
	if pattern != "" {
		// ServeHTTP, not handler: it sets the request's path values.
		h.mux.ServeHTTP(w, r)
		return nil
	}
	// No endpoint: ServeMux would answer 404, 405 or a redirect to a
	// cleaned path, in plain text. The same decisions in JSON.
	probe := &statusProbe{header: http.Header{}}
	handler.ServeHTTP(probe, r)
	c := h.newCall(w, r, "api.request")
	if probe.status == http.StatusMethodNotAllowed {
		allow := probe.header.Get("Allow")
		w.Header().Set("Allow", allow)
		h.finish(c, fail(http.StatusMethodNotAllowed, "%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allow))
		return nil
	}
	h.finish(c, fail(http.StatusNotFound, "no API endpoint at %s", r.URL.Path))
	return nil
}

// statusProbe records what ServeMux's own answer would be.
type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header { return p.header }
func (p *statusProbe) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.status = http.StatusOK
	}
	return len(b), nil
}
func (p *statusProbe) WriteHeader(status int) { p.status = status }

// serveError answers an error of an earlier handler of the site: 4xx with
// the status text (basic_auth's 401 keeps its WWW-Authenticate header),
// 5xx with a generic message, both with the request id, and audited.
func (h *API) serveError(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	var he caddyhttp.HandlerError
	if errors.As(err, &he) && he.StatusCode >= 400 && he.StatusCode < 600 {
		status = he.StatusCode
	}
	action := "api.error"
	msg := http.StatusText(status)
	switch status {
	case http.StatusUnauthorized:
		action, msg = "api.authenticate", "authentication required: send the admin API credentials (HTTP basic authentication)"
	case http.StatusForbidden:
		action = "api.authenticate"
	}
	c := h.newCall(w, r, action)
	if status >= 500 {
		h.finish(c, err)
		return
	}
	h.finish(c, fail(status, "%s", msg))
}

func (h *API) newCall(w http.ResponseWriter, r *http.Request, action string) *call {
	c := &call{w: w, r: r}
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl != nil {
		c.user = repl.ReplaceAll("{http.auth.user.id}", "")
	}
	c.audit = newAuditTrail(action, c.user, remoteIP(r), requestID(repl))
	c.r = r.WithContext(withAuditTrail(r.Context(), c.audit))
	return c
}

// serve runs an endpoint's handler and answers its error.
func (h *API) serve(w http.ResponseWriter, r *http.Request, rt route) {
	c := h.newCall(w, r, rt.action)
	err := h.parseForm(c)
	if err == nil {
		err = rt.serve(h, c)
	}
	h.finish(c, err)
}

// finish answers err, if any, and audits it unless a line was written for
// the request already. Errors that are not the client's are logged with
// the request id and answered with a generic message.
func (h *API) finish(c *call, err error) {
	if err == nil {
		return
	}
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = h.unavailableError(c, err)
	}
	if ae == nil {
		h.logger.Error("admin API request failed", zap.String("request_id", c.audit.requestID),
			zap.String("action", c.audit.action), zap.String("path", c.r.URL.Path), zap.Error(err))
		ae = &apiError{status: http.StatusInternalServerError, msg: "internal error: the gateway's log has the details under this requestId"}
		var crl *crlPending
		if errors.As(err, &crl) {
			ae.msg = crl.Error()
		}
	}
	if !c.audit.written() {
		outcome := "refused"
		if ae.status >= 500 {
			outcome = "failed"
		}
		c.audit.log(h.app.audit, outcome, zap.Int("status", ae.status), zap.String("reason", ae.msg))
	}
	body := map[string]string{"error": ae.msg, "requestId": c.audit.requestID}
	if ae.reason != "" {
		body["reason"] = ae.reason
	}
	writeJSON(c.w, ae.status, body)
}

// parseForm reads the form parameters of the query, and of a form or JSON
// body, so that the seed's curl -d examples and JSON clients both work.
func (h *API) parseForm(c *call) error {
	r := c.r
	r.Body = http.MaxBytesReader(c.w, r.Body, h.MaxBodySize)
	c.form = r.URL.Query()
	if r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodDelete {
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
	return fail(http.StatusBadRequest, "the request body could not be read")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
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
		return 0, fail(http.StatusBadRequest, "validityDays must be a positive number of days, got %.20q", v)
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

// keystorePassword returns the password parameter, checked for strength,
// or a random one that is returned once in X-Keystore-Password. With
// encryptKey=false (PEM only) the key is left unencrypted: "" is returned.
func (c *call) keystorePassword(f keystore.Format) (string, error) {
	encrypt := true
	if v := c.param("encryptKey"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return "", fail(http.StatusBadRequest, "encryptKey must be true or false")
		}
		encrypt = b
	}
	pw := c.form.Get("password")
	if !encrypt {
		switch {
		case f != keystore.FormatPEM:
			return "", fail(http.StatusBadRequest, "encryptKey=false is only for format=pem: PKCS#12 and JKS keystores always have a password")
		case pw != "":
			return "", fail(http.StatusBadRequest, "encryptKey=false and a password contradict each other")
		}
		c.w.Header().Set("X-Keystore-Warning", "the private key in this file is not encrypted: store it where only its user can read it")
		c.audit.with(zap.Bool("key_encrypted", false))
		return "", nil
	}
	if pw != "" {
		if err := keystore.CheckPassword(pw); err != nil {
			return "", fail(http.StatusBadRequest, "password: %v", err)
		}
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
		return fail(http.StatusNotFound, "%v", registry.ErrNotFound)
	case errors.Is(err, registry.ErrExists):
		return fail(http.StatusConflict, "%v", registry.ErrExists)
	}
	return err
}

// caError maps authority errors to answers. Policy refusals are the
// client's and say why; the sentinel texts carry nothing internal.
func caError(err error) error {
	switch {
	case errors.Is(err, authority.ErrPolicy):
		return fail(http.StatusBadRequest, "%v", err)
	case errors.Is(err, authority.ErrNotFound):
		return fail(http.StatusNotFound, "%v", authority.ErrNotFound)
	case errors.Is(err, authority.ErrRevoked):
		return fail(http.StatusConflict, "%v", authority.ErrRevoked)
	case errors.Is(err, authority.ErrCAExists):
		return fail(http.StatusConflict, "%v", authority.ErrCAExists)
	}
	return err
}

// remoteIP is the client address without its port.
func remoteIP(r *http.Request) string {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return ip
}

// requestID is Caddy's id of the request ({http.request.uuid}), which
// access logs can carry too.
func requestID(repl *caddy.Replacer) string {
	if repl != nil {
		if id := repl.ReplaceAll("{http.request.uuid}", ""); id != "" {
			return id
		}
	}
	return uuid.NewString()
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

// parseAPIDirective parses the bankedge_api directive into its route and,
// at the top level of a site block, an error route: errors of the site's
// other handlers on /api/v1/ paths, such as basic_auth's 401, are answered
// as JSON by the API too (with WWW-Authenticate kept) and audited. Caddy
// drops error routes of directives nested in handle or route blocks;
// there, `handle_errors { bankedge_api }` does the same.
func parseAPIDirective(h httpcaddyfile.Helper) ([]httpcaddyfile.ConfigValue, error) {
	if !h.Next() {
		return nil, h.ArgErr()
	}
	matcherSet, err := h.ExtractMatcherSet()
	if err != nil {
		return nil, err
	}
	api := new(API)
	if err := api.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	vals := h.NewRoute(matcherSet, api)
	onAPI := caddy.ModuleMap{"path": caddyconfig.JSON(caddyhttp.MatchPath{"/api/v1/*"}, nil)}
	errorRoute := caddyhttp.Route{
		MatcherSetsRaw: []caddy.ModuleMap{onAPI},
		HandlersRaw:    []json.RawMessage{caddyconfig.JSONModuleObject(api, "handler", "bankedge_api", nil)},
		Terminal:       true,
	}
	return append(vals, httpcaddyfile.ConfigValue{Class: "error_route", Value: &caddyhttp.Subroute{Routes: caddyhttp.RouteList{errorRoute}}}), nil
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*API)(nil)
	_ caddy.Validator             = (*API)(nil)
	_ caddyhttp.MiddlewareHandler = (*API)(nil)
	_ caddyfile.Unmarshaler       = (*API)(nil)
)

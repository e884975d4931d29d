package ca

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/bankedge/bankedge/internal/caddyfileargs"
	"github.com/bankedge/bankedge/internal/metrics"
	"github.com/bankedge/bankedge/modules/ca/console"
	"github.com/bankedge/bankedge/modules/ca/roles"
)

func init() {
	caddy.RegisterModule(&API{})
	httpcaddyfile.RegisterDirective("bankedge_api", parseAPIDirective)
	// After basic_auth, with the other terminal handlers.
	httpcaddyfile.RegisterDirectiveOrder("bankedge_api", httpcaddyfile.Before, "respond")
}

// API is the admin REST API of the bankedge CA and partner registry, under
// /api/v1/certificates/ca and /api/v1/config/partners, with PeSIT Wizard's
// paths, methods and form parameters, and the admin console under /ui/. It
// is meant for an internal-only site behind Caddy's authentication
// (basic_auth, or jwt_auth), which names the user:
//
//	http://127.0.0.1:8080 {
//		bind 127.0.0.1
//		basic_auth {
//			alice {env.ALICE_PASSWORD_HASH}
//			bob   {env.BOB_PASSWORD_HASH}
//		}
//		bankedge_api {
//			roles {
//				security_admin alice
//				partner_admin  bob
//			}
//		}
//	}
//
// Every endpoint and console page needs one of the roles of the permission
// table (package roles); a user who holds none of them gets 403. Every
// error is JSON {"error":"…"} with a 4xx status, and every administrative
// action is written to the bankedge.audit logger with the user, the roles
// used and the outcome, never with a secret. The API and the console reach
// the CA and the registry through the same operations (service.go).
type API struct {
	// MaxBodySize bounds request bodies, in bytes. Default: 1 MiB.
	MaxBodySize int64 `json:"max_body_size,omitempty"`

	// Roles grants the administration roles (security_admin,
	// partner_admin, auditor) to users, as Caddy's authentication handler
	// names them ({http.auth.user.id}): role name → user ids. A JWT's
	// roles claim (jwt_auth) grants its roles too, and this adds more.
	// Without it, a user authenticated without roles (basic_auth) holds
	// every role.
	Roles roles.Assignments `json:"roles,omitempty"`

	// Console configures the admin console served under /ui/. It is on by
	// default.
	Console *ConsoleConfig `json:"console,omitempty"`

	app     *App
	mux     *http.ServeMux
	console *console.Console
	metrics http.Handler
	logger  *zap.Logger
}

// ConsoleConfig configures the admin console.
type ConsoleConfig struct {
	// Disabled turns the console off: /ui/ then answers 404.
	Disabled bool `json:"disabled,omitempty"`

	// TrustedOrigins are origins besides the site's own from which the
	// console's forms may be posted, as scheme://host[:port], for a proxy
	// in front that terminates TLS under another name.
	TrustedOrigins []string `json:"trusted_origins,omitempty"`
}

// consolePrefix is where bankedge_api serves the console.
const consolePrefix = "/ui"

// CaddyModule returns the Caddy module information.
func (*API) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.bankedge_api",
		New: func() caddy.Module { return new(API) },
	}
}

// Provision finds the bankedge app, registers the metrics and makes the
// console.
func (h *API) Provision(ctx caddy.Context) error {
	app, err := appFrom(ctx)
	if err != nil {
		return err
	}
	h.app = app
	h.logger = ctx.Logger()
	if err := metrics.Register(ctx); err != nil {
		return err
	}
	if reg := ctx.GetMetricsRegistry(); reg != nil {
		h.metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: zap.NewStdLog(h.logger.Named("metrics"))})
	}
	if h.MaxBodySize == 0 {
		h.MaxBodySize = 1 << 20
	}
	h.mux = http.NewServeMux()
	for _, rt := range routes {
		h.mux.HandleFunc(rt.pattern, func(w http.ResponseWriter, r *http.Request) { h.serve(w, r, rt) })
	}
	if h.Console == nil || !h.Console.Disabled {
		var origins []string
		if h.Console != nil {
			origins = h.Console.TrustedOrigins
		}
		if h.console, err = app.newConsole(ctx, consolePrefix, origins, h.logger.Named("console")); err != nil {
			return fmt.Errorf("admin console: %w", err)
		}
	}
	return nil
}

// Validate checks the configuration.
func (h *API) Validate() error {
	if h.MaxBodySize < 0 {
		return errors.New("max_body_size must be positive")
	}
	return h.Roles.Validate()
}

// apiError is an answer {"error": …} with a status. Its message is for
// the client: it never carries an internal detail (a storage path, a
// library error); those are logged under the request id instead.
type apiError struct {
	status int
	msg    string
	reason string
	// field is the parameter at fault, where the console shows msg.
	field string
	cause error
}

func (e *apiError) Error() string { return e.msg }
func (e *apiError) Unwrap() error { return e.cause }

func fail(status int, format string, args ...any) *apiError {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

// failField is fail naming the parameter at fault.
func failField(status int, field, format string, args ...any) *apiError {
	return &apiError{status: status, field: field, msg: fmt.Sprintf(format, args...)}
}

// call is one API request being served.
type call struct {
	w     http.ResponseWriter
	r     *http.Request
	form  url.Values
	user  string
	roles roles.Set
	audit *auditTrail
}

// route is an endpoint: a ServeMux pattern (method and path), the action
// its audit lines are named after, the permission it needs (roles.Needed)
// and its handler.
type route struct {
	pattern string
	action  string
	needs   roles.Action
	serve   func(h *API, c *call) error
}

// routes are the endpoints, with PeSIT Wizard's paths. The permission
// table is in package roles; the README's table follows this list.
var routes = []route{
	{"POST /api/v1/certificates/ca/initialize", "ca.initialize", roles.CAInitialize, (*API).initialize},
	{"GET /api/v1/certificates/ca/certificate", "ca.certificate", roles.CADownload, (*API).caCertificate},
	{"POST /api/v1/certificates/ca/csr", "ca.csr", roles.CACSR, (*API).makeCSR},
	{"POST /api/v1/certificates/ca/sign", "ca.sign", roles.CASign, (*API).signCSR},
	{"POST /api/v1/certificates/ca/partner/{id}/generate", "ca.generate", roles.CAGenerate, (*API).generatePartner},
	{"POST /api/v1/certificates/ca/psd2/{tppId}/generate", "ca.psd2.generate", roles.CAPSD2Generate, (*API).generatePSD2},
	{"POST /api/v1/certificates/ca/verify", "ca.verify", roles.CAVerify, (*API).verify},
	{"GET /api/v1/certificates/ca/truststore", "ca.truststore", roles.CADownload, (*API).truststore},
	{"GET /api/v1/certificates/ca/issued", "ca.issued", roles.CAInventory, (*API).issued},
	{"POST /api/v1/certificates/ca/revoke", "ca.revoke", roles.CARevoke, (*API).revoke},
	{"GET /api/v1/certificates/ca/crl", "ca.crl", roles.CACRL, (*API).crl},
	{"POST /api/v1/certificates/ca/crl/regenerate", "ca.crl.regenerate", roles.CARegenerateCRL, (*API).regenerateCRL},
	{"GET /api/v1/config/partners", "partner.list", roles.PartnerRead, (*API).listPartners},
	{"POST /api/v1/config/partners", "partner.create", roles.PartnerWrite, (*API).createPartner},
	{"GET /api/v1/config/partners/{id}", "partner.get", roles.PartnerRead, (*API).getPartner},
	{"PUT /api/v1/config/partners/{id}", "partner.update", roles.PartnerWrite, (*API).updatePartner},
	{"DELETE /api/v1/config/partners/{id}", "partner.delete", roles.PartnerWrite, (*API).deletePartner},
	{"GET /api/v1/audit", "audit.read", roles.AuditRead, (*API).auditFeed},
	{"GET /api/v1/metrics", "metrics.read", roles.MetricsRead, (*API).serveMetrics},
	// PSD2 blocklist (handlers_blocklist.go).
	{"GET /api/v1/psd2/blocklist", "psd2.blocklist.list", roles.CABlocklistRead, (*API).listBlocklist},
	{"POST /api/v1/psd2/blocklist", "psd2.blocklist.add", roles.CABlocklist, (*API).addToBlocklist},
	{"DELETE /api/v1/psd2/blocklist/{entry}", "psd2.blocklist.remove", roles.CABlocklist, (*API).removeFromBlocklist},
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
	if p := r.URL.Path; h.console != nil && (p == consolePrefix || strings.HasPrefix(p, consolePrefix+"/")) {
		h.serveConsole(w, r)
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
		action, msg = "api.authenticate", unauthenticatedMessage(w, r)
	case http.StatusForbidden:
		action = "api.authenticate"
	}
	c := h.newCall(w, r, action)
	if status == http.StatusUnauthorized {
		// Not authenticated: whatever a configuration without roles
		// grants an authenticated user, this caller used no role.
		c.roles, c.audit.roles = 0, ""
	}
	if status >= 500 {
		h.finish(c, err)
		return
	}
	h.finish(c, fail(status, "%s", msg))
}

// unauthenticatedMessage says what a 401 asks for: jwt_auth's challenge
// and its reason for refusing the token, or basic credentials.
func unauthenticatedMessage(w http.ResponseWriter, r *http.Request) string {
	if !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer") {
		return "authentication required: send the admin API credentials (HTTP basic authentication)"
	}
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		// jwtauth.ErrorPlaceholder: the reason the token was refused.
		if reason, _ := repl.GetString("http.auth.jwt.error"); reason != "" {
			return "authentication required: " + reason
		}
	}
	return "authentication required: send a bearer token"
}

func (h *API) newCall(w http.ResponseWriter, r *http.Request, action string) *call {
	a := actorOf(r, h.Roles)
	c := &call{w: w, r: r, user: a.User, roles: a.Roles}
	c.audit = newAuditTrail(action, a.User, a.RemoteIP, requestIDOf(r))
	c.audit.via, c.audit.roles = "api", a.Roles.String()
	c.r = r.WithContext(withAuditTrail(r.Context(), c.audit))
	return c
}

// serve checks the user's roles, then runs an endpoint's handler and
// answers its error.
func (h *API) serve(w http.ResponseWriter, r *http.Request, rt route) {
	c := h.newCall(w, r, rt.action)
	if !c.roles.Allows(rt.needs) {
		h.forbid(c, rt.needs)
		return
	}
	c.audit.roles = (c.roles & roles.Needed(rt.needs)).String()
	err := h.parseForm(c)
	if err == nil {
		err = rt.serve(h, c)
	}
	h.finish(c, err)
}

// forbid answers 403 to a user who holds none of the roles an endpoint
// needs, and audits it with the roles held and needed.
func (h *API) forbid(c *call, needs roles.Action) {
	held := "none"
	if c.roles != 0 {
		held = c.roles.String()
	}
	user := c.user
	if user == "" {
		user = "anonymous"
	}
	msg := fmt.Sprintf("forbidden: %s %s needs the role %s, and user %s holds %s",
		c.r.Method, c.r.URL.Path, strings.ReplaceAll(roles.Needed(needs).String(), " ", " or "), user, held)
	c.audit.log(h.app.audit, "forbidden", zap.Int("status", http.StatusForbidden),
		zap.String("needed_roles", roles.Needed(needs).String()), zap.String("reason", "missing role"))
	h.finish(c, fail(http.StatusForbidden, "%s", msg))
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
		if u := h.unavailableError(c, err); u != nil {
			err = u
		}
	}
	ae = h.app.settle(c.audit, c.r.URL.Path, err)
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
	if ct == "multipart/form-data" {
		if err := r.ParseMultipartForm(h.MaxBodySize); err != nil {
			return bodyError(err)
		}
		for k, vs := range r.MultipartForm.Value {
			c.form[k] = vs
		}
		return nil
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	// A JSON object is read as JSON whatever the content type says: curl
	// -d sends form encoding's, and a client may send none; no form body
	// starts with "{".
	if ct == "application/json" || bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")) {
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
		return nil
	}
	// Form encoding, which curl -d sends, is also what arrives without a
	// content type.
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return fail(http.StatusBadRequest, "request body is not form-encoded: %v", err)
	}
	for k, vs := range vals {
		c.form[k] = vs
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

// param returns a trimmed form parameter.
func (c *call) param(name string) string { return strings.TrimSpace(c.form.Get(name)) }

// remoteIP is the client address without its port.
func remoteIP(r *http.Request) string {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return ip
}

// requestIDOf is Caddy's id of the request ({http.request.uuid}), which
// access logs can carry too.
func requestIDOf(r *http.Request) string {
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
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
//		roles {
//			security_admin <user…>
//			partner_admin  <user…>
//			auditor        <user…>
//		}
//		console off
//		console {
//			trusted_origins <scheme://host[:port]…>
//		}
//	}
//
// A role may be named on several lines, and a user under several roles.
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
		case "roles":
			if d.NextArg() {
				return d.ArgErr()
			}
			if h.Roles == nil {
				h.Roles = roles.Assignments{}
			}
			for d.NextBlock(1) {
				r, err := roles.Parse(d.Val())
				if err != nil {
					return d.Err(err.Error())
				}
				users := d.RemainingArgs()
				if len(users) == 0 {
					return d.Errf("role %s: name at least one user", r)
				}
				h.Roles[r] = append(h.Roles[r], users...)
			}
		case "console":
			if h.Console == nil {
				h.Console = new(ConsoleConfig)
			}
			if d.NextArg() {
				if d.Val() != "off" || d.NextArg() {
					return d.Err("console takes off, or a block")
				}
				h.Console.Disabled = true
			}
			for d.NextBlock(1) {
				switch d.Val() {
				case "trusted_origins":
					if err := caddyfileargs.Append(d, &h.Console.TrustedOrigins); err != nil {
						return err
					}
				default:
					return d.Errf("unrecognized console option %q", d.Val())
				}
			}
		default:
			return d.Errf("unrecognized bankedge_api option %q", d.Val())
		}
	}
	return nil
}

// parseAPIDirective parses the bankedge_api directive into its route and,
// at the top level of a site block, an error route: errors of the site's
// other handlers on the API's and the console's paths (/api/v1, /ui), such
// as basic_auth's 401, are answered as JSON by the API too (with
// WWW-Authenticate kept) and audited. Caddy
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
	onAPI := caddy.ModuleMap{"path": caddyconfig.JSON(caddyhttp.MatchPath{"/api/v1", "/api/v1/*", consolePrefix, consolePrefix + "/*"}, nil)}
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

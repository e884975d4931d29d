// Package console is the bankedge admin console: server-rendered pages
// (html/template, embedded, no JavaScript) over the CA and the partner
// registry, for the three administration roles. The admin API mounts it
// under /ui/ on its own site, behind the same authentication; the console
// takes the authenticated user and roles from the request context
// (WithActor) and reaches the CA only through a Backend.
//
// Every state-changing form is a POST protected twice against cross-site
// request forgery: the Origin (or Referer) must be the console's own
// origin, and the form must carry a token bound to the session cookie and
// the user. Pages send a Content-Security-Policy without any script
// source, and nothing secret travels in a URL.
package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"

	"github.com/bankedge/bankedge/modules/ca/roles"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Options configure a Console.
type Options struct {
	// Backend is the CA and registry. Required.
	Backend Backend
	// Prefix is the path the console is mounted at, without a trailing
	// slash. Default "/ui".
	Prefix string
	// Key signs the CSRF tokens; at least 32 bytes. Instances behind one
	// load balancer need the same key. Default: a random key, so tokens
	// do not survive a restart.
	Key []byte
	// TrustedOrigins are origins besides the request's own from which
	// forms may be posted (e.g. "https://admin.bank.example" when a proxy
	// in front terminates TLS).
	TrustedOrigins []string
	// MaxFormSize bounds a posted form, in bytes. Default 1 MiB.
	MaxFormSize int64
	// Logger receives internal errors. Default: no logging.
	Logger *zap.Logger
}

// Console is the admin console, an http.Handler.
type Console struct {
	opts  Options
	mux   *http.ServeMux
	pages map[string]*template.Template
}

// route is a page or form of the console and the action it needs.
type route struct {
	pattern string
	action  roles.Action
	serve   func(c *Console, w http.ResponseWriter, r *http.Request, a Actor) error
}

// anyRole marks routes open to every authenticated user.
const anyRole roles.Action = ""

func (c *Console) routes() []route {
	return []route{
		{"GET /{$}", anyRole, (*Console).dashboard},
		{"GET /static/console.css", anyRole, (*Console).stylesheet},
		{"GET /partners", roles.PartnerRead, (*Console).partners},
		{"POST /partners", roles.PartnerWrite, (*Console).createPartner},
		{"GET /partners/{id}", roles.PartnerRead, (*Console).partner},
		{"POST /partners/{id}", roles.PartnerWrite, (*Console).updatePartner},
		{"POST /partners/{id}/password", roles.PartnerWrite, (*Console).changePassword},
		{"POST /partners/{id}/delete", roles.PartnerWrite, (*Console).deletePartner},
		{"GET /certificates", roles.CAInventory, (*Console).certificates},
		{"GET /certificates/{serial}/certificate.pem", roles.CAInventory, (*Console).certificatePEM},
		{"POST /certificates/revoke", roles.CARevoke, (*Console).revoke},
		{"POST /certificates/generate", roles.CAGenerate, (*Console).generate},
		{"POST /certificates/sign", roles.CASign, (*Console).sign},
		{"GET /ca", roles.CADownload, (*Console).caPage},
		{"POST /ca/initialize", roles.CAInitialize, (*Console).initialize},
		{"GET /ca/certificate.pem", roles.CADownload, (*Console).caCertificate},
		{"GET /ca/crl", roles.CADownload, (*Console).crl},
		{"POST /ca/truststore", roles.CADownload, (*Console).truststore},
		{"GET /audit", roles.AuditRead, (*Console).audit},
	}
}

// New makes a console.
func New(opts Options) (*Console, error) {
	if opts.Backend == nil {
		return nil, errors.New("console: no backend")
	}
	if opts.Prefix == "" {
		opts.Prefix = "/ui"
	}
	opts.Prefix = "/" + strings.Trim(opts.Prefix, "/")
	if opts.Key == nil {
		opts.Key = make([]byte, 32)
		if _, err := rand.Read(opts.Key); err != nil {
			return nil, err
		}
	}
	if len(opts.Key) < 32 {
		return nil, errors.New("console: the CSRF key must have at least 32 bytes")
	}
	for _, o := range opts.TrustedOrigins {
		if u, err := url.Parse(o); err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" {
			return nil, fmt.Errorf("console: trusted origin %q is not scheme://host[:port]", o)
		}
	}
	if opts.MaxFormSize <= 0 {
		opts.MaxFormSize = 1 << 20
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	c := &Console{opts: opts, mux: http.NewServeMux()}
	if err := c.parseTemplates(); err != nil {
		return nil, err
	}
	for _, rt := range c.routes() {
		method, path, _ := strings.Cut(rt.pattern, " ")
		c.mux.Handle(method+" "+opts.Prefix+path, c.guard(rt))
	}
	c.mux.HandleFunc("GET "+opts.Prefix, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, opts.Prefix+"/", http.StatusSeeOther)
	})
	return c, nil
}

// securityHeaders are sent with every answer. The console has no script
// at all, so the policy allows none.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
	h.Set("Cache-Control", "no-store")
}

// ServeHTTP serves the console's pages below Prefix.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	if _, ok := ActorFrom(r.Context()); !ok {
		c.errorPage(w, r, Actor{}, http.StatusUnauthorized, "You are not signed in.")
		return
	}
	if _, pattern := c.mux.Handler(r); pattern == "" {
		a, _ := ActorFrom(r.Context())
		c.errorPage(w, r, a, http.StatusNotFound, "There is no such page.")
		return
	}
	c.mux.ServeHTTP(w, r)
}

// guard wraps a route with the session, the CSRF and origin checks for
// POSTs, and the role check.
func (c *Console) guard(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, _ := ActorFrom(r.Context())
		session := c.session(w, r)
		if r.Method == http.MethodPost {
			if err := c.checkOrigin(r); err != nil {
				c.opts.Backend.Refused(r.Context(), a, rt.action, "csrf: "+err.Error())
				c.errorPage(w, r, a, http.StatusForbidden, "This form was not sent from the console ("+err.Error()+").")
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, c.opts.MaxFormSize)
			if err := r.ParseForm(); err != nil {
				c.errorPage(w, r, a, http.StatusBadRequest, "The form could not be read.")
				return
			}
			if !c.validToken(session, a.User, r.PostForm.Get("csrf_token")) {
				c.opts.Backend.Refused(r.Context(), a, rt.action, "csrf: missing or invalid token")
				c.errorPage(w, r, a, http.StatusForbidden, "This form has expired or was not sent from the console. Reload the page and try again.")
				return
			}
		}
		if rt.action != anyRole && !a.Roles.Allows(rt.action) {
			c.opts.Backend.Refused(r.Context(), a, rt.action, "missing role")
			c.errorPage(w, r, a, http.StatusForbidden, fmt.Sprintf("Your roles (%s) do not allow this.", rolesText(a.Roles)))
			return
		}
		if err := rt.serve(c, w, r.WithContext(withSession(r.Context(), session)), a); err != nil {
			c.fail(w, r, a, err)
		}
	})
}

func rolesText(s roles.Set) string {
	if s == 0 {
		return "none"
	}
	return s.String()
}

// cookieName is the session cookie; over TLS it gets the __Host- prefix,
// which browsers only accept from the host itself, secure, for path /.
func cookieName(r *http.Request) string {
	if r.TLS != nil {
		return "__Host-bankedge_console"
	}
	return "bankedge_console"
}

// session returns the session id from the cookie, setting a new one when
// there is none.
func (c *Console) session(w http.ResponseWriter, r *http.Request) string {
	if ck, err := r.Cookie(cookieName(r)); err == nil && len(ck.Value) == 43 {
		if _, err := base64.RawURLEncoding.DecodeString(ck.Value); err == nil {
			return ck.Value
		}
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	id := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{
		Name: cookieName(r), Value: id, Path: "/", HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
	return id
}

// token is the CSRF token of a session and user.
func (c *Console) token(session, user string) string {
	m := hmac.New(sha256.New, c.opts.Key)
	m.Write([]byte("bankedge console csrf\x00" + session + "\x00" + user))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (c *Console) validToken(session, user, got string) bool {
	return got != "" && hmac.Equal([]byte(got), []byte(c.token(session, user)))
}

// checkOrigin requires a POST to come from the console's own origin: the
// Origin header (every current browser sends it on a POST), else the
// Referer; and a Fetch Metadata header, when present, must not say
// cross-site.
func (c *Console) checkOrigin(r *http.Request) error {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return errors.New("cross-site request")
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		ref, err := url.Parse(r.Header.Get("Referer"))
		if err != nil || ref.Host == "" {
			return errors.New("no Origin header")
		}
		origin = ref.Scheme + "://" + ref.Host
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if strings.EqualFold(origin, scheme+"://"+r.Host) {
		return nil
	}
	for _, o := range c.opts.TrustedOrigins {
		if strings.EqualFold(origin, o) {
			return nil
		}
	}
	return fmt.Errorf("origin %s is not allowed", clip(origin))
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// fail answers a handler's error: what the user can act on is shown, the
// rest is logged and shown as an internal error.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, a Actor, err error) {
	var ie *InputError
	switch {
	case errors.As(err, &ie):
		c.errorPage(w, r, a, http.StatusUnprocessableEntity, ie.Error())
	case errors.Is(err, ErrNotFound):
		c.errorPage(w, r, a, http.StatusNotFound, "Not found.")
	case errors.Is(err, ErrConflict):
		c.errorPage(w, r, a, http.StatusConflict, "This conflicts with the current state: "+err.Error())
	case errors.Is(err, ErrNotInitialized):
		c.errorPage(w, r, a, http.StatusConflict, "The CA is not initialized yet.")
	case errors.Is(err, ErrUnavailable):
		w.Header().Set("Retry-After", "5")
		c.errorPage(w, r, a, http.StatusServiceUnavailable, "The gateway's storage is not answering; nothing was changed. Try again in a few seconds.")
	default:
		id := make([]byte, 6)
		_, _ = rand.Read(id)
		ref := fmt.Sprintf("%x", id)
		c.opts.Logger.Error("console request failed", zap.String("path", r.URL.Path), zap.String("ref", ref), zap.Error(err))
		c.errorPage(w, r, a, http.StatusInternalServerError, "Something went wrong on the server (reference "+ref+"); it has been logged.")
	}
}

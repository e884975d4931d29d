package console

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bankedge/bankedge/modules/ca/authority"
	"github.com/bankedge/bankedge/modules/ca/registry"
	"github.com/bankedge/bankedge/modules/ca/roles"
)

type sessionKey struct{}

func withSession(ctx context.Context, s string) context.Context {
	return context.WithValue(ctx, sessionKey{}, s)
}

// page is what every template gets.
type page struct {
	Title   string
	Section string
	Prefix  string
	Actor   Actor
	CSRF    string
	Flash   string
	Status  int
	Message string
	// Errors maps form fields to the reason they were refused; Form holds
	// what the user typed (never passwords) to fill the form again.
	Errors map[string]string
	Form   url.Values
	Data   any
}

var funcs = template.FuncMap{
	"can": func(a Actor, action string) bool { return a.Roles.Allows(roles.Action(action)) },
	"date": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"day": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return t.UTC().Format("2006-01-02")
	},
	"daysLeft": func(t time.Time) int { return int(time.Until(t).Hours() / 24) },
	"join":     strings.Join,
	"roleList": func(s roles.Set) string { return rolesText(s) },
	"lower":    strings.ToLower,
	"list":     func(s ...string) []string { return s },
	"selected": func(v url.Values, key, want string) bool { return v.Get(key) == want },
}

func (c *Console) parseTemplates() error {
	names, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return err
	}
	c.pages = make(map[string]*template.Template)
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.New(name).Funcs(funcs).ParseFS(assets, "templates/layout.html", n)
		if err != nil {
			return fmt.Errorf("console template %s: %w", name, err)
		}
		c.pages[name] = t
	}
	return nil
}

// render writes a page, buffered so that a template error never leaves
// half a page.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, p *page) error {
	p.Prefix = c.opts.Prefix
	p.Actor, _ = ActorFrom(r.Context())
	if s, ok := r.Context().Value(sessionKey{}).(string); ok {
		p.CSRF = c.token(s, p.Actor.User)
	}
	if p.Flash == "" {
		p.Flash = flashes[r.URL.Query().Get("done")]
	}
	if p.Form == nil {
		p.Form = url.Values{}
	}
	var buf bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		return fmt.Errorf("rendering %s: %w", name, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
	return nil
}

// flashes are the confirmations shown after a redirect; only these keys
// are shown, so a link cannot make the console say anything else.
var flashes = map[string]string{
	"created":     "Partner created.",
	"updated":     "Partner updated.",
	"password":    "Password changed.",
	"deleted":     "Partner deleted.",
	"revoked":     "Certificate revoked; a new CRL was signed.",
	"initialized": "CA initialized.",
}

func (c *Console) errorPage(w http.ResponseWriter, r *http.Request, a Actor, status int, msg string) {
	p := &page{Title: http.StatusText(status), Status: status, Message: msg}
	if err := c.render(w, r.WithContext(WithActor(r.Context(), a)), status, "error", p); err != nil {
		http.Error(w, msg, status)
	}
}

func (c *Console) redirect(w http.ResponseWriter, r *http.Request, path, done string) error {
	u := c.opts.Prefix + path
	if done != "" {
		u += "?done=" + url.QueryEscape(done)
	}
	http.Redirect(w, r, u, http.StatusSeeOther)
	return nil
}

func download(w http.ResponseWriter, contentType, name string, body []byte) error {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, err := w.Write(body)
	return err
}

func (c *Console) stylesheet(w http.ResponseWriter, _ *http.Request, _ Actor) error {
	b, err := assets.ReadFile("static/console.css")
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, err = w.Write(b)
	return err
}

// expiringWindow is what the dashboard and the filters call expiring.
const expiringWindow = 30 * 24 * time.Hour

type dashboard struct {
	CA                                CAInfo
	Partners                          int
	Valid, Expiring, Revoked, Expired int
	Soon                              []authority.Record
	TPPs                              []TPP
	ShowPartners, ShowCerts, CanInit  bool
}

func (c *Console) dashboard(w http.ResponseWriter, r *http.Request, a Actor) error {
	ctx := r.Context()
	d := dashboard{CanInit: a.Roles.Allows(roles.CAInitialize)}
	var err error
	if d.CA, err = c.opts.Backend.CA(ctx); err != nil {
		return err
	}
	if a.Roles.Allows(roles.PartnerRead) {
		ps, err := c.opts.Backend.Partners(ctx)
		if err != nil {
			return err
		}
		d.Partners, d.ShowPartners = len(ps), true
	}
	if d.CA.Initialized && a.Roles.Allows(roles.CAInventory) {
		recs, err := c.opts.Backend.Certificates(ctx, CertFilter{})
		if err != nil {
			return err
		}
		d.ShowCerts = true
		for _, rec := range recs {
			switch rec.Status {
			case authority.StatusValid:
				d.Valid++
				if time.Until(rec.NotAfter) <= expiringWindow {
					d.Expiring++
					d.Soon = append(d.Soon, rec)
				}
			case authority.StatusRevoked:
				d.Revoked++
			case authority.StatusExpired:
				d.Expired++
			}
		}
		slices.SortFunc(d.Soon, func(x, y authority.Record) int { return x.NotAfter.Compare(y.NotAfter) })
		d.Soon = d.Soon[:min(len(d.Soon), 10)]
	}
	if d.TPPs, err = c.opts.Backend.TPPs(ctx); err != nil {
		return err
	}
	return c.render(w, r, http.StatusOK, "dashboard", &page{Title: "Dashboard", Section: "dashboard", Data: d})
}

// Partners.

type partnersData struct {
	Partners []registry.Partner
}

func (c *Console) partners(w http.ResponseWriter, r *http.Request, _ Actor) error {
	return c.partnersPage(w, r, http.StatusOK, nil, nil)
}

func (c *Console) partnersPage(w http.ResponseWriter, r *http.Request, status int, form url.Values, errs map[string]string) error {
	ps, err := c.opts.Backend.Partners(r.Context())
	if err != nil {
		return err
	}
	return c.render(w, r, status, "partners", &page{Title: "Partners", Section: "partners", Data: partnersData{ps}, Form: form, Errors: errs})
}

// splitList reads a list typed into one field, separated by commas, spaces
// or line breaks.
func splitList(s string) []string {
	out := []string{}
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' }) {
		out = append(out, f)
	}
	return out
}

// partnerInput reads the partner form; create also reads the id and the
// first password.
func partnerInput(f url.Values, create bool) (registry.Input, error) {
	str := func(k string) *string { v := strings.TrimSpace(f.Get(k)); return &v }
	list := func(k string) *[]string { v := splitList(f.Get(k)); return &v }
	flag := func(k string) *bool { v := f.Get(k) == "on"; return &v }
	in := registry.Input{
		Enabled:             flag("enabled"),
		AllowedIPs:          list("allowedIps"),
		CertificateBinding:  str("certificateBinding"),
		AccessType:          str("accessType"),
		AllowedFiles:        list("allowedFiles"),
		Description:         str("description"),
		PesitLegacyPassword: flag("pesitLegacyPassword"),
	}
	n := 0
	if v := strings.TrimSpace(f.Get("maxConnections")); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 0 {
			return in, &InputError{Field: "maxConnections", Message: "must be a whole number, 0 for no limit"}
		}
	}
	in.MaxConnections = &n
	if create {
		in.PartnerID = str("partnerId")
		pw, err := newPassword(f)
		if err != nil {
			return in, err
		}
		in.Password = &pw
	}
	return in, nil
}

// partnerFields are the fields of the partner form that show their own
// errors.
var partnerFields = []string{"accessType", "allowedFiles", "allowedIps", "certificateBinding", "maxConnections", "pesitLegacyPassword"}

// newPassword reads a password and its confirmation.
func newPassword(f url.Values) (string, error) {
	pw := f.Get("password")
	if pw != f.Get("passwordConfirm") {
		return "", &InputError{Field: "password", Message: "the two passwords differ"}
	}
	return pw, nil
}

// formErrors turns an input error into the errors shown next to fields:
// next to the field it names when the form shows that field (fields, when
// given, are those the form shows errors for), above the form otherwise.
func formErrors(err error, fields ...string) (map[string]string, bool) {
	var ie *InputError
	if !errors.As(err, &ie) {
		return nil, false
	}
	field := ie.Field
	if field == "" || len(fields) > 0 && !slices.Contains(fields, field) {
		field = "form"
	}
	return map[string]string{field: ie.Message}, true
}

// withoutSecrets is a copy of a form to fill in again: passwords are
// never sent back to the browser.
func withoutSecrets(f url.Values) url.Values {
	out := url.Values{}
	for k, v := range f {
		if k != "password" && k != "passwordConfirm" && k != "csrf_token" {
			out[k] = v
		}
	}
	return out
}

func (c *Console) createPartner(w http.ResponseWriter, r *http.Request, a Actor) error {
	in, err := partnerInput(r.PostForm, true)
	if err == nil {
		_, err = c.opts.Backend.CreatePartner(r.Context(), a, in)
	}
	if errors.Is(err, ErrConflict) {
		err = &InputError{Field: "partnerId", Message: "a partner with this id already exists"}
	}
	if errs, ok := formErrors(err, slices.Concat(partnerFields, []string{"partnerId", "password"})...); ok {
		return c.partnersPage(w, r, http.StatusUnprocessableEntity, withoutSecrets(r.PostForm), errs)
	}
	if err != nil {
		return err
	}
	return c.redirect(w, r, "/partners/"+url.PathEscape(*in.PartnerID), "created")
}

type partnerData struct {
	Partner registry.Partner
	Certs   []authority.Record
}

func (c *Console) partner(w http.ResponseWriter, r *http.Request, a Actor) error {
	return c.partnerPage(w, r, a, http.StatusOK, nil, nil)
}

func (c *Console) partnerPage(w http.ResponseWriter, r *http.Request, a Actor, status int, form url.Values, errs map[string]string) error {
	id := r.PathValue("id")
	p, err := c.opts.Backend.Partner(r.Context(), id)
	if err != nil {
		return err
	}
	d := partnerData{Partner: p}
	if a.Roles.Allows(roles.CAInventory) {
		if ca, err := c.opts.Backend.CA(r.Context()); err == nil && ca.Initialized {
			if d.Certs, err = c.opts.Backend.Certificates(r.Context(), CertFilter{Partner: id}); err != nil {
				return err
			}
		}
	}
	if form == nil {
		form = url.Values{
			"allowedIps":         {strings.Join(p.AllowedIPs, ", ")},
			"certificateBinding": {p.CertificateBinding},
			"accessType":         {p.AccessType},
			"maxConnections":     {strconv.Itoa(p.MaxConnections)},
			"allowedFiles":       {strings.Join(p.AllowedFiles, ", ")},
			"description":        {p.Description},
		}
		if p.Enabled {
			form.Set("enabled", "on")
		}
		if p.PesitLegacyPassword {
			form.Set("pesitLegacyPassword", "on")
		}
	}
	return c.render(w, r, status, "partner", &page{Title: "Partner " + p.PartnerID, Section: "partners", Data: d, Form: form, Errors: errs})
}

func (c *Console) updatePartner(w http.ResponseWriter, r *http.Request, a Actor) error {
	id := r.PathValue("id")
	in, err := partnerInput(r.PostForm, false)
	if err == nil {
		_, err = c.opts.Backend.UpdatePartner(r.Context(), a, id, in)
	}
	if errs, ok := formErrors(err, partnerFields...); ok {
		return c.partnerPage(w, r, a, http.StatusUnprocessableEntity, withoutSecrets(r.PostForm), errs)
	}
	if err != nil {
		return err
	}
	return c.redirect(w, r, "/partners/"+url.PathEscape(id), "updated")
}

func (c *Console) changePassword(w http.ResponseWriter, r *http.Request, a Actor) error {
	id := r.PathValue("id")
	pw, err := newPassword(r.PostForm)
	if err == nil {
		_, err = c.opts.Backend.UpdatePartner(r.Context(), a, id, registry.Input{Password: &pw})
	}
	if errs, ok := formErrors(err, "password"); ok {
		return c.partnerPage(w, r, a, http.StatusUnprocessableEntity, nil, errs)
	}
	if err != nil {
		return err
	}
	return c.redirect(w, r, "/partners/"+url.PathEscape(id), "password")
}

func (c *Console) deletePartner(w http.ResponseWriter, r *http.Request, a Actor) error {
	id := r.PathValue("id")
	if r.PostForm.Get("confirm") != id {
		return c.partnerPage(w, r, a, http.StatusUnprocessableEntity, nil, map[string]string{"confirm": "type the partner id to confirm"})
	}
	if err := c.opts.Backend.DeletePartner(r.Context(), a, id); err != nil {
		return err
	}
	return c.redirect(w, r, "/partners", "deleted")
}

// Certificates.

type certsData struct {
	Records  []authority.Record
	Partners []registry.Partner
	CA       CAInfo
	Reasons  []string
}

// revocationReasons offered in the console: RFC 5280 names, the usual
// ones first.
var revocationReasons = []string{"unspecified", "keyCompromise", "superseded", "cessationOfOperation", "affiliationChanged", "privilegeWithdrawn", "cACompromise", "certificateHold"}

func (c *Console) certificates(w http.ResponseWriter, r *http.Request, a Actor) error {
	return c.certificatesPage(w, r, a, http.StatusOK, nil, nil)
}

func (c *Console) certificatesPage(w http.ResponseWriter, r *http.Request, a Actor, status int, form url.Values, errs map[string]string) error {
	ctx := r.Context()
	q := r.URL.Query()
	d := certsData{Reasons: revocationReasons}
	var err error
	if d.CA, err = c.opts.Backend.CA(ctx); err != nil {
		return err
	}
	if d.CA.Initialized {
		f := CertFilter{Partner: q.Get("partner"), Purpose: q.Get("purpose"), Status: q.Get("status")}
		if days, err := strconv.Atoi(q.Get("expiring")); err == nil && days > 0 && days < 100000 {
			f.ExpiringWithin = time.Duration(days) * 24 * time.Hour
		}
		if d.Records, err = c.opts.Backend.Certificates(ctx, f); err != nil {
			return err
		}
	}
	if a.Roles.Allows(roles.PartnerRead) {
		if d.Partners, err = c.opts.Backend.Partners(ctx); err != nil {
			return err
		}
	}
	if form == nil {
		form = url.Values{}
	}
	for k, v := range q {
		form["filter_"+k] = v
	}
	return c.render(w, r, status, "certificates", &page{Title: "Certificates", Section: "certificates", Data: d, Form: form, Errors: errs})
}

func (c *Console) certificatePEM(w http.ResponseWriter, r *http.Request, _ Actor) error {
	serial := r.PathValue("serial")
	b, err := c.opts.Backend.CertificatePEM(r.Context(), serial)
	if err != nil {
		return err
	}
	return download(w, "application/x-pem-file", safeName(serial)+".pem", b)
}

func (c *Console) revoke(w http.ResponseWriter, r *http.Request, a Actor) error {
	f := r.PostForm
	if f.Get("confirm") != "on" {
		return c.certificatesPage(w, r, a, http.StatusUnprocessableEntity, nil, map[string]string{"revoke": "tick the confirmation box to revoke"})
	}
	_, err := c.opts.Backend.Revoke(r.Context(), a, f.Get("serial"), f.Get("reason"))
	if errs, ok := formErrors(err); ok {
		errs["revoke"] = errs[firstKey(errs)]
		return c.certificatesPage(w, r, a, http.StatusUnprocessableEntity, nil, errs)
	}
	if errors.Is(err, ErrConflict) {
		return c.certificatesPage(w, r, a, http.StatusConflict, nil, map[string]string{"revoke": "this certificate is already revoked"})
	}
	if err != nil {
		return err
	}
	return c.redirect(w, r, "/certificates", "revoked")
}

func firstKey(m map[string]string) string {
	for k := range m {
		return k
	}
	return ""
}

// resultData is a file made for the user: a keystore or truststore with
// the password shown once, or a signed certificate.
type resultData struct {
	Heading  string
	Name     string
	Password string
	DataURL  template.URL
	PEM      string
	PEMLink  string
}

// dataURL embeds a download in the page itself, so that nothing has to be
// kept on the server for a second request and nothing secret goes in a
// URL that a server would log.
func dataURL(f File) template.URL {
	return template.URL("data:" + f.ContentType + ";base64," + base64.StdEncoding.EncodeToString(f.Body))
}

func (c *Console) generate(w http.ResponseWriter, r *http.Request, a Actor) error {
	f := r.PostForm
	file, err := c.opts.Backend.Generate(r.Context(), a, GenerateRequest{
		PartnerID: strings.TrimSpace(f.Get("partnerId")), CommonName: strings.TrimSpace(f.Get("commonName")),
		Purpose: f.Get("purpose"), ValidityDays: f.Get("validityDays"), Format: f.Get("format"), Password: f.Get("password"),
		KeyType: f.Get("keyType"), DNSNames: splitList(f.Get("dnsNames")),
	})
	if errs, ok := formErrors(err, "partnerId", "commonName", "purpose", "validityDays", "format", "password", "keyType"); ok {
		return c.certificatesPage(w, r, a, http.StatusUnprocessableEntity, prefixed("gen_", withoutSecrets(f)), prefixedErrs("gen_", errs))
	}
	if err != nil {
		return err
	}
	return c.render(w, r, http.StatusOK, "result", &page{Title: "Keystore", Section: "certificates", Data: resultData{
		Heading: "Keystore for " + f.Get("partnerId"), Name: safeName(file.Name), Password: file.Password, DataURL: dataURL(file),
	}})
}

func (c *Console) sign(w http.ResponseWriter, r *http.Request, a Actor) error {
	f := r.PostForm
	s, err := c.opts.Backend.SignCSR(r.Context(), a, SignRequest{
		CSRPEM: f.Get("csrPem"), Purpose: f.Get("purpose"), ValidityDays: f.Get("validityDays"), PartnerID: strings.TrimSpace(f.Get("partnerId")),
	})
	if errs, ok := formErrors(err, "csrPem", "validityDays", "partnerId"); ok {
		return c.certificatesPage(w, r, a, http.StatusUnprocessableEntity, prefixed("sign_", f), prefixedErrs("sign_", errs))
	}
	if err != nil {
		return err
	}
	return c.render(w, r, http.StatusOK, "result", &page{Title: "Signed certificate", Section: "certificates", Data: resultData{
		Heading: "Certificate " + s.Serial, Name: safeName(s.Serial) + ".pem", PEM: string(s.PEM),
		PEMLink: c.opts.Prefix + "/certificates/" + url.PathEscape(s.Serial) + "/certificate.pem",
	}})
}

// prefixed renames form fields so that the generate and sign forms, on one
// page, each get their own values and errors back.
func prefixed(p string, f url.Values) url.Values {
	out := url.Values{}
	for k, v := range f {
		out[p+k] = v
	}
	return out
}

func prefixedErrs(p string, errs map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range errs {
		out[p+k] = v
	}
	return out
}

// CA.

func (c *Console) caPage(w http.ResponseWriter, r *http.Request, _ Actor) error {
	ca, err := c.opts.Backend.CA(r.Context())
	if err != nil {
		return err
	}
	return c.render(w, r, http.StatusOK, "ca", &page{Title: "Certificate authority", Section: "ca", Data: ca})
}

func (c *Console) initialize(w http.ResponseWriter, r *http.Request, a Actor) error {
	if err := c.opts.Backend.InitializeCA(r.Context(), a); err != nil {
		return err
	}
	return c.redirect(w, r, "/ca", "initialized")
}

func (c *Console) caCertificate(w http.ResponseWriter, r *http.Request, _ Actor) error {
	b, err := c.opts.Backend.CACertificatePEM(r.Context())
	if err != nil {
		return err
	}
	return download(w, "application/x-pem-file", "ca-cert.pem", b)
}

func (c *Console) crl(w http.ResponseWriter, r *http.Request, _ Actor) error {
	b, err := c.opts.Backend.CRL(r.Context())
	if err != nil {
		return err
	}
	return download(w, "application/pkix-crl", "ca.crl", b)
}

func (c *Console) truststore(w http.ResponseWriter, r *http.Request, a Actor) error {
	f := r.PostForm
	file, err := c.opts.Backend.Truststore(r.Context(), a, f.Get("format"), f.Get("password"))
	if err != nil {
		return err
	}
	return c.render(w, r, http.StatusOK, "result", &page{Title: "Truststore", Section: "ca", Data: resultData{
		Heading: "Truststore", Name: safeName(file.Name), Password: file.Password, DataURL: dataURL(file),
	}})
}

// Audit.

func (c *Console) audit(w http.ResponseWriter, r *http.Request, _ Actor) error {
	q := r.URL.Query()
	lines, err := c.opts.Backend.Audit(r.Context(), AuditFilter{User: q.Get("user"), Partner: q.Get("partner"), Action: q.Get("action"), Limit: 200})
	if err != nil {
		return err
	}
	return c.render(w, r, http.StatusOK, "audit", &page{Title: "Audit", Section: "audit", Data: lines, Form: q})
}

// SafeFilename keeps a download name to characters harmless in a
// Content-Disposition header and on any file system; an empty result
// becomes fallback.
func SafeFilename(s, fallback string) string {
	out := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
	if out == "" {
		return fallback
	}
	return out
}

// safeName is SafeFilename for the console's downloads.
func safeName(s string) string { return SafeFilename(s, "download") }

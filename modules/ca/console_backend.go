package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/bankedge/bankedge/internal/auditlog"
	"github.com/bankedge/bankedge/internal/metrics"
	"github.com/bankedge/bankedge/internal/runmode"
	"github.com/bankedge/bankedge/modules/ca/authority"
	"github.com/bankedge/bankedge/modules/ca/console"
	"github.com/bankedge/bankedge/modules/ca/registry"
	"github.com/bankedge/bankedge/modules/ca/roles"
	"github.com/bankedge/bankedge/modules/cluster"
)

// newConsole makes the admin console over the app, for bankedge_api to
// mount under prefix. Its CSRF key lives in storage, so that every
// instance sharing the storage accepts the others' forms and a reload
// keeps open pages working.
func (a *App) newConsole(ctx context.Context, prefix string, trustedOrigins []string, logger *zap.Logger) (*console.Console, error) {
	key, err := consoleKey(ctx, a.registry.Storage)
	if err != nil {
		return nil, err
	}
	return console.New(console.Options{Backend: consoleBackend{a}, Prefix: prefix, Key: key, TrustedOrigins: trustedOrigins, Logger: logger})
}

// consoleKeyName is the storage key of the console's CSRF key.
const consoleKeyName = "bankedge/console/csrf.key"

// consoleKey loads the console's CSRF key from storage, creating it once.
// A configuration check (bankedge validate) writes nothing: it gets a key
// of its own.
func consoleKey(ctx context.Context, st certmagic.Storage) ([]byte, error) {
	if b, err := st.Load(ctx, consoleKeyName); err == nil && len(b) >= 32 {
		return b, nil
	}
	if runmode.ValidateOnly {
		return nil, nil
	}
	if err := st.Lock(ctx, consoleKeyName); err != nil {
		return nil, fmt.Errorf("locking the console key: %w", err)
	}
	defer func() { _ = st.Unlock(context.WithoutCancel(ctx), consoleKeyName) }()
	b, err := st.Load(ctx, consoleKeyName)
	if err == nil && len(b) >= 32 {
		return b, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("loading the console key: %w", err)
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	if err := st.Store(ctx, consoleKeyName, b); err != nil {
		return nil, fmt.Errorf("storing the console key: %w", err)
	}
	return b, nil
}

// actorOf is the user of a request as Caddy's authentication handler
// identified it ({http.auth.user.id}, empty without one), with the roles
// of the assignments and of {http.auth.user.roles} (set by jwt_auth).
func actorOf(r *http.Request, assigned roles.Assignments) console.Actor {
	remote, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		remote = r.RemoteAddr
	}
	a := console.Actor{RemoteIP: remote}
	var claim string
	var hasClaim bool
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		a.User, _ = repl.GetString("http.auth.user.id")
		claim, hasClaim = repl.GetString("http.auth.user.roles")
	}
	a.Roles = assigned.Resolve(a.User, roles.FromClaim(claim), hasClaim)
	return a
}

// serveConsole serves the console to an authenticated user. Without an
// authentication handler in front there is no user: the console answers
// 401 and shows nothing.
func (h *API) serveConsole(w http.ResponseWriter, r *http.Request) {
	if a := actorOf(r, h.Roles); a.User != "" {
		r = r.WithContext(console.WithActor(r.Context(), a))
	}
	h.console.ServeHTTP(w, r)
}

// consoleBackend is the console's door to the app: each method checks
// nothing itself, but runs the operation of service_*.go that the REST
// API runs, with an audit trail naming the console's user, the roles it
// used and the request id, and turns refusals into what the console shows.
type consoleBackend struct{ app *App }

var _ console.Backend = consoleBackend{}

// call runs op as by, for the permission perm, under the audit action,
// and maps its refusal for the console.
func (b consoleBackend) call(ctx context.Context, by console.Actor, action string, perm roles.Action, op func(ctx context.Context) error) error {
	t := newAuditTrail(action, by.User, by.RemoteIP, requestIDOfContext(ctx))
	t.via, t.roles = "console", (by.Roles & roles.Needed(perm)).String()
	if err := op(withAuditTrail(ctx, t)); err != nil {
		var ae *apiError
		if !errors.As(err, &ae) && errors.Is(err, cluster.ErrUnavailable) {
			err = storageUnavailable(err)
		}
		ae = b.app.settle(t, consolePrefix, err)
		if ae.status >= 500 && ae.status != http.StatusServiceUnavailable {
			return fmt.Errorf("%s failed (request id %s): %w", action, t.requestID, err)
		}
		return consoleError(ae)
	}
	return nil
}

// read runs a read-only operation, which writes no audit line.
func (b consoleBackend) read(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, cluster.ErrUnavailable) {
		return fmt.Errorf("%w: %v", console.ErrUnavailable, err)
	}
	var ae *apiError
	if errors.As(err, &ae) {
		return consoleError(ae)
	}
	return err
}

// requestIDOfContext is the request id of the request ctx belongs to.
func requestIDOfContext(ctx context.Context) string {
	if repl, ok := ctx.Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		if id := repl.ReplaceAll("{http.request.uuid}", ""); id != "" {
			return id
		}
	}
	return ""
}

// consoleError turns a refusal into what the console shows: the message
// next to its field, not found, a conflict, or an internal error (the
// request id is in the log and the audit line).
func consoleError(ae *apiError) error {
	switch {
	case errors.Is(ae, ErrNotInitialized):
		return console.ErrNotInitialized
	case ae.status == http.StatusServiceUnavailable:
		return fmt.Errorf("%w: %s", console.ErrUnavailable, ae.msg)
	case ae.status >= 500:
		return ae
	case ae.status == http.StatusNotFound && ae.field == "":
		return console.ErrNotFound
	case ae.status == http.StatusConflict && ae.field == "":
		return fmt.Errorf("%w: %s", console.ErrConflict, ae.msg)
	}
	return &console.InputError{Field: ae.field, Message: ae.msg}
}

// keyDescription names a public key for people: "ECDSA P-256", "RSA 3072".
func keyDescription(pub any) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", pub)
}

func (b consoleBackend) CA(ctx context.Context) (console.CAInfo, error) {
	auth, err := b.app.Authority()
	if err != nil {
		return console.CAInfo{}, nil
	}
	cert := auth.Certificate()
	info := console.CAInfo{
		Initialized: true, Subject: cert.Subject.String(), KeyType: keyDescription(cert.PublicKey),
		Serial: authority.SerialString(cert.SerialNumber), NotBefore: cert.NotBefore, NotAfter: cert.NotAfter,
	}
	if crl, err := auth.PublishedCRL(ctx); err == nil {
		info.CRLNextUpdate = crl.NextUpdate
		info.CRLNumber = crl.Number.String()
	}
	return info, nil
}

func (b consoleBackend) InitializeCA(ctx context.Context, by console.Actor) error {
	return b.call(ctx, by, "ca.initialize", roles.CAInitialize, func(ctx context.Context) error {
		_, created, err := b.app.initializeCA(ctx)
		if err == nil && !created {
			return &apiError{status: http.StatusConflict, msg: "the CA already exists"}
		}
		return err
	})
}

func (b consoleBackend) Certificates(ctx context.Context, f console.CertFilter) ([]authority.Record, error) {
	recs, _, err := b.app.inventory(ctx, inventoryFilter{Partner: f.Partner, Purpose: f.Purpose, Status: f.Status, ExpiringWithin: f.ExpiringWithin})
	return recs, b.read(err)
}

func (b consoleBackend) CertificatePEM(ctx context.Context, serial string) ([]byte, error) {
	pem, err := b.app.certificatePEM(ctx, serial)
	if err != nil {
		// A serial typed into a link is a page that does not exist.
		return nil, console.ErrNotFound
	}
	return pem, nil
}

func (b consoleBackend) Revoke(ctx context.Context, by console.Actor, serial, reason string) (rec authority.Record, err error) {
	err = b.call(ctx, by, "ca.revoke", roles.CARevoke, func(ctx context.Context) error {
		rec, err = b.app.revoke(ctx, serial, reason)
		return err
	})
	return rec, err
}

func (b consoleBackend) Generate(ctx context.Context, by console.Actor, req console.GenerateRequest) (f console.File, err error) {
	err = b.call(ctx, by, "ca.generate", roles.CAGenerate, func(ctx context.Context) error {
		d, err := b.app.generatePartner(ctx, generateRequest{
			PartnerID: req.PartnerID, CommonName: req.CommonName, Purpose: req.Purpose, ValidityDays: req.ValidityDays,
			DNSNames: req.DNSNames, Format: req.Format, Password: req.Password, KeyType: req.KeyType,
		})
		f = console.File{Name: d.Name, ContentType: d.ContentType, Body: d.Body, Password: d.Password}
		return err
	})
	return f, err
}

func (b consoleBackend) SignCSR(ctx context.Context, by console.Actor, req console.SignRequest) (s console.Signed, err error) {
	err = b.call(ctx, by, "ca.sign", roles.CASign, func(ctx context.Context) error {
		cert, err := b.app.signCSR(ctx, signRequest{CSRPEM: req.CSRPEM, Purpose: req.Purpose, ValidityDays: req.ValidityDays, PartnerID: req.PartnerID})
		if err == nil {
			s = console.Signed{Serial: authority.SerialString(cert.SerialNumber), PEM: certPEM(cert.Raw)}
		}
		return err
	})
	return s, err
}

func (b consoleBackend) CACertificatePEM(context.Context) ([]byte, error) {
	pem, err := b.app.caCertificatePEM()
	return pem, b.read(err)
}

func (b consoleBackend) Truststore(ctx context.Context, by console.Actor, format, password string) (f console.File, err error) {
	err = b.call(ctx, by, "ca.truststore", roles.CADownload, func(ctx context.Context) error {
		d, err := b.app.truststore(ctx, format, password)
		f = console.File{Name: d.Name, ContentType: d.ContentType, Body: d.Body, Password: d.Password}
		return err
	})
	return f, err
}

func (b consoleBackend) CRL(ctx context.Context) ([]byte, error) {
	der, err := b.app.crl(ctx)
	return der, b.read(err)
}

func (b consoleBackend) Partners(ctx context.Context) ([]registry.Partner, error) {
	return b.app.listPartners(ctx)
}

func (b consoleBackend) Partner(ctx context.Context, id string) (registry.Partner, error) {
	p, err := b.app.partner(ctx, id)
	return p, b.read(err)
}

func (b consoleBackend) CreatePartner(ctx context.Context, by console.Actor, in registry.Input) (p registry.Partner, err error) {
	err = b.call(ctx, by, "partner.create", roles.PartnerWrite, func(ctx context.Context) error {
		p, err = b.app.createPartner(ctx, in)
		return err
	})
	return p, err
}

func (b consoleBackend) UpdatePartner(ctx context.Context, by console.Actor, id string, in registry.Input) (p registry.Partner, err error) {
	err = b.call(ctx, by, "partner.update", roles.PartnerWrite, func(ctx context.Context) error {
		p, err = b.app.updatePartner(ctx, id, in)
		return err
	})
	return p, err
}

func (b consoleBackend) DeletePartner(ctx context.Context, by console.Actor, id string) error {
	return b.call(ctx, by, "partner.delete", roles.PartnerWrite, func(ctx context.Context) error {
		return b.app.deletePartner(ctx, id)
	})
}

func (b consoleBackend) Audit(_ context.Context, f console.AuditFilter) ([]console.AuditEntry, error) {
	lines := auditFeed(auditFilter{User: f.User, Partner: f.Partner, Action: f.Action, Limit: f.Limit})
	out := make([]console.AuditEntry, 0, len(lines))
	for _, e := range lines {
		ae := console.AuditEntry{Time: e.Time, Action: e.Action, User: e.Str("user"), Roles: e.Str("roles"), Partner: e.Str("partner"), Outcome: e.Str("outcome")}
		for k, v := range e.Fields {
			if !slices.Contains(auditColumns, k) {
				ae.Details = append(ae.Details, fmt.Sprintf("%s=%v", k, v))
			}
		}
		slices.Sort(ae.Details)
		out = append(out, ae)
	}
	return out, nil
}

// auditColumns are the fields the audit page shows in their own columns.
var auditColumns = []string{"user", "roles", "partner", "outcome"}

// auditFilter selects audit lines; empty fields select all.
type auditFilter struct {
	User, Partner, Action string
	Limit                 int
}

// auditFeed returns the latest audit lines of this instance matching f,
// newest first: the user (any case), the partner, an action prefix.
func auditFeed(f auditFilter) []auditlog.Entry {
	return auditlog.Recent.Latest(f.Limit, func(e auditlog.Entry) bool {
		return (f.User == "" || strings.EqualFold(e.Str("user"), f.User)) &&
			(f.Partner == "" || e.Str("partner") == f.Partner) &&
			strings.HasPrefix(e.Action, f.Action)
	})
}

// recentTPPs is how far back the dashboard lists TPPs.
const recentTPPs = 24 * time.Hour

func (b consoleBackend) TPPs(context.Context) ([]console.TPP, error) {
	var out []console.TPP
	for _, t := range metrics.RecentTPPs(recentTPPs) {
		out = append(out, console.TPP{OrgID: t.OrgID, Roles: t.Roles, LastSeen: t.LastSeen, Requests: t.Requests,
			Rejections: t.Rejections, LastRejection: t.LastRejection, LastRejectionAt: t.LastRejectionAt})
	}
	return out, nil
}

// Refused audits what the console refused before any operation ran: a
// missing role, a failed CSRF or origin check. The line names the roles
// the user holds.
func (b consoleBackend) Refused(ctx context.Context, by console.Actor, action roles.Action, reason string) {
	t := newAuditTrail(string(action), by.User, by.RemoteIP, requestIDOfContext(ctx))
	t.via, t.roles = "console", by.Roles.String()
	t.log(b.app.audit, "forbidden", zap.String("needed_roles", roles.Needed(action).String()), zap.String("reason", reason))
}

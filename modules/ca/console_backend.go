package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
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
	"github.com/bankedge/bankedge/modules/ca/authority"
	"github.com/bankedge/bankedge/modules/ca/console"
	"github.com/bankedge/bankedge/modules/ca/keystore"
	"github.com/bankedge/bankedge/modules/ca/registry"
	"github.com/bankedge/bankedge/modules/ca/roles"
)

// newConsole makes the admin console over the app, for a handler to mount
// under prefix. Its CSRF key lives in storage, so that every instance
// sharing the storage accepts the others' forms and a reload keeps open
// pages working.
func (a *App) newConsole(ctx context.Context, prefix string, logger *zap.Logger) (*console.Console, error) {
	key, err := consoleKey(ctx, a.registry.Storage)
	if err != nil {
		return nil, err
	}
	return console.New(console.Options{Backend: consoleBackend{a}, Prefix: prefix, Key: key, Logger: logger})
}

// consoleKeyName is the storage key of the console's CSRF key.
const consoleKeyName = "bankedge/console/csrf.key"

// consoleKey loads the console's CSRF key from storage, creating it once.
func consoleKey(ctx context.Context, st certmagic.Storage) ([]byte, error) {
	if b, err := st.Load(ctx, consoleKeyName); err == nil && len(b) >= 32 {
		return b, nil
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

// consoleActor is the console user of a request authenticated by Caddy's
// authentication handler: {http.auth.user.id}, with the roles of the
// assignments and of {http.auth.user.roles} (set by jwt_auth).
func consoleActor(r *http.Request, assigned roles.Assignments) (console.Actor, bool) {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return console.Actor{}, false
	}
	user, _ := repl.GetString("http.auth.user.id")
	if user == "" {
		return console.Actor{}, false
	}
	claim, hasClaim := repl.GetString("http.auth.user.roles")
	remote, _, _ := net.SplitHostPort(r.RemoteAddr)
	return console.Actor{User: user, Roles: assigned.Resolve(user, roles.FromClaim(claim), hasClaim), RemoteIP: remote}, true
}

// consoleBackend is the console's view of the app. Every change writes
// its line to bankedge.audit with the user and the roles it held.
type consoleBackend struct{ app *App }

var _ console.Backend = consoleBackend{}

func (b consoleBackend) audit(by console.Actor, action, outcome string, fields ...zap.Field) {
	b.app.audit.Info(action, append([]zap.Field{
		zap.String("user", by.User), zap.String("roles", by.Roles.String()), zap.String("remote_ip", by.RemoteIP),
		zap.String("via", "console"), zap.String("outcome", outcome),
	}, fields...)...)
}

func (b consoleBackend) authority() (*authority.Authority, error) {
	auth, err := b.app.Authority()
	if err != nil {
		return nil, console.ErrNotInitialized
	}
	return auth, nil
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
	der, err := auth.CRL(ctx)
	if err != nil {
		return info, err
	}
	if crl, err := x509.ParseRevocationList(der); err == nil {
		info.CRLNextUpdate = crl.NextUpdate
		if crl.Number != nil {
			info.CRLNumber = crl.Number.String()
		}
	}
	return info, nil
}

func (b consoleBackend) InitializeCA(ctx context.Context, by console.Actor) error {
	_, err := b.app.Initialize(ctx)
	switch {
	case errors.Is(err, authority.ErrCAExists):
		b.audit(by, "ca.initialize", "exists")
		return console.ErrConflict
	case err != nil:
		b.audit(by, "ca.initialize", "failed", zap.Error(err))
		return err
	}
	b.audit(by, "ca.initialize", "created")
	return nil
}

func (b consoleBackend) Certificates(ctx context.Context, f console.CertFilter) ([]authority.Record, error) {
	auth, err := b.authority()
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(f.ExpiringWithin)
	// The index answers partner, status and expiry; purpose is filtered
	// here.
	q := authority.Query{PartnerID: f.Partner, Status: f.Status}
	if f.ExpiringWithin > 0 {
		q.ExpiresBefore = deadline
	}
	page, err := auth.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	recs := page.Records
	out := recs[:0]
	for _, r := range recs {
		switch {
		case f.Partner != "" && r.PartnerID != f.Partner,
			f.Purpose != "" && !strings.EqualFold(string(r.Purpose), f.Purpose),
			f.Status != "" && r.Status != f.Status,
			f.ExpiringWithin > 0 && (r.Status != authority.StatusValid || r.NotAfter.After(deadline)):
			continue
		}
		r.DER = nil
		out = append(out, r)
	}
	return out, nil
}

// serial parses a serial typed or linked by the console.
func serial(s string) (*big.Int, error) {
	n, err := authority.ParseSerial(s)
	if err != nil {
		return nil, &console.InputError{Field: "serial", Message: err.Error()}
	}
	return n, nil
}

func (b consoleBackend) CertificatePEM(ctx context.Context, s string) ([]byte, error) {
	auth, err := b.authority()
	if err != nil {
		return nil, err
	}
	n, err := serial(s)
	if err != nil {
		return nil, console.ErrNotFound
	}
	rec, err := auth.Lookup(ctx, n)
	if errors.Is(err, authority.ErrNotFound) {
		return nil, console.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rec.DER}), nil
}

func (b consoleBackend) Revoke(ctx context.Context, by console.Actor, s, reason string) (authority.Record, error) {
	auth, err := b.authority()
	if err != nil {
		return authority.Record{}, err
	}
	n, err := serial(s)
	if err != nil {
		return authority.Record{}, err
	}
	code, err := authority.ParseReason(reason)
	if err != nil {
		return authority.Record{}, &console.InputError{Field: "reason", Message: err.Error()}
	}
	rec, err := auth.Revoke(ctx, n, code)
	if err != nil {
		b.audit(by, "ca.revoke", "refused", zap.String("serial", authority.SerialString(n)), zap.String("reason", err.Error()))
		switch {
		case errors.Is(err, authority.ErrNotFound):
			return rec, &console.InputError{Field: "serial", Message: "no certificate with this serial was issued by this CA"}
		case errors.Is(err, authority.ErrRevoked):
			return rec, console.ErrConflict
		}
		return rec, err
	}
	b.audit(by, "ca.revoke", "revoked", zap.String("serial", rec.Serial), zap.String("partner", rec.PartnerID), zap.String("revocation_reason", rec.RevocationReason))
	return rec, nil
}

// issueParams checks what generate and sign have in common: the purpose
// (CLIENT or SERVER), the validity and the partner, which must exist.
func (b consoleBackend) issueParams(ctx context.Context, purpose string, days int, partnerID string) (authority.Purpose, time.Duration, error) {
	p, err := authority.ParsePurpose(purpose)
	if err != nil || p != authority.PurposeClient && p != authority.PurposeServer {
		return "", 0, &console.InputError{Field: "purpose", Message: "must be CLIENT or SERVER"}
	}
	if partnerID != "" {
		if _, err := b.app.Registry().Get(ctx, partnerID); err != nil {
			if errors.Is(err, registry.ErrNotFound) {
				return "", 0, &console.InputError{Field: "partnerId", Message: "no such partner"}
			}
			return "", 0, err
		}
	}
	return p, time.Duration(days) * 24 * time.Hour, nil
}

// caRefusal turns a policy refusal of the CA into a message for the form.
func caRefusal(err error) error {
	if errors.Is(err, authority.ErrPolicy) {
		return &console.InputError{Message: err.Error()}
	}
	return err
}

func (b consoleBackend) Generate(ctx context.Context, by console.Actor, req console.GenerateRequest) (console.File, error) {
	auth, err := b.authority()
	if err != nil {
		return console.File{}, err
	}
	if req.PartnerID == "" {
		return console.File{}, &console.InputError{Field: "partnerId", Message: "choose a partner"}
	}
	purpose, validity, err := b.issueParams(ctx, req.Purpose, req.ValidityDays, req.PartnerID)
	if err != nil {
		return console.File{}, err
	}
	format, err := keystore.ParseFormat(req.Format)
	if err != nil {
		return console.File{}, &console.InputError{Field: "format", Message: err.Error()}
	}
	kt, err := authority.ParseKeyType(req.KeyType)
	if err != nil || kt == authority.Ed25519 {
		return console.File{}, &console.InputError{Field: "keyType", Message: "must be rsa-2048, rsa-3072, rsa-4096, ecdsa-p256 or ecdsa-p384"}
	}
	cn := req.CommonName
	if cn == "" {
		cn = req.PartnerID
	}
	tmpl := &x509.Certificate{}
	tmpl.Subject.CommonName = cn
	if purpose == authority.PurposeServer {
		for _, n := range slices.Compact(append([]string{cn}, req.DNSNames...)) {
			if ip := net.ParseIP(n); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, n)
			}
		}
	}
	key, cert, err := auth.Generate(ctx, kt, authority.Request{
		Template: tmpl, Purpose: purpose, Validity: validity, PartnerID: req.PartnerID, IssuedBy: by.User,
	})
	if err != nil {
		b.audit(by, "ca.generate", "refused", zap.String("partner", req.PartnerID), zap.String("reason", err.Error()))
		return console.File{}, caRefusal(err)
	}
	f := console.File{Name: req.PartnerID + format.Extension(), ContentType: format.ContentType()}
	password := req.Password
	if password == "" {
		if password, err = keystore.RandomPassword(); err != nil {
			return console.File{}, err
		}
		f.Password = password
	}
	f.Body, err = keystore.EncodeKeystore(keystore.Entry{
		Alias: req.PartnerID, Key: key, Cert: cert, Chain: []*x509.Certificate{auth.Certificate()}, CAAlias: "bankedge-ca",
	}, format, password)
	if err != nil {
		return console.File{}, fmt.Errorf("encoding the keystore: %w", err)
	}
	b.audit(by, "ca.generate", "issued", zap.String("serial", authority.SerialString(cert.SerialNumber)),
		zap.String("subject", cert.Subject.String()), zap.String("purpose", string(purpose)), zap.String("partner", req.PartnerID),
		zap.Time("not_after", cert.NotAfter), zap.String("format", string(format)))
	return f, nil
}

func (b consoleBackend) SignCSR(ctx context.Context, by console.Actor, req console.SignRequest) (console.Signed, error) {
	auth, err := b.authority()
	if err != nil {
		return console.Signed{}, err
	}
	block, _ := pem.Decode([]byte(strings.TrimSpace(req.CSRPEM)))
	if block == nil || block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
		return console.Signed{}, &console.InputError{Field: "csrPem", Message: "paste a PEM block -----BEGIN CERTIFICATE REQUEST-----"}
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return console.Signed{}, &console.InputError{Field: "csrPem", Message: "not a certificate signing request: " + err.Error()}
	}
	purpose, validity, err := b.issueParams(ctx, req.Purpose, req.ValidityDays, req.PartnerID)
	if err != nil {
		return console.Signed{}, err
	}
	cert, err := auth.SignCSR(ctx, csr, purpose, validity, req.PartnerID, by.User)
	if err != nil {
		b.audit(by, "ca.sign", "refused", zap.String("partner", req.PartnerID), zap.String("reason", err.Error()))
		return console.Signed{}, caRefusal(err)
	}
	s := authority.SerialString(cert.SerialNumber)
	b.audit(by, "ca.sign", "issued", zap.String("serial", s), zap.String("subject", cert.Subject.String()),
		zap.String("purpose", string(purpose)), zap.String("partner", req.PartnerID), zap.Time("not_after", cert.NotAfter))
	return console.Signed{Serial: s, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})}, nil
}

func (b consoleBackend) CACertificatePEM(context.Context) ([]byte, error) {
	auth, err := b.authority()
	if err != nil {
		return nil, err
	}
	return auth.CertificatePEM(), nil
}

func (b consoleBackend) Truststore(_ context.Context, by console.Actor, format, password string) (console.File, error) {
	auth, err := b.authority()
	if err != nil {
		return console.File{}, err
	}
	f, err := keystore.ParseFormat(format)
	if err != nil {
		return console.File{}, &console.InputError{Field: "format", Message: err.Error()}
	}
	file := console.File{Name: "truststore" + f.Extension(), ContentType: f.ContentType()}
	if password == "" && f != keystore.FormatPEM {
		if password, err = keystore.RandomPassword(); err != nil {
			return file, err
		}
		file.Password = password
	}
	if file.Body, err = keystore.EncodeTruststore([]*x509.Certificate{auth.Certificate()}, f, "bankedge-ca", password); err != nil {
		return file, fmt.Errorf("encoding the truststore: %w", err)
	}
	b.audit(by, "ca.truststore", "sent", zap.String("format", string(f)))
	return file, nil
}

func (b consoleBackend) CRL(ctx context.Context) ([]byte, error) {
	auth, err := b.authority()
	if err != nil {
		return nil, err
	}
	return auth.CRL(ctx)
}

// registryError turns registry errors into what the console shows.
func registryError(err error) error {
	var ve *registry.ValidationError
	switch {
	case errors.As(err, &ve):
		return &console.InputError{Field: ve.Field, Message: ve.Message}
	case errors.Is(err, registry.ErrNotFound):
		return console.ErrNotFound
	case errors.Is(err, registry.ErrExists):
		return console.ErrConflict
	}
	return err
}

func (b consoleBackend) Partners(ctx context.Context) ([]registry.Partner, error) {
	return b.app.Registry().List(ctx)
}

func (b consoleBackend) Partner(ctx context.Context, id string) (registry.Partner, error) {
	p, err := b.app.Registry().Get(ctx, id)
	return p, registryError(err)
}

func (b consoleBackend) CreatePartner(ctx context.Context, by console.Actor, in registry.Input) (registry.Partner, error) {
	id := ""
	if in.PartnerID != nil {
		id = *in.PartnerID
	}
	p, err := b.app.Registry().Create(ctx, in)
	if err != nil {
		b.audit(by, "partner.create", "refused", zap.String("partner", id), zap.String("reason", err.Error()))
		return p, registryError(err)
	}
	b.audit(by, "partner.create", "created", zap.String("partner", p.PartnerID))
	return p, nil
}

func (b consoleBackend) UpdatePartner(ctx context.Context, by console.Actor, id string, in registry.Input) (registry.Partner, error) {
	p, err := b.app.Registry().Update(ctx, id, in)
	if err != nil {
		b.audit(by, "partner.update", "refused", zap.String("partner", id), zap.Bool("password_changed", false), zap.String("reason", err.Error()))
		return p, registryError(err)
	}
	b.audit(by, "partner.update", "updated", zap.String("partner", id), zap.Bool("password_changed", in.Password != nil))
	return p, nil
}

func (b consoleBackend) DeletePartner(ctx context.Context, by console.Actor, id string) error {
	if err := b.app.Registry().Delete(ctx, id); err != nil {
		b.audit(by, "partner.delete", "refused", zap.String("partner", id), zap.String("reason", err.Error()))
		return registryError(err)
	}
	b.audit(by, "partner.delete", "deleted", zap.String("partner", id))
	return nil
}

// auditColumns are the fields the audit page shows in their own columns.
var auditColumns = []string{"user", "roles", "partner", "outcome"}

func (b consoleBackend) Audit(_ context.Context, f console.AuditFilter) ([]console.AuditEntry, error) {
	lines := auditlog.Recent.Latest(f.Limit, func(e auditlog.Entry) bool {
		return (f.User == "" || strings.EqualFold(e.Str("user"), f.User)) &&
			(f.Partner == "" || e.Str("partner") == f.Partner) &&
			strings.HasPrefix(e.Action, f.Action)
	})
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

func (b consoleBackend) Refused(_ context.Context, by console.Actor, action roles.Action, reason string) {
	b.audit(by, string(action), "forbidden", zap.String("reason", reason))
}

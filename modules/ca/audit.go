package ca

import (
	"context"
	"crypto/x509"
	"errors"
	"sync"

	"go.uber.org/zap"

	"github.com/bankedge/bankedge/modules/ca/authority"
)

// auditTrail is what the audit lines of one request (or one programmatic
// issuance) have in common: the action, the user, where the request came
// from and its id. It also knows whether a line was written, so that a
// refusal is audited once, by whoever saw it first.
type auditTrail struct {
	action, user, remoteIP, requestID string
	// via is the door of a person's request, "api" or "console"; roles
	// are the roles its user used (on a refusal: held). Both are empty for
	// programmatic issuances, whose lines carry neither.
	via, roles string

	mu     sync.Mutex
	fields []zap.Field
	done   bool
}

func newAuditTrail(action, user, remoteIP, requestID string) *auditTrail {
	return &auditTrail{action: action, user: user, remoteIP: remoteIP, requestID: requestID}
}

// with adds fields to every later line of the trail.
func (t *auditTrail) with(fields ...zap.Field) {
	t.mu.Lock()
	t.fields = append(t.fields, fields...)
	t.mu.Unlock()
}

// log writes one line to logger: the action as message, then user,
// remote_ip and request_id (when known), outcome and fields.
func (t *auditTrail) log(logger *zap.Logger, outcome string, fields ...zap.Field) {
	t.logAs(logger, t.user, outcome, fields...)
}

// logAs is log with another user, for a trail that has none.
func (t *auditTrail) logAs(logger *zap.Logger, user, outcome string, fields ...zap.Field) {
	t.mu.Lock()
	t.done = true
	extra := append([]zap.Field(nil), t.fields...)
	t.mu.Unlock()
	if user == "" {
		user = "anonymous"
	}
	line := []zap.Field{zap.String("user", user)}
	if t.via != "" {
		line = append(line, zap.String("roles", t.roles))
	}
	if t.remoteIP != "" {
		line = append(line, zap.String("remote_ip", t.remoteIP))
	}
	if t.requestID != "" {
		line = append(line, zap.String("request_id", t.requestID))
	}
	if t.via != "" {
		line = append(line, zap.String("via", t.via))
	}
	line = append(line, zap.String("outcome", outcome))
	// One field per key: the line's own fields win over the trail's.
	seen := map[string]bool{}
	for _, f := range line {
		seen[f.Key] = true
	}
	for _, f := range append(fields, extra...) {
		if !seen[f.Key] {
			seen[f.Key] = true
			line = append(line, f)
		}
	}
	logger.Info(t.action, line...)
}

func (t *auditTrail) written() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.done
}

type auditTrailKey struct{}

func withAuditTrail(ctx context.Context, t *auditTrail) context.Context {
	return context.WithValue(ctx, auditTrailKey{}, t)
}

func auditTrailFrom(ctx context.Context) *auditTrail {
	t, _ := ctx.Value(auditTrailKey{}).(*auditTrail)
	return t
}

// WithAuditAction names the audit line of the issuances made with ctx,
// e.g. "ca.psd2.generate"; without it they are "ca.issue" lines. Every
// issuance of the bankedge CA is audited, whoever makes it, with
// authority.Request.IssuedBy as the user: a program such as the sandbox
// issues through App.Authority() and sets IssuedBy ("bankedge sandbox").
func WithAuditAction(ctx context.Context, action string) context.Context {
	return withAuditTrail(ctx, newAuditTrail(action, "", "", ""))
}

// auditIssuance is the authority's OnIssue: one line per issuance or
// refusal, in the trail of the request that asked for it, if any.
func (a *App) auditIssuance(ctx context.Context, req authority.Request, cert *x509.Certificate, err error) {
	t := auditTrailFrom(ctx)
	if t == nil {
		t = newAuditTrail("ca.issue", "", "", "")
	}
	user := t.user
	if user == "" {
		user = req.IssuedBy
	}
	if err != nil {
		fields := []zap.Field{zap.String("purpose", string(req.Purpose)), zap.String("partner", req.PartnerID)}
		if req.Template != nil {
			fields = append(fields, zap.String("subject", req.Template.Subject.String()))
		}
		outcome, reason := "refused", err.Error()
		if !errors.Is(err, authority.ErrPolicy) && !errors.Is(err, authority.ErrReadOnly) {
			// The error may name storage internals: the log has it, the
			// audit line says what happened.
			outcome, reason = "failed", "internal error"
			a.logger.Error("issuing a certificate failed", zap.String("request_id", t.requestID), zap.Error(err))
		}
		t.logAs(a.audit, user, outcome, append(fields, zap.String("reason", reason))...)
		return
	}
	a.meterIssued(req)
	t.logAs(a.audit, user, "issued", certFields(cert, string(req.Purpose), req.PartnerID)...)
}

// certFields describes an issued certificate for the audit log.
func certFields(cert *x509.Certificate, purpose, partner string) []zap.Field {
	return []zap.Field{
		zap.String("serial", authority.SerialString(cert.SerialNumber)),
		zap.String("subject", cert.Subject.String()), zap.String("purpose", purpose), zap.String("partner", partner),
		zap.Time("not_after", cert.NotAfter),
	}
}

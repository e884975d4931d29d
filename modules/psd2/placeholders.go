package psd2

import (
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// Request variables the handlers share, and from which the {psd2.*}
// placeholders are read.
const (
	// varTPP holds the *TPP that psd2_qwac verified, for psd2_qseal.
	varTPP = "psd2.tpp"
	// varResult is "ok" or the Berlin Group code of the refusal.
	varResult = "psd2.result"
	// varResultText is the refusal's text.
	varResultText = "psd2.result_text"
)

// resultOK is boxed once, so that an accepted request does not allocate
// for it.
var resultOK any = "ok"

// providePlaceholders makes the {psd2.*} placeholders available for the
// rest of the request, the access log included:
//
//	{psd2.result}          ok, or the Berlin Group code of the refusal
//	{psd2.result_text}     the refusal's text (empty when accepted)
//	{psd2.tpp.org_id}      the verified TPP: organizationIdentifier,
//	{psd2.tpp.name}        subject O (else CN), roles (comma-separated),
//	{psd2.tpp.roles}       NCA id and name, SHA-256 of the QWAC;
//	{psd2.tpp.nca_id}      empty while the QWAC is not verified
//	{psd2.tpp.nca_name}
//	{psd2.tpp.cert_sha256}
//
// It registers one lazy provider over the request's variables rather than
// setting values: placeholders cost nothing unless something reads them.
// It returns the variables, nil when the request has none (outside Caddy's
// HTTP server).
func providePlaceholders(r *http.Request) map[string]any {
	vars, _ := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any)
	if vars == nil {
		return nil
	}
	if _, done := vars[varResult]; done {
		// An earlier psd2 handler of this request registered it.
		return vars
	}
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Map(func(key string) (any, bool) { return placeholder(vars, key) })
	}
	vars[varResult] = resultOK
	return vars
}

func placeholder(vars map[string]any, key string) (any, bool) {
	if !strings.HasPrefix(key, "psd2.") {
		return nil, false
	}
	switch key {
	case varResult:
		return vars[varResult], true
	case varResultText:
		// The map holds it boxed already.
		if text := vars[varResultText]; text != nil {
			if _, ok := text.(string); ok {
				return text, true
			}
		}
		return "", true
	}
	tpp, _ := vars[varTPP].(*TPP)
	if tpp == nil {
		tpp = &noTPP
	}
	var field *string
	var boxed any
	switch key {
	case "psd2.tpp.org_id":
		field, boxed = &tpp.OrgID, tpp.values.orgID
	case "psd2.tpp.name":
		field, boxed = &tpp.Name, tpp.values.name
	case "psd2.tpp.roles":
		field, boxed = &tpp.RolesCSV, tpp.values.roles
	case "psd2.tpp.nca_id":
		field, boxed = &tpp.NCAID, tpp.values.ncaID
	case "psd2.tpp.nca_name":
		field, boxed = &tpp.NCAName, tpp.values.ncaName
	case "psd2.tpp.cert_sha256":
		field, boxed = &tpp.CertSHA256, tpp.values.certSHA256
	default:
		return nil, false
	}
	if boxed != nil {
		return boxed, true
	}
	return *field, true
}

// noTPP stands for a TPP not verified (yet): its placeholders are empty.
var noTPP TPP

// refuse records a refusal for the placeholders, logs it at debug level
// (the access log carries it, see README) and answers it.
func refuse(w http.ResponseWriter, r *http.Request, vars map[string]any, logger *zap.Logger, rej *rejection, tpp *TPP) {
	meterRefusal(vars, tpp, rej.Code)
	if vars != nil {
		vars[varResult] = string(rej.Code)
		vars[varResultText] = rej.Text
		if tpp != nil {
			vars[varTPP] = tpp
		}
	}
	if ce := logger.Check(zap.DebugLevel, "psd2 request refused"); ce != nil {
		orgID := ""
		if tpp != nil {
			orgID = tpp.OrgID
		}
		ce.Write(
			zap.String("code", string(rej.Code)),
			zap.Int("status", rej.Status),
			zap.String("text", rej.Text),
			zap.String("org_id", orgID),
			zap.String("request_id", header(r, "X-Request-Id")),
			zap.String("remote_ip", r.RemoteAddr),
			zap.String("method", r.Method),
			zap.String("uri", r.RequestURI),
		)
	}
	rej.write(w)
}

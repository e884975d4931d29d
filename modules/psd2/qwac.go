package psd2

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/bankedge/bankedge/internal/certprofile/qcstatements"
	"github.com/bankedge/bankedge/modules/psd2/certheader"
)

func init() {
	caddy.RegisterModule(&QWAC{})
	httpcaddyfile.RegisterHandlerDirective("psd2_qwac", parseQWAC)
}

// Header names of the transport identity, as they appear in error paths.
const (
	headerClientCertificate = "X-Client-Certificate"
	headerRequestID         = "X-Request-ID"
)

// header returns the first value of a header by its canonical key, which
// skips the canonicalisation (and its allocation) of Header.Get.
func header(r *http.Request, canonicalKey string) string {
	if v := r.Header[canonicalKey]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// tppVar is the request variable under which psd2_qwac hands the verified
// TPP to psd2_qseal.
const tppVar = "psd2.tpp"

// defaultStripHeaders are the headers the example configuration forwards
// upstream with the verified identity.
var defaultStripHeaders = []string{
	"X-TPP-Org-Id", "X-TPP-Name", "X-TPP-Roles", "X-TPP-NCA-Id", "X-TPP-NCA-Name", "X-TPP-Cert-SHA256",
}

// QWAC enforces the transport identity of a PSD2 third-party provider. The
// TLS listener must request a client certificate (client_auth mode require);
// this handler verifies that certificate itself, because QWACs that carry
// only the serverAuth EKU fail Go's client-certificate verification.
//
// A request passes when the TLS client certificate and the
// X-Client-Certificate header hold the same certificate, that certificate
// chains to the trust pool, is within its validity, carries the PSD2
// QCStatement of ETSI TS 119 495 with an organizationIdentifier, and grants a
// role that the route needs. Otherwise the handler answers with a Berlin
// Group error (401, or 400 for FORMAT_ERROR).
//
// On success it sets the placeholders {psd2.tpp.org_id}, {psd2.tpp.name},
// {psd2.tpp.roles}, {psd2.tpp.nca_id}, {psd2.tpp.nca_name} and
// {psd2.tpp.cert_sha256}, and removes client-sent copies of the identity
// headers so that only values set from these placeholders reach upstream.
type QWAC struct {
	// TrustPool is the source of the QTSP certificates that QWACs must
	// chain to; any tls.ca_pool.source module, e.g. file or bankedge.
	// Intermediates may also come from the TLS handshake.
	TrustPoolRaw json.RawMessage `json:"trust_pool,omitempty" caddy:"namespace=tls.ca_pool.source inline_key=provider"`

	// RequireRoles, when set, replaces the Berlin Group path map for this
	// route: the TPP must hold at least one of these roles (PSP_AS, PSP_PI,
	// PSP_AI, PSP_IC). By default /v1/accounts, /v1/card-accounts and
	// /v1/consents need PSP_AI; /v1/payments, /v1/bulk-payments and
	// /v1/periodic-payments need PSP_PI; /v1/funds-confirmations and
	// /v2/consents/confirmation-of-funds need PSP_IC; other paths need no
	// particular role.
	RequireRoles []string `json:"require_roles,omitempty"`

	// StripHeaders are request headers removed before the request goes
	// on, so that a client cannot pose as a verified TPP by sending them.
	// Default: X-TPP-Org-Id, X-TPP-Name, X-TPP-Roles, X-TPP-NCA-Id,
	// X-TPP-NCA-Name and X-TPP-Cert-SHA256.
	StripHeaders []string `json:"strip_headers,omitempty"`

	// CacheSize bounds the number of verified certificates kept, keyed by
	// the SHA-256 of their DER. Entries end at the certificate's expiry.
	// Default: 1024.
	CacheSize int `json:"cache_size,omitempty"`

	roles     []qcstatements.Role
	stripKeys []string
	verifier  *certVerifier
	logger    *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (*QWAC) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.psd2_qwac",
		New: func() caddy.Module { return new(QWAC) },
	}
}

// Provision loads the trust pool and sets defaults.
func (h *QWAC) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	pool, err := loadTrustPool(ctx, h, "TrustPoolRaw", h.TrustPoolRaw)
	if err != nil {
		return err
	}
	for _, name := range h.RequireRoles {
		r, err := qcstatements.ParseRole(name)
		if err != nil {
			return fmt.Errorf("require_roles: %w", err)
		}
		h.roles = append(h.roles, r)
	}
	if h.StripHeaders == nil {
		h.StripHeaders = defaultStripHeaders
	}
	for _, name := range h.StripHeaders {
		h.stripKeys = append(h.stripKeys, http.CanonicalHeaderKey(name))
	}
	if h.CacheSize == 0 {
		h.CacheSize = 1024
	}
	h.verifier = newCertVerifier(pool, qcstatements.QcTypeWeb, h.CacheSize)
	return nil
}

// Validate checks the configuration.
func (h *QWAC) Validate() error {
	if h.CacheSize < 0 {
		return fmt.Errorf("cache_size must be positive, got %d", h.CacheSize)
	}
	return nil
}

// derPool holds buffers for decoded header certificates.
var derPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// ServeHTTP checks the transport identity and passes the request on.
func (h *QWAC) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	tpp, rej := h.check(r)
	if rej != nil {
		logRejection(h.logger, r, rej, tpp)
		rej.write(w)
		return nil
	}
	for _, key := range h.stripKeys {
		delete(r.Header, key)
	}
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		// One lazy provider rather than six Set calls: placeholders cost
		// nothing unless a later handler uses them.
		repl.Map(tpp.placeholder)
	}
	caddyhttp.SetVar(r.Context(), tppVar, tpp)
	return next.ServeHTTP(w, r)
}

func (h *QWAC) check(r *http.Request) (*TPP, *rejection) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, reject(CertificateMissing, "no TLS client certificate: the QWAC must be presented in the TLS handshake")
	}
	peer := r.TLS.PeerCertificates[0]
	value := header(r, headerClientCertificate)
	if value == "" {
		return nil, rejectPath(CertificateMissing, headerClientCertificate, "X-Client-Certificate header is missing")
	}
	sum := sha256Sum(peer.Raw)
	vc := h.verifier.lookup(sum, h.verifier.now())
	// Most clients send the header as base64 DER, which then equals the
	// cached encoding of the handshake certificate: no decode needed.
	if vc == nil || value != vc.base64DER {
		buf := derPool.Get().(*[]byte)
		der, err := certheader.AppendDecode((*buf)[:0], value)
		same := err == nil && bytes.Equal(der, peer.Raw)
		*buf = der[:0]
		derPool.Put(buf)
		if err != nil {
			return nil, rejectPath(CertificateInvalid, headerClientCertificate, "X-Client-Certificate cannot be decoded: "+err.Error())
		}
		if !same {
			return nil, rejectPath(CertificateInvalid, headerClientCertificate, "X-Client-Certificate is not the certificate presented in the TLS handshake")
		}
	}
	if vc == nil {
		var rej *rejection
		if vc, rej = h.verifier.verify(peer, r.TLS.PeerCertificates[1:], sum); rej != nil {
			return nil, rej
		}
	}
	tpp := &vc.tpp
	required := h.roles
	if required == nil {
		if role := requiredRoleForPath(r.URL.Path); role != "" {
			required = []qcstatements.Role{role}
		}
	}
	if len(required) > 0 && !tpp.HasAnyRole(required) {
		return tpp, reject(RoleInvalid, fmt.Sprintf("the QWAC grants %s but this service needs %v", tpp.RolesCSV, required))
	}
	return tpp, nil
}

// logRejection writes one info line per refused request.
func logRejection(logger *zap.Logger, r *http.Request, rej *rejection, tpp *TPP) {
	ce := logger.Check(zap.InfoLevel, "psd2 request rejected")
	if ce == nil {
		return
	}
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

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	psd2_qwac [<matcher>] {
//		trust_pool <module> [<args…>] [{ … }]
//		require_roles <role…>
//		strip_headers <header…>
//		cache_size <n>
//	}
func (h *QWAC) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "trust_pool":
			raw, err := unmarshalTrustPool(d)
			if err != nil {
				return err
			}
			h.TrustPoolRaw = raw
		case "require_roles":
			h.RequireRoles = d.RemainingArgs()
			if len(h.RequireRoles) == 0 {
				return d.ArgErr()
			}
		case "strip_headers":
			h.StripHeaders = d.RemainingArgs()
		case "cache_size":
			n, err := unmarshalPositiveInt(d)
			if err != nil {
				return err
			}
			h.CacheSize = n
		default:
			return d.Errf("unrecognized psd2_qwac option %q", d.Val())
		}
	}
	return nil
}

func parseQWAC(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(QWAC)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*QWAC)(nil)
	_ caddy.Validator             = (*QWAC)(nil)
	_ caddyhttp.MiddlewareHandler = (*QWAC)(nil)
	_ caddyfile.Unmarshaler       = (*QWAC)(nil)
)

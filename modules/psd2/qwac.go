package psd2

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/bankedge/bankedge/internal/caddyfileargs"
	"github.com/bankedge/bankedge/internal/certprofile/qcstatements"
	"github.com/bankedge/bankedge/internal/metrics"
	"github.com/bankedge/bankedge/modules/psd2/certheader"
	"github.com/bankedge/bankedge/modules/trust"
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
// A request passes when its path is in canonical form, it carries each
// identity and signature header at most once, the TLS client certificate
// (or, behind a TLS-terminating load balancer, the RFC 9440 Client-Cert
// header it set) and the X-Client-Certificate header hold the same
// certificate, that certificate chains to the trust pool, is within its
// validity, is not blocked by the bank nor revoked (by the bankedge CA, when
// the configuration has the bankedge app, and per OCSP and CRL with a
// revocation block), carries the PSD2 QCStatement of ETSI TS 119 495 with
// an organizationIdentifier, and grants a role that the path needs.
// Otherwise the handler answers with a Berlin Group error.
//
// It sets the placeholders {psd2.result}, {psd2.result_text},
// {psd2.tpp.org_id}, {psd2.tpp.name}, {psd2.tpp.roles}, {psd2.tpp.nca_id},
// {psd2.tpp.nca_name} and {psd2.tpp.cert_sha256}, and removes client-sent
// copies of the identity headers (so that only values set from these
// placeholders reach upstream) and of the headers with which a client could
// override the method, the path or its address (X-Original-URL,
// X-Rewrite-URL, X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override,
// Forwarded, X-Real-IP, X-Forwarded-*), and always Client-Cert and
// Client-Cert-Chain.
type QWAC struct {
	// TrustPool is the source of the QTSP certificates that QWACs must
	// chain to; any tls.ca_pool.source module, e.g. file, bankedge or
	// eu_trusted_list (whose refreshes count at once). Intermediates may
	// also come from the TLS handshake.
	TrustPoolRaw json.RawMessage `json:"trust_pool,omitempty" caddy:"namespace=tls.ca_pool.source inline_key=provider"`

	// Revocation checks the QWAC by OCSP and CRL: mode hard (the default
	// with the block: a status that cannot be established is refused),
	// soft (allowed and logged) or off; prefer ocsp or crl; timeout.
	// Without it only the bankedge CA's own revocations count. The
	// bankedge CA's certificates are always answered by its own view.
	Revocation *trust.RevocationPolicy `json:"revocation,omitempty"`

	// ClientCertificate is where the QWAC comes from: "tls" (the
	// default: the TLS handshake) or "header": the RFC 9440 Client-Cert
	// header (with Client-Cert-Chain for intermediates) that a
	// TLS-terminating load balancer sets. The header is taken only from a
	// peer in the server's trusted_proxies; from any other peer it is
	// ignored and the request is refused as without a certificate.
	ClientCertificate string `json:"client_certificate,omitempty"`

	// RequireRoles, when set, replaces the Berlin Group path map for this
	// route: the TPP must hold at least one of these roles (PSP_AS, PSP_PI,
	// PSP_AI, PSP_IC), whatever the path. By default the path decides:
	// accounts, card-accounts, consents, consents/account-access and
	// trusted-beneficiaries need PSP_AI; payments, bulk-payments,
	// periodic-payments and signing-baskets need PSP_PI;
	// funds-confirmations and consents/confirmation-of-funds need PSP_IC
	// (each under /v1 and /v2), and other paths are refused with 404
	// RESOURCE_UNKNOWN unless AllowUnmapped is set.
	RequireRoles []string `json:"require_roles,omitempty"`

	// AllowUnmapped lets paths outside the Berlin Group map through with
	// a valid QWAC and no particular role, for routes that serve more than
	// the XS2A services (an OAuth endpoint, say). Off by default, so that
	// a path the map does not know never reaches the ASPSP unchecked.
	AllowUnmapped bool `json:"allow_unmapped,omitempty"`

	// StripHeaders are request headers removed before the request goes
	// on, so that a client cannot pose as a verified TPP by sending them.
	// Default: X-TPP-Org-Id, X-TPP-Name, X-TPP-Roles, X-TPP-NCA-Id,
	// X-TPP-NCA-Name and X-TPP-Cert-SHA256.
	StripHeaders []string `json:"strip_headers,omitempty"`

	// CacheSize bounds the number of verified certificates kept, keyed by
	// the SHA-256 of their DER. Entries end at the certificate's expiry.
	// Default: 1024.
	CacheSize int `json:"cache_size,omitempty"`

	roles      []qcstatements.Role
	stripKeys  []string
	verifier   *certVerifier
	fromHeader bool
	logger     *zap.Logger
	// untrustedLoggedAt (Unix nanoseconds) spaces the warnings about
	// Client-Cert headers from peers outside trusted_proxies.
	untrustedLoggedAt atomic.Int64
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
	if err := metrics.Register(ctx); err != nil {
		return err
	}
	rememberConnections(ctx)
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
	switch h.ClientCertificate {
	case "", "tls":
	case "header":
		h.fromHeader = true
	default:
		return fmt.Errorf("client_certificate must be tls or header, got %q", h.ClientCertificate)
	}
	status, err := statusChecks(ctx, h.Revocation, pool, h.logger)
	if err != nil {
		return err
	}
	h.verifier = newCertVerifier(pool, qcstatements.QcTypeWeb, h.CacheSize, status, h.logger)
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
	vars := providePlaceholders(r)
	m := startMeter(vars)
	defer finishMeter(vars, m)
	tpp, rej := h.check(r)
	// What a load balancer put there is never forwarded; from anyone
	// else it was never taken.
	delete(r.Header, keyClientCert)
	delete(r.Header, keyClientCertChain)
	markChecked(vars, tpp)
	if rej != nil {
		refuse(w, r, vars, h.logger, rej, tpp)
		return nil
	}
	for _, key := range h.stripKeys {
		delete(r.Header, key)
	}
	stripRoutingHeaders(r.Header)
	if vars != nil {
		vars[varTPP] = tpp
	}
	endPreAuthentication(r)
	return next.ServeHTTP(w, r)
}

func (h *QWAC) check(r *http.Request) (*TPP, *rejection) {
	if rej := checkSingleHeaders(r); rej != nil {
		return nil, rej
	}
	if rej := checkCanonicalPath(r.URL); rej != nil {
		return nil, rej
	}
	var (
		peer          *x509.Certificate
		intermediates []*x509.Certificate
		sum           [32]byte
		vc            *verifiedCert
		proxied       string
	)
	if h.fromHeader {
		var rej *rejection
		if vc, peer, intermediates, sum, rej = h.headerCertificate(r); rej != nil {
			return nil, rej
		}
		proxied = header(r, keyClientCert)
	} else {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			return nil, reject(CertificateMissing, noCertificate)
		}
		peer, intermediates = r.TLS.PeerCertificates[0], r.TLS.PeerCertificates[1:]
		now := h.verifier.now()
		if vc = h.verifier.lookupPeer(peer, now); vc == nil {
			sum = sha256Sum(peer.Raw)
			if vc = h.verifier.lookup(sum, now); vc != nil {
				h.verifier.rememberPeer(peer, vc)
			}
		}
	}
	value := header(r, headerClientCertificate)
	if value == "" {
		return nil, rejectPath(CertificateMissing, headerClientCertificate, "X-Client-Certificate header is missing")
	}
	h.verifier.meterLookup(vc != nil)
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
		if vc, rej = h.verifier.verify(peer, intermediates, sum); rej != nil {
			return nil, rej
		}
		if proxied != "" {
			h.verifier.storeHeader(proxied, vc)
		} else {
			h.verifier.rememberPeer(peer, vc)
		}
	}
	tpp := &vc.tpp
	if rej := h.verifier.checkRevocation(r.Context(), vc); rej != nil {
		return tpp, rej
	}
	required := h.roles
	if required == nil {
		roles, mapped := rolesForPath(r.URL.Path)
		if !mapped && !h.AllowUnmapped {
			return tpp, rejectPath(ResourceUnknown, "path", "no XS2A service is offered at this path")
		}
		required = roles
	}
	if len(required) > 0 && !tpp.HasAnyRole(required) {
		return tpp, reject(RoleInvalid, fmt.Sprintf("the QWAC grants %s but this service needs %v", tpp.RolesCSV, required))
	}
	return tpp, nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	psd2_qwac [<matcher>] {
//		trust_pool <module> [<args…>] [{ … }]
//		revocation [hard|soft|off] [{ mode …; prefer ocsp|crl; timeout <d> }]
//		client_certificate tls|header
//		require_roles <role…>
//		allow_unmapped
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
		case "revocation":
			h.Revocation = new(trust.RevocationPolicy)
			if err := h.Revocation.UnmarshalCaddyfile(d); err != nil {
				return err
			}
		case "client_certificate":
			if err := caddyfileargs.One(d, &h.ClientCertificate); err != nil {
				return err
			}
			if h.ClientCertificate != "tls" && h.ClientCertificate != "header" {
				return d.Errf("client_certificate must be tls or header, got %q", h.ClientCertificate)
			}
		case "require_roles":
			h.RequireRoles = d.RemainingArgs()
			if len(h.RequireRoles) == 0 {
				return d.ArgErr()
			}
		case "allow_unmapped":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.AllowUnmapped = true
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

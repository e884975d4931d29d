package psd2

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
	"go.uber.org/zap"

	"github.com/bankedge/bankedge/internal/caddyfileargs"
	"github.com/bankedge/bankedge/internal/certprofile/qcstatements"
	"github.com/bankedge/bankedge/internal/metrics"
	"github.com/bankedge/bankedge/modules/cluster"
	"github.com/bankedge/bankedge/modules/psd2/httpsig"
	"github.com/bankedge/bankedge/modules/trust"
)

func init() {
	caddy.RegisterModule(&QSEAL{})
	httpcaddyfile.RegisterHandlerDirective("psd2_qseal", parseQSEAL)
}

// Header names of the application-layer signature.
const (
	headerSignature     = "Signature"
	headerDigest        = "Digest"
	headerSignatureCert = "TPP-Signature-Certificate"
	keySignatureCert    = "Tpp-Signature-Certificate"
	headerDate          = "Date"
	pseudoRequestTarget = "(request-target)"
	defaultMaxBody      = 1 << 20
	defaultReplayWindow = 10 * time.Minute
	defaultClockSkew    = 300 * time.Second
)

// QSEAL verifies the application-layer signature of a PSD2 request: the
// Digest of the body, the Signature over the signed headers made with the
// TPP's QSEAL, and the QSEAL itself (TPP-Signature-Certificate), which must
// chain to the trust pool and belong to the same organisation as the QWAC.
// It also requires a UUID X-Request-ID and refuses one that the same
// organisation already used within the replay window, across restarts and,
// with a shared replay store, across gateways. It must run after psd2_qwac,
// which its directive order ensures.
//
// The body is read once, up to max_body_size, and handed on unchanged.
type QSEAL struct {
	// TrustPool is the source of the QTSP certificates that QSEALs must
	// chain to; any tls.ca_pool.source module.
	TrustPoolRaw json.RawMessage `json:"trust_pool,omitempty" caddy:"namespace=tls.ca_pool.source inline_key=provider"`

	// Revocation checks the QSEAL by OCSP and CRL, as psd2_qwac's
	// revocation does the QWAC.
	Revocation *trust.RevocationPolicy `json:"revocation,omitempty"`

	// Profile is the bank's signing flavour: "piraeus" or "berlingroup"
	// (default). Every field below that is left unset takes the profile's
	// value.
	//
	// piraeus: Digest is base64 of the lower-case hex hash, over the
	// minified JSON body (a digest of the raw bytes is also accepted); the
	// base64 of the signing string is signed; keyId is the bare hex serial;
	// the signed headers are exactly "digest x-request-id"; a signature is
	// optional, as Piraeus documents.
	//
	// berlingroup: Digest is base64 of the raw hash; the signing string is
	// signed as is; keyId is SN=<hex>,CA=<issuer DN>; "digest" and
	// "x-request-id" must be signed, and psu-id, psu-corporate-id and
	// tpp-redirect-uri too when present; a signature is required.
	Profile string `json:"profile,omitempty"`

	// DigestEncoding is "raw" (base64 of the hash) or "hex" (base64 of its
	// lower-case hex text).
	DigestEncoding string `json:"digest_encoding,omitempty"`

	// CompactJSONDigest also accepts a digest computed over the body with
	// JSON whitespace removed. The raw bytes are hashed first, so the
	// costly compaction only runs when that digest does not match.
	CompactJSONDigest *bool `json:"compact_json_digest,omitempty"`

	// SignBase64 signs the base64 of the signing string instead of the
	// signing string itself.
	SignBase64 *bool `json:"sign_base64,omitempty"`

	// KeyIDIssuer requires keyId in the form SN=<serial>,CA=<issuer DN>.
	// When false, a bare hexadecimal serial is accepted too. The serial is
	// always compared as a number and the issuer as a distinguished name.
	KeyIDIssuer *bool `json:"key_id_issuer,omitempty"`

	// SignedHeaders are the header names that must be signed (lower case).
	SignedHeaders []string `json:"signed_headers,omitempty"`

	// ExactSignedHeaders requires the signed headers to be exactly
	// SignedHeaders, no more.
	ExactSignedHeaders *bool `json:"exact_signed_headers,omitempty"`

	// ConditionalHeaders must be signed whenever the request carries them.
	ConditionalHeaders []string `json:"conditional_headers,omitempty"`

	// Algorithms accepted in the Signature header. Default: rsa-sha256 and
	// rsa-sha512 (RSASSA-PKCS1-v1_5).
	Algorithms []string `json:"algorithms,omitempty"`

	// RequireSignature refuses requests without a Signature header with
	// SIGNATURE_MISSING. A request that carries Digest or
	// TPP-Signature-Certificate without Signature is always refused.
	RequireSignature *bool `json:"require_signature,omitempty"`

	// MaxClockSkew is how far a Date header may be from the gateway's
	// clock (TIMESTAMP_INVALID beyond it). Date itself is optional unless
	// it is signed. In the past, a Date may also be no older than
	// ReplayWindow less MaxClockSkew. Default: 300s.
	MaxClockSkew caddy.Duration `json:"max_clock_skew,omitempty"`

	// ReplayWindow is how long an X-Request-ID is remembered per
	// organisation from its first use: a second use within it is refused
	// whatever happens in between (reloads, restarts, crashes). A request
	// whose Date is signed cannot be replayed after it either: its Date
	// is then too old. Default: 10m.
	ReplayWindow caddy.Duration `json:"replay_window,omitempty"`

	// ReplayStore keeps the request ids: a module of the
	// http.psd2.replay_stores namespace. Default: redis (shared by every
	// gateway on it) when Caddy's storage is Redis, else local (in
	// memory, per organisation quotas, a journal on disk read back on
	// start).
	ReplayStoreRaw json.RawMessage `json:"replay_store,omitempty" caddy:"namespace=http.psd2.replay_stores inline_key=store"`

	// ReplayCacheSize is the former name of the local replay store's
	// quota, the number of request ids kept per organisation. Deprecated:
	// use replay_store local { quota … }.
	ReplayCacheSize int `json:"replay_cache_size,omitempty"`

	// MaxBodySize is the largest body read for the digest, in bytes; a
	// larger one gets 413. Default: 1 MiB.
	MaxBodySize int64 `json:"max_body_size,omitempty"`

	// CacheSize bounds the number of verified QSEAL certificates kept.
	// Default: 1024.
	CacheSize int `json:"cache_size,omitempty"`

	profile          httpsig.Profile
	algorithms       []httpsig.Algorithm
	requireSignature bool
	verifier         *certVerifier
	replay           ReplayStore
	logger           *zap.Logger
	now              func() time.Time
}

// CaddyModule returns the Caddy module information.
func (*QSEAL) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.psd2_qseal",
		New: func() caddy.Module { return new(QSEAL) },
	}
}

// Provision resolves the profile and loads the trust pool.
func (h *QSEAL) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if err := metrics.Register(ctx); err != nil {
		return err
	}
	h.now = time.Now
	pool, err := loadTrustPool(ctx, h, "TrustPoolRaw", h.TrustPoolRaw)
	if err != nil {
		return err
	}
	if h.Profile == "" {
		h.Profile = "berlingroup"
	}
	p, err := httpsig.ProfileByName(h.Profile)
	if err != nil {
		return err
	}
	switch h.DigestEncoding {
	case "":
	case "raw":
		p.DigestEncoding = httpsig.DigestRaw
	case "hex":
		p.DigestEncoding = httpsig.DigestHex
	default:
		return fmt.Errorf("digest_encoding must be raw or hex, got %q", h.DigestEncoding)
	}
	setBool(&p.CompactJSON, h.CompactJSONDigest)
	setBool(&p.SignBase64, h.SignBase64)
	setBool(&p.KeyIDIssuer, h.KeyIDIssuer)
	setBool(&p.ExactHeaders, h.ExactSignedHeaders)
	if h.SignedHeaders != nil {
		p.RequiredHeaders = lowerAll(h.SignedHeaders)
	}
	if h.ConditionalHeaders != nil {
		p.ConditionalHeaders = lowerAll(h.ConditionalHeaders)
	}
	h.profile = p

	h.requireSignature = p.Name != "piraeus"
	setBool(&h.requireSignature, h.RequireSignature)

	if len(h.Algorithms) == 0 {
		h.algorithms = []httpsig.Algorithm{httpsig.RSASHA256, httpsig.RSASHA512}
	}
	for _, name := range h.Algorithms {
		alg, err := httpsig.ParseAlgorithm(name)
		if err != nil {
			return fmt.Errorf("algorithms: %w", err)
		}
		h.algorithms = append(h.algorithms, alg)
	}
	if h.MaxClockSkew == 0 {
		h.MaxClockSkew = caddy.Duration(defaultClockSkew)
	}
	if h.ReplayWindow == 0 {
		h.ReplayWindow = caddy.Duration(defaultReplayWindow)
	}
	if maxAge := h.maxDateAge(); maxAge < time.Duration(h.MaxClockSkew) {
		h.logger.Warn("replay_window is less than twice max_clock_skew: requests whose Date is older than the window less the skew are refused",
			zap.Duration("replay_window", time.Duration(h.ReplayWindow)), zap.Duration("max_clock_skew", time.Duration(h.MaxClockSkew)),
			zap.Duration("max_date_age", maxAge))
	}
	if h.MaxBodySize == 0 {
		h.MaxBodySize = defaultMaxBody
	}
	if h.CacheSize == 0 {
		h.CacheSize = 1024
	}
	status, err := statusChecks(ctx, h.Revocation, pool, h.logger)
	if err != nil {
		return err
	}
	h.verifier = newCertVerifier(pool, qcstatements.QcTypeESeal, h.CacheSize, status, h.logger)

	switch {
	case h.ReplayStoreRaw == nil && cluster.StorageShared(ctx):
		// Gateways on one Redis storage are one gateway for replays.
		if h.ReplayCacheSize != 0 {
			return errors.New("replay_cache_size is the quota of the in-process replay store, but on Redis storage request ids are shared in Redis: " +
				"remove it, or keep ids in this process with replay_store local { quota … }")
		}
		h.ReplayStoreRaw = caddyconfig.JSONModuleObject(&RedisReplayStore{}, "store", "redis", nil)
	case h.ReplayStoreRaw == nil:
		h.ReplayStoreRaw = caddyconfig.JSONModuleObject(&LocalReplayStore{Quota: h.ReplayCacheSize}, "store", "local", nil)
	case h.ReplayCacheSize != 0:
		return errors.New("replay_cache_size is the quota of the local replay store; with replay_store set, configure the store instead")
	}
	mod, err := ctx.LoadModule(h, "ReplayStoreRaw")
	if err != nil {
		return fmt.Errorf("loading the replay store: %w", err)
	}
	store, ok := mod.(ReplayStore)
	if !ok {
		return fmt.Errorf("replay store module %T does not implement Claim", mod)
	}
	h.replay = store
	return nil
}

// Validate checks the configuration.
func (h *QSEAL) Validate() error {
	switch {
	case h.MaxClockSkew < 0 || h.ReplayWindow < 0:
		return errors.New("max_clock_skew and replay_window must be positive")
	case h.ReplayCacheSize < 0 || h.CacheSize < 0 || h.MaxBodySize < 0:
		return errors.New("replay_cache_size, cache_size and max_body_size must be positive")
	}
	return nil
}

func setBool(dst *bool, v *bool) {
	if v != nil {
		*dst = *v
	}
}

func lowerAll(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = strings.ToLower(s)
	}
	return out
}

// ServeHTTP verifies the signature and passes the request on with its body.
func (h *QSEAL) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	body := getBody()
	defer body.release()
	vars := providePlaceholders(r)
	tpp, rej := h.check(r, body)
	markChecked(vars, nil)
	if rej != nil {
		refuse(w, r, vars, h.logger, rej, tpp)
		return nil
	}
	return next.ServeHTTP(w, r)
}

// check runs the checks in order: the request id; the Signature header, its
// Date, algorithm and signed headers; the QSEAL, its organisation and keyId;
// the Digest over the body; the signature; and last the claim of the
// request id, so that only a request that passed everything uses it up.
func (h *QSEAL) check(r *http.Request, body *bodyBuffer) (*TPP, *rejection) {
	tpp, _ := caddyhttp.GetVar(r.Context(), varTPP).(*TPP)
	if tpp == nil {
		h.logger.Error("psd2_qseal ran without a verified QWAC; add psd2_qwac to this route")
		return nil, reject(CertificateMissing, "no verified QWAC for this request")
	}
	requestID, rej := parseRequestID(header(r, "X-Request-Id"))
	if rej != nil {
		return tpp, rej
	}
	sigValue := header(r, headerSignature)
	if sigValue == "" {
		switch {
		case header(r, headerDigest) != "" || header(r, keySignatureCert) != "":
			return tpp, rejectPath(SignatureMissing, headerSignature, "Digest or TPP-Signature-Certificate sent without a Signature header")
		case h.requireSignature:
			return tpp, rejectPath(SignatureMissing, headerSignature, "Signature header is missing")
		}
		return tpp, h.claim(r, tpp, requestID)
	}
	sig, err := httpsig.ParseSignatureWith(sigValue, body.signedHeaders[:0])
	if err != nil {
		return tpp, rejectPath(FormatError, headerSignature, err.Error())
	}
	if rej := h.checkDate(r); rej != nil {
		return tpp, rej
	}
	alg, err := httpsig.ParseAlgorithm(sig.Algorithm)
	if err != nil || !h.algorithmAllowed(alg) {
		return tpp, rejectPath(SignatureInvalid, headerSignature, fmt.Sprintf("unsupported signature algorithm %q", sig.Algorithm))
	}
	if err := h.profile.CheckHeaders(sig.Headers, func(name string) bool { return len(r.Header[canonicalKey(name)]) > 0 }); err != nil {
		return tpp, rejectPath(SignatureInvalid, headerSignature, err.Error())
	}
	qseal, rej := h.signatureCertificate(r)
	if rej != nil {
		return tpp, rej
	}
	if qseal.tpp.OrgID != tpp.OrgID {
		return tpp, rejectPath(CertificateInvalid, headerSignatureCert,
			fmt.Sprintf("QSEAL belongs to %s, the QWAC to %s", qseal.tpp.OrgID, tpp.OrgID))
	}
	if rej := h.checkKeyID(&sig, qseal); rej != nil {
		return tpp, rej
	}
	if rej := h.checkDigest(r, body); rej != nil {
		return tpp, rej
	}
	if rej := h.verifySignature(r, &sig, alg, qseal); rej != nil {
		return tpp, rej
	}
	return tpp, h.claim(r, tpp, requestID)
}

func (h *QSEAL) algorithmAllowed(alg httpsig.Algorithm) bool {
	for _, a := range h.algorithms {
		if a == alg {
			return true
		}
	}
	return false
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	psd2_qseal [<matcher>] {
//		profile piraeus|berlingroup
//		trust_pool <module> [<args…>] [{ … }]
//		revocation [hard|soft|off] [{ mode …; prefer ocsp|crl; timeout <d> }]
//		digest_encoding raw|hex
//		compact_json_digest [on|off]
//		sign_base64 [on|off]
//		key_id_issuer [on|off]
//		signed_headers <name…>
//		exact_signed_headers [on|off]
//		conditional_headers <name…>
//		algorithms <alg…>
//		require_signature [on|off]
//		max_clock_skew <duration>
//		replay_window <duration>
//		replay_store <module> [{ … }]
//		replay_cache_size <n>           # deprecated: replay_store local { quota <n> }
//		max_body_size <size>
//		cache_size <n>
//	}
func (h *QSEAL) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "profile":
			err = caddyfileargs.One(d, &h.Profile)
		case "trust_pool":
			h.TrustPoolRaw, err = unmarshalTrustPool(d)
		case "revocation":
			h.Revocation = new(trust.RevocationPolicy)
			err = h.Revocation.UnmarshalCaddyfile(d)
		case "digest_encoding":
			err = caddyfileargs.One(d, &h.DigestEncoding)
		case "compact_json_digest":
			h.CompactJSONDigest, err = unmarshalBool(d)
		case "sign_base64":
			h.SignBase64, err = unmarshalBool(d)
		case "key_id_issuer":
			h.KeyIDIssuer, err = unmarshalBool(d)
		case "signed_headers":
			h.SignedHeaders = d.RemainingArgs()
			if len(h.SignedHeaders) == 0 {
				err = d.ArgErr()
			}
		case "exact_signed_headers":
			h.ExactSignedHeaders, err = unmarshalBool(d)
		case "conditional_headers":
			h.ConditionalHeaders = d.RemainingArgs()
		case "algorithms":
			h.Algorithms = d.RemainingArgs()
			if len(h.Algorithms) == 0 {
				err = d.ArgErr()
			}
		case "require_signature":
			h.RequireSignature, err = unmarshalBool(d)
		case "max_clock_skew":
			err = caddyfileargs.Duration(d, &h.MaxClockSkew)
		case "replay_window":
			err = caddyfileargs.Duration(d, &h.ReplayWindow)
		case "replay_store":
			h.ReplayStoreRaw, err = unmarshalReplayStore(d)
		case "replay_cache_size":
			h.ReplayCacheSize, err = unmarshalPositiveInt(d)
		case "max_body_size":
			var s string
			if err = caddyfileargs.One(d, &s); err == nil {
				var size uint64
				size, err = humanize.ParseBytes(s)
				if err != nil || size == 0 {
					err = d.Errf("max_body_size: invalid size %q", s)
				}
				h.MaxBodySize = int64(size)
			}
		case "cache_size":
			h.CacheSize, err = unmarshalPositiveInt(d)
		default:
			err = d.Errf("unrecognized psd2_qseal option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// unmarshalReplayStore parses "replay_store <name> [{ … }]".
func unmarshalReplayStore(d *caddyfile.Dispenser) (json.RawMessage, error) {
	return unmarshalGuestModule(d, "http.psd2.replay_stores.", "store", "a replay store",
		func(m any) bool { _, ok := m.(ReplayStore); return ok })
}

func parseQSEAL(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(QSEAL)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*QSEAL)(nil)
	_ caddy.Validator             = (*QSEAL)(nil)
	_ caddyhttp.MiddlewareHandler = (*QSEAL)(nil)
	_ caddyfile.Unmarshaler       = (*QSEAL)(nil)
)

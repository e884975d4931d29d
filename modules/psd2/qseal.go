package psd2

import (
	"bytes"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/bankedge/bankedge/internal/caddyfileargs"
	"github.com/bankedge/bankedge/internal/certprofile/qcstatements"
	"github.com/bankedge/bankedge/modules/psd2/certheader"
	"github.com/bankedge/bankedge/modules/psd2/httpsig"
)

func init() {
	caddy.RegisterModule(&QSEAL{})
	httpcaddyfile.RegisterHandlerDirective("psd2_qseal", parseQSEAL)
}

// Header names of the application-layer signature.
const (
	headerSignature      = "Signature"
	headerDigest         = "Digest"
	headerSignatureCert  = "TPP-Signature-Certificate"
	keySignatureCert     = "Tpp-Signature-Certificate"
	headerDate           = "Date"
	pseudoRequestTarget  = "(request-target)"
	defaultMaxBody       = 1 << 20
	defaultReplayWindow  = 10 * time.Minute
	defaultClockSkew     = 300 * time.Second
	defaultReplayEntries = 250_000
)

// QSEAL verifies the application-layer signature of a PSD2 request: the
// Digest of the body, the Signature over the signed headers made with the
// TPP's QSEAL, and the QSEAL itself (TPP-Signature-Certificate), which must
// chain to the trust pool and belong to the same organisation as the QWAC.
// It also requires a UUID X-Request-ID and refuses one that the same
// organisation already used within the replay window. It must run after
// psd2_qwac, which its directive order ensures.
//
// The body is read once, up to max_body_size, and handed on unchanged.
type QSEAL struct {
	// TrustPool is the source of the QTSP certificates that QSEALs must
	// chain to; any tls.ca_pool.source module.
	TrustPoolRaw json.RawMessage `json:"trust_pool,omitempty" caddy:"namespace=tls.ca_pool.source inline_key=provider"`

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
	// it is signed. Default: 300s.
	MaxClockSkew caddy.Duration `json:"max_clock_skew,omitempty"`

	// ReplayWindow is how long an X-Request-ID is remembered per
	// organisation; a second use within it is refused. Default: 10m.
	ReplayWindow caddy.Duration `json:"replay_window,omitempty"`

	// ReplayCacheSize bounds the in-memory replay cache, which is shared
	// by all psd2_qseal handlers of the process and survives reloads. When
	// it is full the oldest entries go first and a warning is logged.
	// Default: 250000.
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
	replay           *memoryReplayCache
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

// replayCaches shares one in-memory replay cache across handlers and config
// reloads: a request id seen before a reload is still a replay after it.
var replayCaches = caddy.NewUsagePool()

const replayCacheKey = "memory"

// Provision resolves the profile and loads the trust pool.
func (h *QSEAL) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
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
	if h.ReplayCacheSize == 0 {
		h.ReplayCacheSize = defaultReplayEntries
	}
	if h.MaxBodySize == 0 {
		h.MaxBodySize = defaultMaxBody
	}
	if h.CacheSize == 0 {
		h.CacheSize = 1024
	}
	h.verifier = newCertVerifier(pool, qcstatements.QcTypeESeal, h.CacheSize)

	cache, _, err := replayCaches.LoadOrNew(replayCacheKey, func() (caddy.Destructor, error) {
		return newMemoryReplayCache(h.ReplayCacheSize), nil
	})
	if err != nil {
		return fmt.Errorf("replay cache: %w", err)
	}
	h.replay = cache.(*memoryReplayCache)
	h.replay.grow(h.ReplayCacheSize)
	logger := h.logger
	h.replay.setWarn(func(evicted uint64, capacity int) {
		logger.Warn("replay cache full: X-Request-IDs are forgotten before replay_window ends; raise replay_cache_size",
			zap.Uint64("evicted", evicted), zap.Int("replay_cache_size", capacity))
	})
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

// Cleanup releases the shared replay cache.
func (h *QSEAL) Cleanup() error {
	if h.replay != nil {
		_, err := replayCaches.Delete(replayCacheKey)
		return err
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

// bodyBuffer holds a request body read for the digest and the reader that
// hands it on, pooled together so that a request allocates neither.
type bodyBuffer struct {
	buf    bytes.Buffer
	reader bytes.Reader
	limit  io.LimitedReader
	// handedOn is set when the buffer becomes r.Body, and closed when its
	// consumer closes it. http.Transport may go on reading a request body
	// after RoundTrip returns (an upstream that answers before reading it
	// all) and closes it when done, so a handed-on buffer is reused only
	// once closed; otherwise the next request could overwrite bytes still
	// being sent upstream.
	handedOn bool
	closed   atomic.Bool
}

func (b *bodyBuffer) Read(p []byte) (int, error) { return b.reader.Read(p) }
func (b *bodyBuffer) Close() error               { b.closed.Store(true); return nil }

// reusable reports whether nothing can still read the buffer.
func (b *bodyBuffer) reusable() bool {
	return (!b.handedOn || b.closed.Load()) && b.buf.Cap() <= 4*defaultMaxBody
}

// bodyReleased, when set by tests, learns whether each request's buffer
// went back to the pool.
var bodyReleased atomic.Pointer[func(reused bool)]

var bodyPool = sync.Pool{New: func() any { return new(bodyBuffer) }}

// ServeHTTP verifies the signature and passes the request on with its body.
func (h *QSEAL) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	body := bodyPool.Get().(*bodyBuffer)
	body.buf.Reset()
	body.handedOn = false
	body.closed.Store(false)
	defer func() {
		// Very large buffers are not kept either, so one big body does
		// not pin memory for the life of the process.
		reused := body.reusable()
		if reused {
			bodyPool.Put(body)
		}
		if hook := bodyReleased.Load(); hook != nil {
			(*hook)(reused)
		}
	}()
	tpp, rej := h.check(r, body)
	if rej != nil {
		logRejection(h.logger, r, rej, tpp)
		rej.write(w)
		return nil
	}
	return next.ServeHTTP(w, r)
}

func (h *QSEAL) check(r *http.Request, body *bodyBuffer) (*TPP, *rejection) {
	tpp, _ := caddyhttp.GetVar(r.Context(), tppVar).(*TPP)
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
		return tpp, h.remember(tpp, requestID)
	}
	sig, err := httpsig.ParseSignature(sigValue)
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
	if !qseal.keyIDMatches(sig.KeyID) {
		keyID, err := httpsig.ParseKeyID(sig.KeyID)
		if err != nil {
			return tpp, rejectPath(SignatureInvalid, headerSignature, err.Error())
		}
		if h.profile.KeyIDIssuer && keyID.Issuer == "" {
			return tpp, rejectPath(SignatureInvalid, headerSignature, "keyId must be SN=<serial>,CA=<issuer DN>")
		}
		if err := keyID.Matches(qseal.cert); err != nil {
			return tpp, rejectPath(SignatureInvalid, headerSignature, "keyId does not name the TPP-Signature-Certificate: "+err.Error())
		}
		qseal.keyID.Store(&sig.KeyID)
	}

	if rej := h.checkDigest(r, body); rej != nil {
		return tpp, rej
	}

	buf := derPool.Get().(*[]byte)
	defer derPool.Put(buf)
	signing, err := httpsig.AppendSigningString((*buf)[:0], sig.Headers, func(name string) (string, bool) {
		return headerValue(r, name)
	})
	*buf = signing[:0]
	if err != nil {
		return tpp, rejectPath(SignatureInvalid, headerSignature, err.Error())
	}
	msg := signing
	if h.profile.SignBase64 {
		msgBuf := derPool.Get().(*[]byte)
		defer derPool.Put(msgBuf)
		msg = base64.StdEncoding.AppendEncode((*msgBuf)[:0], signing)
		*msgBuf = msg[:0]
	}
	if err := httpsig.Verify(qseal.cert.PublicKey, alg, msg, sig.Signature); err != nil {
		return tpp, rejectPath(SignatureInvalid, headerSignature, err.Error())
	}
	return tpp, h.remember(tpp, requestID)
}

func parseRequestID(v string) (uuid.UUID, *rejection) {
	if v == "" {
		return uuid.UUID{}, rejectPath(FormatError, headerRequestID, "X-Request-ID header is missing")
	}
	id, err := uuid.Parse(v)
	if err != nil || len(v) != 36 {
		return uuid.UUID{}, rejectPath(FormatError, headerRequestID, "X-Request-ID is not a UUID")
	}
	return id, nil
}

func (h *QSEAL) remember(tpp *TPP, id uuid.UUID) *rejection {
	if !h.replay.Remember(tpp.OrgID, id, h.now(), time.Duration(h.ReplayWindow)) {
		return rejectPath(FormatError, headerRequestID, "X-Request-ID already used")
	}
	return nil
}

func (h *QSEAL) algorithmAllowed(alg httpsig.Algorithm) bool {
	for _, a := range h.algorithms {
		if a == alg {
			return true
		}
	}
	return false
}

func (h *QSEAL) checkDate(r *http.Request) *rejection {
	v := header(r, headerDate)
	if v == "" {
		return nil
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return rejectPath(FormatError, headerDate, "Date is not an HTTP date")
	}
	skew := h.now().Sub(t)
	if skew < 0 {
		skew = -skew
	}
	if skew > time.Duration(h.MaxClockSkew) {
		return rejectPath(TimestampInvalid, headerDate, fmt.Sprintf("Date is %s away from the server clock (max %s)",
			skew.Round(time.Second), time.Duration(h.MaxClockSkew)))
	}
	return nil
}

// signatureCertificate decodes and verifies TPP-Signature-Certificate.
func (h *QSEAL) signatureCertificate(r *http.Request) (*verifiedCert, *rejection) {
	value := header(r, keySignatureCert)
	if value == "" {
		return nil, rejectPath(CertificateMissing, headerSignatureCert, "TPP-Signature-Certificate header is missing")
	}
	now := h.verifier.now()
	if vc := h.verifier.lookupHeader(value, now); vc != nil {
		return vc, nil
	}
	buf := derPool.Get().(*[]byte)
	defer derPool.Put(buf)
	der, err := certheader.AppendDecode((*buf)[:0], value)
	*buf = der[:0]
	if err != nil {
		return nil, rejectPath(CertificateInvalid, headerSignatureCert, "TPP-Signature-Certificate cannot be decoded: "+err.Error())
	}
	sum := sha256Sum(der)
	if vc := h.verifier.lookup(sum, now); vc != nil {
		h.verifier.storeHeader(value, vc)
		return vc, nil
	}
	// Parse a copy: the decode buffer goes back to the pool, the cached
	// certificate stays.
	cert, err := x509.ParseCertificate(bytes.Clone(der))
	if err != nil {
		return nil, rejectPath(CertificateInvalid, headerSignatureCert, "TPP-Signature-Certificate is not a valid certificate")
	}
	vc, rej := h.verifier.verify(cert, nil, sum)
	if rej != nil {
		rej.Path = headerSignatureCert
		return nil, rej
	}
	h.verifier.storeHeader(value, vc)
	return vc, nil
}

// checkDigest reads the body (bounded), checks the Digest header against it
// and puts the body back for the next handler.
func (h *QSEAL) checkDigest(r *http.Request, body *bodyBuffer) *rejection {
	value := header(r, headerDigest)
	if value == "" {
		return rejectPath(SignatureInvalid, headerDigest, "Digest header is missing")
	}
	digests, err := httpsig.ParseDigest(value)
	if err != nil {
		return rejectPath(FormatError, headerDigest, err.Error())
	}
	if r.ContentLength > h.MaxBodySize {
		return tooLarge(h.MaxBodySize)
	}
	if r.Body != nil && r.Body != http.NoBody {
		body.limit = io.LimitedReader{R: r.Body, N: h.MaxBodySize + 1}
		n, err := body.buf.ReadFrom(&body.limit)
		body.limit.R = nil
		if err != nil {
			return rejectPath(FormatError, "body", "request body could not be read")
		}
		if n > h.MaxBodySize {
			return tooLarge(h.MaxBodySize)
		}
		_ = r.Body.Close()
		body.reader.Reset(body.buf.Bytes())
		r.Body = body
		body.handedOn = true
		r.ContentLength = n
	}
	if h.digestMatches(digests, body.buf.Bytes()) {
		return nil
	}
	if h.profile.CompactJSON {
		var compact bytes.Buffer
		if json.Compact(&compact, body.buf.Bytes()) == nil && h.digestMatches(digests, compact.Bytes()) {
			return nil
		}
	}
	return rejectPath(SignatureInvalid, headerDigest, "Digest does not match the request body")
}

func (h *QSEAL) digestMatches(digests []httpsig.DigestValue, body []byte) bool {
	var sum [sha512.Size]byte
	for _, d := range digests {
		if d.Supported && d.Matches(httpsig.AppendSum(sum[:0], d.Alg, body), h.profile.DigestEncoding) {
			return true
		}
	}
	return false
}

func tooLarge(limit int64) *rejection {
	return &rejection{
		Status: http.StatusRequestEntityTooLarge,
		Code:   FormatError,
		Path:   "body",
		Text:   fmt.Sprintf("request body is larger than %d bytes", limit),
	}
}

// headerValue returns a header as it enters a signing string: several
// values joined by ", ", and the pseudo-header (request-target).
func headerValue(r *http.Request, name string) (string, bool) {
	switch name {
	case pseudoRequestTarget:
		return strings.ToLower(r.Method) + " " + r.RequestURI, true
	case "host":
		return r.Host, r.Host != ""
	}
	values := r.Header[canonicalKey(name)]
	switch len(values) {
	case 0:
		return "", false
	case 1:
		return values[0], true
	}
	return strings.Join(values, ", "), true
}

// canonicalKey maps the lower-case names of signed headers to header keys;
// the usual ones come from a table, so that no request pays for
// canonicalising them.
func canonicalKey(name string) string {
	switch name {
	case "digest":
		return "Digest"
	case "x-request-id":
		return "X-Request-Id"
	case "date":
		return "Date"
	case "psu-id":
		return "Psu-Id"
	case "psu-corporate-id":
		return "Psu-Corporate-Id"
	case "tpp-redirect-uri":
		return "Tpp-Redirect-Uri"
	}
	return textproto.CanonicalMIMEHeaderKey(name)
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	psd2_qseal [<matcher>] {
//		profile piraeus|berlingroup
//		trust_pool <module> [<args…>] [{ … }]
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
//		replay_cache_size <n>
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

func parseQSEAL(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(QSEAL)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*QSEAL)(nil)
	_ caddy.Validator             = (*QSEAL)(nil)
	_ caddy.CleanerUpper          = (*QSEAL)(nil)
	_ caddyhttp.MiddlewareHandler = (*QSEAL)(nil)
	_ caddyfile.Unmarshaler       = (*QSEAL)(nil)
)

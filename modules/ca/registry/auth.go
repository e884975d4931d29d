package registry

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
)

// AuthReason says why an authentication was refused. The values are stable
// identifiers meant for audit logs and metrics.
type AuthReason string

// The reasons Authenticate refuses a partner, in the order they are checked.
const (
	// ReasonUnknownPartner: no partner with this id.
	ReasonUnknownPartner AuthReason = "unknown_partner"
	// ReasonDisabled: the partner exists but is disabled.
	ReasonDisabled AuthReason = "disabled"
	// ReasonIPNotAllowed: the remote address is not in AllowedIPs.
	ReasonIPNotAllowed AuthReason = "ip_not_allowed"
	// ReasonCertificateRequired: the partner has a certificate binding but
	// presented no client certificate.
	ReasonCertificateRequired AuthReason = "certificate_required"
	// ReasonCertificateMismatch: the client certificate does not match the
	// partner's binding.
	ReasonCertificateMismatch AuthReason = "certificate_mismatch"
	// ReasonBadPassword: no candidate password matches.
	ReasonBadPassword AuthReason = "bad_password"
	// ReasonPasswordExpired: the password is right but older than the
	// policy's MaxAge.
	ReasonPasswordExpired AuthReason = "password_expired"
	// ReasonCertificateOtherPartner: the client certificate was issued by
	// the bankedge CA for another partner, or for another purpose than a
	// partner's TLS client (a PSD2 QWAC or QSEAL, a server). The PeSIT
	// gateway checks it after Authenticate, against the CA's inventory.
	ReasonCertificateOtherPartner AuthReason = "certificate_other_partner"
)

// AuthError is a refused authentication. Detail is for the audit log; it
// never contains a password or a hash. Test the reason with errors.As, or
// with errors.Is(err, &AuthError{Reason: ...}).
type AuthError struct {
	Reason AuthReason
	Detail string
}

// Error returns "partner authentication failed: <reason>: <detail>".
func (e *AuthError) Error() string {
	s := "partner authentication failed: " + string(e.Reason)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Is reports whether target is an *AuthError with the same Reason.
func (e *AuthError) Is(target error) bool {
	t, ok := target.(*AuthError)
	return ok && t.Reason == e.Reason
}

// AuthRequest is what the PeSIT gateway knows about a connecting partner.
type AuthRequest struct {
	// PartnerID is the requester id (PI 3).
	PartnerID string
	// Passwords are the candidate forms of the received password (PI 5),
	// for example the field as received and with blank padding trimmed;
	// any may match. At most maxCandidates are tried.
	Passwords []string
	// RemoteIP is the peer's address.
	RemoteIP netip.Addr
	// CachedOnly accepts only a password the cache holds, and verifies
	// none: for a caller that cannot count failures (its failure counter
	// is unavailable), to which an unthrottled verification would be a
	// password-guessing oracle. Refusals then cost no hashing either.
	CachedOnly bool
	// ClientCert is the verified TLS client certificate, nil when none.
	ClientCert *x509.Certificate
}

// ErrNotCached refuses an AuthRequest with CachedOnly whose password the
// cache does not hold: nothing was verified.
var ErrNotCached = errors.New("password not verified: the request accepts only a cached verification")

// maxCandidates bounds the argon2id work one connection can cause.
const maxCandidates = 4

// Authenticate checks a connecting partner against its current stored
// record, in this order: unknown partner, disabled, IP allowlist,
// certificate binding, password, expiry. It returns the partner on
// success, an *AuthError on refusal, and another error when the storage
// fails or ctx ends while waiting for a hash slot (so that the gateway can
// answer with a temporary failure instead of "not authorised").
//
// Every refusal costs the same password hashing as a wrong password, so
// that the time an answer takes does not tell which partners exist or
// why one was refused: candidates for an unknown partner are verified
// against a dummy hash with the parameters of new passwords, and those of
// a disabled partner, or of one refused for its address or certificate,
// against the partner's own hash, whose result is then ignored.
func (r *Registry) Authenticate(ctx context.Context, req AuthRequest) (Partner, error) {
	r.init()
	refuse := func(hash string, refusal *AuthError) error {
		if req.CachedOnly {
			return refusal
		}
		return r.refuse(ctx, hash, req.Passwords, refusal)
	}
	if validatePartnerID(req.PartnerID) != nil {
		// An id that cannot exist is unknown; do not touch storage with it.
		return Partner{}, refuse(r.dummyHash, &AuthError{Reason: ReasonUnknownPartner, Detail: "invalid partner id"})
	}
	if r.Storage == nil {
		return Partner{}, errors.New("partner registry has no storage")
	}
	rec, err := r.load(ctx, req.PartnerID)
	if errors.Is(err, ErrNotFound) || errors.Is(err, errIDCase) {
		return Partner{}, refuse(r.dummyHash, &AuthError{Reason: ReasonUnknownPartner, Detail: fmt.Sprintf("no partner %q", req.PartnerID)})
	}
	if err != nil {
		// The storage cannot answer: a partner whose password the cache
		// holds for the record it last authenticated with goes on with
		// that record (every check below still runs on it); anyone else
		// gets the error, without a password verification.
		last, ok := r.lastGood.Load(req.PartnerID)
		if !ok || !r.cachedPassword(last.(*storedPartner), req.Passwords) {
			return Partner{}, fmt.Errorf("authenticating partner %q: %w", req.PartnerID, err)
		}
		rec = last.(*storedPartner)
	}
	p := r.toPartner(rec)
	if !p.Enabled {
		return Partner{}, refuse(rec.PasswordHash, &AuthError{Reason: ReasonDisabled, Detail: fmt.Sprintf("partner %q is disabled", p.PartnerID)})
	}
	if !p.allowsIP(req.RemoteIP) {
		return Partner{}, refuse(rec.PasswordHash, &AuthError{Reason: ReasonIPNotAllowed, Detail: fmt.Sprintf("address %s is not allowed for partner %q", req.RemoteIP, p.PartnerID)})
	}
	if p.CertificateBinding != "" {
		if req.ClientCert == nil {
			return Partner{}, refuse(rec.PasswordHash, &AuthError{Reason: ReasonCertificateRequired, Detail: fmt.Sprintf("partner %q must present a client certificate verified by TLS", p.PartnerID)})
		}
		if !p.MatchesCertificate(req.ClientCert) {
			return Partner{}, refuse(rec.PasswordHash, &AuthError{Reason: ReasonCertificateMismatch, Detail: fmt.Sprintf(
				"certificate (CN %q, %s) does not match the binding of partner %q",
				req.ClientCert.Subject.CommonName, Fingerprint(req.ClientCert), p.PartnerID)})
		}
	}
	if req.CachedOnly && !r.cachedPassword(rec, req.Passwords) {
		return Partner{}, fmt.Errorf("authenticating partner %q: %w", req.PartnerID, ErrNotCached)
	}
	ok, err := r.checkPassword(ctx, rec, req.Passwords)
	if err != nil {
		return Partner{}, fmt.Errorf("authenticating partner %q: %w", req.PartnerID, err)
	}
	if !ok {
		return Partner{}, &AuthError{Reason: ReasonBadPassword, Detail: fmt.Sprintf("wrong password for partner %q", p.PartnerID)}
	}
	if p.PasswordExpiresAt != nil && !r.now().Before(*p.PasswordExpiresAt) {
		return Partner{}, &AuthError{Reason: ReasonPasswordExpired, Detail: fmt.Sprintf(
			"password of partner %q expired at %s", p.PartnerID, p.PasswordExpiresAt.Format("2006-01-02T15:04:05Z07:00"))}
	}
	r.lastGood.Store(p.PartnerID, rec)
	return p, nil
}

// cachedPassword reports whether the cache holds one of the candidates
// for rec, without verifying any.
func (r *Registry) cachedPassword(rec *storedPartner, candidates []string) bool {
	if r.cache == nil {
		return false
	}
	for _, c := range usableCandidates(candidates) {
		if r.cache.hit(rec.PartnerID, rec.PasswordHash, c) {
			return true
		}
	}
	return false
}

// refuse spends on hash the verifications a wrong password would have cost
// and returns the refusal, or the context's error if ctx ended while
// waiting for a hash slot (a refusal it cannot time like the others must
// not be reported as one).
func (r *Registry) refuse(ctx context.Context, hash string, candidates []string, refusal *AuthError) error {
	for _, c := range usableCandidates(candidates) {
		if _, err := r.verify(ctx, hash, c); err != nil && ctx.Err() != nil {
			return fmt.Errorf("authenticating partner: %w", err)
		}
	}
	return refusal
}

// usableCandidates are the candidates checkPassword verifies on a
// mismatch: at most maxCandidates, without empty or overlong ones.
func usableCandidates(candidates []string) []string {
	if len(candidates) > maxCandidates {
		candidates = candidates[:maxCandidates]
	}
	var out []string
	for _, c := range candidates {
		if c != "" && len(c) <= MaxPasswordLength {
			out = append(out, c)
		}
	}
	return out
}

// checkPassword reports whether any candidate matches the stored hash,
// consulting the cache of earlier successes first.
func (r *Registry) checkPassword(ctx context.Context, rec *storedPartner, candidates []string) (bool, error) {
	r.init()
	candidates = usableCandidates(candidates)
	for _, c := range candidates {
		if r.cache != nil && r.cache.hit(rec.PartnerID, rec.PasswordHash, c) {
			return true, nil
		}
	}
	for _, c := range candidates {
		ok, err := r.verify(ctx, rec.PasswordHash, c)
		if err != nil {
			if ctx.Err() != nil {
				return false, err
			}
			// A damaged stored hash: report it as a storage problem, not
			// as the partner's wrong password.
			return false, fmt.Errorf("stored password hash: %w", err)
		}
		if ok {
			if r.cache != nil {
				r.cache.add(rec.PartnerID, rec.PasswordHash, c)
			}
			return true, nil
		}
	}
	return false, nil
}

// authCache remembers successful verifications. Its keys are HMACs, under a
// random per-process key, of the partner id, the stored hash and the
// candidate password, so it holds nothing a memory dump could turn into a
// password, and a changed hash (new password) can never hit an old entry.
// It evicts in insertion order once full.
type authCache struct {
	key [32]byte

	mu      sync.Mutex
	entries map[[32]byte]struct{}
	ring    [][32]byte
	next    int
}

func newAuthCache(size int) *authCache {
	c := &authCache{entries: make(map[[32]byte]struct{}, size), ring: make([][32]byte, 0, size)}
	// crypto/rand.Read never fails on supported platforms (Go 1.24+).
	_, _ = rand.Read(c.key[:])
	return c
}

func (c *authCache) mac(id, hash, password string) [32]byte {
	m := hmac.New(sha256.New, c.key[:])
	// Length prefixes keep the encoding unambiguous.
	var n [8]byte
	for _, s := range [...]string{id, hash, password} {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		m.Write(n[:])
		m.Write([]byte(s))
	}
	var out [32]byte
	m.Sum(out[:0])
	return out
}

func (c *authCache) hit(id, hash, password string) bool {
	k := c.mac(id, hash, password)
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.entries[k]
	return ok
}

func (c *authCache) add(id, hash, password string) {
	k := c.mac(id, hash, password)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; ok {
		return
	}
	if len(c.ring) < cap(c.ring) {
		c.ring = append(c.ring, k)
	} else {
		delete(c.entries, c.ring[c.next])
		c.ring[c.next] = k
		c.next = (c.next + 1) % len(c.ring)
	}
	c.entries[k] = struct{}{}
}

func (c *authCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
	c.ring, c.next = c.ring[:0], 0
}

func (c *authCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

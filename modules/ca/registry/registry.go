// Package registry is the partner registry and password policy of the
// bankedge app: the PeSIT partners (id, password, network and certificate
// restrictions) that the admin REST API manages and the PeSIT gateway
// authenticates on every connection.
//
// Records live in a certmagic.Storage, one JSON document per partner, so
// that several gateway instances can share them. Storage has no
// transactions, so every read-modify-write runs under the storage's named
// lock for that partner and re-reads the record inside it; authentication
// always reads the current record, so a disabled partner or a changed
// password takes effect on the next connection on every instance.
//
// Passwords are stored only as argon2id hashes (bcrypt hashes can be
// imported). Neither hashes nor passwords ever appear in a Partner, in its
// JSON, or in an error message.
package registry

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/certmagic"
)

// DefaultPrefix is the storage key prefix used when Registry.Prefix is empty.
const DefaultPrefix = "bankedge/partners"

// defaultCacheSize bounds the authentication cache: room for a cached
// verification of each of 10,000 partners and their password changes
// (issue 12), so that a registry of that size still authenticates
// without argon2id; 16,384 entries of 32-byte keys is about 2 MiB.
const defaultCacheSize = 16384

// unlockTimeout bounds the release of a storage lock when the caller's
// context is already done: the lock must still be released, or other
// instances wait until it goes stale.
const unlockTimeout = 10 * time.Second

// Registry stores PeSIT partners in a certmagic.Storage and authenticates
// them. Set the exported fields before first use and do not copy a
// Registry afterwards. Its methods are safe for concurrent use, and any
// number of Registries (in one or several processes) may share a storage.
type Registry struct {
	// Storage holds the partner records. Required.
	Storage certmagic.Storage
	// Prefix is the storage key prefix; each partner is stored at
	// "<Prefix>/<partnerId>.json". Default "bankedge/partners".
	Prefix string
	// Policy is the password policy. The zero value means DefaultPolicy().
	Policy Policy
	// Now returns the current time; default time.Now. Tests inject a clock.
	Now func() time.Time
	// CacheSize is the number of successful password verifications kept in
	// memory to spare the argon2id cost on repeated connections; 0 means
	// 16384, a negative value disables the cache.
	CacheSize int
	// MaxConcurrentHashes bounds how many password hashes are computed at
	// once (each argon2id verification uses 19 MiB), so that a flood of
	// connections with wrong passwords cannot exhaust memory; 0 means
	// GOMAXPROCS.
	MaxConcurrentHashes int
	// OnChange, when set, is told of every partner created, updated
	// (password changes included) or deleted, once stored; the bankedge
	// app tells the other gateways.
	OnChange func(ctx context.Context, partnerID string)

	initOnce sync.Once
	cache    *authCache
	// lastGood is the record each partner last authenticated with: while
	// the storage is unavailable, a partner whose password the cache
	// still holds for that record is let in on it. Forgotten with the
	// cache, on any partner change.
	lastGood sync.Map
	hashSem  chan struct{}
	// dummyHash hashes a random password with the parameters of new
	// passwords; unknown partners' candidates are verified against it.
	dummyHash string
	// hashes counts password verifications, for tests.
	hashes atomic.Int64
	// argon overrides the hashing parameters of new passwords; tests use
	// cheap ones. nil means defaultArgon.
	argon *argonParams
}

// Input is a partner as the admin API receives it, on create (all fields
// that matter) and on update, where a nil field means "unchanged". Its JSON
// names match Partner's, so a request body can be unmarshalled into it
// directly. A JSON null leaves a field unchanged; to clear a list send [],
// to clear a string send "".
type Input struct {
	// PartnerID is the partner id; required on create, and on update it
	// must equal the id being updated if present.
	PartnerID *string `json:"partnerId,omitempty"`
	// Password is the new password in clear text. It is checked against
	// the policy (or the legacy rules) and the history, then hashed.
	Password *string `json:"password,omitempty"`
	// PasswordHash imports an existing hash instead of a password: an
	// argon2id PHC string or a bcrypt hash ($2a$, $2b$, $2y$). Policy and
	// history cannot be checked for it. It lets operators migrate
	// partners, and keeps clear-text passwords out of configuration files.
	// Mutually exclusive with Password.
	PasswordHash *string `json:"passwordHash,omitempty"`
	// Enabled enables or disables the partner; default true on create.
	Enabled *bool `json:"enabled,omitempty"`
	// AllowedIPs replaces the address allowlist; see Partner.AllowedIPs.
	AllowedIPs *[]string `json:"allowedIps,omitempty"`
	// CertificateBinding replaces the certificate binding; see
	// Partner.CertificateBinding. Colon-separated and upper-case
	// fingerprints are accepted.
	CertificateBinding *string `json:"certificateBinding,omitempty"`
	// AccessType is "read", "write" or "both" (default "both").
	AccessType *string `json:"accessType,omitempty"`
	// MaxConnections is the connection limit; 0 means unlimited.
	MaxConnections *int `json:"maxConnections,omitempty"`
	// AllowedFiles replaces the file allowlist; see Partner.AllowedFiles.
	AllowedFiles *[]string `json:"allowedFiles,omitempty"`
	// Description is free text for operators.
	Description *string `json:"description,omitempty"`
	// PesitLegacyPassword flags the partner as using a PeSIT password of
	// at most 8 characters; see Partner.PesitLegacyPassword.
	PesitLegacyPassword *bool `json:"pesitLegacyPassword,omitempty"`
}

// String describes the input for logs, with the password and hash redacted.
func (in Input) String() string {
	var b strings.Builder
	b.WriteString("registry.Input{")
	sep := ""
	field := func(name, val string) {
		b.WriteString(sep + name + ":" + val)
		sep = " "
	}
	if in.PartnerID != nil {
		field("PartnerID", strconv.Quote(*in.PartnerID))
	}
	if in.Password != nil {
		field("Password", "[REDACTED]")
	}
	if in.PasswordHash != nil {
		field("PasswordHash", "[REDACTED]")
	}
	if in.Enabled != nil {
		field("Enabled", strconv.FormatBool(*in.Enabled))
	}
	if in.AllowedIPs != nil {
		field("AllowedIPs", fmt.Sprintf("%q", *in.AllowedIPs))
	}
	if in.CertificateBinding != nil {
		field("CertificateBinding", strconv.Quote(*in.CertificateBinding))
	}
	if in.AccessType != nil {
		field("AccessType", strconv.Quote(*in.AccessType))
	}
	if in.MaxConnections != nil {
		field("MaxConnections", strconv.Itoa(*in.MaxConnections))
	}
	if in.AllowedFiles != nil {
		field("AllowedFiles", fmt.Sprintf("%q", *in.AllowedFiles))
	}
	if in.Description != nil {
		field("Description", strconv.Quote(*in.Description))
	}
	if in.PesitLegacyPassword != nil {
		field("PesitLegacyPassword", strconv.FormatBool(*in.PesitLegacyPassword))
	}
	b.WriteString("}")
	return b.String()
}

// GoString redacts like String, so that %#v does not print secrets either.
func (in Input) GoString() string { return in.String() }

// storedPartner is the record kept in storage. Unlike Partner it holds the
// password hashes, so it must never be returned or marshalled for callers.
type storedPartner struct {
	Version             int       `json:"version"`
	PartnerID           string    `json:"partnerId"`
	Enabled             bool      `json:"enabled"`
	AllowedIPs          []string  `json:"allowedIps,omitempty"`
	CertificateBinding  string    `json:"certificateBinding,omitempty"`
	AccessType          string    `json:"accessType"`
	MaxConnections      int       `json:"maxConnections,omitempty"`
	AllowedFiles        []string  `json:"allowedFiles,omitempty"`
	Description         string    `json:"description,omitempty"`
	PesitLegacyPassword bool      `json:"pesitLegacyPassword,omitempty"`
	PasswordChangedAt   time.Time `json:"passwordChangedAt"`
	CreatedAt           time.Time `json:"createdAt"`
	UpdatedAt           time.Time `json:"updatedAt"`

	// PasswordHash is the current password's argon2id (or imported
	// bcrypt) hash.
	PasswordHash string `json:"passwordHash"`
	// PreviousPasswordHashes are the hashes of earlier passwords, newest
	// first, kept for the history rule.
	PreviousPasswordHashes []string `json:"previousPasswordHashes,omitempty"`
	// PasswordLegacyRules records that the current password was accepted
	// under the legacy exemption, so turning the flag off demands a new one.
	PasswordLegacyRules bool `json:"passwordLegacyRules,omitempty"`
}

const storedVersion = 1

func (r *Registry) init() {
	r.initOnce.Do(func() {
		size := r.CacheSize
		if size == 0 {
			size = defaultCacheSize
		}
		if size > 0 {
			r.cache = newAuthCache(size)
		}
		n := r.MaxConcurrentHashes
		if n <= 0 {
			n = runtime.GOMAXPROCS(0)
		}
		r.hashSem = make(chan struct{}, n)
		// A random password that nobody knows. hashPassword fails only
		// if the system's random source does, which Go treats as fatal.
		r.dummyHash, _ = hashPassword(rand.Text(), r.argonParams())
	})
}

func (r *Registry) prefix() string {
	p := strings.Trim(r.Prefix, "/")
	if p == "" {
		return DefaultPrefix
	}
	return p
}

func (r *Registry) policy() Policy {
	if r.Policy == (Policy{}) {
		return DefaultPolicy()
	}
	return r.Policy
}

func (r *Registry) now() time.Time {
	if r.Now != nil {
		return r.Now().UTC()
	}
	return time.Now().UTC()
}

func (r *Registry) argonParams() argonParams {
	if r.argon != nil {
		return *r.argon
	}
	return defaultArgon
}

func (r *Registry) key(id string) string      { return r.prefix() + "/" + id + ".json" }
func (r *Registry) lockName(id string) string { return r.prefix() + "/" + id }

// withHashSlot runs fn while holding one of the MaxConcurrentHashes slots.
func (r *Registry) withHashSlot(ctx context.Context, fn func()) error {
	r.init()
	select {
	case r.hashSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-r.hashSem }()
	fn()
	return nil
}

func (r *Registry) verify(ctx context.Context, hash, password string) (ok bool, err error) {
	r.hashes.Add(1)
	if serr := r.withHashSlot(ctx, func() { ok, err = verifyPassword(hash, password) }); serr != nil {
		return false, serr
	}
	return ok, err
}

// errIDCase reports a record whose id differs from the requested one: on a
// case-insensitive file system "bank_xyz.json" opens "BANK_XYZ.json". It
// must never be treated as absent, or Create would overwrite another
// partner.
var errIDCase = errors.New("a partner id differing only in letter case already exists")

// load reads the record of id; ErrNotFound when absent.
func (r *Registry) load(ctx context.Context, id string) (*storedPartner, error) {
	data, err := r.Storage.Load(ctx, r.key(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("loading partner %q: %w", id, err)
	}
	var rec storedPartner
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("decoding partner %q: %w", id, err)
	}
	if rec.PartnerID != id {
		return nil, errIDCase
	}
	return &rec, nil
}

func (r *Registry) store(ctx context.Context, rec *storedPartner) error {
	rec.Version = storedVersion
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encoding partner %q: %w", rec.PartnerID, err)
	}
	if err := r.Storage.Store(ctx, r.key(rec.PartnerID), data); err != nil {
		return fmt.Errorf("storing partner %q: %w", rec.PartnerID, err)
	}
	return nil
}

// withLock runs fn under the storage lock of partner id. The lock is
// released even if ctx is cancelled meanwhile, using a fresh context.
func (r *Registry) withLock(ctx context.Context, id string, fn func() error) (err error) {
	if r.Storage == nil {
		return errors.New("partner registry has no storage")
	}
	name := r.lockName(id)
	if err := r.Storage.Lock(ctx, name); err != nil {
		return fmt.Errorf("locking partner %q: %w", id, err)
	}
	defer func() {
		uctx := ctx
		if ctx.Err() != nil {
			var cancel context.CancelFunc
			uctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), unlockTimeout)
			defer cancel()
		}
		if uerr := r.Storage.Unlock(uctx, name); uerr != nil {
			uerr = fmt.Errorf("unlocking partner %q: %w", id, uerr)
			if err == nil {
				// The change is stored; say so, so the API does not make
				// the operator believe it was lost.
				err = fmt.Errorf("partner %q was saved, but: %w", id, uerr)
			} else {
				err = errors.Join(err, uerr)
			}
		}
	}()
	return fn()
}

// Create adds a partner. PartnerID and a password (or an imported hash)
// are required; Enabled defaults to true and AccessType to "both". It
// returns ErrExists if the partner already exists, or a *ValidationError.
func (r *Registry) Create(ctx context.Context, in Input) (Partner, error) {
	var out Partner
	if in.PartnerID == nil {
		return out, &ValidationError{Field: "partnerId", Message: "is required"}
	}
	id := *in.PartnerID
	if err := validatePartnerID(id); err != nil {
		return out, err
	}
	err := r.withLock(ctx, id, func() error {
		cur, err := r.load(ctx, id)
		switch {
		case err == nil, errors.Is(err, errIDCase):
			return fmt.Errorf("creating partner %q: %w", id, ErrExists)
		case !errors.Is(err, ErrNotFound):
			return err
		}
		rec, err := r.apply(ctx, cur, in)
		if err != nil {
			return err
		}
		if err := r.store(ctx, rec); err != nil {
			return err
		}
		out = r.toPartner(rec)
		r.changed(ctx, id)
		return nil
	})
	return out, err
}

// Ensure creates the partner described by in if it does not exist, and
// reports whether it did. It never modifies an existing partner: partners
// declared in the Caddyfile are only seeds, owned by the admin API once
// created, and a policy tightened later must not stop the server from
// starting, so an existing partner's declaration is not re-validated.
func (r *Registry) Ensure(ctx context.Context, in Input) (created bool, err error) {
	_, err = r.Create(ctx, in)
	if errors.Is(err, ErrExists) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

// CheckEnsure reports what Ensure would refuse, without writing anything
// and without taking a lock, for configuration checks (caddy validate): a
// partner that exists is left alone by Ensure, so it is not checked.
func (r *Registry) CheckEnsure(ctx context.Context, in Input) error {
	if in.PartnerID == nil {
		return &ValidationError{Field: "partnerId", Message: "is required"}
	}
	if err := validatePartnerID(*in.PartnerID); err != nil {
		return err
	}
	_, err := r.load(ctx, *in.PartnerID)
	switch {
	case err == nil, errors.Is(err, errIDCase):
		return nil
	case !errors.Is(err, ErrNotFound):
		return err
	}
	_, err = r.apply(ctx, nil, in)
	return err
}

// Update merges in into partner id (nil fields are unchanged) and returns
// the result. If in.PartnerID is set it must equal id. It returns
// ErrNotFound or a *ValidationError.
func (r *Registry) Update(ctx context.Context, id string, in Input) (Partner, error) {
	return r.Modify(ctx, id, func(Partner) (Input, error) { return in, nil })
}

// Modify is a read-modify-write of partner id: under the partner's storage
// lock it reads the current record, passes it to fn, and applies the Input
// fn returns as Update would. Use it when the change depends on the current
// value (for example appending to AllowedIPs), since a Get followed by an
// Update could lose a concurrent change made by another instance. An error
// from fn aborts without change and is returned as is.
func (r *Registry) Modify(ctx context.Context, id string, fn func(current Partner) (Input, error)) (Partner, error) {
	var out Partner
	if err := validatePartnerID(id); err != nil {
		return out, err
	}
	err := r.withLock(ctx, id, func() error {
		cur, err := r.load(ctx, id)
		if errors.Is(err, ErrNotFound) || errors.Is(err, errIDCase) {
			return fmt.Errorf("updating partner %q: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		in, err := fn(r.toPartner(cur))
		if err != nil {
			return err
		}
		if in.PartnerID != nil && *in.PartnerID != id {
			return &ValidationError{Field: "partnerId", Message: "must equal the id of the partner being updated; ids cannot be renamed"}
		}
		rec, err := r.apply(ctx, cur, in)
		if err != nil {
			return err
		}
		if err := r.store(ctx, rec); err != nil {
			return err
		}
		out = r.toPartner(rec)
		r.changed(ctx, id)
		return nil
	})
	return out, err
}

// Delete removes partner id; ErrNotFound if it does not exist.
func (r *Registry) Delete(ctx context.Context, id string) error {
	if err := validatePartnerID(id); err != nil {
		return err
	}
	return r.withLock(ctx, id, func() error {
		_, err := r.load(ctx, id)
		if errors.Is(err, ErrNotFound) || errors.Is(err, errIDCase) {
			return fmt.Errorf("deleting partner %q: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if err := r.Storage.Delete(ctx, r.key(id)); err != nil {
			return fmt.Errorf("deleting partner %q: %w", id, err)
		}
		r.changed(ctx, id)
		return nil
	})
}

// changed reports a stored change of partner id to OnChange.
func (r *Registry) changed(ctx context.Context, id string) {
	if r.OnChange != nil {
		r.OnChange(ctx, id)
	}
}

// ForgetAuthentications empties the cache of successful password
// verifications. The cache cannot answer for a changed password (its
// entries are bound to the stored hash), but a gateway told that a partner
// changed elsewhere drops it anyway, so that nothing it remembers outlives
// the change.
func (r *Registry) ForgetAuthentications() {
	r.init()
	if r.cache != nil {
		r.cache.clear()
	}
	r.lastGood.Clear()
}

// Get returns partner id, or ErrNotFound.
func (r *Registry) Get(ctx context.Context, id string) (Partner, error) {
	if err := validatePartnerID(id); err != nil {
		return Partner{}, err
	}
	if r.Storage == nil {
		return Partner{}, errors.New("partner registry has no storage")
	}
	rec, err := r.load(ctx, id)
	if errors.Is(err, ErrNotFound) || errors.Is(err, errIDCase) {
		return Partner{}, fmt.Errorf("getting partner %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Partner{}, err
	}
	return r.toPartner(rec), nil
}

// List returns all partners sorted by id, loading a few records at a
// time. Storage keys that are not partner records (temporary files,
// foreign keys) are skipped.
func (r *Registry) List(ctx context.Context) ([]Partner, error) {
	if r.Storage == nil {
		return nil, errors.New("partner registry has no storage")
	}
	keys, err := r.Storage.List(ctx, r.prefix(), false)
	if errors.Is(err, fs.ErrNotExist) {
		return []Partner{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing partners: %w", err)
	}
	var ids []string
	for _, k := range keys {
		if id, ok := strings.CutSuffix(path.Base(k), ".json"); ok && validatePartnerID(id) == nil {
			ids = append(ids, id)
		}
	}
	// listParallelism loads at a time: each is a round trip on Redis.
	const listParallelism = 8
	recs := make([]*storedPartner, len(ids))
	errs := make([]error, len(ids))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(listParallelism, len(ids)) {
		wg.Go(func() {
			for i := range next {
				recs[i], errs[i] = r.load(ctx, ids[i])
			}
		})
	}
	for i := range ids {
		next <- i
	}
	close(next)
	wg.Wait()
	out := make([]Partner, 0, len(ids))
	for i, rec := range recs {
		err := errs[i]
		if errors.Is(err, ErrNotFound) || errors.Is(err, errIDCase) {
			continue // deleted since List, or not a record of ours
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r.toPartner(rec))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PartnerID < out[j].PartnerID })
	return out, nil
}

// toPartner converts a stored record for callers, leaving out every hash.
// The expiry is derived from the current policy, so changing MaxAge applies
// to existing passwords.
func (r *Registry) toPartner(rec *storedPartner) Partner {
	p := Partner{
		PartnerID:           rec.PartnerID,
		Enabled:             rec.Enabled,
		AllowedIPs:          append([]string(nil), rec.AllowedIPs...),
		CertificateBinding:  rec.CertificateBinding,
		AccessType:          rec.AccessType,
		MaxConnections:      rec.MaxConnections,
		AllowedFiles:        append([]string(nil), rec.AllowedFiles...),
		Description:         rec.Description,
		PesitLegacyPassword: rec.PesitLegacyPassword,
		PasswordChangedAt:   rec.PasswordChangedAt,
		CreatedAt:           rec.CreatedAt,
		UpdatedAt:           rec.UpdatedAt,
	}
	if p.AccessType == "" {
		p.AccessType = AccessBoth
	}
	if maxAge := r.policy().MaxAge; maxAge > 0 {
		exp := rec.PasswordChangedAt.Add(maxAge)
		p.PasswordExpiresAt = &exp
	}
	return p
}

// apply returns cur (nil when creating) with in merged and validated. It
// verifies the history and hashes a new password, so it is slow when a
// password is given; it runs under the partner's lock so that the history
// it checks is current.
func (r *Registry) apply(ctx context.Context, cur *storedPartner, in Input) (*storedPartner, error) {
	now := r.now()
	creating := cur == nil
	var rec storedPartner
	if creating {
		rec = storedPartner{PartnerID: *in.PartnerID, Enabled: true, AccessType: AccessBoth, CreatedAt: now}
	} else {
		rec = *cur
		rec.AllowedIPs = append([]string(nil), cur.AllowedIPs...)
		rec.AllowedFiles = append([]string(nil), cur.AllowedFiles...)
		rec.PreviousPasswordHashes = append([]string(nil), cur.PreviousPasswordHashes...)
	}
	rec.UpdatedAt = now

	var err error
	if in.Enabled != nil {
		rec.Enabled = *in.Enabled
	}
	if in.AllowedIPs != nil {
		if rec.AllowedIPs, err = normalizeIPs(*in.AllowedIPs); err != nil {
			return nil, err
		}
	}
	if in.CertificateBinding != nil {
		if rec.CertificateBinding, err = normalizeBinding(*in.CertificateBinding); err != nil {
			return nil, err
		}
	}
	if in.AccessType != nil {
		if rec.AccessType, err = normalizeAccessType(*in.AccessType); err != nil {
			return nil, err
		}
	}
	if in.MaxConnections != nil {
		if *in.MaxConnections < 0 {
			return nil, &ValidationError{Field: "maxConnections", Message: "must not be negative (0 means unlimited)"}
		}
		rec.MaxConnections = *in.MaxConnections
	}
	if in.AllowedFiles != nil {
		if rec.AllowedFiles, err = normalizeFiles(*in.AllowedFiles); err != nil {
			return nil, err
		}
	}
	if in.Description != nil {
		d := *in.Description
		if len(d) > maxDescriptionLen || !utf8ValidNoControl(d) {
			return nil, &ValidationError{Field: "description", Message: fmt.Sprintf("must be at most %d bytes of UTF-8 text without control characters", maxDescriptionLen)}
		}
		rec.Description = d
	}
	if in.PesitLegacyPassword != nil {
		rec.PesitLegacyPassword = *in.PesitLegacyPassword
	}
	if rec.PesitLegacyPassword && rec.CertificateBinding == "" && len(rec.AllowedIPs) == 0 {
		return nil, &ValidationError{Field: "pesitLegacyPassword",
			Message: "requires certificateBinding or allowedIps, because an 8-character password alone is too weak"}
	}

	// Password last: it is the expensive part and depends on the merged
	// legacy flag.
	switch {
	case in.Password != nil && in.PasswordHash != nil:
		return nil, &ValidationError{Field: "passwordHash", Message: "cannot be given together with password"}
	case in.Password != nil:
		if err := r.setPassword(ctx, &rec, *in.Password, now); err != nil {
			return nil, err
		}
	case in.PasswordHash != nil:
		h := *in.PasswordHash
		if err := checkHashFormat(h); err != nil {
			// The hash is not a secret comparable to the password, but it
			// is not echoed either: it may be a password pasted by mistake.
			return nil, &ValidationError{Field: "passwordHash", Message: "must be an argon2id PHC string or a bcrypt hash with sane parameters: " + err.Error()}
		}
		r.rotate(&rec, h, now)
	case creating:
		return nil, &ValidationError{Field: "password", Message: "is required"}
	case cur.PasswordLegacyRules && !rec.PesitLegacyPassword:
		return nil, &ValidationError{Field: "password",
			Message: "a new password is required to turn pesitLegacyPassword off, because the current one was only checked against the legacy rules"}
	}
	return &rec, nil
}

// setPassword checks password against the rules and the history, hashes it
// and makes it current.
func (r *Registry) setPassword(ctx context.Context, rec *storedPartner, password string, now time.Time) error {
	pol := r.policy()
	if rec.PesitLegacyPassword {
		if err := checkLegacyPassword(password); err != nil {
			return err
		}
	} else if err := pol.Check(password); err != nil {
		return err
	}
	if rec.PasswordHash != "" {
		old := append([]string{rec.PasswordHash}, rec.PreviousPasswordHashes...)
		if len(old) > pol.History+1 {
			old = old[:pol.History+1]
		}
		for _, h := range old {
			same, err := r.verify(ctx, h, password)
			if err != nil && ctx.Err() != nil {
				return fmt.Errorf("checking password history: %w", err)
			}
			// A stored hash that cannot be parsed cannot match; skip it
			// rather than block every password change.
			if same {
				return &ValidationError{Field: "password", Message: fmt.Sprintf(
					"must differ from the current password and the %d previous ones", pol.History)}
			}
		}
	}
	var hash string
	var herr error
	if err := r.withHashSlot(ctx, func() { hash, herr = hashPassword(password, r.argonParams()) }); err != nil {
		return fmt.Errorf("hashing password: %w", err)
	}
	if herr != nil {
		return herr
	}
	r.rotate(rec, hash, now)
	rec.PasswordLegacyRules = rec.PesitLegacyPassword
	return nil
}

// rotate makes hash current and pushes the previous one into the history,
// trimmed to the policy's length.
func (r *Registry) rotate(rec *storedPartner, hash string, now time.Time) {
	hist := rec.PreviousPasswordHashes
	if rec.PasswordHash != "" {
		hist = append([]string{rec.PasswordHash}, hist...)
	}
	if n := r.policy().History; len(hist) > n {
		hist = hist[:n]
	}
	if len(hist) == 0 {
		hist = nil
	}
	rec.PreviousPasswordHashes = hist
	rec.PasswordHash = hash
	rec.PasswordChangedAt = now
	// An imported hash may hide a short password, so treat it as legacy
	// when the flag is on: turning the flag off then demands a new one.
	rec.PasswordLegacyRules = rec.PesitLegacyPassword
}

// utf8ValidNoControl reports whether s is valid UTF-8 without control
// characters other than tab and newline, which could corrupt logs and UIs.
func utf8ValidNoControl(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool {
		return r < 0x20 && r != '\t' && r != '\n' || r == 0x7f
	})
}

package authority

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Issued returns the inventory, newest first.
func (a *Authority) Issued(ctx context.Context) ([]Record, error) {
	keys, err := a.cfg.Storage.List(ctx, a.cfg.key("issued"), false)
	if errors.Is(err, fs.ErrNotExist) {
		return []Record{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing issued certificates: %w", err)
	}
	state, err := a.loadRevocations(ctx)
	if err != nil {
		return nil, err
	}
	a.setRevocations(state)
	revoked := a.revokedMap()
	out := make([]Record, 0, len(keys))
	for _, k := range keys {
		if !strings.HasSuffix(k, ".json") {
			continue
		}
		b, err := a.cfg.Storage.Load(ctx, k)
		if errors.Is(err, fs.ErrNotExist) {
			// Deleted between List and Load by an operator: skip it.
			continue
		}
		if err != nil {
			// Never a partial inventory that looks complete.
			return nil, fmt.Errorf("loading %s: %w", path.Base(k), err)
		}
		var rec Record
		if err := json.Unmarshal(b, &rec); err != nil {
			return nil, fmt.Errorf("reading %s: %w", path.Base(k), err)
		}
		out = append(out, a.withStatus(rec, revoked))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IssuedAt.After(out[j].IssuedAt) })
	return out, nil
}

// Lookup returns the inventory record of a serial, or ErrNotFound, with
// its revocation as currently stored.
func (a *Authority) Lookup(ctx context.Context, serial *big.Int) (Record, error) {
	b, err := a.cfg.Storage.Load(ctx, a.recordKey(serial))
	if errors.Is(err, fs.ErrNotExist) {
		return Record{}, ErrNotFound
	}
	if err != nil {
		return Record{}, err
	}
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return Record{}, err
	}
	state, err := a.loadRevocations(ctx)
	if err != nil {
		return Record{}, err
	}
	a.setRevocations(state)
	return a.withStatus(rec, a.revokedMap()), nil
}

// Revocation is one revoked serial.
type Revocation struct {
	Serial    string    `json:"serial"`
	RevokedAt time.Time `json:"revokedAt"`
	Reason    int       `json:"reason"`
}

// reasonNames are the CRLReason names of RFC 5280 §5.3.1.
var reasonNames = map[string]int{
	"unspecified": 0, "keyCompromise": 1, "cACompromise": 2, "affiliationChanged": 3,
	"superseded": 4, "cessationOfOperation": 5, "certificateHold": 6,
	"removeFromCRL": 8, "privilegeWithdrawn": 9, "aACompromise": 10,
}

// ParseReason accepts an RFC 5280 reason name (case-insensitive) or its
// number; "" is unspecified. removeFromCRL is refused: it only has meaning
// in delta CRLs.
func ParseReason(s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n >= 0 && n <= 10 && n != 7 && n != 8 {
			return n, nil
		}
		return 0, fmt.Errorf("revocation reason %d is not an RFC 5280 CRLReason", n)
	}
	for name, n := range reasonNames {
		if strings.EqualFold(name, s) && n != 8 {
			return n, nil
		}
	}
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return 0, fmt.Errorf("revocation reason %q is not an RFC 5280 name such as keyCompromise", s)
}

// ReasonName returns the RFC 5280 name of a reason code.
func ReasonName(n int) string {
	for name, v := range reasonNames {
		if v == n {
			return name
		}
	}
	return strconv.Itoa(n)
}

// The revocation list (revocations.json) is the one record of revocations:
// a revocation is one atomic write of it. Everything else is derived from
// it: the inventory's revocation fields on read, the in-memory view of
// handshakes, and the CRL, which records the digest of the list it was made
// from and is made again whenever it is read (or the app starts) behind the
// list. So a failure or a crash between the writes leaves nothing
// inconsistent for longer than the next read.
const (
	revocationsName = "revocations.json"
	crlName         = "crl.json"
)

// revocationState is the revocation list as stored, with its digest.
type revocationState struct {
	list   []Revocation
	digest string
	// gen is revGen when the load started.
	gen uint64
}

// digestOf names the content of a revocation list file; "" for none.
func digestOf(raw []byte) string {
	if raw == nil {
		return ""
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

func (a *Authority) loadRevocations(ctx context.Context) (revocationState, error) {
	a.revMu.RLock()
	gen := a.revGen
	a.revMu.RUnlock()
	b, err := a.cfg.Storage.Load(ctx, a.cfg.key(revocationsName))
	if errors.Is(err, fs.ErrNotExist) {
		return revocationState{gen: gen}, nil
	}
	if err != nil {
		return revocationState{}, fmt.Errorf("loading the revocation list: %w", err)
	}
	var list []Revocation
	if err := json.Unmarshal(b, &list); err != nil {
		return revocationState{}, fmt.Errorf("reading the revocation list: %w", err)
	}
	// Lists written before SerialString padded serials hold odd-length
	// ones: one notation in memory.
	for i := range list {
		if n, err := ParseSerial(list[i].Serial); err == nil {
			list[i].Serial = SerialString(n)
		}
	}
	return revocationState{list: list, digest: digestOf(b), gen: gen}, nil
}

// Errors of revocation.
var (
	// ErrCRLNotPublished is returned (wrapped) when a revocation is
	// recorded and in force but the new CRL could not be stored; the next
	// read of the CRL makes it.
	ErrCRLNotPublished = errors.New("the revocation is recorded, but the new CRL could not be published yet")
)

// Revoke revokes a certificate issued by this CA and publishes a new CRL.
// The revocation is in force once the revocation list is stored, which is
// one write; when publishing the CRL fails after it, Revoke returns the
// revoked record with an error wrapping ErrCRLNotPublished. Revoking a
// revoked certificate returns ErrRevoked, after publishing the CRL if it
// was behind.
func (a *Authority) Revoke(ctx context.Context, serial *big.Int, reason int) (Record, error) {
	if a.cfg.ReadOnly {
		return Record{}, ErrReadOnly
	}
	// The code goes into the CRL as is: refuse what ParseReason refuses
	// (7 is unassigned, removeFromCRL only means something in delta CRLs).
	if _, err := ParseReason(strconv.Itoa(reason)); err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrPolicy, err)
	}
	st := a.cfg.Storage
	lock := a.cfg.key("revocations")
	if err := st.Lock(ctx, lock); err != nil {
		return Record{}, fmt.Errorf("taking the revocation lock: %w", err)
	}
	defer unlock(st, lock)
	b, err := st.Load(ctx, a.recordKey(serial))
	if errors.Is(err, fs.ErrNotExist) {
		return Record{}, ErrNotFound
	}
	if err != nil {
		return Record{}, err
	}
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return Record{}, err
	}
	state, err := a.loadRevocations(ctx)
	if err != nil {
		return Record{}, err
	}
	key := SerialString(serial)
	for _, r := range state.list {
		if r.Serial == key {
			a.setRevocations(state)
			rec = a.withStatus(rec, a.revokedMap())
			if _, err := a.publishIfBehind(ctx, state); err != nil {
				return rec, fmt.Errorf("%w: %w", ErrCRLNotPublished, err)
			}
			return rec, ErrRevoked
		}
	}
	list := append(state.list, Revocation{Serial: key, RevokedAt: a.cfg.Now().UTC().Truncate(time.Second), Reason: reason})
	raw, err := json.Marshal(list)
	if err != nil {
		return Record{}, err
	}
	if err := a.store(ctx, revocationsName, raw); err != nil {
		return Record{}, fmt.Errorf("storing the revocation list: %w", err)
	}
	a.setRevocations(revocationState{list: list, gen: state.gen})
	if a.cfg.OnRevoke != nil {
		a.cfg.OnRevoke(ctx, serial)
	}
	rec = a.withStatus(rec, a.revokedMap())
	if _, err := a.generateCRL(ctx, revocationState{list: list, digest: digestOf(raw)}); err != nil {
		return rec, fmt.Errorf("%w: %w", ErrCRLNotPublished, err)
	}
	return rec, nil
}

func (a *Authority) setRevocations(state revocationState) {
	m := make(map[string]Revocation, len(state.list))
	for _, r := range state.list {
		m[r.Serial] = r
	}
	a.revMu.Lock()
	a.revoked, a.revLoadedAt = m, a.cfg.Now()
	if state.gen != a.revGen {
		// Forgotten while loading: usable, but loaded again next time.
		a.revLoadedAt = time.Time{}
	}
	a.revMu.Unlock()
}

// ForgetRevocations drops the in-memory view of revocations, so that the
// next check reads the revocation list from storage: another gateway on the
// same storage revoked a certificate.
func (a *Authority) ForgetRevocations() {
	a.revMu.Lock()
	a.revoked, a.revLoadedAt = nil, time.Time{}
	a.revGen++
	a.revMu.Unlock()
}

func (a *Authority) revokedMap() map[string]Revocation {
	a.revMu.RLock()
	defer a.revMu.RUnlock()
	return a.revoked
}

// refreshRevocations reloads the revocation list when the in-memory view
// is older than RevocationRefresh.
func (a *Authority) refreshRevocations(ctx context.Context) error {
	a.revMu.RLock()
	m, at := a.revoked, a.revLoadedAt
	a.revMu.RUnlock()
	if m != nil && a.cfg.Now().Sub(at) <= a.cfg.RevocationRefresh {
		return nil
	}
	state, err := a.loadRevocations(ctx)
	if err != nil {
		return err
	}
	a.setRevocations(state)
	return nil
}

// IsRevoked reports whether serial is revoked. It answers from memory,
// reloading revocations made by other instances at most every
// RevocationRefresh, so that it is cheap enough for every TLS handshake.
func (a *Authority) IsRevoked(ctx context.Context, serial *big.Int) (bool, error) {
	if err := a.refreshRevocations(ctx); err != nil {
		return false, err
	}
	var buf [2 * maxKeySerialBytes]byte
	// Indexing with string(bytes) does not allocate.
	_, revoked := a.revokedMap()[string(appendSerialString(buf[:0], serial))]
	return revoked, nil
}

// storedCRL is the published CRL and what it was made from, in one
// storage object so that it is written in one (atomic) write.
type storedCRL struct {
	Number     int64     `json:"number"`
	ThisUpdate time.Time `json:"thisUpdate"`
	NextUpdate time.Time `json:"nextUpdate"`
	// Revocations is the digest of the revocation list the CRL lists.
	Revocations string `json:"revocations"`
	// Entries is the number of serials it lists.
	Entries int `json:"entries"`
	// DER is the signed CRL. Absent in the metadata files of earlier
	// versions, which kept the CRL apart: such a CRL is made again.
	DER []byte `json:"der,omitempty"`
}

// CRLInfo describes a published CRL.
type CRLInfo struct {
	Number     *big.Int  `json:"-"`
	ThisUpdate time.Time `json:"thisUpdate"`
	NextUpdate time.Time `json:"nextUpdate"`
	// Entries is the number of revoked serials it lists.
	Entries int `json:"entries"`
}

func (a *Authority) loadCRL(ctx context.Context) (storedCRL, error) {
	var c storedCRL
	b, err := a.cfg.Storage.Load(ctx, a.cfg.key(crlName))
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("reading the stored CRL: %w", err)
	}
	return c, nil
}

// current reports whether c can be served for state: it lists exactly the
// revocations of state and has used less than half its validity.
func (a *Authority) current(c storedCRL, state revocationState) bool {
	return len(c.DER) > 0 && c.Revocations == state.digest && a.cfg.Now().Before(c.ThisUpdate.Add(a.cfg.CRLValidity/2))
}

// CRL returns the current DER CRL. A new one is made when none is stored,
// when the stored one does not list the current revocations (a revocation
// whose CRL could not be published, on this instance or another) or when
// it has used half its validity. A CRL that cannot be made current is an
// error, never a stale CRL.
func (a *Authority) CRL(ctx context.Context) ([]byte, error) {
	state, err := a.loadRevocations(ctx)
	if err != nil {
		return nil, err
	}
	if c, err := a.loadCRL(ctx); err == nil && a.current(c, state) {
		return c.DER, nil
	}
	if a.cfg.ReadOnly {
		return nil, ErrReadOnly
	}
	lock := a.cfg.key("revocations")
	if err := a.cfg.Storage.Lock(ctx, lock); err != nil {
		return nil, fmt.Errorf("taking the revocation lock: %w", err)
	}
	defer unlock(a.cfg.Storage, lock)
	if state, err = a.loadRevocations(ctx); err != nil {
		return nil, err
	}
	return a.publishIfBehind(ctx, state)
}

// publishIfBehind returns the stored CRL if it is current for state, and
// makes a new one otherwise. The caller holds the revocation lock.
func (a *Authority) publishIfBehind(ctx context.Context, state revocationState) ([]byte, error) {
	if c, err := a.loadCRL(ctx); err == nil && a.current(c, state) {
		return c.DER, nil
	}
	c, err := a.generateCRL(ctx, state)
	return c.DER, err
}

// RegenerateCRL signs and publishes a new CRL now, whatever the stored
// one, for operators who want to be sure what relying parties fetch.
func (a *Authority) RegenerateCRL(ctx context.Context) (CRLInfo, error) {
	if a.cfg.ReadOnly {
		return CRLInfo{}, ErrReadOnly
	}
	lock := a.cfg.key("revocations")
	if err := a.cfg.Storage.Lock(ctx, lock); err != nil {
		return CRLInfo{}, fmt.Errorf("taking the revocation lock: %w", err)
	}
	defer unlock(a.cfg.Storage, lock)
	state, err := a.loadRevocations(ctx)
	if err != nil {
		return CRLInfo{}, err
	}
	a.setRevocations(state)
	c, err := a.generateCRL(ctx, state)
	if err != nil {
		return CRLInfo{}, err
	}
	return CRLInfo{Number: big.NewInt(c.Number), ThisUpdate: c.ThisUpdate, NextUpdate: c.NextUpdate, Entries: c.Entries}, nil
}

// generateCRL signs a CRL of state with the next number and stores it.
// The caller holds the revocation lock, which makes the number monotonic
// across instances; the number is taken from the stored CRL, so a CRL that
// failed to store leaves no gap and no number used twice.
func (a *Authority) generateCRL(ctx context.Context, state revocationState) (storedCRL, error) {
	if a.cfg.ReadOnly {
		return storedCRL{}, ErrReadOnly
	}
	prev, err := a.loadCRL(ctx)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return storedCRL{}, err
	}
	now := a.cfg.Now().UTC()
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(prev.Number + 1),
		ThisUpdate: now,
		NextUpdate: now.Add(a.cfg.CRLValidity),
	}
	for _, r := range state.list {
		n, err := ParseSerial(r.Serial)
		if err != nil {
			continue
		}
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber: n, RevocationTime: r.RevokedAt, ReasonCode: r.Reason,
		})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, a.cert, a.key)
	if err != nil {
		return storedCRL{}, fmt.Errorf("signing CRL: %w", err)
	}
	c := storedCRL{
		Number: tmpl.Number.Int64(), ThisUpdate: now, NextUpdate: tmpl.NextUpdate,
		Revocations: state.digest, Entries: len(tmpl.RevokedCertificateEntries), DER: der,
	}
	b, err := json.Marshal(c)
	if err != nil {
		return storedCRL{}, err
	}
	if err := a.store(ctx, crlName, b); err != nil {
		return storedCRL{}, fmt.Errorf("storing the CRL: %w", err)
	}
	return c, nil
}

// VerifyError says why a certificate is not valid for this CA.
type VerifyError struct {
	Reason string // not_ours, expired, not_yet_valid, revoked
	Err    error
}

func (e *VerifyError) Error() string { return e.Err.Error() }
func (e *VerifyError) Unwrap() error { return e.Err }

// Verify checks that cert was signed by this CA, is within its validity
// and is not revoked.
func (a *Authority) Verify(ctx context.Context, cert *x509.Certificate) error {
	if err := cert.CheckSignatureFrom(a.cert); err != nil {
		return &VerifyError{"not_ours", errors.New("certificate is not signed by this CA")}
	}
	now := a.cfg.Now()
	if now.Before(cert.NotBefore) {
		return &VerifyError{"not_yet_valid", fmt.Errorf("certificate is not valid before %s", cert.NotBefore.UTC().Format(time.RFC3339))}
	}
	if now.After(cert.NotAfter) {
		return &VerifyError{"expired", fmt.Errorf("certificate expired on %s", cert.NotAfter.UTC().Format(time.RFC3339))}
	}
	revoked, err := a.IsRevoked(ctx, cert.SerialNumber)
	if err != nil {
		return err
	}
	if revoked {
		return &VerifyError{"revoked", errors.New("certificate is revoked")}
	}
	return nil
}

package authority

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Revocation is one revoked serial.
type Revocation struct {
	Serial    string    `json:"serial"`
	RevokedAt time.Time `json:"revokedAt"`
	Reason    int       `json:"reason"`
	// IssuedAt and PartnerID are copied from the inventory record, so that
	// the inventory lists revoked certificates in order (and by partner)
	// from the revocation log alone. Absent in revocations.json.
	IssuedAt  time.Time `json:"issuedAt,omitzero"`
	PartnerID string    `json:"partnerId,omitempty"`
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

// The revocation log is the one record of revocations: segments under
// revocations/ (see segments.go), each new segment naming the digest of
// the one before, so that the digest of the head names the whole log. A
// revocation is one write: the head rewritten with one more entry, or a
// new head. Everything else is derived from the log: the inventory's
// revocation fields and status on read, the in-memory view of handshakes,
// and the CRL, which records the digest of the head it was made from and
// is made again whenever it is read (or the app starts) behind the log.
// So a failure or a crash between the writes leaves nothing inconsistent
// for longer than the next read.
//
// Before the log, revocations were one list, revocations.json, rewritten
// on every revocation. Opening the CA moves such a list into the log (see
// migrateLegacyRevocations); until then, when the log is empty, it is read
// as the log.
const (
	revocationsDir        = "revocations"
	legacyRevocationsName = "revocations.json"
	legacyMovedName       = "revocations.json.moved"
	crlName               = "crl.json"
	// revocationSegmentSize bounds what a revocation rewrites, and what
	// every read of the log decodes: about 40 KB of JSON.
	revocationSegmentSize = 256
)

// revocationState is the revocation log as stored.
type revocationState struct {
	// sealed are the revocations of the segments before the head.
	sealed *sealedRevocations
	// head are the head's revocations, and headAt their index by serial.
	head   []Revocation
	headAt map[string]int
	// digest names the log: the digest of the head's stored bytes ("" for
	// an empty log).
	digest string
	// log is the head as read, where the next revocation is appended.
	log logHead[Revocation]
	// legacy is set when the revocations come from revocations.json, which
	// has not been moved into the log yet.
	legacy bool
	// gen is revGen when the load started.
	gen uint64
}

// sealedRevocations are the revocations of the immutable segments of the
// log, shared by the states read while they stay the same.
type sealedRevocations struct {
	segs     []int
	list     []Revocation
	bySerial map[string]int

	// der is the CRL encoding of list (crlEntries), made once.
	encodeOnce sync.Once
	der        []byte
	derCount   int
	derErr     error
}

func (s revocationState) get(serial string) (Revocation, bool) {
	if i, ok := s.headAt[serial]; ok {
		return s.head[i], true
	}
	if s.sealed != nil {
		if i, ok := s.sealed.bySerial[serial]; ok {
			return s.sealed.list[i], true
		}
	}
	return Revocation{}, false
}

// has is get's test for a serial in SerialString's notation as bytes:
// indexing the maps with string(key) does not allocate, and IsRevoked runs
// on every TLS handshake and PSD2 request.
func (s revocationState) has(key []byte) bool {
	if _, ok := s.headAt[string(key)]; ok {
		return true
	}
	if s.sealed != nil {
		_, ok := s.sealed.bySerial[string(key)]
		return ok
	}
	return false
}

func (s revocationState) len() int {
	n := len(s.head)
	if s.sealed != nil {
		n += len(s.sealed.list)
	}
	return n
}

// all returns every revocation, in log order. The slice is shared.
func (s revocationState) all() []Revocation {
	if s.sealed == nil || len(s.sealed.list) == 0 {
		return s.head
	}
	out := make([]Revocation, 0, s.len())
	return append(append(out, s.sealed.list...), s.head...)
}

// digestOf names the content of a stored object; "" for none.
func digestOf(raw []byte) string {
	if raw == nil {
		return ""
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// loadRevocations reads the revocation log: one List, one Load of the
// head, and Loads of the sealed segments this instance has not read yet.
func (a *Authority) loadRevocations(ctx context.Context) (revocationState, error) {
	a.revMu.Lock()
	gen := a.revGen
	a.revMu.Unlock()
	h, err := loadHead[Revocation](ctx, a, a.cfg.key(revocationsDir))
	if err != nil {
		return revocationState{}, fmt.Errorf("loading the revocation log: %w", err)
	}
	var st revocationState
	if h.n < 0 {
		st, err = a.loadLegacyRevocations(ctx)
	} else {
		st, err = a.stateOf(ctx, h)
	}
	st.gen = gen
	return st, err
}

// stateOf builds the state of the log whose head is h.
func (a *Authority) stateOf(ctx context.Context, h logHead[Revocation]) (revocationState, error) {
	var below []int
	for _, n := range h.segs {
		if n < h.n {
			below = append(below, n)
		}
	}
	sealed, err := a.sealedRevocations(ctx, below)
	if err != nil {
		return revocationState{}, err
	}
	st := revocationState{sealed: sealed, head: h.head.seg.Entries, digest: h.head.digest, log: h}
	st.headAt = make(map[string]int, len(st.head))
	for i, r := range st.head {
		st.headAt[r.Serial] = i
	}
	return st, nil
}

// sealedRevocations returns the revocations of segments segs, reusing
// (and extending) what the last call assembled.
func (a *Authority) sealedRevocations(ctx context.Context, segs []int) (*sealedRevocations, error) {
	prev := a.revSealed.Load()
	if prev != nil && slices.Equal(prev.segs, segs) {
		return prev, nil
	}
	out := &sealedRevocations{segs: segs}
	from := 0
	if prev != nil && len(prev.segs) <= len(segs) && slices.Equal(prev.segs, segs[:len(prev.segs)]) {
		out.list = slices.Clone(prev.list)
		from = len(prev.segs)
	}
	dir := a.cfg.key(revocationsDir)
	for _, n := range segs[from:] {
		s, err := loadSegment[Revocation](ctx, a, dir, n, true)
		if errors.Is(err, fs.ErrNotExist) {
			continue // listed by a stale directory index
		}
		if err != nil {
			return nil, fmt.Errorf("loading the revocation log: %w", err)
		}
		out.list = append(out.list, s.seg.Entries...)
	}
	out.bySerial = make(map[string]int, len(out.list))
	for i, r := range out.list {
		out.bySerial[r.Serial] = i
	}
	a.revSealed.Store(out)
	return out, nil
}

// loadLegacyRevocations reads revocations.json, the list that preceded the
// log, as a state whose digest is the one CRLs made from it record.
func (a *Authority) loadLegacyRevocations(ctx context.Context) (revocationState, error) {
	b, err := a.cfg.Storage.Load(ctx, a.cfg.key(legacyRevocationsName))
	if errors.Is(err, fs.ErrNotExist) {
		return revocationState{log: logHead[Revocation]{n: -1}}, nil
	}
	if err != nil {
		return revocationState{}, fmt.Errorf("loading the revocation list: %w", err)
	}
	var list []Revocation
	if err := json.Unmarshal(b, &list); err != nil {
		return revocationState{}, fmt.Errorf("reading the revocation list: %w", err)
	}
	st := revocationState{head: list, headAt: make(map[string]int, len(list)), digest: digestOf(b), log: logHead[Revocation]{n: -1}, legacy: true}
	for i := range list {
		// Lists written before SerialString padded serials hold
		// odd-length ones: one notation in memory.
		if n, err := ParseSerial(list[i].Serial); err == nil {
			list[i].Serial = SerialString(n)
		}
		st.headAt[list[i].Serial] = i
	}
	return st, nil
}

// migrateLegacyRevocations moves revocations.json into the log: the
// revocations it holds that the log lacks are appended (with the issue
// time and partner of their records, for the inventory's revoked view),
// then the list's digest is recorded in revocations.json.moved. The list
// is left in place and no longer written, so that a gateway of the
// previous version still sharing the storage during an upgrade keeps
// refusing what was revoked before it; what such a gateway revokes
// meanwhile changes the list, which the next start of this version
// merges. A crash half-way leaves no record of the move, and the next
// start appends only what is still missing. The caller holds the
// revocation lock.
func (a *Authority) migrateLegacyRevocations(ctx context.Context) error {
	old, moved, err := a.legacyMoved(ctx)
	if err != nil || moved || !old.legacy {
		return err
	}
	h, err := loadHead[Revocation](ctx, a, a.cfg.key(revocationsDir))
	if err != nil {
		return err
	}
	cur, err := a.stateOf(ctx, h)
	if err != nil {
		return err
	}
	var missing []Revocation
	for _, r := range old.head {
		if _, ok := cur.get(r.Serial); ok {
			continue
		}
		if n, err := ParseSerial(r.Serial); err == nil {
			if rec, err := a.loadRecord(ctx, n); err == nil {
				r.IssuedAt, r.PartnerID = rec.IssuedAt, rec.PartnerID
			}
		}
		missing = append(missing, r)
	}
	if len(missing) > 0 {
		if _, err := appendEntries(ctx, a, a.cfg.key(revocationsDir), h, a.revSegSize, true, missing...); err != nil {
			return fmt.Errorf("moving revocations.json into the revocation log: %w", err)
		}
	}
	if err := a.store(ctx, legacyMovedName, []byte(old.digest)); err != nil {
		return fmt.Errorf("recording that revocations.json is in the revocation log: %w", err)
	}
	return nil
}

// legacyMoved reads revocations.json and reports whether the log has
// what it holds (revocations.json.moved names its content).
func (a *Authority) legacyMoved(ctx context.Context) (revocationState, bool, error) {
	old, err := a.loadLegacyRevocations(ctx)
	if err != nil || !old.legacy {
		return old, true, err
	}
	b, err := a.cfg.Storage.Load(ctx, a.cfg.key(legacyMovedName))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return old, false, err
	}
	return old, string(b) == old.digest, nil
}

// Errors of revocation.
var (
	// ErrCRLNotPublished is returned (wrapped) when a revocation is
	// recorded and in force but the new CRL could not be stored; the next
	// read of the CRL makes it.
	ErrCRLNotPublished = errors.New("the revocation is recorded, but the new CRL could not be published yet")
)

// Revoke revokes a certificate issued by this CA and publishes a new CRL.
// The revocation is in force once it is appended to the revocation log,
// which is one write of at most one segment; when publishing the CRL
// fails after it, Revoke returns the revoked record with an error
// wrapping ErrCRLNotPublished. Revoking a revoked certificate returns
// ErrRevoked, after publishing the CRL if it was behind.
func (a *Authority) Revoke(ctx context.Context, serial *big.Int, reason int) (Record, error) {
	if a.cfg.ReadOnly {
		return Record{}, ErrReadOnly
	}
	// The code goes into the CRL as is: refuse what ParseReason refuses
	// (7 is unassigned, removeFromCRL only means something in delta CRLs).
	if _, err := ParseReason(strconv.Itoa(reason)); err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrPolicy, err)
	}
	release, err := a.lock(ctx, "revocations")
	if err != nil {
		return Record{}, err
	}
	defer release()
	rec, err := a.loadRecord(ctx, serial)
	if err != nil {
		return Record{}, err
	}
	state, err := a.loadRevocations(ctx)
	if err != nil {
		return Record{}, err
	}
	if state.legacy {
		// Not moved into the log at start (a storage failure then).
		if err := a.migrateLegacyRevocations(ctx); err != nil {
			return Record{}, err
		}
		if state, err = a.loadRevocations(ctx); err != nil {
			return Record{}, err
		}
	}
	key := SerialString(serial)
	if _, ok := state.get(key); ok {
		a.setRevocations(state)
		rec = a.withStatus(rec, state)
		if _, err := a.publishIfBehind(ctx, state); err != nil {
			return rec, fmt.Errorf("%w: %w", ErrCRLNotPublished, err)
		}
		return rec, ErrRevoked
	}
	entry := Revocation{Serial: key, RevokedAt: a.cfg.Now().UTC().Truncate(time.Second), Reason: reason,
		IssuedAt: rec.IssuedAt, PartnerID: rec.PartnerID}
	h, err := appendEntries(ctx, a, a.cfg.key(revocationsDir), state.log, a.revSegSize, true, entry)
	if err != nil {
		return Record{}, fmt.Errorf("storing the revocation: %w", err)
	}
	gen := state.gen
	if state, err = a.stateOf(ctx, h); err != nil {
		return Record{}, err
	}
	state.gen = gen
	a.setRevocations(state)
	if a.cfg.OnRevoke != nil {
		a.cfg.OnRevoke(ctx, serial)
	}
	rec = a.withStatus(rec, state)
	if _, err := a.generateCRL(ctx, state); err != nil {
		return rec, fmt.Errorf("%w: %w", ErrCRLNotPublished, err)
	}
	return rec, nil
}

// revocationView is the in-memory view of revocations that handshakes
// consult, and when it was read.
type revocationView struct {
	state    revocationState
	loadedAt time.Time
}

func (a *Authority) setRevocations(state revocationState) {
	v := &revocationView{state: state, loadedAt: a.cfg.Now()}
	a.revMu.Lock()
	defer a.revMu.Unlock()
	if state.gen != a.revGen {
		// Forgotten while loading: usable, but loaded again next time.
		v.loadedAt = time.Time{}
	}
	a.revView.Store(v)
}

// ForgetRevocations drops the in-memory view of revocations, so that the
// next check reads the revocation log from storage: another gateway on the
// same storage revoked a certificate.
func (a *Authority) ForgetRevocations() {
	a.revMu.Lock()
	defer a.revMu.Unlock()
	a.revGen++
	a.revView.Store(nil)
}

// refreshRevocations reloads the revocation log when the in-memory view
// is older than RevocationRefresh, and returns the view.
func (a *Authority) refreshRevocations(ctx context.Context) (revocationState, error) {
	if v := a.revView.Load(); v != nil && a.cfg.Now().Sub(v.loadedAt) <= a.cfg.RevocationRefresh {
		return v.state, nil
	}
	state, err := a.loadRevocations(ctx)
	if err != nil {
		return revocationState{}, err
	}
	a.setRevocations(state)
	return state, nil
}

// IsRevoked reports whether serial is revoked. It answers from memory,
// reloading revocations made by other instances at most every
// RevocationRefresh, so that it is cheap enough for every TLS handshake.
func (a *Authority) IsRevoked(ctx context.Context, serial *big.Int) (bool, error) {
	state, err := a.refreshRevocations(ctx)
	if err != nil {
		return false, err
	}
	var buf [2 * maxKeySerialBytes]byte
	return state.has(appendSerialString(buf[:0], serial)), nil
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

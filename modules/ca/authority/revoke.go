package authority

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"path"
	"slices"
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
	out := make([]Record, 0, len(keys))
	for _, k := range keys {
		if !strings.HasSuffix(k, ".json") {
			continue
		}
		b, err := a.cfg.Storage.Load(ctx, k)
		if err != nil {
			// Deleted between List and Load by an operator: skip it.
			continue
		}
		var rec Record
		if err := json.Unmarshal(b, &rec); err != nil {
			return nil, fmt.Errorf("reading %s: %w", path.Base(k), err)
		}
		out = append(out, a.withStatus(rec))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IssuedAt.After(out[j].IssuedAt) })
	return out, nil
}

// Lookup returns the inventory record of a serial, or ErrNotFound.
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
	return a.withStatus(rec), nil
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

func (a *Authority) revocationsKey() string { return a.cfg.key("revocations.json") }

func (a *Authority) loadRevocations(ctx context.Context) ([]Revocation, error) {
	b, err := a.cfg.Storage.Load(ctx, a.revocationsKey())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var list []Revocation
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("reading revocations: %w", err)
	}
	return list, nil
}

// Revoke revokes a certificate issued by this CA, records it in the
// inventory and publishes a new CRL.
func (a *Authority) Revoke(ctx context.Context, serial *big.Int, reason int) (Record, error) {
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
	rec, err := a.Lookup(ctx, serial)
	if err != nil {
		return Record{}, err
	}
	if rec.RevokedAt != nil {
		return rec, ErrRevoked
	}
	list, err := a.loadRevocations(ctx)
	if err != nil {
		return Record{}, err
	}
	now := a.cfg.Now().UTC().Truncate(time.Second)
	entry := Revocation{Serial: rec.Serial, RevokedAt: now, Reason: reason}
	// A Revoke that stored the list but failed to update the record is
	// retried with the record still valid: replace its entry rather than
	// listing the serial twice in the CRL.
	if i := slices.IndexFunc(list, func(r Revocation) bool { return r.Serial == rec.Serial }); i >= 0 {
		list[i] = entry
	} else {
		list = append(list, entry)
	}
	b, err := json.Marshal(list)
	if err != nil {
		return Record{}, err
	}
	if err := st.Store(ctx, a.revocationsKey(), b); err != nil {
		return Record{}, fmt.Errorf("storing revocations: %w", err)
	}
	rec.RevokedAt, rec.RevocationReason = &now, ReasonName(reason)
	if err := a.storeRecord(ctx, rec); err != nil {
		return Record{}, fmt.Errorf("updating the inventory: %w", err)
	}
	a.setRevocations(list)
	if _, err := a.generateCRL(ctx, list); err != nil {
		return Record{}, err
	}
	return a.withStatus(rec), nil
}

func (a *Authority) setRevocations(list []Revocation) {
	m := make(map[string]Revocation, len(list))
	for _, r := range list {
		m[r.Serial] = r
	}
	a.revMu.Lock()
	a.revoked, a.revLoadedAt = m, a.cfg.Now()
	a.revMu.Unlock()
}

// IsRevoked reports whether serial is revoked. It answers from memory,
// reloading revocations made by other instances at most every
// RevocationRefresh, so that it is cheap enough for every TLS handshake.
func (a *Authority) IsRevoked(ctx context.Context, serial *big.Int) (bool, error) {
	a.revMu.RLock()
	m, at := a.revoked, a.revLoadedAt
	a.revMu.RUnlock()
	if m == nil || a.cfg.Now().Sub(at) > a.cfg.RevocationRefresh {
		list, err := a.loadRevocations(ctx)
		if err != nil {
			return false, err
		}
		a.setRevocations(list)
		a.revMu.RLock()
		m = a.revoked
		a.revMu.RUnlock()
	}
	_, revoked := m[SerialString(serial)]
	return revoked, nil
}

// crlMeta is stored next to the CRL.
type crlMeta struct {
	Number     int64     `json:"number"`
	ThisUpdate time.Time `json:"thisUpdate"`
	NextUpdate time.Time `json:"nextUpdate"`
}

// CRL returns the current DER CRL, making a new one when none exists or the
// stored one has used half its validity.
func (a *Authority) CRL(ctx context.Context) ([]byte, error) {
	if der, meta, err := a.storedCRL(ctx); err == nil && a.cfg.Now().Before(meta.ThisUpdate.Add(a.cfg.CRLValidity/2)) {
		return der, nil
	}
	lock := a.cfg.key("revocations")
	if err := a.cfg.Storage.Lock(ctx, lock); err != nil {
		return nil, fmt.Errorf("taking the revocation lock: %w", err)
	}
	defer unlock(a.cfg.Storage, lock)
	if der, meta, err := a.storedCRL(ctx); err == nil && a.cfg.Now().Before(meta.ThisUpdate.Add(a.cfg.CRLValidity/2)) {
		return der, nil
	}
	list, err := a.loadRevocations(ctx)
	if err != nil {
		return nil, err
	}
	return a.generateCRL(ctx, list)
}

func (a *Authority) storedCRL(ctx context.Context) ([]byte, crlMeta, error) {
	var meta crlMeta
	b, err := a.cfg.Storage.Load(ctx, a.cfg.key("crl.json"))
	if err != nil {
		return nil, meta, err
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		return nil, meta, err
	}
	der, err := a.cfg.Storage.Load(ctx, a.cfg.key("crl.der"))
	return der, meta, err
}

// generateCRL signs a CRL with the next number. The caller holds the
// revocation lock, which makes the number monotonic across instances.
func (a *Authority) generateCRL(ctx context.Context, list []Revocation) ([]byte, error) {
	_, meta, err := a.storedCRL(ctx)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	now := a.cfg.Now().UTC()
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(meta.Number + 1),
		ThisUpdate: now,
		NextUpdate: now.Add(a.cfg.CRLValidity),
	}
	for _, r := range list {
		n, ok := new(big.Int).SetString(r.Serial, 16)
		if !ok {
			continue
		}
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber: n, RevocationTime: r.RevokedAt, ReasonCode: r.Reason,
		})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, a.cert, a.key)
	if err != nil {
		return nil, fmt.Errorf("signing CRL: %w", err)
	}
	if err := a.cfg.Storage.Store(ctx, a.cfg.key("crl.der"), der); err != nil {
		return nil, err
	}
	mb, _ := json.Marshal(crlMeta{Number: tmpl.Number.Int64(), ThisUpdate: now, NextUpdate: tmpl.NextUpdate})
	if err := a.cfg.Storage.Store(ctx, a.cfg.key("crl.json"), mb); err != nil {
		return nil, err
	}
	return der, nil
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

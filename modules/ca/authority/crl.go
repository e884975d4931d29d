package authority

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// storedCRL is the published CRL and what it was made from, in one
// storage object so that it is written in one (atomic) write.
type storedCRL struct {
	Number     int64     `json:"number"`
	ThisUpdate time.Time `json:"thisUpdate"`
	NextUpdate time.Time `json:"nextUpdate"`
	// Revocations is the digest of the revocation log's head when the
	// CRL was made (of revocations.json before the log), which names
	// every revocation the CRL lists.
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
	release, err := a.lock(ctx, "revocations")
	if err != nil {
		return nil, err
	}
	defer release()
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
	release, err := a.lock(ctx, "revocations")
	if err != nil {
		return CRLInfo{}, err
	}
	defer release()
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
	number := big.NewInt(prev.Number + 1)
	next := now.Add(a.cfg.CRLValidity)
	der, entries, err := a.signCRL(number, now, next, state)
	if err != nil {
		return storedCRL{}, fmt.Errorf("signing CRL: %w", err)
	}
	c := storedCRL{
		Number: number.Int64(), ThisUpdate: now, NextUpdate: next,
		Revocations: state.digest, Entries: entries, DER: der,
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

// signCRL signs a CRL with number and validity that lists revs, and
// returns it with the number of entries it lists. Revocations whose
// serial does not parse are left out.
//
// x509.CreateRevocationList encodes every entry by reflection
// (encoding/asn1), which takes about 50 ms for 10,000 revocations. So the
// entries are encoded here, as CreateRevocationList encodes them
// (TestCRLEncodingMatchesX509 compares the bytes), once for the sealed
// segments of the log, and spliced into the list that
// CreateRevocationList makes without entries, which is then signed again
// with the same algorithm and checked.
func (a *Authority) signCRL(number *big.Int, thisUpdate, nextUpdate time.Time, revs revocationState) ([]byte, int, error) {
	tmpl := &x509.RevocationList{Number: number, ThisUpdate: thisUpdate, NextUpdate: nextUpdate}
	base, err := x509.CreateRevocationList(rand.Reader, tmpl, a.cert, a.key)
	if err != nil {
		return nil, 0, err
	}
	entries, n, err := crlEntries(revs)
	if err != nil || n == 0 {
		return base, 0, err
	}
	rl, err := x509.ParseRevocationList(base)
	if err != nil {
		return nil, 0, err
	}
	hash, ok := crlHash(rl.SignatureAlgorithm)
	if !ok {
		return a.signCRLSlowly(tmpl, revs.all())
	}
	var outer, list, tbs, sigAlg cryptobyte.String
	var version, sig, issuer, this, next cryptobyte.String
	outer = base
	if !outer.ReadASN1(&list, cbasn1.SEQUENCE) ||
		!list.ReadASN1(&tbs, cbasn1.SEQUENCE) || !list.ReadASN1Element(&sigAlg, cbasn1.SEQUENCE) ||
		!tbs.ReadASN1Element(&version, cbasn1.INTEGER) || !tbs.ReadASN1Element(&sig, cbasn1.SEQUENCE) ||
		!tbs.ReadASN1Element(&issuer, cbasn1.SEQUENCE) ||
		!tbs.ReadAnyASN1Element(&this, nil) || !tbs.ReadAnyASN1Element(&next, nil) ||
		!tbs.PeekASN1Tag(cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return nil, 0, errors.New("unexpected structure of the CRL made by crypto/x509")
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, len(base)+len(entries)+8))
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, part := range [][]byte{version, sig, issuer, this, next, entries, tbs} {
			b.AddBytes(part)
		}
	})
	tbsDER, err := b.Bytes()
	if err != nil {
		return nil, 0, err
	}
	h := hash.New()
	h.Write(tbsDER)
	signature, err := a.key.Sign(rand.Reader, h.Sum(nil), hash)
	if err != nil {
		return nil, 0, err
	}
	// As crypto/x509 does for certificates: a faulty signature (or a key
	// that is not the certificate's) must never be published.
	if err := a.cert.CheckSignature(rl.SignatureAlgorithm, tbsDER, signature); err != nil {
		return nil, 0, fmt.Errorf("the CRL signature does not verify: %w", err)
	}
	b = cryptobyte.NewBuilder(make([]byte, 0, len(tbsDER)+len(sigAlg)+len(signature)+16))
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbsDER)
		b.AddBytes(sigAlg)
		b.AddASN1BitString(signature)
	})
	der, err := b.Bytes()
	return der, n, err
}

// signCRLSlowly is signCRL by crypto/x509 alone, for signature algorithms
// signCRL does not re-sign itself.
func (a *Authority) signCRLSlowly(tmpl *x509.RevocationList, revs []Revocation) ([]byte, int, error) {
	for _, r := range revs {
		n, err := ParseSerial(r.Serial)
		if err != nil {
			continue
		}
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber: n, RevocationTime: r.RevokedAt, ReasonCode: r.Reason,
		})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, a.cert, a.key)
	return der, len(tmpl.RevokedCertificateEntries), err
}

// crlHash is the digest of a signature algorithm that signs a digest with
// the CA key as crypto/x509 does (PKCS #1 v1.5 or ECDSA).
func crlHash(alg x509.SignatureAlgorithm) (crypto.Hash, bool) {
	switch alg {
	case x509.SHA256WithRSA, x509.ECDSAWithSHA256:
		return crypto.SHA256, true
	case x509.SHA384WithRSA, x509.ECDSAWithSHA384:
		return crypto.SHA384, true
	case x509.SHA512WithRSA, x509.ECDSAWithSHA512:
		return crypto.SHA512, true
	}
	return 0, false
}

// appendCRLEntries appends the DER of revs as entries of
// revokedCertificates (RFC 5280 §5.1), encoded as encoding/asn1 encodes
// []pkix.RevokedCertificate for x509.CreateRevocationList: the serial as
// a minimal positive INTEGER, the time as UTCTime from 1950 to 2049 and as
// GeneralizedTime otherwise, and a reasonCode extension unless the reason
// is unspecified (0). Every entry is shorter than 128 bytes, so lengths
// take one byte. Revocations whose serial is not a serial are left out;
// it returns how many were appended.
func appendCRLEntries(dst []byte, revs []Revocation) ([]byte, int, error) {
	n := 0
	for _, r := range revs {
		digits := strings.TrimLeft(r.Serial, "0")
		if len(digits)%2 == 1 {
			digits = "0" + digits
		}
		serial, err := hex.DecodeString(digits)
		if err != nil || len(serial) == 0 || len(serial) > 32 {
			continue
		}
		if r.RevokedAt.IsZero() {
			return nil, 0, fmt.Errorf("revocation of %s has no time", r.Serial)
		}
		if r.Reason < 0 || r.Reason > 127 {
			return nil, 0, fmt.Errorf("revocation of %s has reason %d", r.Serial, r.Reason)
		}
		t := r.RevokedAt.UTC()
		var when []byte
		if t.Year() < 1950 || t.Year() >= 2050 {
			when = append([]byte{0x18, 15}, t.Format("20060102150405Z")...)
		} else {
			when = append([]byte{0x17, 13}, t.Format("060102150405Z")...)
		}
		pad := serial[0]&0x80 != 0
		intLen := len(serial)
		if pad {
			intLen++
		}
		body := 2 + intLen + len(when)
		if r.Reason != 0 {
			body += 14
		}
		dst = append(dst, 0x30, byte(body), 0x02, byte(intLen))
		if pad {
			dst = append(dst, 0)
		}
		dst = append(append(dst, serial...), when...)
		if r.Reason != 0 {
			// SEQUENCE { SEQUENCE { OID 2.5.29.21, OCTET STRING { ENUMERATED reason } } }
			dst = append(dst, 0x30, 12, 0x30, 10, 0x06, 3, 0x55, 0x1d, 0x15, 0x04, 3, 0x0a, 1, byte(r.Reason))
		}
		n++
	}
	return dst, n, nil
}

// crlEntries returns the DER of the revokedCertificates SEQUENCE of
// state: the encoding of the sealed revocations is made once and kept
// with them, so that a CRL costs the encoding of the head only.
func crlEntries(revs revocationState) ([]byte, int, error) {
	var sealed []byte
	var n int
	if s := revs.sealed; s != nil {
		s.encodeOnce.Do(func() { s.der, s.derCount, s.derErr = appendCRLEntries(nil, s.list) })
		if s.derErr != nil {
			return nil, 0, s.derErr
		}
		sealed, n = s.der, s.derCount
	}
	head, m, err := appendCRLEntries(nil, revs.head)
	if err != nil {
		return nil, 0, err
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, len(sealed)+len(head)+8))
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(sealed)
		b.AddBytes(head)
	})
	der, err := b.Bytes()
	return der, n + m, err
}

package psd2

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/bankedge/bankedge/internal/certprofile/qcstatements"
	"github.com/bankedge/bankedge/internal/metrics"
	"github.com/bankedge/bankedge/modules/psd2/httpsig"
)

// TPP is the identity of a third-party provider read from a verified QWAC
// or QSEAL.
type TPP struct {
	OrgID string
	Name  string
	// Roles are the roles of ETSI TS 119 495 this version knows; only
	// they satisfy a route's role requirement.
	Roles []qcstatements.Role
	// OtherRoles are the roles this version does not know (a later TS 119
	// 495's or an NCA's, e.g. VOP_RS), by their name in the certificate
	// (see qcstatements.OtherRole.Label). They grant nothing here and are
	// carried upstream.
	OtherRoles []string
	// RolesCSV is Roles then OtherRoles, comma-separated: {psd2.tpp.roles}.
	RolesCSV   string
	NCAID      string
	NCAName    string
	CertSHA256 string

	// meter records the requests of a TPP verified by its QWAC.
	meter *metrics.TPPMeter
	// values are the fields above as the {psd2.tpp.*} placeholders give
	// them, converted to interfaces once (see boxValues) rather than on
	// every read.
	values struct{ orgID, name, roles, ncaID, ncaName, certSHA256 any }
}

// boxValues fills t.values.
func (t *TPP) boxValues() {
	t.values.orgID, t.values.name, t.values.roles = t.OrgID, t.Name, t.RolesCSV
	t.values.ncaID, t.values.ncaName, t.values.certSHA256 = t.NCAID, t.NCAName, t.CertSHA256
}

// HasAnyRole reports whether the TPP holds at least one of roles.
func (t *TPP) HasAnyRole(roles []qcstatements.Role) bool {
	for _, want := range roles {
		for _, have := range t.Roles {
			if have == want {
				return true
			}
		}
	}
	return false
}

// verifiedCert is a certificate whose chain and PSD2 attributes were checked.
type verifiedCert struct {
	cert *x509.Certificate
	// sum is the SHA-256 of cert.Raw, the key of the revocation cache and
	// of the blocklist.
	sum [32]byte
	// issuer is the certificate's issuer in its verified chain, for the
	// revocation checks; nil when the certificate is itself trusted.
	issuer *x509.Certificate
	// roots is the trust pool the chain was verified against.
	roots *x509.CertPool
	tpp   TPP
	// validUntil is the earliest NotAfter in the chain; after it the entry is
	// re-verified so that expiry is reported.
	validUntil time.Time
	// base64DER is the certificate as a Piraeus client sends it in a
	// header, so that the common case is a string comparison instead of a
	// decode.
	base64DER string
	// keyID is the last keyId found to name this certificate; TPPs send the
	// same one on every request, so it is parsed and matched only once.
	keyID atomic.Pointer[string]
	// sigKey verifies the signatures made with a QSEAL's key, with the
	// key's constants computed once here rather than on every request;
	// nil for a QWAC.
	sigKey *httpsig.KeyVerifier
	// statusLoggedAt (Unix nanoseconds) is when an unknown revocation
	// status of this certificate was last logged, so that a responder
	// outage logs a line per certificate every statusLogEvery, not one
	// per request.
	statusLoggedAt atomic.Int64
}

// certVerifier checks PSD2 certificates against a trust pool and caches the
// successes by the SHA-256 of the DER.
type certVerifier struct {
	roots  trustRoots
	qcType qcstatements.QcType
	kind   string // QWAC or QSEAL, for messages
	now    func() time.Time
	// status is asked about every certificate on every request, cached or
	// not: the blocklist, the CAs' own revocations, OCSP and CRL.
	status certStatus
	logger *zap.Logger

	mu sync.RWMutex
	// cachedFor is the trust pool the cache's entries were verified
	// against; a live pool that changes empties the cache.
	// It changes under mu.
	cachedFor atomic.Pointer[x509.CertPool]
	cache     map[[32]byte]*verifiedCert
	// byHeader indexes the same entries by the exact header text they
	// arrived in, which spares the decode and hash of a header certificate.
	byHeader map[string]*verifiedCert
	capacity int

	// peers remembers, per TLS connection, the verification its client
	// certificate matched, by the *x509.Certificate of the connection
	// state, which every request of the connection shares: those requests
	// find it without hashing the certificate. A fixed table, so that it
	// keeps at most peerSlots certificates alive; a collision only costs
	// the hash.
	peers     [peerSlots]atomic.Pointer[peerEntry]
	peersSeed maphash.Seed
}

// peerSlots is the size of certVerifier.peers.
const peerSlots = 256

// peerEntry is a TLS client certificate and the verification it matched.
type peerEntry struct {
	peer *x509.Certificate
	vc   *verifiedCert
}

// maxIndexedHeader bounds the header texts kept in byHeader.
const maxIndexedHeader = 8 << 10

func newCertVerifier(roots trustRoots, qcType qcstatements.QcType, capacity int, status certStatus, logger *zap.Logger) *certVerifier {
	kind := "QWAC"
	if qcType == qcstatements.QcTypeESeal {
		kind = "QSEAL"
	}
	v := &certVerifier{
		roots:     roots,
		qcType:    qcType,
		kind:      kind,
		status:    status,
		logger:    logger,
		now:       time.Now,
		cache:     make(map[[32]byte]*verifiedCert),
		byHeader:  make(map[string]*verifiedCert),
		capacity:  capacity,
		peersSeed: maphash.MakeSeed(),
	}
	v.cachedFor.Store(roots.current())
	return v
}

// currentRoots returns the trust pool in force. When a live pool (the EU
// trusted lists) has changed since the cache was filled, the cache is
// emptied: a certificate verified against a QTSP that is no longer
// trusted must be verified again.
func (v *certVerifier) currentRoots() *x509.CertPool {
	if v.roots.live == nil {
		return v.roots.fixed
	}
	p := v.roots.live.CurrentCertPool()
	if p != v.cachedFor.Load() {
		v.mu.Lock()
		if p != v.cachedFor.Load() {
			clear(v.cache)
			clear(v.byHeader)
			v.cachedFor.Store(p)
		}
		v.mu.Unlock()
	}
	return p
}

// lookup returns a cached, still valid verification of the certificate whose
// DER hashes to sum.
func (v *certVerifier) lookup(sum [32]byte, now time.Time) *verifiedCert {
	v.currentRoots()
	v.mu.RLock()
	vc := v.cache[sum]
	v.mu.RUnlock()
	return vc.current(now)
}

// lookupPeer returns the verification that the TLS client certificate
// peer, the very same object, matched before, if it is still valid
// against the trust pool in force.
func (v *certVerifier) lookupPeer(peer *x509.Certificate, now time.Time) *verifiedCert {
	e := v.peers[v.peerSlot(peer)].Load()
	if e == nil || e.peer != peer || e.vc.roots != v.currentRoots() {
		return nil
	}
	return e.vc.current(now)
}

// rememberPeer notes that the TLS client certificate peer matched vc: its
// DER hashes to vc.sum.
func (v *certVerifier) rememberPeer(peer *x509.Certificate, vc *verifiedCert) {
	slot := &v.peers[v.peerSlot(peer)]
	if e := slot.Load(); e == nil || e.peer != peer || e.vc != vc {
		slot.Store(&peerEntry{peer: peer, vc: vc})
	}
}

func (v *certVerifier) peerSlot(peer *x509.Certificate) uint64 {
	return maphash.Comparable(v.peersSeed, peer) % peerSlots
}

// lookupHeader returns a cached verification of the certificate that came
// in exactly this header text before.
func (v *certVerifier) lookupHeader(header string, now time.Time) *verifiedCert {
	v.currentRoots()
	v.mu.RLock()
	vc := v.byHeader[header]
	v.mu.RUnlock()
	return vc.current(now)
}

// storeHeader remembers the header text a verified certificate came in.
func (v *certVerifier) storeHeader(header string, vc *verifiedCert) {
	if len(header) > maxIndexedHeader {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if vc.roots != v.cachedFor.Load() {
		return
	}
	if _, ok := v.byHeader[header]; !ok && len(v.byHeader) >= v.capacity {
		for k := range v.byHeader {
			delete(v.byHeader, k)
			break
		}
	}
	v.byHeader[header] = vc
}

// current returns vc unless it is nil or outside its validity.
func (vc *verifiedCert) current(now time.Time) *verifiedCert {
	if vc == nil || !now.Before(vc.validUntil) || now.Before(vc.cert.NotBefore) {
		return nil
	}
	return vc
}

// keyIDMatches reports whether keyID is the one already matched.
func (vc *verifiedCert) keyIDMatches(keyID string) bool {
	p := vc.keyID.Load()
	return p != nil && *p == keyID
}

func (v *certVerifier) store(sum [32]byte, vc *verifiedCert) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if vc.roots != v.cachedFor.Load() {
		// The pool changed during the verification: the next request
		// verifies against the new one.
		return
	}
	if _, ok := v.cache[sum]; !ok && len(v.cache) >= v.capacity {
		// Map iteration order is random, which makes this a cheap random
		// eviction; a full cache only costs a re-verification.
		for k := range v.cache {
			delete(v.cache, k)
			break
		}
	}
	v.cache[sum] = vc
}

// verify checks cert, with intermediates offered by the client, and returns
// the cached result when there is one. sum is the SHA-256 of cert.Raw.
func (v *certVerifier) verify(cert *x509.Certificate, intermediates []*x509.Certificate, sum [32]byte) (*verifiedCert, *rejection) {
	now := v.now()
	if vc := v.lookup(sum, now); vc != nil {
		return vc, nil
	}
	vc, rej := v.verifyUncached(cert, intermediates, sum, now, v.currentRoots())
	if rej != nil {
		return nil, rej
	}
	v.store(sum, vc)
	return vc, nil
}

func (v *certVerifier) verifyUncached(cert *x509.Certificate, intermediates []*x509.Certificate, sum [32]byte, now time.Time, roots *x509.CertPool) (*verifiedCert, *rejection) {
	kind := v.kind
	if now.Before(cert.NotBefore) {
		return nil, reject(CertificateExpired, fmt.Sprintf("%s is not valid before %s", kind, cert.NotBefore.UTC().Format(time.RFC3339)))
	}
	if now.After(cert.NotAfter) {
		return nil, reject(CertificateExpired, fmt.Sprintf("%s expired on %s", kind, cert.NotAfter.UTC().Format(time.RFC3339)))
	}

	// Go refuses a critical qcStatements extension as unhandled; we handle
	// it, so verify a shallow copy without that mark. The original may be
	// shared with the TLS connection state and must not change.
	leaf := cert
	if len(cert.UnhandledCriticalExtensions) > 0 {
		c := *cert
		c.UnhandledCriticalExtensions = nil
		for _, oid := range cert.UnhandledCriticalExtensions {
			if !oid.Equal(qcstatements.OIDExtension) {
				c.UnhandledCriticalExtensions = append(c.UnhandledCriticalExtensions, oid)
			}
		}
		leaf = &c
	}
	var pool *x509.CertPool
	if len(intermediates) > 0 {
		pool = x509.NewCertPool()
		for _, ic := range intermediates {
			pool.AddCert(ic)
		}
	}
	// Any EKU: QWACs increasingly carry serverAuth only, which Go's TLS
	// client-certificate check would refuse.
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: pool,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		var invalid x509.CertificateInvalidError
		if errors.As(err, &invalid) && invalid.Reason == x509.Expired {
			return nil, reject(CertificateExpired, kind+" chain contains an expired certificate")
		}
		var unknown x509.UnknownAuthorityError
		if errors.As(err, &unknown) {
			return nil, reject(CertificateInvalid, kind+" does not chain to a trusted QTSP")
		}
		return nil, reject(CertificateInvalid, kind+" chain verification failed: "+err.Error())
	}

	st, present, err := qcstatements.FromCertificate(cert)
	switch {
	case err != nil:
		return nil, reject(CertificateInvalid, kind+" has a malformed qcStatements extension")
	case !present || st.PSD2 == nil:
		return nil, reject(CertificateInvalid, kind+" has no PSD2 QCStatement (ETSI TS 119 495)")
	case len(st.Types) > 0 && !st.HasType(v.qcType):
		return nil, reject(CertificateInvalid, fmt.Sprintf("%s has QcType %v, want %v", kind, st.Types, v.qcType))
	}
	orgID := qcstatements.OrganizationIdentifier(cert.Subject)
	if orgID == "" {
		return nil, reject(CertificateInvalid, kind+" subject has no organizationIdentifier")
	}
	parsed, err := qcstatements.ParseOrgID(orgID)
	if err != nil {
		return nil, reject(CertificateInvalid, kind+" "+err.Error())
	}
	if !strings.EqualFold(parsed.NCAID(), st.PSD2.NCAID) {
		return nil, reject(CertificateInvalid, fmt.Sprintf("%s organizationIdentifier %s does not match NCA id %s", kind, orgID, st.PSD2.NCAID))
	}

	name := cert.Subject.CommonName
	if len(cert.Subject.Organization) > 0 {
		name = cert.Subject.Organization[0]
	}
	roles := make([]string, 0, len(st.PSD2.Roles)+len(st.PSD2.Others))
	for _, r := range st.PSD2.Roles {
		roles = append(roles, string(r))
	}
	var others []string
	for _, r := range st.PSD2.Others {
		others = append(others, r.Label())
	}
	roles = append(roles, others...)
	validUntil := cert.NotAfter
	for _, c := range chains[0] {
		if c.NotAfter.Before(validUntil) {
			validUntil = c.NotAfter
		}
	}
	var issuer *x509.Certificate
	if len(chains[0]) > 1 {
		issuer = chains[0][1]
	}
	var sigKey *httpsig.KeyVerifier
	if v.qcType == qcstatements.QcTypeESeal {
		sigKey = httpsig.NewKeyVerifier(cert.PublicKey)
	}
	vc := &verifiedCert{
		sigKey: sigKey,
		cert:   cert,
		sum:    sum,
		issuer: issuer,
		roots:  roots,
		tpp: TPP{
			OrgID:      orgID,
			Name:       name,
			Roles:      st.PSD2.Roles,
			OtherRoles: others,
			RolesCSV:   strings.Join(roles, ","),
			NCAID:      st.PSD2.NCAID,
			NCAName:    st.PSD2.NCAName,
			CertSHA256: hex.EncodeToString(sum[:]),
			meter:      v.tppMeter(orgID, roles),
		},
		validUntil: validUntil,
		base64DER:  base64.StdEncoding.EncodeToString(cert.Raw),
	}
	vc.tpp.boxValues()
	return vc, nil
}

// serialHex writes a serial number as openssl x509 -serial does: upper-case
// hexadecimal with an even number of digits.
func serialHex(c *x509.Certificate) string {
	if c.SerialNumber == nil {
		return ""
	}
	h := strings.ToUpper(c.SerialNumber.Text(16))
	if len(h)%2 == 1 {
		h = "0" + h
	}
	return h
}

// sha256Sum is a helper so that callers do not import crypto/sha256.
func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

package tsl_test

import (
	"context"
	"crypto/x509"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bankedge/bankedge/internal/testtsl"
	"github.com/bankedge/bankedge/modules/trust/fetch"
	"github.com/bankedge/bankedge/modules/trust/tsl"
)

// memStore is a Store in memory.
type memStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memStore) Load(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return v, nil
}

func (s *memStore) Store(_ context.Context, key string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	s.m[key] = v
	return nil
}

func newResolver(sc *testtsl.Scenario, store tsl.Store) *tsl.Resolver {
	return &tsl.Resolver{
		LOTLURL: sc.URL(testtsl.LOTLPath),
		Signers: []*x509.Certificate{sc.LOTLSigner.Cert},
		Fetcher: &fetch.Client{HTTP: fetch.NewHTTPClient(5 * time.Second), MaxBytes: 1 << 20},
		Store:   store,
	}
}

func caNames(cas []tsl.TrustedCA) string {
	var n []string
	for _, c := range cas {
		n = append(n, c.Territory+":"+c.Cert.Subject.CommonName)
	}
	return strings.Join(n, ",")
}

func state(t *testing.T, s *tsl.Snapshot, territory string) tsl.ListState {
	t.Helper()
	for _, ls := range s.Lists {
		if ls.Territory == territory {
			return ls
		}
	}
	t.Fatalf("no list for %s", territory)
	return tsl.ListState{}
}

func TestResolveSelectsGrantedCAsByUsage(t *testing.T) {
	sc := testtsl.NewScenario(t)
	snap, err := newResolver(sc, nil).Resolve(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Failures() {
		t.Fatalf("failures: LOTL %v, %+v", snap.LOTL.Err, snap.Lists)
	}
	if len(snap.Lists) != 2 {
		t.Fatalf("%d national lists, want EL and CY (the PDF and LOTL pointers skipped)", len(snap.Lists))
	}
	if got := caNames(snap.TrustedCAs(tsl.UsageWeb)); got != "EL:Granted QTSP Qualified CA" {
		t.Fatalf("web CAs = %s", got)
	}
	if got := caNames(snap.TrustedCAs(tsl.UsageESeal)); got != "CY:ESeal QTSP Qualified CA,EL:Granted QTSP Qualified CA" {
		t.Fatalf("eseal CAs = %s", got)
	}
	if nu := snap.NextUpdate(); nu.Before(time.Now().Add(170*24*time.Hour)) || nu.After(time.Now().Add(181*24*time.Hour)) {
		t.Fatalf("next update %s", nu)
	}

	r := newResolver(sc, nil)
	r.Territories = []string{"GR"}
	snap, err = r.Resolve(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Lists) != 1 || snap.Lists[0].Territory != "EL" {
		t.Fatalf("territory GR gave %+v", snap.Lists)
	}
}

func TestResolveXmlsecSignedLists(t *testing.T) {
	sc := testtsl.NewScenario(t)
	lotlSigner := testtsl.NewSigner(t, "xmlsec LOTL signer", testtsl.RSASHA256, 2)
	elSigner := testtsl.NewSigner(t, "xmlsec EL signer", testtsl.ECDSASHA384, 0)
	lotl := sc.LOTL(2)
	lotl.Pointers[1].Certs = []*x509.Certificate{elSigner.Cert}
	sc.Server.Put(testtsl.LOTLPath, lotlSigner.SignXmlsec(t, lotl.XML()))
	sc.Server.Put(testtsl.ELPath, elSigner.SignXmlsec(t, sc.EL(2).XML()))
	r := newResolver(sc, nil)
	r.Signers = []*x509.Certificate{lotlSigner.Cert}
	snap, err := r.Resolve(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if el := state(t, snap, "EL"); el.Err != nil || el.Origin != tsl.Fetched || el.List.SequenceNumber != 2 {
		t.Fatalf("EL signed by xmlsec1: %+v", el)
	}
	if got := caNames(snap.TrustedCAs(tsl.UsageWeb)); got != "EL:Granted QTSP Qualified CA" {
		t.Fatalf("web CAs = %s", got)
	}
}

// Every refused copy of EL leaves sequence 1 in force, with the reason.
func TestResolveRefusedListKeepsLastGood(t *testing.T) {
	sc := testtsl.NewScenario(t)
	store := &memStore{}
	r := newResolver(sc, store)
	good, err := r.Resolve(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}

	// Sequence 2 would grant the withdrawn QTSP.
	bad := sc.EL(2)
	bad.Providers[1].Services[0].Status = testtsl.Granted
	intruder := testtsl.NewSigner(t, "not in the pointer", testtsl.RSAPSS256, 2)
	expired := sc.EL(3)
	expired.Issue = time.Now().Add(-200 * 24 * time.Hour)
	expired.NextUpdate = time.Now().Add(-25 * time.Hour)
	cases := map[string]struct {
		doc  []byte
		want string
	}{
		"tampered":           {tamper(sc.ELSigner.Sign(t, sc.EL(2).XML())), "digest does not match"},
		"key not in pointer": {intruder.Sign(t, bad.XML()), "does not verify with any"},
		"LOTL signer":        {sc.LOTLSigner.Sign(t, bad.XML()), "does not verify with any"},
		"expired":            {sc.ELSigner.Sign(t, expired.XML()), "expired"},
		"closed":             {sc.ELSigner.Sign(t, func() []byte { l := sc.EL(4); l.NextUpdate = time.Time{}; return l.XML() }()), "closed"},
		"wrong territory":    {sc.ELSigner.Sign(t, func() []byte { l := sc.EL(5); l.Territory = "CY"; return l.XML() }()), "SchemeTerritory"},
		"unreachable":        {nil, "HTTP status 503"},
		"issued before the signer certificate": {sc.ELSigner.Sign(t, func() []byte {
			l := sc.EL(6)
			l.Issue = time.Now().Add(-500 * 24 * time.Hour)
			return l.XML()
		}()), "not valid at the list's issue date"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if c.doc == nil {
				sc.Server.Fail(testtsl.ELPath, http.StatusServiceUnavailable)
				defer sc.Server.Fail(testtsl.ELPath, 0)
			} else {
				sc.Server.Put(testtsl.ELPath, c.doc)
			}
			for _, prev := range []*tsl.Snapshot{good, nil} { // in memory, then from the store
				snap, err := r.Resolve(context.Background(), prev)
				if err != nil {
					t.Fatal(err)
				}
				el := state(t, snap, "EL")
				if el.Err == nil || !strings.Contains(el.Err.Error(), c.want) {
					t.Fatalf("EL error %v, want %q", el.Err, c.want)
				}
				if el.Origin != tsl.LastGood || el.List.SequenceNumber != 1 {
					t.Fatalf("in force: %v seq %v", el.Origin, el.List)
				}
				if got := caNames(snap.TrustedCAs(tsl.UsageWeb)); got != "EL:Granted QTSP Qualified CA" {
					t.Fatalf("web CAs = %s", got)
				}
				if cy := state(t, snap, "CY"); cy.Err != nil || cy.Origin != tsl.Fetched {
					t.Fatalf("CY affected: %+v", cy)
				}
			}
		})
	}

	// A proper sequence 2 replaces 1; then sequence 1 again is a rollback.
	sc.Server.Put(testtsl.ELPath, sc.ELSigner.Sign(t, bad.XML()))
	snap, err := r.Resolve(context.Background(), good)
	if err != nil {
		t.Fatal(err)
	}
	if el := state(t, snap, "EL"); el.Err != nil || el.List.SequenceNumber != 2 {
		t.Fatalf("sequence 2 not in force: %+v", el)
	}
	if got := caNames(snap.TrustedCAs(tsl.UsageWeb)); got != "EL:Granted QTSP Qualified CA,EL:Withdrawn QTSP Qualified CA" {
		t.Fatalf("web CAs = %s", got)
	}
	sc.Server.Put(testtsl.ELPath, sc.ELSigner.Sign(t, sc.EL(1).XML()))
	snap, err = r.Resolve(context.Background(), snap)
	if err != nil {
		t.Fatal(err)
	}
	if el := state(t, snap, "EL"); el.Err == nil || !strings.Contains(el.Err.Error(), "lower than the last good") || el.List.SequenceNumber != 2 {
		t.Fatalf("rollback: %+v", el)
	}
}

func tamper(doc []byte) []byte {
	return []byte(strings.Replace(string(doc), "Granted QTSP S.A.", "Evil QTSP S.A.", 1))
}

func TestResolveRestartWithoutNetwork(t *testing.T) {
	sc := testtsl.NewScenario(t)
	store := &memStore{}
	if _, err := newResolver(sc, store).Resolve(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	sc.Server.Close()
	snap, err := newResolver(sc, store).Resolve(context.Background(), nil)
	if err != nil {
		t.Fatalf("restart with stored copies: %v", err)
	}
	if snap.LOTL.Origin != tsl.LastGood || snap.LOTL.Err == nil {
		t.Fatalf("LOTL %+v", snap.LOTL)
	}
	if got := caNames(snap.TrustedCAs(tsl.UsageWeb)); got != "EL:Granted QTSP Qualified CA" {
		t.Fatalf("web CAs = %s", got)
	}

	// The stored copies belong to their signers: another LOTL signer set
	// does not see them.
	r := newResolver(sc, store)
	r.Signers = []*x509.Certificate{sc.CYSigner.Cert}
	if _, err := r.Resolve(context.Background(), nil); !errors.Is(err, tsl.ErrNoLOTL) {
		t.Fatalf("err = %v", err)
	}
}

func TestResolveFirstStartFails(t *testing.T) {
	sc := testtsl.NewScenario(t)
	sc.Server.Close()
	_, err := newResolver(sc, &memStore{}).Resolve(context.Background(), nil)
	if !errors.Is(err, tsl.ErrNoLOTL) || !strings.Contains(err.Error(), "none stored") {
		t.Fatalf("err = %v", err)
	}

	sc = testtsl.NewScenario(t)
	r := newResolver(sc, nil)
	r.Signers = []*x509.Certificate{sc.ELSigner.Cert}
	_, err = r.Resolve(context.Background(), nil)
	if !errors.Is(err, tsl.ErrNoLOTL) || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("LOTL with a signer not configured: %v", err)
	}
}

// An air-gapped gateway reads a mirrored LOTL from a file and the national
// lists from a mirror directory; the signatures are checked all the same.
func TestResolveMirror(t *testing.T) {
	sc := testtsl.NewScenario(t)
	dir := t.TempDir()
	files := map[string][]byte{
		"eu-lotl.xml": sc.LOTLSigner.Sign(t, sc.LOTL(1).XML()),
		"EL.xml":      sc.ELSigner.Sign(t, sc.EL(1).XML()),
		"CY.xml":      []byte(strings.Replace(string(sc.CYSigner.Sign(t, sc.CY(1).XML())), "ESeal QTSP Ltd", "Evil QTSP Ltd", 1)),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sc.Server.Close()
	r := newResolver(sc, nil)
	r.LOTLURL = "file://" + filepath.Join(dir, "eu-lotl.xml")
	r.Mirror = dir
	r.Fetcher = &fetch.Client{MaxBytes: 1 << 20, AllowFiles: true}
	snap, err := r.Resolve(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if el := state(t, snap, "EL"); el.Err != nil || el.URL != filepath.Join(dir, "EL.xml") {
		t.Fatalf("EL from the mirror: %s %v", el.URL, el.Err)
	}
	if cy := state(t, snap, "CY"); cy.Err == nil || cy.List != nil {
		t.Fatalf("tampered CY from the mirror: in force %v", cy.Origin)
	}
}

// When no copy of the LOTL is usable any more, the one in force keeps
// leading to the national lists, which are still refreshed and checked.
func TestResolveLapsedLOTLKeepsPointers(t *testing.T) {
	sc := testtsl.NewScenario(t)
	r := newResolver(sc, nil)
	good, err := r.Resolve(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	sc.Server.Put(testtsl.LOTLPath, tamper(sc.LOTLSigner.Sign(t, sc.LOTL(2).XML())))
	sc.Server.Put(testtsl.ELPath, sc.ELSigner.Sign(t, func() []byte { l := sc.EL(2); l.Providers = l.Providers[:1]; return l.XML() }()))
	r.Now = func() time.Time { return time.Now().Add(200 * 24 * time.Hour) } // past every NextUpdate
	snap, err := r.Resolve(context.Background(), good)
	if err != nil {
		t.Fatalf("a lapsed LOTL in force failed the resolve: %v", err)
	}
	if snap.LOTL.Origin != tsl.LastGood || snap.LOTL.Err == nil {
		t.Fatalf("LOTL: %v %v", snap.LOTL.Origin, snap.LOTL.Err)
	}
	// Sequence 1 of EL and CY expired too; the new EL is checked as well.
	if el := state(t, snap, "EL"); el.List != nil || !strings.Contains(el.Err.Error(), "expired") {
		t.Fatalf("EL: %v %v", el.Origin, el.Err)
	}
	if len(snap.TrustedCAs(tsl.UsageWeb)) != 0 {
		t.Fatal("expired lists still trusted")
	}
}

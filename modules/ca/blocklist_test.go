package ca

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// The PSD2 handlers ask both lookups on every request: map reads, without
// allocation, organisations compared without regard to case.
func TestBlocklistLookups(t *testing.T) {
	der := []byte("a certificate")
	sum := sha256.Sum256(der)
	fp, ok := canonicalFingerprint(strings.ToUpper(hex.EncodeToString(sum[:])))
	if !ok {
		t.Fatal("fingerprint refused")
	}
	a := &App{blocklist: &blocklist{}}
	a.blocklist.current.Store(newBlockSnapshot(blocklistDoc{Version: 1, Entries: []BlockEntry{{OrgID: "PSDGR-BOG-123456"}, {CertSHA256: fp}}}))
	other := sha256.Sum256([]byte("another"))
	for _, c := range []struct {
		org  string
		sum  [32]byte
		want [2]bool
	}{
		{"PSDGR-BOG-123456", other, [2]bool{true, false}},
		{"psdgr-bog-123456", other, [2]bool{true, false}},
		{"PSDGR-BOG-999999", sum, [2]bool{false, true}},
		{"PSDGR-BOG-999999", other, [2]bool{false, false}},
	} {
		if got := [2]bool{a.OrganizationBlocked(c.org), a.CertificateBlocked(c.sum)}; got != c.want {
			t.Errorf("%s: %v, want %v", c.org, got, c.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { a.OrganizationBlocked("PSDGR-BOG-999999"); a.CertificateBlocked(other) }); n != 0 {
		t.Fatalf("%v allocations per lookup", n)
	}
	// Without the app's blocklist (not provisioned), nothing is blocked.
	var none App
	if none.OrganizationBlocked("PSDGR-BOG-123456") || none.CertificateBlocked(sum) {
		t.Fatal("an app without a blocklist blocks")
	}
}

func TestBlocklistCanonicalForms(t *testing.T) {
	sum := sha256.Sum256([]byte("x"))
	hexSum := hex.EncodeToString(sum[:])
	var colons []string
	for i := 0; i < len(hexSum); i += 2 {
		colons = append(colons, strings.ToUpper(hexSum[i:i+2]))
	}
	for _, in := range []string{hexSum, strings.ToUpper(hexSum), strings.Join(colons, ":"), " " + hexSum + " "} {
		if got, ok := canonicalFingerprint(in); !ok || got != hexSum {
			t.Errorf("fingerprint %q: %q %v", in, got, ok)
		}
	}
	for _, in := range []string{"", hexSum[:62], hexSum + "00", strings.Repeat("z", 64)} {
		if _, ok := canonicalFingerprint(in); ok {
			t.Errorf("fingerprint %q accepted", in)
		}
	}
	for in, want := range map[string]string{"psdgr-bog-123456": "PSDGR-BOG-123456", " VATGR-999999999 ": "VATGR-999999999", "LEIXG-5493001KJTIIGC8Y1R12": "LEIXG-5493001KJTIIGC8Y1R12"} {
		if got, err := canonicalOrgID(in); err != nil || got != want {
			t.Errorf("orgId %q: %q %v", in, got, err)
		}
	}
	for _, in := range []string{"", "PSD GR", "PSDGR/BOG", "PSDGR%2F", strings.Repeat("A", 129), "PSDGR-BOG-Ω"} {
		if _, err := canonicalOrgID(in); err == nil {
			t.Errorf("orgId %q accepted", in)
		}
	}
}

package metrics

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestLabelsStayBounded(t *testing.T) {
	for in, want := range map[string]string{
		"":                       "unknown",
		"PSDGR-BOG-123456":       "PSDGR-BOG-123456",
		"BANK XYZ\n{evil=\"}":    "BANK_XYZ__evil___",
		strings.Repeat("a", 100): strings.Repeat("a", 64),
	} {
		if got := cleanLabel(in); got != want {
			t.Errorf("cleanLabel(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"": "ok", "ok": "ok", "ROLE_INVALID": "ROLE_INVALID", "x-request-id 42": "other", "role_invalid": "other"} {
		if got := result(in, bgCodeRE); got != want {
			t.Errorf("PSD2 result %q = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"3-304": "3-304", "2-299": "2-299", "3304": "other", "3-304; DROP": "other"} {
		if got := result(in, pesitDiagRE); got != want {
			t.Errorf("PeSIT result %q = %q, want %q", in, got, want)
		}
	}
	var b boundedLabel
	for i := range maxLabelValues {
		b.value(fmt.Sprint("P", i))
	}
	if got := b.value("one-too-many"); got != "other" {
		t.Errorf("value beyond the bound = %q, want other", got)
	}
	if got := b.value("P7"); got != "P7" {
		t.Errorf("known value = %q", got)
	}
}

func TestPartnerExpiryReplaced(t *testing.T) {
	SetPartnerCertificateExpiry(map[string]time.Time{"A": time.Unix(10, 0), "B": time.Unix(20, 0)})
	SetPartnerCertificateExpiry(map[string]time.Time{"B": time.Unix(30, 0)})
	if n := testutil.CollectAndCount(caPartnerExpiry); n != 1 {
		t.Fatalf("%d partner expiry series, want 1: a partner without valid certificates must lose its series", n)
	}
	if v := testutil.ToFloat64(caPartnerExpiry.WithLabelValues("B")); v != 30 {
		t.Fatalf("B = %v", v)
	}
}

func TestActiveSessionsEndOnce(t *testing.T) {
	g := pesitActive.WithLabelValues("ONCE")
	end := PeSITSessionStarted("ONCE")
	end()
	end()
	if v := testutil.ToFloat64(g); v != 0 {
		t.Fatalf("active sessions = %v after one session ended twice", v)
	}
}

func TestRecentTPPs(t *testing.T) {
	PSD2Request("PSDGR-BOG-000001", []string{"PSP_AI"}, "ok")
	PSD2Request("PSDGR-BOG-000001", nil, "ROLE_INVALID")
	PSD2Request("", nil, "CERTIFICATE_MISSING")
	var found *TPP
	for _, tpp := range RecentTPPs(time.Minute) {
		if tpp.OrgID == "PSDGR-BOG-000001" {
			found = &tpp
		}
		if tpp.OrgID == "" || tpp.OrgID == "unknown" {
			t.Error("a request without a verified TPP was remembered as a TPP")
		}
	}
	if found == nil || found.Requests != 2 || found.Rejections != 1 || found.LastRejection != "ROLE_INVALID" || found.Roles[0] != "PSP_AI" {
		t.Fatalf("TPP activity %+v", found)
	}
}

// TestTPPMeter: an accepted request costs no allocation, and a TPP evicted
// from the dashboard's table comes back with its next request.
func TestTPPMeter(t *testing.T) {
	m := NewTPPMeter("PSDGR-BOG-METER1", []string{"PSP_PI"})
	now := time.Now()
	if n := testing.AllocsPerRun(100, func() { m.OK(now) }); n != 0 {
		t.Errorf("an accepted request allocates %v times", n)
	}
	if v := testutil.ToFloat64(psd2Requests.WithLabelValues("PSDGR-BOG-METER1", "ok")); v < 100 {
		t.Errorf("ok counter = %v", v)
	}
	m.Refused("SIGNATURE_INVALID", now)
	for i := range maxTPPs {
		PSD2Request(fmt.Sprintf("PSDGR-BOG-FILL%03d", i), nil, "ok")
	}
	m.OK(time.Now())
	var found *TPP
	for _, tpp := range RecentTPPs(time.Minute) {
		if tpp.OrgID == "PSDGR-BOG-METER1" {
			found = &tpp
		}
	}
	if found == nil || len(found.Roles) != 1 || found.Roles[0] != "PSP_PI" {
		t.Fatalf("the evicted TPP did not come back with its roles: %+v", found)
	}
}

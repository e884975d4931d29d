package trust_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/bankedge/bankedge/internal/metrics/metricstest"
	"github.com/bankedge/bankedge/internal/testcaddy"
	"github.com/bankedge/bankedge/internal/testtsl"
	"github.com/bankedge/bankedge/modules/trust"
)

// TestTrustListMetrics: each list fetched and in force has its last
// success time, each list that could not be refreshed counts a failure,
// and the series stay across a reload.
func TestTrustListMetrics(t *testing.T) {
	trust.SetDocumentReuse(0)
	defer trust.SetDocumentReuse(5 * time.Minute)
	sc := testtsl.NewScenario(t)
	s := newSite(t, sc, filepath.Join(t.TempDir(), "storage"))
	port := testcaddy.FreePort(t)
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	cfg := s.caddyfile + fmt.Sprintf("http://127.0.0.1:%d {\n\tmetrics /metrics\n}\n", port)

	before := time.Now()
	if err := caddy.Load(testcaddy.Adapt(t, cfg), true); err != nil {
		t.Fatal(err)
	}
	fams := metricstest.Scrape(t, metricsURL)
	for _, list := range []string{"EU", "EL", "CY"} {
		v, ok := fams.Value("bankedge_trustlist_last_success_timestamp_seconds", map[string]string{"list": list})
		if !ok || v < float64(before.Unix()-1) {
			t.Errorf("last success of %s = %v (present %v)", list, v, ok)
		}
	}
	failures := func(f metricstest.Families, list string) float64 {
		v, _ := f.Value("bankedge_trustlist_refresh_failures_total", map[string]string{"list": list})
		return v
	}
	failedBefore := failures(fams, "EU")
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}

	// Without the network, the lists in force are the last good copies:
	// every list counts a failed refresh.
	sc.Server.Close()
	testcaddy.Load(t, cfg)
	after := metricstest.Scrape(t, metricsURL)
	if failures(after, "EU") <= failedBefore || failures(after, "CY") == 0 {
		t.Errorf("failures after a refresh without network: EU %v (was %v), CY %v", failures(after, "EU"), failedBefore, failures(after, "CY"))
	}
	testcaddy.Reload(t, cfg+"# reloaded\n")
	reloaded := metricstest.Scrape(t, metricsURL)
	if _, ok := reloaded.Value("bankedge_trustlist_last_success_timestamp_seconds", map[string]string{"list": "EU"}); !ok || failures(reloaded, "EU") < failures(after, "EU") {
		t.Error("the trust list series did not survive a reload")
	}
}

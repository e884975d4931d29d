package metrics_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/bankedge/bankedge/internal/metrics"
	"github.com/bankedge/bankedge/internal/metrics/metricstest"
	"github.com/bankedge/bankedge/internal/testcaddy"
)

func TestMain(m *testing.M) { os.Exit(testcaddy.Main(m)) }

// probe is a handler that registers the bankedge metrics as every bankedge
// module does and records a little of everything on each request.
type probe struct{}

func (probe) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.bankedge_metrics_probe", New: func() caddy.Module { return new(probe) }}
}

func (probe) Provision(ctx caddy.Context) error { return metrics.Register(ctx) }

func (probe) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	metrics.PSD2Request("PSDGR-BOG-123456", []string{"PSP_PI"}, "ok")
	metrics.PSD2Request("PSDGR-BOG-123456", []string{"PSP_PI"}, "SIGNATURE_INVALID")
	metrics.PSD2VerifyDuration(3 * time.Millisecond)
	metrics.PSD2CacheLookup("qwac", true)
	end := metrics.PeSITSessionStarted("BANK_XYZ")
	metrics.PeSITBytes("BANK_XYZ", metrics.Upload, 4096)
	metrics.PeSITSession("BANK_XYZ", "ok")
	metrics.PeSITSession("", "3-304")
	end()
	metrics.CAIssued("CLIENT")
	metrics.CARevoked()
	metrics.SetCACertificateExpiry(time.Unix(2000000000, 0))
	metrics.SetCRLNextUpdate(time.Unix(1900000000, 0))
	metrics.SetPartnerCertificateExpiry(map[string]time.Time{"BANK_XYZ": time.Unix(1800000000, 0)})
	metrics.TrustListRefreshed("EU", time.Unix(1700000000, 0))
	metrics.TrustListRefreshFailed("GR")
	metrics.RevocationCheck("ocsp", "good")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func init() {
	caddy.RegisterModule(probe{})
	httpcaddyfile.RegisterHandlerDirective("bankedge_metrics_probe", func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		return probe{}, nil
	})
	httpcaddyfile.RegisterDirectiveOrder("bankedge_metrics_probe", httpcaddyfile.Before, "respond")
}

func scrape(t *testing.T, url string) metricstest.Families { return metricstest.Scrape(t, url) }

// value returns the value of the series of name with exactly labels.
func value(fams metricstest.Families, name string, labels map[string]string) (float64, bool) {
	return fams.Value(name, labels)
}

func TestSeriesSurviveReload(t *testing.T) {
	dir := t.TempDir()
	port := testcaddy.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	config := func(withProbe bool, text string) string {
		probe := ""
		if withProbe {
			probe = "handle /probe {\n\t\tbankedge_metrics_probe\n\t}"
		}
		return testcaddy.Globals(filepath.Join(dir, "storage"), "") + fmt.Sprintf(`
%s {
	handle /metrics {
		metrics
	}
	%s
	handle {
		respond %q
	}
}`, base, probe, text)
	}

	want := []struct {
		name   string
		labels map[string]string
	}{
		{"bankedge_psd2_requests_total", map[string]string{"tpp": "PSDGR-BOG-123456", "result": "ok"}},
		{"bankedge_psd2_requests_total", map[string]string{"tpp": "PSDGR-BOG-123456", "result": "SIGNATURE_INVALID"}},
		{"bankedge_psd2_verify_duration_seconds", nil},
		{"bankedge_psd2_cache_lookups_total", map[string]string{"cache": "qwac", "outcome": "hit"}},
		{"bankedge_pesit_sessions_total", map[string]string{"partner": "BANK_XYZ", "result": "ok"}},
		{"bankedge_pesit_sessions_total", map[string]string{"partner": "unknown", "result": "3-304"}},
		{"bankedge_pesit_bytes_total", map[string]string{"partner": "BANK_XYZ", "direction": "upload"}},
		{"bankedge_pesit_active_sessions", map[string]string{"partner": "BANK_XYZ"}},
		{"bankedge_ca_issued_total", map[string]string{"purpose": "client"}},
		{"bankedge_ca_revocations_total", nil},
		{"bankedge_ca_certificate_expiry_timestamp_seconds", nil},
		{"bankedge_ca_partner_certificate_expiry_timestamp_seconds", map[string]string{"partner": "BANK_XYZ"}},
		{"bankedge_ca_crl_next_update_timestamp_seconds", nil},
		{"bankedge_trustlist_last_success_timestamp_seconds", map[string]string{"list": "EU"}},
		{"bankedge_trustlist_refresh_failures_total", map[string]string{"list": "GR"}},
		{"bankedge_revocation_checks_total", map[string]string{"method": "ocsp", "result": "good"}},
	}

	testcaddy.Load(t, config(true, "first"))
	resp, err := http.Get(base + "/probe")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	before := scrape(t, base+"/metrics")
	for _, w := range want {
		if _, ok := value(before, w.name, w.labels); !ok {
			t.Errorf("missing %s%v", w.name, w.labels)
		}
	}
	if v, _ := value(before, "bankedge_ca_certificate_expiry_timestamp_seconds", nil); v != 2e9 {
		t.Errorf("CA expiry gauge = %v", v)
	}

	// A reload gets a fresh registry: the modules register again and every
	// series is still there, with its value.
	testcaddy.Reload(t, config(true, "second"))
	after := scrape(t, base+"/metrics")
	for _, w := range want {
		b, _ := value(before, w.name, w.labels)
		a, ok := value(after, w.name, w.labels)
		if !ok || a < b {
			t.Errorf("after reload %s%v = %v (present %v), was %v", w.name, w.labels, a, ok, b)
		}
	}

	// Without a bankedge module, nothing registers them: the check above
	// is not vacuous.
	testcaddy.Reload(t, config(false, "third"))
	if _, ok := scrape(t, base+"/metrics")["bankedge_ca_revocations_total"]; ok {
		t.Error("bankedge series present in a configuration without bankedge modules")
	}
}

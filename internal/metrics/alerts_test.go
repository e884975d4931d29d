package metrics_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/bankedge/bankedge/internal/metrics"
)

const rulesDir = "../../deploy/prometheus"

// TestAlertRules checks the shipped rules with promtool: syntax, and the
// unit tests that make each alert fire (and not fire) on made-up series.
func TestAlertRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (Debian package prometheus)")
	}
	for _, args := range [][]string{
		{"check", "rules", "bankedge-alerts.yml"},
		{"test", "rules", "bankedge-alerts.test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = rulesDir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}

// TestAlertRulesUseRealMetrics: a typo in a metric name makes an alert
// that never fires, which no promtool check sees.
func TestAlertRulesUseRealMetrics(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(rulesDir, "bankedge-alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`bankedge_[a-z0-9_]+`).FindAllString(string(b), -1)
	if len(names) < 8 {
		t.Fatalf("only %d metric names in the rules", len(names))
	}
	for _, n := range names {
		if !slices.Contains(metrics.Names(), n) {
			t.Errorf("the rules use %s, which bankedge does not export", n)
		}
	}
}

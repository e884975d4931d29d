package pesit_test

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/bankedge/bankedge/internal/metrics/metricstest"
	"github.com/bankedge/bankedge/internal/testcaddy"
	"github.com/bankedge/bankedge/modules/pesit/fpdu"
	"github.com/bankedge/bankedge/modules/pesit/peer"
)

// TestSessionMetrics: each way a session ends counts once with its
// result; a connection that never sends a CONNECT counts nothing; the
// partner label is the partner only when the registry knows it.
func TestSessionMetrics(t *testing.T) {
	e, caddyfile := prepareEnv(t)
	port := testcaddy.FreePort(t)
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	testcaddy.Load(t, caddyfile+fmt.Sprintf("http://127.0.0.1:%d {\n\tmetrics /metrics\n}\n", port))

	type key struct{ partner, result string }
	dropped := fpdu.NewDiag(fpdu.ReasonNetworkIncident).String()
	keys := []key{{"unknown", "nak0"}, {"DISABLED", "3-304"}, {"unknown", "3-304"}, {"unknown", "3-301"}, {"GOOD", dropped}, {"GOOD", "ok"}}
	counts := func() map[key]float64 {
		fams := metricstest.Scrape(t, metricsURL)
		m := map[key]float64{}
		var total float64
		for _, k := range keys {
			m[k], _ = fams.Value("bankedge_pesit_sessions_total", map[string]string{"partner": k.partner, "result": k.result})
		}
		for _, mf := range fams["bankedge_pesit_sessions_total"].GetMetric() {
			total += mf.GetCounter().GetValue()
		}
		m[key{"", "total"}] = total
		active, _ := fams.Value("bankedge_pesit_active_sessions", map[string]string{"partner": "GOOD"})
		m[key{"GOOD", "active"}] = active
		return m
	}
	before := counts()
	// waitFor polls until the counts differ from before by want.
	waitFor := func(want map[key]float64) {
		t.Helper()
		var got map[key]float64
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			got = counts()
			ok := true
			for k, d := range want {
				ok = ok && got[k]-before[k] == d
			}
			if ok {
				before = got
				return
			}
		}
		t.Fatalf("counts %v, before %v, want changes %v", got, before, want)
	}

	// A probe that connects and closes: not a session.
	conn, err := net.Dial("tcp", e.plain)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	// A refused pre-connection.
	if _, err := e.client(t, e.plain, peer.ConnectOptions{RequesterID: "LEGACY", Password: "test123", PreConnection: true, PreConnectionPassword: "wrong"}, nil); err == nil {
		t.Fatal("a wrong pre-connection password was accepted")
	}
	waitFor(map[key]float64{{"unknown", "nak0"}: 1, {"", "total"}: 1})

	for _, tc := range []struct {
		opts peer.ConnectOptions
		want key
	}{
		{peer.ConnectOptions{RequesterID: "DISABLED", Password: "Disabled-Pass1!"}, key{"DISABLED", "3-304"}},
		{peer.ConnectOptions{RequesterID: "MADE-UP-1", Password: goodPassword}, key{"unknown", "3-304"}},
		{peer.ConnectOptions{RequesterID: "GOOD", Password: goodPassword, ServerID: "OTHER"}, key{"unknown", "3-301"}},
	} {
		if _, err := e.client(t, e.plain, tc.opts, nil); err == nil {
			t.Fatalf("%s was accepted", tc.opts.RequesterID)
		}
		waitFor(map[key]float64{tc.want: 1, {"", "total"}: 1})
	}

	// An accepted session is active until it ends; one dropped without
	// RELEASE counts the network incident.
	raw, _ := rawConnect(t, e.plain, "GOOD", goodPassword)
	waitFor(map[key]float64{{"GOOD", "active"}: 1, {"", "total"}: 0})
	raw.Close()
	waitFor(map[key]float64{{"GOOD", "active"}: -1, {"GOOD", dropped}: 1, {"", "total"}: 1})

	c, err := e.client(t, e.plain, peer.ConnectOptions{RequesterID: "GOOD", Password: goodPassword}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Release(); err != nil {
		t.Fatal(err)
	}
	waitFor(map[key]float64{{"GOOD", "ok"}: 1, {"", "total"}: 1})
}

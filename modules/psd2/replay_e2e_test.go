package psd2_test

import (
	"bufio"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/google/uuid"

	"github.com/bankedge/bankedge/internal/testcaddy"
	"github.com/bankedge/bankedge/modules/psd2/httpsig"
)

// pay sends a signed payment with the given X-Request-ID to the piraeus
// listener as the main TPP (other: the second organisation).
func (f *fixture) payWithID(t *testing.T, id string, other bool) response {
	t.Helper()
	qwac, qseal := f.qwac, f.qseal
	if other {
		qwac, qseal = f.qwacOther, f.qsealOther
	}
	return f.do(t, request{profile: httpsig.Piraeus, tls: qwac, qseal: qseal, url: f.piraeusURL + paymentPath,
		body: paymentBody, header: http.Header{"X-Request-Id": {id}}})
}

// TestReplayQuotaPerTPP: a TPP that sends fast cannot push another TPP's
// request ids out of the replay window; beyond its own quota it is told to
// slow down, and its own ids are not forgotten either. (The security test
// replayed a payment after 1,100 requests of another TPP against a
// 1,000-entry cache; here the quota is 5, set with the old option name.)
func TestReplayQuotaPerTPP(t *testing.T) {
	f := newFixtureWith(t, fixtureOptions{piraeusQSEAL: "replay_cache_size 5"})
	victim := uuid.NewString()
	expectOK(t, f.payWithID(t, victim, true))
	var first string
	for i := range 5 {
		id := uuid.NewString()
		if i == 0 {
			first = id
		}
		expectOK(t, f.payWithID(t, id, false))
	}
	for range 3 {
		r := f.payWithID(t, uuid.NewString(), false)
		expectError(t, r, http.StatusTooManyRequests, "ACCESS_EXCEEDED", "replay window")
		if ra := r.header.Get("Retry-After"); ra == "" || ra == "0" {
			t.Errorf("Retry-After = %q", ra)
		}
	}
	expectError(t, f.payWithID(t, victim, true), 400, "FORMAT_ERROR", "already used")
	expectError(t, f.payWithID(t, first, false), 400, "FORMAT_ERROR", "already used")
	// The other TPP has its own quota.
	expectOK(t, f.payWithID(t, uuid.NewString(), true))
}

// TestReplayAcrossRestart: a payment replayed after the gateway was stopped
// and started again on the same storage is refused.
func TestReplayAcrossRestart(t *testing.T) {
	f := newFixture(t)
	id := uuid.NewString()
	expectOK(t, f.payWithID(t, id, false))
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	testcaddy.Load(t, f.caddyfile)
	expectError(t, f.payWithID(t, id, false), 400, "FORMAT_ERROR", "already used")
	expectOK(t, f.payWithID(t, uuid.NewString(), false))
	if _, err := os.Stat(filepath.Join(f.dir, "storage", "psd2", "replay.journal")); err != nil {
		t.Errorf("no journal next to the file_system storage: %v", err)
	}
}

// TestReplayAcrossCrash: the same with a gateway process killed with
// SIGKILL, which runs no cleanup, and a new process on the same storage.
func TestReplayAcrossCrash(t *testing.T) {
	f := newFixtureWith(t, fixtureOptions{noLoad: true})
	cfgFile := filepath.Join(f.dir, "caddy.json")
	if err := os.WriteFile(cfgFile, testcaddy.Adapt(t, f.caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	child := startChild(t, cfgFile)
	f.waitReady(t)
	expectOK(t, f.payWithID(t, id, false))
	child.crash(t)

	child = startChild(t, cfgFile)
	f.waitReady(t)
	expectError(t, f.payWithID(t, id, false), 400, "FORMAT_ERROR", "already used")
	expectOK(t, f.payWithID(t, uuid.NewString(), false))
	child.crash(t)
}

type childGateway struct{ cmd *exec.Cmd }

func startChild(t *testing.T, cfgFile string) *childGateway {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childConfigEnv+"="+cfgFile)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &childGateway{cmd}
	t.Cleanup(func() { c.crash(t) })
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "child gateway ready") {
				ready <- true
				return
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("the child gateway exited before it was ready")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the child gateway did not start")
	}
	return c
}

// crash kills the process with SIGKILL: no cleanup runs.
func (c *childGateway) crash(t *testing.T) {
	if c.cmd.ProcessState != nil {
		return
	}
	_ = c.cmd.Process.Kill()
	_ = c.cmd.Wait()
}

// waitReady waits until the piraeus listener completes a handshake.
func (f *fixture) waitReady(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err := f.client(f.qwac).Get(f.piraeusURL + "/")
		if err == nil {
			resp.Body.Close()
			return
		}
	}
	t.Fatal("the gateway does not answer")
}

// TestReplayStoreOptions: replay_store local with its journal and quota
// set in the Caddyfile.
func TestReplayStoreOptions(t *testing.T) {
	journal := filepath.Join(t.TempDir(), "replay", "xs2a.journal")
	f := newFixtureWith(t, fixtureOptions{piraeusQSEAL: "replay_store local {\n\t\t\tjournal " + journal + "\n\t\t\tquota 2\n\t\t}"})
	expectOK(t, f.payWithID(t, uuid.NewString(), false))
	expectOK(t, f.payWithID(t, uuid.NewString(), false))
	expectError(t, f.payWithID(t, uuid.NewString(), false), http.StatusTooManyRequests, "ACCESS_EXCEEDED", "")
	if st, err := os.Stat(journal); err != nil || st.Size() == 0 {
		t.Fatalf("journal %s: %v", journal, err)
	}
	bad := strings.Replace(f.caddyfile, "quota 2", "quota 2\n\t\t\tdurable maybe", 1)
	if _, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(bad), nil); err == nil || !strings.Contains(err.Error(), `"durable"`) {
		t.Errorf("an unknown replay_store option: %v", err)
	}
}

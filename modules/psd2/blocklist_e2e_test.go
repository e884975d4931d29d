package psd2_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bankedge/bankedge/internal/testcaddy"
	"github.com/bankedge/bankedge/internal/testpki"
	"github.com/bankedge/bankedge/internal/testredis"
)

// call sends a JSON request to the admin API and returns the status and
// body, whatever they are.
func (a caAPI) call(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, a.base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(a.user, a.password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func fingerprint(l *testpki.Leaf) string {
	sum := sha256.Sum256(l.Cert.Raw)
	return hex.EncodeToString(sum[:])
}

// within sends requests until one is answered with code (or passes, for
// code ""), and fails unless that happens within d of start.
func within(t *testing.T, d time.Duration, start time.Time, what string, send func() response, code string) {
	t.Helper()
	for {
		r := send()
		if r.code == code && (code != "" || r.status == http.StatusOK) {
			took := time.Since(start)
			if took > d {
				t.Fatalf("%s took %s, more than %s", what, took, d)
			}
			t.Logf("%s: %s", what, took.Round(time.Millisecond))
			return
		}
		if time.Since(start) > 5*d {
			t.Fatalf("%s: still %d %s after %s", what, r.status, r.body, time.Since(start))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// The bank's blocklist: an administrator blocks a certificate (QWAC or
// QSEAL) or a whole TPP through the admin API, audited; every gateway
// sharing the storage (here a second Caddy process) refuses it with 401
// CERTIFICATE_BLOCKED within a second, and DELETE lifts the block. The
// site has revocation { mode hard }: the sandbox CA's certificates carry no
// OCSP or CRL address, and its own revocation view answers for them.
//
// On a file_system storage the gateways find a change by polling the
// blocklist's version object; on Redis storage by pub/sub (they poll only
// every 30 s there).
func TestBlocklistAcrossGateways(t *testing.T) {
	t.Run("file_system", func(t *testing.T) { blocklistAcrossGateways(t, "") })
	t.Run("redis", func(t *testing.T) {
		srv := testredis.Start(t)
		blocklistAcrossGateways(t, fmt.Sprintf("storage redis {\n\t\taddress %s\n\t\tkey_prefix %s\n\t}", srv.Addr, "blocklist"))
	})
}

// withStorage replaces the storage of a test configuration; "" keeps it.
func withStorage(caddyfile, storage string) string {
	if storage == "" {
		return caddyfile
	}
	return regexp.MustCompile(`storage file_system [^\n]*`).ReplaceAllLiteralString(caddyfile, storage)
}

func blocklistAcrossGateways(t *testing.T, storage string) {
	dir := t.TempDir()
	const hard = "revocation {\n\t\t\tmode hard\n\t\t}"
	g := caGatewayConfig(t, dir, hard, "")
	g.caddyfile = withStorage(g.caddyfile, storage)
	g.start(t)
	qwac := g.api.issuePSD2(t, "qwac", orgID, "PSP_PI,PSP_AI")
	qseal := g.api.issuePSD2(t, "qseal", orgID, "PSP_PI,PSP_AI")
	otherQWAC := g.api.issuePSD2(t, "qwac", "PSDGR-BOG-999999", "PSP_PI")
	otherQSEAL := g.api.issuePSD2(t, "qseal", "PSDGR-BOG-999999", "PSP_PI")

	// The second gateway: the same storage, its own ports and process.
	// A replay journal is one process's: the child has its own.
	child := caGatewayConfig(t, dir, hard, "replay_store local {\n\t\t\tjournal "+filepath.Join(t.TempDir(), "replay.journal")+"\n\t\t}")
	child.root = g.root
	child.caddyfile = withStorage(child.caddyfile, storage)
	cfgFile := filepath.Join(t.TempDir(), "child.json")
	if err := os.WriteFile(cfgFile, testcaddy.Adapt(t, child.caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	startChild(t, cfgFile)
	waitForServerCertificate(t, strings.TrimPrefix(child.xs2a, "https://"), g.root)
	for _, gw := range []*caGateway{g, child} {
		expectOK(t, gw.pay(t, qwac, qseal))
		expectOK(t, gw.pay(t, otherQWAC, otherQSEAL))
	}

	block := func(entry map[string]string) time.Time {
		t.Helper()
		start := time.Now()
		status, body := g.api.call(t, http.MethodPost, "/api/v1/psd2/blocklist", entry)
		if status != http.StatusCreated {
			t.Fatalf("POST %v: %d %s", entry, status, body)
		}
		return start
	}
	unblock := func(key string) time.Time {
		t.Helper()
		start := time.Now()
		if status, body := g.api.call(t, http.MethodDelete, "/api/v1/psd2/blocklist/"+key, nil); status != http.StatusNoContent {
			t.Fatalf("DELETE %s: %d %s", key, status, body)
		}
		return start
	}
	expectBlocked := func(start time.Time, qwac, qseal *testpki.Leaf, path string) {
		t.Helper()
		for name, gw := range map[string]*caGateway{"this gateway": g, "the other gateway": child} {
			within(t, time.Second, start, "blocking on "+name, func() response { return gw.pay(t, qwac, qseal) }, "CERTIFICATE_BLOCKED")
			r := gw.pay(t, qwac, qseal)
			expectError(t, r, http.StatusUnauthorized, "CERTIFICATE_BLOCKED", "blocked by the ASPSP")
			if r.path != path {
				t.Errorf("%s: path %q, want %q", name, r.path, path)
			}
		}
	}
	expectUnblocked := func(start time.Time, qwac, qseal *testpki.Leaf) {
		t.Helper()
		for name, gw := range map[string]*caGateway{"this gateway": g, "the other gateway": child} {
			within(t, time.Second, start, "unblocking on "+name, func() response { return gw.pay(t, qwac, qseal) }, "")
		}
	}

	t.Run("a QWAC by fingerprint", func(t *testing.T) {
		fp := fingerprint(qwac)
		expectBlocked(block(map[string]string{"certSha256": strings.ToUpper(fp), "reason": "key compromise reported by the TPP"}), qwac, qseal, "")
		expectOK(t, child.pay(t, otherQWAC, otherQSEAL))
		expectUnblocked(unblock(fp), qwac, qseal)
		if status, _ := g.api.call(t, http.MethodDelete, "/api/v1/psd2/blocklist/"+fp, nil); status != http.StatusNotFound {
			t.Fatalf("second DELETE: %d, want 404", status)
		}
	})
	t.Run("a QSEAL by fingerprint", func(t *testing.T) {
		fp := fingerprint(qseal)
		// A JSON body without a Content-Type, as a bare http.NewRequest
		// sends it.
		start := time.Now()
		req, _ := http.NewRequest(http.MethodPost, g.api.base+"/api/v1/psd2/blocklist", strings.NewReader(`{"certSha256":"`+fp+`"}`))
		req.SetBasicAuth(g.api.user, g.api.password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST without a Content-Type: %d", resp.StatusCode)
		}
		expectBlocked(start, qwac, qseal, "TPP-Signature-Certificate")
		expectUnblocked(unblock(fp), qwac, qseal)
	})
	t.Run("a TPP by organisation", func(t *testing.T) {
		start := block(map[string]string{"orgId": strings.ToLower(orgID), "reason": "NCA withdrew the licence"})
		expectBlocked(start, qwac, qseal, "")
		expectOK(t, child.pay(t, otherQWAC, otherQSEAL))
		// A certificate of the organisation issued afterwards is blocked too.
		newQWAC := g.api.issuePSD2(t, "qwac", orgID, "PSP_PI")
		expectError(t, child.pay(t, newQWAC, qseal), http.StatusUnauthorized, "CERTIFICATE_BLOCKED", orgID)

		status, body := g.api.call(t, http.MethodGet, "/api/v1/psd2/blocklist", nil)
		var list []map[string]any
		if status != http.StatusOK || json.Unmarshal(body, &list) != nil || len(list) != 1 ||
			list[0]["orgId"] != orgID || list[0]["reason"] != "NCA withdrew the licence" || list[0]["blockedBy"] != "admin" || list[0]["blockedAt"] == "" {
			t.Fatalf("GET: %d %s", status, body)
		}
		if status, _ := g.api.call(t, http.MethodPost, "/api/v1/psd2/blocklist", map[string]string{"orgId": orgID}); status != http.StatusConflict {
			t.Fatalf("blocking twice: %d, want 409", status)
		}
		expectUnblocked(unblock(strings.ToLower(orgID)), qwac, qseal)
		if status, body := g.api.call(t, http.MethodGet, "/api/v1/psd2/blocklist", nil); status != http.StatusOK || strings.TrimSpace(string(body)) != "[]" {
			t.Fatalf("GET after DELETE: %d %s", status, body)
		}
	})
	t.Run("bad requests", func(t *testing.T) {
		for _, body := range []map[string]string{
			{}, {"orgID": orgID}, {"orgId": orgID, "certSha256": fingerprint(qwac)},
			{"certSha256": "abc"}, {"certSha256": strings.Repeat("g", 64)}, {"orgId": "PSD GR/1"},
			{"orgId": orgID, "reason": "two\nlines"}, {"orgId": orgID, "reason": strings.Repeat("r", 501)},
		} {
			status, out := g.api.call(t, http.MethodPost, "/api/v1/psd2/blocklist", body)
			if status != http.StatusBadRequest || !strings.Contains(string(out), `"error"`) {
				t.Errorf("POST %v: %d %s", body, status, out)
			}
		}
		if status, _ := g.api.call(t, http.MethodDelete, "/api/v1/psd2/blocklist/PSDGR-BOG-000000", nil); status != http.StatusNotFound {
			t.Errorf("DELETE of an entry never made: %d", status)
		}
		expectOK(t, child.pay(t, qwac, qseal))
	})
	t.Run("audited", func(t *testing.T) {
		data, err := os.ReadFile(g.auditLog)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int{"blocked": 3, "unblocked": 3}
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			var l map[string]any
			if json.Unmarshal([]byte(line), &l) != nil || !strings.HasPrefix(l["msg"].(string), "psd2.blocklist.") {
				continue
			}
			outcome, _ := l["outcome"].(string)
			if l["user"] != "admin" || l["org_id"] == nil && l["cert_sha256"] == nil && outcome != "refused" {
				t.Errorf("audit line %s", line)
			}
			want[outcome]--
		}
		if want["blocked"] != 0 || want["unblocked"] != 0 {
			t.Errorf("audit lines missing or extra (remaining %v)", want)
		}
	})
}

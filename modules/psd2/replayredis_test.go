package psd2_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/pberkel/caddy-storage-redis"

	"github.com/bankedge/bankedge/internal/testcaddy"
	"github.com/bankedge/bankedge/internal/testpki"
	"github.com/bankedge/bankedge/internal/testredis"
)

// qsealSite is an XS2A site with psd2_qseal and the given options.
func qsealSite(t *testing.T, opts string) string {
	t.Helper()
	ca := testpki.NewCA(t, "Test QTSP")
	roots := testpki.WriteFile(t, t.TempDir(), "roots.pem", testpki.CertPEM(ca.Cert))
	return fmt.Sprintf(`
https://localhost:%d {
	tls internal
	psd2_qseal {
		trust_pool file %s
		%s
	}
	respond "ok"
}
`, testcaddy.FreePort(t), roots, opts)
}

// replay_store redis is the Redis of Caddy's storage: refused, saying
// why, on another storage; and the quota of the in-process store is not
// silently dropped on Redis storage, where ids are shared by default.
func TestReplayStoreRedisConfiguration(t *testing.T) {
	err := testcaddy.LoadError(t, testcaddy.Globals(t.TempDir(), "")+qsealSite(t, "replay_store redis"))
	if !strings.Contains(err.Error(), "storage redis") {
		t.Fatalf("replay_store redis on file storage: %v", err)
	}

	srv := testredis.Start(t)
	redisGlobals := "{\n\tadmin off\n\tpersist_config off\n\tskip_install_trust\n\tstorage redis {\n\t\taddress " + srv.Addr + "\n\t}\n}\n"
	err = testcaddy.LoadError(t, redisGlobals+qsealSite(t, "replay_cache_size 10"))
	if !strings.Contains(err.Error(), "replay_store local") {
		t.Fatalf("replay_cache_size on Redis storage: %v", err)
	}
	// Explicit choices stay possible on Redis storage.
	testcaddy.Load(t, redisGlobals+qsealSite(t, "replay_store local {\n\t\t\tjournal "+filepath.Join(t.TempDir(), "journal")+"\n\t\t}"))
}

package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bankedge/bankedge/internal/testredis"
)

// The binary has the Redis storage: a configuration with storage redis
// validates against a real Redis (validation provisions the storage, which
// connects).
func TestRedisStorageInBinary(t *testing.T) {
	srv := testredis.Start(t)
	dir := t.TempDir()
	caddyfile := "{\n\tadmin off\n\tstorage redis {\n\t\taddress " + srv.Addr + "\n\t\tkey_prefix bankedge-test\n\t}\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "Caddyfile"), []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"XDG_DATA_HOME=" + filepath.Join(dir, "xdg"), "XDG_CONFIG_HOME=" + filepath.Join(dir, "xdg")}
	out, err := runBankedge(t, context.Background(), dir, env, "list-modules").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "caddy.storage.redis") {
		t.Fatalf("list-modules: %v\n%s", err, out)
	}
	out, err = runBankedge(t, context.Background(), dir, env, "validate", "--config", "Caddyfile", "--adapter", "caddyfile").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Valid configuration") {
		t.Fatalf("validate: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), srv.Addr) {
		t.Fatalf("the storage did not provision on %s:\n%s", srv.Addr, out)
	}
}

package psd2_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/bankedge/bankedge/internal/testcaddy"
)

// childConfigEnv names a JSON configuration that the test binary, started
// again by a test, serves until it is killed: a gateway process of its own,
// for the tests of what survives a crash.
const childConfigEnv = "BANKEDGE_PSD2_TEST_CHILD_CONFIG"

func TestMain(m *testing.M) {
	if path := os.Getenv(childConfigEnv); path != "" {
		os.Exit(serveChild(path))
	}
	os.Exit(testcaddy.Main(m))
}

func serveChild(path string) int {
	cfg, err := os.ReadFile(path)
	if err == nil {
		err = caddy.Load(cfg, true)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child gateway:", err)
		return 1
	}
	fmt.Println("child gateway ready")
	select {}
}

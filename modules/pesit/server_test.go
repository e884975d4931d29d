package pesit_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/bankedge/bankedge/internal/testcaddy"
)

// TestServerRefusesEmptyRequesterPassword: a requester whose password
// placeholder expands to nothing must stop the config from loading rather
// than admit that requester without a password.
func TestServerRefusesEmptyRequesterPassword(t *testing.T) {
	dir := t.TempDir()
	caddyfile := testcaddy.Globals(dir+"/storage", fmt.Sprintf(`layer4 {
		127.0.0.1:%d {
			route {
				pesit_server {
					root %s/files
					requester GATEWAY {env.BANKEDGE_TEST_UNSET_PESIT_PASSWORD}
				}
			}
		}
	}`, testcaddy.FreePort(t), dir))
	err := testcaddy.LoadError(t, caddyfile)
	if err == nil || !strings.Contains(err.Error(), `requester "GATEWAY": the password is empty`) {
		t.Fatalf("load error = %v, want the empty password refused", err)
	}
}

package pesitcmd

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestPasswordNotShown: $BANKEDGE_PESIT_PASSWORD must not appear in
// --help or in a usage error, where a flag default would print it.
func TestPasswordNotShown(t *testing.T) {
	const secret = "Sup3r-Secret-PI5"
	t.Setenv("BANKEDGE_PESIT_PASSWORD", secret)
	for _, args := range [][]string{{"--help"}, {}, {"a", "b"}, {"--nosuchflag"}} {
		for _, cmd := range []func() *cobra.Command{sendCommand, fetchCommand} {
			c := cmd()
			var out bytes.Buffer
			c.SetOut(&out)
			c.SetErr(&out)
			c.SetArgs(args)
			_ = c.Execute()
			if strings.Contains(out.String(), secret) {
				t.Fatalf("%s %v prints the password:\n%s", c.Name(), args, out.String())
			}
			if len(args) == 1 && args[0] == "--help" && !strings.Contains(out.String(), "$BANKEDGE_PESIT_PASSWORD") {
				t.Fatalf("%s --help does not say where the password may come from:\n%s", c.Name(), out.String())
			}
		}
	}
}

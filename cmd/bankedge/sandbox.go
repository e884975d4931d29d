package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/bankedge/bankedge"
	"github.com/bankedge/bankedge/modules/psd2/tppcmd"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "sandbox",
		Usage: "[--dir <path>]",
		Short: "Runs the example gateway with sandbox certificates made on first start",
		Long: `
Serves the embedded Caddyfile.example: a PSD2 XS2A listener with mandatory
client certificates on https://localhost:8443 in front of a mock ASPSP.

On first start it writes, under --dir (default ./sandbox):
  tpp/qtsp-root.pem          the sandbox QTSP that the gateway trusts
  tpp/qwac.*, tpp/qseal.*    a QWAC and a QSEAL for PSDGR-BOG-123456
  server.pem, server-key.pem the gateway's TLS certificate for localhost
and keeps Caddy's storage in --dir/storage. Nothing outside --dir is touched.
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().String("dir", "sandbox", "directory for sandbox certificates and state")
			cmd.RunE = caddycmd.WrapCommandFuncForCobra(cmdSandbox)
		},
	})
}

func cmdSandbox(fl caddycmd.Flags) (int, error) {
	caddy.TrapSignals()
	dir, err := filepath.Abs(fl.String("dir"))
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	os.Setenv("BANKEDGE_SANDBOX", dir)
	log := caddy.Log()

	tppDir := filepath.Join(dir, "tpp")
	if _, err := os.Stat(filepath.Join(tppDir, "qwac.pem")); errors.Is(err, fs.ErrNotExist) {
		log.Info("making sandbox certificates", zap.String("dir", tppDir))
		err := tppcmd.WriteSandbox(tppcmd.SandboxOptions{
			Dir: tppDir, OrgID: "PSDGR-BOG-123456", Roles: "PSP_AI,PSP_PI,PSP_IC",
			ServerNames: []string{"localhost", "127.0.0.1"},
		}, os.Stdout, os.Stderr)
		if err != nil {
			return caddy.ExitCodeFailedStartup, fmt.Errorf("making sandbox certificates: %w", err)
		}
	}

	adapter := caddyconfig.GetAdapter("caddyfile")
	cfg, warnings, err := adapter.Adapt(bankedge.ExampleCaddyfile, map[string]any{"filename": "Caddyfile.example"})
	if err != nil {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("adapting Caddyfile.example: %w", err)
	}
	for _, w := range warnings {
		log.Warn(w.String())
	}
	if err := caddy.Load(cfg, true); err != nil {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("loading Caddyfile.example: %w", err)
	}
	log.Info("sandbox gateway running",
		zap.String("xs2a", "https://localhost:"+envOr("BANKEDGE_XS2A_PORT", "8443")),
		zap.String("try", "bankedge tpp request --qwac "+filepath.Join(tppDir, "qwac.pem")+" --qseal "+filepath.Join(tppDir, "qseal.pem")+
			" --profile piraeus -X POST --data '{\"instructedAmount\":{\"currency\":\"EUR\",\"amount\":\"12.00\"}}' https://localhost:"+envOr("BANKEDGE_XS2A_PORT", "8443")+"/v1/payments/sepa-credit-transfers"))
	select {}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

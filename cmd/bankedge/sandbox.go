package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/bankedge/bankedge"
	"github.com/bankedge/bankedge/modules/ca"
	"github.com/bankedge/bankedge/modules/ca/authority"
	"github.com/bankedge/bankedge/modules/psd2/qcstatements"
	"github.com/bankedge/bankedge/modules/psd2/tppcert"
	"github.com/bankedge/bankedge/modules/psd2/tppclient"
	"github.com/bankedge/bankedge/modules/psd2/tppcmd"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "sandbox",
		Usage: "[--dir <path>]",
		Short: "Runs the example gateway, with sandbox secrets and certificates made on first start",
		Long: `
Serves the embedded Caddyfile.example: the PSD2 XS2A listener with mandatory
client certificates in front of a mock ASPSP, and the CA admin API on
127.0.0.1, all backed by the bankedge CA.

On first start it writes, under --dir (default ./sandbox):
  secrets.env            BANKEDGE_CA_PASSWORD (encrypts the CA key) and
                         BANKEDGE_ADMIN_PASSWORD_HASH (the API's basic_auth)
  admin-password         the admin API password (user "admin")
  tpp/qtsp-root.pem      the CA certificate, which the gateway trusts as QTSP
  tpp/qwac.*, tpp/qseal.* a QWAC and a QSEAL for PSDGR-BOG-123456 from the CA
  storage/               Caddy's storage: the CA, partners, inventory
Variables already set in the environment take precedence over secrets.env.
Nothing outside --dir is written, and nothing goes into system trust stores.
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().String("dir", "sandbox", "directory for sandbox secrets, certificates and state")
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
	if err := loadSecrets(dir, log); err != nil {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("sandbox secrets: %w", err)
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

	tppDir := filepath.Join(dir, "tpp")
	if err := sandboxTPP(tppDir, log); err != nil {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("making the sandbox TPP certificates: %w", err)
	}
	xs2a := "localhost:" + envOr("BANKEDGE_XS2A_PORT", "8443")
	waitForCertificate(xs2a, filepath.Join(tppDir, "qtsp-root.pem"))
	log.Info("sandbox gateway running",
		zap.String("xs2a", "https://"+xs2a),
		zap.String("admin_api", "http://127.0.0.1:"+envOr("BANKEDGE_API_PORT", "8080")+" (user admin, password in "+filepath.Join(dir, "admin-password")+")"),
		zap.String("try", "bankedge tpp request --qwac "+filepath.Join(tppDir, "qwac.pem")+" --qseal "+filepath.Join(tppDir, "qseal.pem")+
			" --profile piraeus -X POST --data '{\"instructedAmount\":{\"currency\":\"EUR\",\"amount\":\"12.00\"}}' https://"+xs2a+"/v1/payments/sepa-credit-transfers"))
	select {}
}

// loadSecrets reads dir/secrets.env into the environment, making it with
// fresh random secrets on first start. A variable already in the
// environment wins.
func loadSecrets(dir string, log *zap.Logger) error {
	path := filepath.Join(dir, "secrets.env")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		caPass, err := randomHex(24)
		if err != nil {
			return err
		}
		adminPass, err := randomHex(12)
		if err != nil {
			return err
		}
		hash, err := bcrypt.GenerateFromPassword([]byte(adminPass), bcrypt.DefaultCost)
		if err != nil {
			return err
		}
		env := "# bankedge sandbox secrets, made on first start. Keep this file: the CA key\n" +
			"# is encrypted with BANKEDGE_CA_PASSWORD.\n" +
			"BANKEDGE_CA_PASSWORD=" + caPass + "\n" +
			"BANKEDGE_ADMIN_PASSWORD_HASH=" + string(hash) + "\n"
		if err := os.WriteFile(path, []byte(env), 0o600); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "admin-password"), []byte(adminPass+"\n"), 0o600); err != nil {
			return err
		}
		log.Info("made sandbox secrets", zap.String("file", path), zap.String("admin_password_file", filepath.Join(dir, "admin-password")))
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return fmt.Errorf("%s: line %q is not NAME=value", path, line)
		}
		if _, set := os.LookupEnv(k); !set {
			os.Setenv(k, v)
		}
	}
	return sc.Err()
}

// sandboxTPP issues a QWAC and a QSEAL from the running CA into dir, once.
func sandboxTPP(dir string, log *zap.Logger) error {
	if _, err := os.Stat(filepath.Join(dir, "qseal.pem")); err == nil {
		return nil
	}
	v, err := caddy.ActiveContext().App("bankedge")
	if err != nil {
		return err
	}
	auth, err := v.(*ca.App).Authority()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	password, err := randomHex(12)
	if err != nil {
		return err
	}
	subject := tppcert.Subject{
		OrgID: "PSDGR-BOG-123456", Organization: "Sandbox TPP S.A.", CommonName: "tpp.example",
		Roles:   []qcstatements.Role{qcstatements.RoleAI, qcstatements.RolePI, qcstatements.RoleIC},
		NCAName: "Bank of Greece", DNSNames: []string{"tpp.example"},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, kind := range []tppcert.Kind{tppcert.QWAC, tppcert.QSEAL} {
		tmpl, err := tppcert.Template(kind, subject, time.Now(), time.Now())
		if err != nil {
			return err
		}
		purpose := authority.PurposeQWAC
		if kind == tppcert.QSEAL {
			purpose = authority.PurposeQSEAL
		}
		key, cert, err := auth.Generate(ctx, authority.RSA2048, authority.Request{
			Template: tmpl, Purpose: purpose, Validity: 365 * 24 * time.Hour, PartnerID: "psdgr-bog-123456", IssuedBy: "bankedge sandbox",
		})
		if err != nil {
			return err
		}
		id := &tppclient.Identity{Cert: cert, Key: key, Chain: []*x509.Certificate{auth.Certificate()}}
		if err := tppcmd.WriteIdentity(dir, kind.String(), id, password); err != nil {
			return err
		}
	}
	if err := tppcmd.WriteRoot(dir, auth.Certificate()); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "p12-password"), []byte(password+"\n"), 0o600); err != nil {
		return err
	}
	log.Info("issued sandbox QWAC and QSEAL", zap.String("dir", dir), zap.String("org_id", subject.OrgID))
	return nil
}

// waitForCertificate waits, for up to 15 seconds, until the listener serves
// a certificate from the sandbox CA: Caddy obtains it in the background.
func waitForCertificate(addr, caFile string) {
	pool, err := tppclient.LoadCertPool(caFile)
	if err != nil {
		return
	}
	host, _, _ := net.SplitHostPort(addr)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: host})
		if err == nil {
			conn.Close()
			return
		}
		// A handshake that fails for want of a client certificate still
		// proves the server certificate verified.
		if strings.Contains(err.Error(), "certificate required") || strings.Contains(err.Error(), "bad certificate") {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

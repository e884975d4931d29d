package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
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
	"github.com/bankedge/bankedge/internal/certprofile/qcstatements"
	"github.com/bankedge/bankedge/internal/certprofile/tppcert"
	"github.com/bankedge/bankedge/modules/ca"
	"github.com/bankedge/bankedge/modules/ca/authority"
	"github.com/bankedge/bankedge/modules/ca/keystore"
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
	if err := sandboxPartner(filepath.Join(dir, "pesit"), log); err != nil {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("making the sandbox partner certificate: %w", err)
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

// sandboxSecret is a variable of secrets.env and how to make it.
type sandboxSecret struct {
	name string
	make func(dir string) (string, error)
}

var sandboxSecrets = []sandboxSecret{
	{"BANKEDGE_CA_PASSWORD", func(string) (string, error) { return randomHex(24) }},
	{"BANKEDGE_ADMIN_PASSWORD_HASH", func(dir string) (string, error) {
		pw, err := randomHex(12)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, "admin-password"), []byte(pw+"\n"), 0o600); err != nil {
			return "", err
		}
		hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
		return string(hash), err
	}},
	// PeSIT passwords travel in PI 5, which carries 8 characters.
	{"BANKEDGE_DEMO_PARTNER_PASSWORD", func(dir string) (string, error) {
		pw, err := randomAlnum(8)
		if err != nil {
			return "", err
		}
		if err := os.MkdirAll(filepath.Join(dir, "pesit"), 0o700); err != nil {
			return "", err
		}
		return pw, os.WriteFile(filepath.Join(dir, "pesit", "demo-password"), []byte(pw+"\n"), 0o600)
	}},
	{"BANKEDGE_UPSTREAM_PESIT_PASSWORD", func(string) (string, error) { return randomAlnum(8) }},
}

// loadSecrets reads dir/secrets.env into the environment, adding fresh
// random secrets for the variables it lacks. A variable already in the
// environment wins.
func loadSecrets(dir string, log *zap.Logger) error {
	path := filepath.Join(dir, "secrets.env")
	values := map[string]string{}
	if data, err := os.ReadFile(path); err == nil {
		sc := bufio.NewScanner(strings.NewReader(string(data)))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				return fmt.Errorf("%s: line %q is not NAME=value", path, line)
			}
			values[k] = v
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	var added []string
	for _, sec := range sandboxSecrets {
		if _, ok := values[sec.name]; ok {
			continue
		}
		v, err := sec.make(dir)
		if err != nil {
			return fmt.Errorf("making %s: %w", sec.name, err)
		}
		values[sec.name] = v
		added = append(added, sec.name)
	}
	if len(added) > 0 {
		var b strings.Builder
		b.WriteString("# bankedge sandbox secrets, made on first start. Keep this file: the CA key\n# is encrypted with BANKEDGE_CA_PASSWORD.\n")
		for _, sec := range sandboxSecrets {
			b.WriteString(sec.name + "=" + values[sec.name] + "\n")
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
			return err
		}
		log.Info("made sandbox secrets", zap.String("file", path), zap.Strings("variables", added))
	}
	for k, v := range values {
		if _, set := os.LookupEnv(k); !set {
			os.Setenv(k, v)
		}
	}
	return nil
}

// sandboxTPP issues a QWAC and a QSEAL from the running CA into dir, once.
func sandboxTPP(dir string, log *zap.Logger) error {
	if _, err := os.Stat(filepath.Join(dir, "qseal.pem")); err == nil {
		return nil
	}
	auth, err := sandboxAuthority()
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

// sandboxPartner issues the DEMO partner's TLS client certificate once, for
// PeSIT over TLS with mTLS.
func sandboxPartner(dir string, log *zap.Logger) error {
	if _, err := os.Stat(filepath.Join(dir, "demo.pem")); err == nil {
		return nil
	}
	auth, err := sandboxAuthority()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tmpl := &x509.Certificate{}
	tmpl.Subject.CommonName = "DEMO"
	tmpl.Subject.Organization = []string{"bankedge sandbox partner"}
	key, cert, err := auth.Generate(ctx, authority.ECDSAP256, authority.Request{
		Template: tmpl, Purpose: authority.PurposeClient, Validity: 365 * 24 * time.Hour, PartnerID: "DEMO", IssuedBy: "bankedge sandbox",
	})
	if err != nil {
		return err
	}
	keyPEM, err := keystore.EncodePrivateKeyPEM(key, "")
	if err != nil {
		return err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	for name, data := range map[string][]byte{"demo.pem": certPEM, "demo-key.pem": keyPEM, "ca.pem": auth.CertificatePEM()} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	log.Info("issued the DEMO partner's TLS client certificate", zap.String("dir", dir))
	return nil
}

// sandboxAuthority returns the running bankedge CA.
func sandboxAuthority() (*authority.Authority, error) {
	v, err := caddy.ActiveContext().App("bankedge")
	if err != nil {
		return nil, err
	}
	return v.(*ca.App).Authority()
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

// randomAlnum returns n random letters and digits.
func randomAlnum(n int) (string, error) {
	const chars = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	for i := range b {
		b[i] = chars[int(b[i])%len(chars)]
	}
	return string(b), nil
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

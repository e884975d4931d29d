package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
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
		Usage: "[--dir <path>] [--redis <host:port> [--envfile <other sandbox>/secrets.env]]",
		Short: "Runs the example gateway, with sandbox secrets and certificates made on first start",
		Long: `
Serves the embedded Caddyfile.example: the PSD2 XS2A listener in front of a
mock ASPSP, the PeSIT listeners (TCP and TLS) in front of a sandbox PeSIT
server, and the CA admin API on 127.0.0.1, all backed by the bankedge CA.

On first start it writes, under --dir (default ./sandbox):
  secrets.env             BANKEDGE_CA_PASSWORD (encrypts the CA key),
                          BANKEDGE_ADMIN_PASSWORD_HASH (the API's basic_auth)
                          and the PeSIT passwords; readable by
                          "bankedge run --envfile" and by a shell's "."
  admin-password          the admin API password (user "admin")
  tpp/                    a QWAC and a QSEAL for PSDGR-BOG-123456 from the CA,
                          the CA certificate (qtsp-root.pem), p12-password
  pesit/                  the DEMO partner's password and TLS client
                          certificate
  storage/                Caddy's storage: the CA, partners, inventory
  audit.log, admin.sock   the audit trail; Caddy's admin endpoint (owner only)
Variables already set in the environment take precedence over secrets.env.
Nothing outside --dir is written, and nothing goes into system trust stores.

With --redis HOST:PORT the CA, the partners and the gateway's shared state
(replay ids, PeSIT connection slots, failure counters) live in that Redis
(key prefix bankedge-sandbox) instead of storage/, and every sandbox started
on it acts as one gateway with the others. The first one makes the CA and
leaves its secrets (CA passphrase, admin and DEMO passwords) in that Redis,
a sandbox convenience no deployment may copy; the others, started with their
own --dir and ports, take them (or --envfile <first dir>/secrets.env). A
restart without --redis reuses the Redis recorded in --dir.

It refuses to start when another sandbox uses --dir, or when a port it needs
is taken; the ports change with BANKEDGE_XS2A_PORT, BANKEDGE_ASPSP_PORT,
BANKEDGE_API_PORT, BANKEDGE_PESIT_PORT, BANKEDGE_PESITS_PORT and
BANKEDGE_PESIT_UPSTREAM_PORT.

Documentation: ` + readmeURL,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().String("dir", "sandbox", "directory for sandbox secrets, certificates and state")
			cmd.Flags().String("redis", "", "keep the CA, partners and shared state in the Redis at HOST:PORT, shared with every sandbox started on it")
			cmd.Flags().String("envfile", "", "use the secrets of another sandbox (its secrets.env): a second sandbox on the same Redis needs the first one's")
			cmd.RunE = runStatus(cmdSandbox)
		},
	})
}

// sandboxPort is a variable that sets a port of Caddyfile.example.
type sandboxPort struct {
	env, def string
	// name is what listens on the port; detail says more in the summary.
	name, detail string
}

var sandboxPorts = []sandboxPort{
	{"BANKEDGE_XS2A_PORT", "8443", "XS2A API", "mTLS with a QWAC, signed requests"},
	{"BANKEDGE_ASPSP_PORT", "9080", "mock ASPSP", "echoes what the gateway forwards"},
	{"BANKEDGE_API_PORT", "8080", "CA admin API", "basic auth, user admin"},
	{"BANKEDGE_PESIT_PORT", "6502", "PeSIT over TCP", "partner id and password"},
	{"BANKEDGE_PESITS_PORT", "5001", "PeSIT over TLS", "mTLS with a CA-issued certificate"},
	{"BANKEDGE_PESIT_UPSTREAM_PORT", "6503", "sandbox PeSIT server", "the bank's, behind the gateway"},
}

// portVariable returns the variable that sets port in the sandbox.
func portVariable(port string) (sandboxPort, bool) {
	for _, p := range sandboxPorts {
		if envOr(p.env, p.def) == port {
			return p, true
		}
	}
	return sandboxPort{}, false
}

func cmdSandbox(fl caddycmd.Flags) (int, error) {
	caddy.TrapSignals()
	dir, err := filepath.Abs(fl.String("dir"))
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	log := caddy.Log()

	// Everything that can be checked is checked before anything is
	// written: a bad variable or a taken port leaves no half-made sandbox.
	secrets, err := readSecrets(dir)
	if err != nil {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("sandbox secrets: %w", err)
	}
	if f := fl.String("envfile"); f != "" {
		if err := secrets.adoptSecrets(f); err != nil {
			return caddy.ExitCodeFailedStartup, fmt.Errorf("sandbox secrets: %w", err)
		}
	}
	redisAddr, err := sandboxRedis(dir, fl.String("redis"))
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	if redisAddr != "" {
		cleanup, err := checkSandboxRedis(redisAddr, secrets)
		defer cleanup()
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
	}
	var lock *os.File
	if _, err := os.Stat(dir); err == nil {
		if lock, err = lockDir(dir); err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
	}
	os.Setenv("BANKEDGE_SANDBOX", dir)
	cfg, err := sandboxConfig(redisAddr)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	listeners, err := configListeners(cfg)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	if err := checkSocketPaths(listeners); err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	if err := probeListeners(listeners); err != nil {
		return caddy.ExitCodeFailedStartup, err
	}

	if !secrets.existed {
		log.Info("preparing the sandbox: secrets, then the CA and certificates (first start)", zap.String("dir", dir))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	if lock == nil {
		if lock, err = lockDir(dir); err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
	}
	defer lock.Close()
	if err := secrets.copyAdoptedFiles(dir); err != nil {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("sandbox secrets: %w", err)
	}
	made, err := secrets.complete(dir)
	if err != nil {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("sandbox secrets: %w", err)
	}
	if redisAddr != "" {
		if err := writeFileAtomic(filepath.Join(dir, redisFile), []byte(redisAddr+"\n"), 0o600); err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
	}
	if len(made) > 0 {
		log.Info("made sandbox secrets", zap.String("file", secrets.path), zap.Strings("variables", made))
	}
	secrets.export()

	if err := caddy.Load(cfg, true); err != nil {
		if redisAddr != "" && errors.Is(err, authority.ErrBadKey) {
			err = fmt.Errorf("%w\nThe CA in Redis at %s was made by another sandbox: start this one with that sandbox's secrets, --envfile <its dir>/secrets.env", err, redisAddr)
		}
		return caddy.ExitCodeFailedStartup, fmt.Errorf("loading Caddyfile.example: %w", err)
	}
	if redisAddr != "" {
		// These secrets opened (or made) the CA: the next sandbox on this
		// Redis can join with them.
		if err := shareSecrets(redisAddr, dir); err != nil {
			log.Warn("cannot share the sandbox secrets in Redis; another sandbox needs --envfile", zap.Error(err))
		}
	}
	tppDir := filepath.Join(dir, "tpp")
	if err := sandboxTPP(tppDir, log); err != nil {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("making the sandbox TPP certificates: %w", err)
	}
	if err := sandboxPartner(filepath.Join(dir, "pesit"), log); err != nil {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("making the sandbox partner certificate: %w", err)
	}
	for _, l := range listeners {
		if l.app == "http" && l.tls {
			waitForCertificate(l, filepath.Join(tppDir, "qtsp-root.pem"))
		}
	}
	printSummary(os.Stdout, dir, listeners, secrets.fromEnv, redisAddr)
	select {}
}

// sandboxConfig adapts the embedded Caddyfile.example and quiets, in the
// sandbox's log only, lines a sandbox user can do nothing about: Caddy's
// local CA, which the example does not use, saying that it skips the trust
// store, and the admin endpoint warning that a unix socket does no host
// checking (the socket's permissions do that job). Errors of the admin
// endpoint are still shown. With redisAddr, the storage is that Redis
// (see sandboxredis.go).
func sandboxConfig(redisAddr string) ([]byte, error) {
	adapter := caddyconfig.GetAdapter("caddyfile")
	cfg, warnings, err := adapter.Adapt(bankedge.ExampleCaddyfile, map[string]any{"filename": "Caddyfile.example"})
	if err != nil {
		return nil, fmt.Errorf("adapting Caddyfile.example: %w", err)
	}
	for _, w := range warnings {
		caddy.Log().Warn(w.String())
	}
	var c struct {
		Logging *caddy.Logging `json:"logging,omitempty"`
		// The rest of the configuration, unchanged.
		Rest map[string]json.RawMessage `json:"-"`
	}
	if err := json.Unmarshal(cfg, &c.Rest); err != nil {
		return nil, err
	}
	if raw, ok := c.Rest["logging"]; ok {
		if err := json.Unmarshal(raw, &c.Logging); err != nil {
			return nil, err
		}
	}
	if c.Logging == nil {
		c.Logging = new(caddy.Logging)
	}
	if c.Logging.Logs == nil {
		c.Logging.Logs = map[string]*caddy.CustomLog{}
	}
	def := c.Logging.Logs[caddy.DefaultLoggerName]
	if def == nil {
		def = new(caddy.CustomLog)
		c.Logging.Logs[caddy.DefaultLoggerName] = def
	}
	def.Exclude = append(def.Exclude, "admin", "pki.ca.local")
	c.Logging.Logs["sandbox_admin_errors"] = &caddy.CustomLog{BaseLog: caddy.BaseLog{Level: "ERROR"}, Include: []string{"admin"}}
	logging, err := json.Marshal(c.Logging)
	if err != nil {
		return nil, err
	}
	c.Rest["logging"] = logging
	if redisAddr != "" {
		if c.Rest["storage"], err = redisStorage(redisAddr); err != nil {
			return nil, err
		}
	}
	return json.Marshal(c.Rest)
}

// probeListeners checks that every TCP port of the configuration is free,
// and names the ones that are not with the variable that moves them.
func probeListeners(listeners []listener) error {
	var taken []string
	for _, l := range listeners {
		if l.network != "tcp" {
			continue
		}
		if err := probePort(l.addr); err != nil {
			what := l.app + " server " + l.server
			if p, ok := portVariable(l.port); ok {
				what = p.name + ", " + p.env
			}
			taken = append(taken, fmt.Sprintf("\n  port %s (%s) is %v", l.port, what, err))
		}
	}
	if len(taken) > 0 {
		return fmt.Errorf("the sandbox cannot listen:%s\nStop what holds them, or choose free ports with the variables named, e.g. BANKEDGE_XS2A_PORT=18443",
			strings.Join(taken, ""))
	}
	return nil
}

// maxSocketPath is the longest unix socket path Linux and the BSDs accept
// (sun_path holds 108 and 104 bytes, with a terminating zero).
const maxSocketPath = 103

// checkSocketPaths refuses unix socket paths the system cannot bind, which
// a deep --dir makes, with a message that says so.
func checkSocketPaths(listeners []listener) error {
	for _, l := range listeners {
		path, _, _ := strings.Cut(l.addr, "|")
		if l.network == "unix" && len(path) > maxSocketPath {
			return fmt.Errorf("the admin socket %s is %d bytes long, more than a unix socket path may be (%d): choose a shorter --dir",
				path, len(path), maxSocketPath)
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
	set := tppcmd.CertSet{Root: auth.Certificate(), P12Password: password}
	const partner = "psdgr-bog-123456"
	for _, kind := range []tppcert.Kind{tppcert.QWAC, tppcert.QSEAL} {
		tmpl, err := tppcert.Template(kind, subject, time.Now(), time.Now())
		if err != nil {
			return err
		}
		purpose := authority.PurposeQWAC
		if kind == tppcert.QSEAL {
			purpose = authority.PurposeQSEAL
		}
		key, cert, err := auth.Generate(ca.WithAuditAction(ctx, "ca.psd2.generate"), authority.RSA2048, authority.Request{
			Template: tmpl, Purpose: purpose, Validity: 365 * 24 * time.Hour, PartnerID: partner, IssuedBy: sandboxUser,
		})
		if err != nil {
			return err
		}
		id := &tppclient.Identity{Cert: cert, Key: key, Chain: []*x509.Certificate{auth.Certificate()}}
		if kind == tppcert.QWAC {
			set.QWAC = id
		} else {
			set.QSEAL = id
		}
	}
	// The sandbox owns dir: a half-written set from an interrupted first
	// start is replaced.
	if _, err := tppcmd.WriteCertSet(dir, set, true); err != nil {
		return err
	}
	log.Info("issued the sandbox QWAC and QSEAL", zap.String("dir", dir), zap.String("org_id", subject.OrgID))
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
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tmpl := &x509.Certificate{}
	tmpl.Subject.CommonName = "DEMO"
	tmpl.Subject.Organization = []string{"bankedge sandbox partner"}
	const partner = "DEMO"
	key, cert, err := auth.Generate(ca.WithAuditAction(ctx, "ca.generate"), authority.ECDSAP256, authority.Request{
		Template: tmpl, Purpose: authority.PurposeClient, Validity: 365 * 24 * time.Hour, PartnerID: partner, IssuedBy: sandboxUser,
	})
	if err != nil {
		return err
	}
	keyPEM, err := keystore.EncodePrivateKeyPEM(key, "")
	if err != nil {
		return err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	// The certificate last: its presence means the set is complete.
	for _, f := range []struct {
		name string
		data []byte
	}{{"ca.pem", auth.CertificatePEM()}, {"demo-key.pem", keyPEM}, {"demo.pem", certPEM}} {
		if err := writeFileAtomic(filepath.Join(dir, f.name), f.data, 0o600); err != nil {
			return err
		}
	}
	log.Info("issued the DEMO partner's TLS client certificate", zap.String("dir", dir))
	return nil
}

// sandboxUser is the user the audit log names for the sandbox's own
// issuances.
const sandboxUser = "bankedge sandbox"

// sandboxAuthority returns the running bankedge CA. Its issuances are
// audited by the CA itself, as the sandbox user.
func sandboxAuthority() (*authority.Authority, error) {
	v, err := caddy.ActiveContext().App("bankedge")
	if err != nil {
		return nil, err
	}
	return v.(*ca.App).Authority()
}

// waitForCertificate waits, for up to 15 seconds, until a TLS listener
// serves a certificate from the sandbox CA: Caddy obtains it in the
// background after start.
func waitForCertificate(l listener, caFile string) {
	pool, err := tppclient.LoadCertPool(caFile)
	if err != nil {
		return
	}
	name := "localhost"
	if len(l.names) > 0 {
		name = l.names[0]
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", l.dialAddr(), &tls.Config{RootCAs: pool, ServerName: name})
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

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

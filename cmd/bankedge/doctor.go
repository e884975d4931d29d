package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/caddyserver/certmagic"
	"github.com/spf13/cobra"

	"github.com/bankedge/bankedge/modules/ca/authority"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "doctor",
		Usage: "[--dir <sandbox dir> | --config <Caddyfile> [--envfile <file>]]",
		Short: "Checks a running gateway: listeners, CA, storage and certificates",
		Long: `
Checks a running bankedge gateway and says in plain words what is wrong and
how to fix it:

  listeners     each one accepts connections; the TLS ones present a
                certificate that verifies against the bankedge CA (or the
                system roots), with the days left before it expires; the
                Caddy admin endpoint answers and only its owner can use it
  CA            its certificate is in storage, its expiry; its key decrypts
                with the passphrase (when known); the CRL it publishes is
                signed by it and not past its next update
  storage       reachable, writable, and its lock can be taken
  certificates  with --dir: the sandbox's QWAC, QSEAL and DEMO certificate
                chain to the CA, are not on its CRL and have not expired

With --dir (default: sandbox) it checks a "bankedge sandbox" running on that
directory, reading its secrets.env and the BANKEDGE_*_PORT variables as the
sandbox does. With --config it checks the gateway that serves that
configuration; --envfile loads variables it uses, such as
BANKEDGE_CA_PASSWORD. When the admin endpoint answers, the running
configuration is checked rather than the file.

The exit status is 1 when something is wrong, 0 otherwise.

Documentation: ` + readmeURL,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().String("dir", "", "directory of a running bankedge sandbox (default sandbox)")
			cmd.Flags().StringP("config", "c", "", "configuration file of a running gateway")
			cmd.Flags().StringP("adapter", "a", "", "name of the config adapter (default from the file name)")
			cmd.Flags().StringSlice("envfile", nil, "environment file(s) to load, as for bankedge run")
			cmd.Flags().Duration("timeout", 5*time.Second, "timeout of each check")
			cmd.RunE = runStatus(cmdDoctor)
		},
	})
}

// doctor collects the findings of one run.
type doctor struct {
	out      io.Writer
	timeout  time.Duration
	problems int
	// startHint tells how to start the gateway that is checked.
	startHint string
	// sandbox is set when the gateway is a bankedge sandbox, whose ports
	// have names.
	sandbox bool
	// caCert is the CA certificate from storage, once read.
	caCert *x509.Certificate
	// revoked are the serials the CA's CRL lists, once read and verified.
	revoked map[string]bool
	// fixes are the fixes already given, which are not repeated.
	fixes map[string]bool
}

func (d *doctor) section(title string) { fmt.Fprintf(d.out, "\n%s\n", title) }

func (d *doctor) ok(format string, a ...any) { fmt.Fprintf(d.out, "  ok    "+format+"\n", a...) }

func (d *doctor) warn(format string, a ...any) { fmt.Fprintf(d.out, "  warn  "+format+"\n", a...) }

// fail records a problem and how to fix it.
func (d *doctor) fail(fix, format string, a ...any) {
	d.problems++
	fmt.Fprintf(d.out, "  FAIL  "+format+"\n", a...)
	switch {
	case fix == "":
	case d.fixes[fix]:
		fmt.Fprintf(d.out, "        fix: as above\n")
	default:
		fmt.Fprintf(d.out, "        fix: %s\n", fix)
		d.fixes[fix] = true
	}
}

func cmdDoctor(fl caddycmd.Flags) (int, error) {
	d := &doctor{out: os.Stdout, timeout: fl.Duration("timeout"), fixes: map[string]bool{}}
	dir, configFile := fl.String("dir"), fl.String("config")
	if dir != "" && configFile != "" {
		return caddy.ExitCodeFailedStartup, errors.New("give --dir or --config, not both")
	}
	envfiles, _ := fl.GetStringSlice("envfile")
	for _, f := range envfiles {
		if err := loadEnvFile(f); err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
	}
	var cfg []byte
	var err error
	if configFile != "" {
		if cfg, _, _, err = caddycmd.LoadConfig(configFile, fl.String("adapter")); err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		fmt.Fprintf(d.out, "bankedge doctor: the gateway of %s\n", configFile)
		d.startHint = selfCommand() + " run --config " + configFile
	} else {
		if dir == "" {
			dir = "sandbox"
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		if _, err := os.Stat(abs); err != nil {
			return 1, fmt.Errorf("no sandbox in %s: start one with %s sandbox --dir %s", dir, selfCommand(), dir)
		}
		if err := loadEnvFile(filepath.Join(abs, "secrets.env")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return caddy.ExitCodeFailedStartup, err
		}
		os.Setenv("BANKEDGE_SANDBOX", abs)
		redisAddr, err := sandboxRedis(abs, "")
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		if cfg, err = sandboxConfig(redisAddr); err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		d.startHint = selfCommand() + " sandbox --dir " + dir
		d.sandbox = true
		fmt.Fprintf(d.out, "bankedge doctor: the sandbox in %s\n", displayPath(abs))
		if held, pid := dirLocked(abs); held {
			fmt.Fprintf(d.out, "(a sandbox runs there: process %d)\n", pid)
		} else {
			fmt.Fprintf(d.out, "(no sandbox process holds %s)\n", filepath.Join(displayPath(abs), "sandbox.lock"))
		}
	}

	listeners, err := configListeners(cfg)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	// The running configuration, when the admin endpoint gives it, says
	// where the gateway really listens.
	d.section("Caddy admin endpoint")
	if live := d.checkAdmin(listeners); live != nil {
		if l, err := configListeners(live); err == nil {
			cfg, listeners = live, l
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*d.timeout)
	defer cancel()
	storage, storageName, closeStorage, err := configStorage(cfg)
	d.section("Storage (" + storageName + ")")
	if err != nil {
		d.fail("check the storage configuration", "the storage cannot be opened: %v", err)
	} else {
		defer closeStorage()
		d.checkStorage(ctx, storage)
		d.section("CA")
		d.checkCA(ctx, storage, cfg)
	}

	d.section("Listeners")
	for _, l := range listeners {
		if l.app != "admin" {
			d.checkListener(l)
		}
	}
	if dir != "" {
		d.section("Sandbox certificates")
		d.checkSandboxCertificates(dir)
	}

	if d.problems > 0 {
		fmt.Fprintf(d.out, "\n%d problem(s) found.\n", d.problems)
		return 1, nil
	}
	fmt.Fprintln(d.out, "\nNo problem found.")
	return 0, nil
}

// checkAdmin checks the admin endpoint and returns the configuration it
// serves, or nil.
func (d *doctor) checkAdmin(listeners []listener) []byte {
	var admin *listener
	for i := range listeners {
		if listeners[i].app == "admin" {
			admin = &listeners[i]
		}
	}
	if admin == nil {
		d.ok("off (admin off): the configuration cannot be changed at run time")
		return nil
	}
	addr := admin.addr
	if admin.network == "unix" {
		path, _, _ := strings.Cut(admin.addr, "|")
		st, err := os.Stat(path)
		if err != nil {
			d.fail("start the gateway: "+d.startHint, "no socket at %s: %v", displayPath(path), err)
			return nil
		}
		if perm := st.Mode().Perm(); perm&0o077 != 0 {
			d.fail("use admin unix/"+path+"|0600 in the global options", "the socket %s can be used by other users (mode %04o): they could read and change the configuration", displayPath(path), perm)
		}
		addr = "unix/" + admin.addr
	} else {
		d.warn("%s listens on TCP: every local process can read and change the configuration; use a unix socket that only the owner may open (admin unix/<path>|0600)", admin)
	}
	resp, err := caddycmd.AdminAPIRequest(addr, http.MethodGet, "/config/", nil, nil)
	if err != nil {
		d.fail("start the gateway: "+d.startHint, "%s does not answer: %v", admin, err)
		return nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		d.fail("", "%s answered %s to GET /config/", admin, resp.Status)
		return nil
	}
	d.ok("%s answers; only its owner can use it", admin)
	return body
}

// checkListener dials a listener and, for TLS, checks its certificate.
func (d *doctor) checkListener(l listener) {
	name := l.String()
	if v, ok := portVariable(l.port); ok && d.sandbox {
		name = v.name + ", " + name
	} else {
		name = fmt.Sprintf("%s (%s server %s)", name, l.app, l.server)
	}
	conn, err := net.DialTimeout("tcp", l.dialAddr(), d.timeout)
	if err != nil {
		d.fail("start the gateway ("+d.startHint+"), or look in its log for why this listener failed",
			"%s: nothing accepts connections on %s (%v)", name, l.dialAddr(), unwrapOp(err))
		return
	}
	if !l.tls {
		conn.Close()
		d.ok("%s accepts connections", name)
		return
	}
	serverName := "localhost"
	if len(l.names) > 0 && !strings.Contains(l.names[0], "*") {
		serverName = l.names[0]
	}
	var chain []*x509.Certificate
	tconn := tls.Client(conn, &tls.Config{
		ServerName: serverName,
		// The chain is verified below, to say why it does not verify.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			chain = cs.PeerCertificates
			return nil
		},
	})
	_ = tconn.SetDeadline(time.Now().Add(d.timeout))
	err = tconn.Handshake()
	tconn.Close()
	if len(chain) == 0 {
		d.fail("look in the gateway's log for the TLS error", "%s accepts connections but no TLS handshake completes: %v", name, err)
		return
	}
	leaf := chain[0]
	roots, _ := x509.SystemCertPool()
	if roots == nil {
		roots = x509.NewCertPool()
	}
	by := "the system roots"
	if d.caCert != nil {
		caOnly := x509.NewCertPool()
		caOnly.AddCert(d.caCert)
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: caOnly, Intermediates: pool(chain[1:]), DNSName: serverName}); err == nil {
			roots, by = caOnly, "the bankedge CA"
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: pool(chain[1:]), DNSName: serverName}); err != nil {
		d.fail("let the gateway obtain a new certificate: restart it, or check tls { issuer bankedge } on this site",
			"%s presents a certificate for %s that does not verify against the bankedge CA or the system roots: %v", name, certNames(leaf), err)
		return
	}
	d.expiry(name+" presents a certificate for "+certNames(leaf)+" that verifies against "+by+";", leaf,
		"Caddy renews it by itself: if it does not, look in the gateway's log for tls.renew errors")
}

// expiry reports how long a certificate has left.
func (d *doctor) expiry(what string, c *x509.Certificate, fix string) {
	now := time.Now()
	left := c.NotAfter.Sub(now)
	days := int(left.Hours() / 24)
	switch {
	case now.Before(c.NotBefore):
		d.fail(fix, "%s it is not valid before %s", what, c.NotBefore.UTC().Format(time.DateOnly))
	case left <= 0:
		d.fail(fix, "%s it expired on %s", what, c.NotAfter.UTC().Format(time.DateOnly))
	case days < 7:
		d.warn("%s it expires in %d day(s), on %s", what, days, c.NotAfter.UTC().Format(time.DateOnly))
	default:
		d.ok("%s it expires in %d days (%s)", what, days, c.NotAfter.UTC().Format(time.DateOnly))
	}
}

// checkStorage writes, reads and deletes a probe key and takes a lock.
func (d *doctor) checkStorage(ctx context.Context, st certmagic.Storage) {
	key := "bankedge/doctor/probe-" + randomID()
	data := []byte("bankedge doctor " + time.Now().UTC().Format(time.RFC3339))
	if err := st.Store(ctx, key, data); err != nil {
		d.fail("give the gateway's user write access to the storage", "the storage is not writable: %v", err)
		return
	}
	got, err := st.Load(ctx, key)
	_ = st.Delete(ctx, key)
	if err != nil || string(got) != string(data) {
		d.fail("check the storage", "the storage does not give back what was written: %v", err)
		return
	}
	d.ok("reachable and writable")
	lctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	if err := st.Lock(lctx, "bankedge/doctor"); err != nil {
		d.fail("look for a stale lock (file_system: the locks directory of the storage)",
			"its lock could not be taken within %s: %v", d.timeout, err)
		return
	}
	if err := st.Unlock(ctx, "bankedge/doctor"); err != nil {
		d.fail("", "its lock could not be released: %v", err)
		return
	}
	d.ok("its lock can be taken and released")
}

// The CA's keys in storage (authority's default prefix, which the bankedge
// app does not change).
const (
	caCertKey = "bankedge/ca/ca.crt"
	caCRLKey  = "bankedge/ca/crl.der"
)

// checkCA reads the CA certificate, tries its key with the passphrase when
// it is known, and checks the CRL the gateway publishes.
func (d *doctor) checkCA(ctx context.Context, st certmagic.Storage, cfg []byte) {
	certPEM, err := st.Load(ctx, caCertKey)
	if errors.Is(err, fs.ErrNotExist) {
		d.fail("start the gateway, which creates the CA (or POST /api/v1/certificates/ca/initialize with manual_initialize)",
			"no CA in this storage")
		return
	}
	if err != nil {
		d.fail("", "the CA certificate cannot be read: %v", err)
		return
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		d.fail("restore the storage from a backup", "the stored CA certificate is not PEM")
		return
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		d.fail("restore the storage from a backup", "the stored CA certificate cannot be parsed: %v", err)
		return
	}
	d.caCert = cert
	d.expiry(fmt.Sprintf("certificate %q, serial %s;", cert.Subject.CommonName, authority.SerialString(cert.SerialNumber)), cert,
		"plan a new CA: every certificate it issued stops verifying with it")

	var app struct {
		Apps struct {
			Bankedge struct {
				CA struct {
					KeyPassphrase string `json:"key_passphrase"`
					CRLURL        string `json:"crl_url"`
				} `json:"ca"`
			} `json:"bankedge"`
		} `json:"apps"`
	}
	_ = json.Unmarshal(cfg, &app)
	ca := app.Apps.Bankedge.CA
	placeholder := cmp.Or(ca.KeyPassphrase, "{env.BANKEDGE_CA_PASSWORD}")
	passSource := "the configured key_passphrase"
	if v, ok := strings.CutPrefix(placeholder, "{env."); ok && strings.HasSuffix(v, "}") {
		passSource = "$" + strings.TrimSuffix(v, "}")
	}
	if pass := caddy.NewReplacer().ReplaceKnown(placeholder, ""); pass == "" {
		d.warn("the key passphrase (%s) is not set here: the CA key was not tried", passSource)
	} else if _, _, err := authority.Open(ctx, authority.Config{Storage: st, Passphrase: []byte(pass)}, false); err != nil {
		d.fail("set the passphrase the CA was created with (for a sandbox: --envfile sandbox/secrets.env)",
			"the CA key cannot be opened with %s: %v", passSource, err)
	} else {
		d.ok("its key decrypts with %s", passSource)
	}

	var crl []byte
	where := "storage"
	if ca.CRLURL != "" {
		where = ca.CRLURL
		client := &http.Client{Timeout: d.timeout}
		resp, err := client.Get(ca.CRLURL)
		if err != nil {
			d.fail("start the gateway, or serve GET /api/v1/certificates/ca/crl at crl_url", "the CRL cannot be fetched from %s: %v", ca.CRLURL, unwrapOp(err))
			return
		}
		crl, err = io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			d.fail("look in the gateway's log", "%s answered %s", ca.CRLURL, resp.Status)
			return
		}
	} else if crl, err = st.Load(ctx, caCRLKey); errors.Is(err, fs.ErrNotExist) {
		d.ok("no CRL signed yet (no crl_url; the first GET /api/v1/certificates/ca/crl signs one)")
		return
	} else if err != nil {
		d.fail("", "the CRL cannot be read from storage: %v", err)
		return
	}
	list, err := x509.ParseRevocationList(crl)
	if err != nil {
		d.fail("look in the gateway's log", "the CRL from %s cannot be parsed: %v", where, err)
		return
	}
	if err := list.CheckSignatureFrom(cert); err != nil {
		d.fail("the CRL must be signed by the CA in storage: is crl_url the one of this gateway?", "the CRL from %s is not signed by the CA: %v", where, err)
		return
	}
	left := time.Until(list.NextUpdate)
	if left <= 0 {
		d.fail("the gateway signs a new CRL when it is read: check that it runs and that its storage is writable",
			"the CRL from %s is stale: its next update was %s", where, list.NextUpdate.UTC().Format(time.RFC3339))
		return
	}
	d.revoked = map[string]bool{}
	for _, e := range list.RevokedCertificateEntries {
		d.revoked[e.SerialNumber.String()] = true
	}
	d.ok("the CRL from %s is signed by the CA, lists %d revoked certificate(s) and is fresh (next update in %s)",
		where, len(list.RevokedCertificateEntries), roughDuration(left))
}

// checkSandboxCertificates checks the certificates the sandbox wrote.
func (d *doctor) checkSandboxCertificates(dir string) {
	for _, f := range []struct{ path, what string }{
		{"tpp/qwac.pem", "the sandbox QWAC"},
		{"tpp/qseal.pem", "the sandbox QSEAL"},
		{"pesit/demo.pem", "the DEMO partner's certificate"},
		{"tpp/qtsp-root.pem", "the CA certificate for tpp request"},
	} {
		path := filepath.Join(dir, f.path)
		name := f.what + " (" + path + ")"
		c, err := readCertificate(path)
		if err != nil {
			d.fail("start the sandbox, which makes the missing ones: "+d.startHint, "%s: %v", name, err)
			continue
		}
		if d.caCert == nil {
			d.expiry(name+":", c, "")
			continue
		}
		if f.path == "tpp/qtsp-root.pem" {
			if !c.Equal(d.caCert) {
				d.fail("delete "+filepath.Join(dir, "tpp")+" and restart the sandbox", "%s is not the CA in storage", name)
			} else {
				d.ok("%s is the CA in storage", name)
			}
			continue
		}
		if err := c.CheckSignatureFrom(d.caCert); err != nil {
			d.fail("delete "+filepath.Dir(path)+" and restart the sandbox: it issues new ones", "%s was not issued by the CA in storage", name)
			continue
		}
		if d.revoked[c.SerialNumber.String()] {
			d.fail("delete "+filepath.Dir(path)+" and restart the sandbox: it issues new ones", "%s was revoked: the CA's CRL lists its serial %X", name, c.SerialNumber)
			continue
		}
		d.expiry(name+" was issued by the CA;", c, "delete "+filepath.Dir(path)+" and restart the sandbox: it issues new ones")
	}
}

// configStorage opens the storage a configuration names, the default one
// (Caddy's data directory) when it names none. close releases it.
func configStorage(cfg []byte) (st certmagic.Storage, name string, close func(), err error) {
	var c struct {
		StorageRaw json.RawMessage `json:"storage,omitempty" caddy:"namespace=caddy.storage inline_key=module"`
	}
	if err := json.Unmarshal(cfg, &c); err != nil {
		return nil, "?", nil, err
	}
	if len(c.StorageRaw) == 0 {
		fs := &certmagic.FileStorage{Path: caddy.AppDataDir()}
		return fs, "file_system " + displayPath(fs.Path), func() {}, nil
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	val, err := ctx.LoadModule(&c, "StorageRaw")
	if err != nil {
		cancel()
		return nil, "?", nil, err
	}
	conv, ok := val.(caddy.StorageConverter)
	if !ok {
		cancel()
		return nil, "?", nil, fmt.Errorf("%T is not a storage module", val)
	}
	st, err = conv.CertMagicStorage()
	if err != nil {
		cancel()
		return nil, "?", nil, err
	}
	name = fmt.Sprintf("%T", st)
	if fsys, ok := st.(*certmagic.FileStorage); ok {
		name = "file_system " + displayPath(fsys.Path)
	}
	return st, name, cancel, nil
}

// loadEnvFile sets the variables of an environment file (NAME=value, the
// value bare or quoted) that the environment does not set already.
func loadEnvFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	values := map[string]string{}
	if _, err := parseSecrets(string(data), values); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for k, v := range values {
		if _, set := os.LookupEnv(k); !set {
			os.Setenv(k, v)
		}
	}
	return nil
}

func readCertificate(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("holds no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

func pool(certs []*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// certNames names what a certificate is for: its DNS names and IP
// addresses, else its subject.
func certNames(c *x509.Certificate) string {
	var names []string
	names = append(names, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return c.Subject.String()
	}
	return strings.Join(names, ", ")
}

// unwrapOp drops the "dial tcp 127.0.0.1:x:" prefix a net.OpError repeats.
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

// roughDuration says a duration in days, or hours below two days.
func roughDuration(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	}
	return fmt.Sprintf("%d hours", int(d.Hours()))
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

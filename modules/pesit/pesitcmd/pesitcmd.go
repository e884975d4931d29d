// Package pesitcmd adds the "bankedge pesit" commands: a PeSIT requester
// that sends a file to, or fetches one from, a PeSIT server or the bankedge
// gateway, over TCP or TLS, to test a partner link.
package pesitcmd

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"go.step.sm/crypto/pemutil"

	"github.com/bankedge/bankedge/modules/pesit/fpdu"
	"github.com/bankedge/bankedge/modules/pesit/peer"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "pesit",
		Usage: "send|fetch [flags]",
		Short: "PeSIT requester: send a file to, or fetch one from, a PeSIT server",
		Long: `
A small PeSIT E (Hors-SIT) requester, to test a partner link through the
bankedge gateway or against any PeSIT server:

  pesit send FILE --to host:port --partner ID --password PW --server-id ID
  pesit fetch NAME --to host:port --partner ID --password PW --server-id ID > FILE

Use --tls (with --cert/--key for mTLS and --ca for the server's CA) for
PeSIT over TLS; the gateway's example listens on 6502 (TCP) and 5001 (TLS).
A PEM keystore from the admin API (format=pem) is one file with the
certificate, the CA and an encrypted key: pass it as --cert, with its
password in --key-password or --key-password-file. The PeSIT password can
also come from $BANKEDGE_PESIT_PASSWORD.
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(sendCommand(), fetchCommand())
		},
	})
}

// linkFlags describe the connection to the PeSIT server.
type linkFlags struct {
	to, partner, password, serverID string
	passwordFile                    string
	useTLS, insecure, raw           bool
	cert, key, ca, serverName       string
	keyPassword, keyPasswordFile    string
	preconnection                   bool
	timeout                         time.Duration
	syncKB                          uint16
	restart                         bool
	transferID                      uint32
	articleSize                     int
}

func (f *linkFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.to, "to", "", "server address host:port (required)")
	fl.StringVar(&f.partner, "partner", "", "requester identifier, PI 3 (required)")
	// The environment is read when the command runs, not here: a flag
	// default is printed by --help and in usage errors.
	fl.StringVar(&f.password, "password", "", "password, PI 5 (default: $BANKEDGE_PESIT_PASSWORD)")
	fl.StringVar(&f.passwordFile, "password-file", "", "file holding the password")
	fl.StringVar(&f.serverID, "server-id", "", "server identifier, PI 4 (required)")
	fl.BoolVar(&f.useTLS, "tls", false, "use TLS (PeSIT-E over TLS)")
	fl.StringVar(&f.cert, "cert", "", "client certificate for mTLS (PEM)")
	fl.StringVar(&f.key, "key", "", "client key for mTLS (PEM; default: the --cert file, as in a PEM keystore from the admin API)")
	fl.StringVar(&f.keyPassword, "key-password", "", "password of an encrypted key (ENCRYPTED PRIVATE KEY)")
	fl.StringVar(&f.keyPasswordFile, "key-password-file", "", "file holding the password of an encrypted key")
	fl.StringVar(&f.ca, "ca", "", "CA certificate(s) that issued the server's certificate (PEM)")
	fl.StringVar(&f.serverName, "server-name", "", "TLS server name (default: the host of --to)")
	fl.BoolVar(&f.insecure, "insecure", false, "do not verify the server's certificate")
	fl.BoolVar(&f.raw, "raw", false, "no 2-byte NSDU length prefix (Connect:Express TCPIP_HEADER=N on TLS)")
	fl.BoolVar(&f.preconnection, "preconnection", false, "send the EBCDIC pre-connection first")
	fl.DurationVar(&f.timeout, "timeout", time.Minute, "timeout of each exchange")
	fl.Uint16Var(&f.syncKB, "sync-kb", 0, "sync point interval to propose, in KB (0: the default)")
	fl.BoolVar(&f.restart, "restart", false, "restart an interrupted transfer (needs --transfer-id)")
	fl.Uint32Var(&f.transferID, "transfer-id", 0, "transfer identifier, PI 13 (default: random for send)")
	fl.IntVar(&f.articleSize, "article-size", 0, "article size in bytes (default 4096)")
}

func (f *linkFlags) dial(ctx context.Context, access peer.Access) (*peer.Client, error) {
	if f.to == "" || f.partner == "" || f.serverID == "" {
		return nil, errors.New("--to, --partner and --server-id are required")
	}
	if f.passwordFile != "" {
		b, err := os.ReadFile(f.passwordFile)
		if err != nil {
			return nil, fmt.Errorf("--password-file: %w", err)
		}
		f.password = strings.TrimRight(string(b), "\r\n")
	}
	if f.password == "" {
		f.password = os.Getenv("BANKEDGE_PESIT_PASSWORD")
	}
	d := net.Dialer{Timeout: f.timeout}
	var conn net.Conn
	var err error
	if f.useTLS {
		cfg, cerr := f.tlsConfig()
		if cerr != nil {
			return nil, cerr
		}
		conn, err = (&tls.Dialer{NetDialer: &d, Config: cfg}).DialContext(ctx, "tcp", f.to)
	} else {
		conn, err = d.DialContext(ctx, "tcp", f.to)
	}
	if err != nil {
		return nil, err
	}
	framing := fpdu.FramingPrefixed
	if f.raw {
		framing = fpdu.FramingRaw
	}
	c, err := peer.NewClient(conn, peer.ConnectOptions{
		RequesterID: f.partner, ServerID: f.serverID, Password: f.password, Access: access,
		Framing: framing, PreConnection: f.preconnection, Timeout: f.timeout, SyncIntervalKB: f.syncKB,
	})
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func (f *linkFlags) tlsConfig() (*tls.Config, error) {
	host, _, err := net.SplitHostPort(f.to)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{ServerName: host, InsecureSkipVerify: f.insecure, MinVersion: tls.VersionTLS12}
	if f.serverName != "" {
		cfg.ServerName = f.serverName
	}
	if f.ca != "" {
		pem, err := os.ReadFile(f.ca)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca %s holds no PEM certificate", f.ca)
		}
	}
	if f.cert != "" || f.key != "" {
		pair, err := f.clientCertificate()
		if err != nil {
			return nil, fmt.Errorf("loading the client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// clientCertificate reads --cert (the certificate and any chain) and the
// key from --key or the --cert file. An encrypted PKCS#8 key, as a PEM
// keystore from the admin API holds, is decrypted with --key-password or
// --key-password-file.
func (f *linkFlags) clientCertificate() (tls.Certificate, error) {
	var pair tls.Certificate
	if f.cert == "" {
		return pair, errors.New("--key needs --cert")
	}
	certPEM, err := os.ReadFile(f.cert)
	if err != nil {
		return pair, err
	}
	keyPath := f.key
	if keyPath == "" {
		keyPath = f.cert
	}
	keyFile, err := os.ReadFile(keyPath)
	if err != nil {
		return pair, err
	}
	for rest := certPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			pair.Certificate = append(pair.Certificate, b.Bytes)
		}
	}
	if len(pair.Certificate) == 0 {
		return pair, fmt.Errorf("%s holds no PEM certificate", f.cert)
	}
	var keyBlock []byte
	encrypted := false
	for rest := keyFile; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if strings.HasSuffix(b.Type, "PRIVATE KEY") {
			keyBlock, encrypted = pem.EncodeToMemory(b), b.Type == "ENCRYPTED PRIVATE KEY" || b.Headers["Proc-Type"] != ""
			break
		}
	}
	if keyBlock == nil {
		return pair, fmt.Errorf("%s holds no PEM private key", keyPath)
	}
	password := f.keyPassword
	if f.keyPasswordFile != "" {
		b, err := os.ReadFile(f.keyPasswordFile)
		if err != nil {
			return pair, fmt.Errorf("--key-password-file: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	var opts []pemutil.Options
	if encrypted {
		if password == "" {
			return pair, fmt.Errorf("the key in %s is encrypted: give its password with --key-password or --key-password-file", keyPath)
		}
		opts = append(opts, pemutil.WithPassword([]byte(password)))
	}
	key, err := pemutil.ParseKey(keyBlock, opts...)
	if err != nil {
		if encrypted {
			return pair, fmt.Errorf("the key in %s cannot be decrypted with that password", keyPath)
		}
		return pair, fmt.Errorf("reading the key in %s: %w", keyPath, err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return pair, err
	}
	signer, ok := key.(crypto.Signer)
	pub, okPub := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !okPub || !pub.Equal(signer.Public()) {
		return pair, fmt.Errorf("the key in %s does not belong to the certificate in %s", keyPath, f.cert)
	}
	pair.PrivateKey, pair.Leaf = signer, leaf
	return pair, nil
}

func (f *linkFlags) transferOptions(name string) peer.TransferOptions {
	return peer.TransferOptions{TransferID: f.transferID, Restart: f.restart, ArticleSize: f.articleSize}
}

func sendCommand() *cobra.Command {
	var f linkFlags
	var fileName string
	cmd := &cobra.Command{
		Use:   "send FILE --to host:port --partner ID --password PW --server-id ID",
		Short: "Send (push) a file with PeSIT",
		Args:  cobra.ExactArgs(1),
	}
	f.register(cmd)
	cmd.Flags().StringVar(&fileName, "file-name", "", "PeSIT file name, PI 12 (default: the base name of FILE)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		file, err := os.Open(args[0])
		if err != nil {
			return err
		}
		defer file.Close()
		st, err := file.Stat()
		if err != nil {
			return err
		}
		if fileName == "" {
			fileName = filepath.Base(args[0])
		}
		c, err := f.dial(cmd.Context(), peer.AccessWrite)
		if err != nil {
			return err
		}
		defer c.Close()
		start := time.Now()
		res, err := c.Send(cmd.Context(), fileName, file, st.Size(), f.transferOptions(fileName))
		if err != nil {
			return err
		}
		if err := c.Release(); err != nil {
			return err
		}
		report(cmd.ErrOrStderr(), "sent", fileName, res, time.Since(start))
		return nil
	}
	return cmd
}

func fetchCommand() *cobra.Command {
	var f linkFlags
	var out string
	cmd := &cobra.Command{
		Use:   "fetch NAME --to host:port --partner ID --password PW --server-id ID > FILE",
		Short: "Fetch (pull) a file with PeSIT; it goes to standard output or --output",
		Args:  cobra.ExactArgs(1),
	}
	f.register(cmd)
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the file here instead of standard output")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var dst io.Writer = cmd.OutOrStdout()
		if out != "" {
			file, err := os.Create(out)
			if err != nil {
				return err
			}
			defer file.Close()
			dst = file
		}
		c, err := f.dial(cmd.Context(), peer.AccessRead)
		if err != nil {
			return err
		}
		defer c.Close()
		start := time.Now()
		res, err := c.Fetch(cmd.Context(), args[0], dst, f.transferOptions(args[0]))
		if err != nil {
			return err
		}
		if err := c.Release(); err != nil {
			return err
		}
		report(cmd.ErrOrStderr(), "fetched", args[0], res, time.Since(start))
		return nil
	}
	return cmd
}

func report(w io.Writer, verb, name string, res peer.Result, d time.Duration) {
	mbs := float64(res.Bytes) / 1e6 / max(d.Seconds(), 1e-9)
	fmt.Fprintf(w, "%s %s: %d bytes, %d articles, %d sync points in %s (%.1f MB/s)\n",
		verb, name, res.Bytes, res.Articles, res.SyncPoints, d.Round(time.Millisecond), mbs)
}

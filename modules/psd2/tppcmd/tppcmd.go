// Package tppcmd adds the "bankedge tpp" commands for PSD2 TPP developers:
// make sandbox QWAC and QSEAL certificates, print the headers of a signed
// request, or send one over mTLS.
package tppcmd

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/bankedge/bankedge/modules/psd2/httpsig"
	"github.com/bankedge/bankedge/modules/psd2/tppclient"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "tpp",
		Usage: "certs|sign|request [flags]",
		Short: "Sandbox tools for PSD2 TPP developers: certificates and signed requests",
		Long: `
Tools for developers of PSD2 third-party providers (TPPs) who test against a
bankedge gateway:

  tpp certs    writes a sandbox QTSP root, a QWAC and a QSEAL (keys, PEM
               certificates and a PKCS#12 of each)
  tpp sign     prints the headers of a signed request (Digest, X-Request-ID,
               Signature, TPP-Signature-Certificate, X-Client-Certificate)
               for use with curl or Postman
  tpp request  sends a signed request over mTLS and prints the response

Run "bankedge tpp <command> --help" for the flags of each.
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(certsCommand(), signCommand(), requestCommand())
		},
	})
}

// DefaultProfile is the signature profile the tpp commands use without
// --profile: the one the bankedge sandbox (Caddyfile.example) checks, so that
// the first request a TPP developer sends to it verifies. It is the profile
// of the bank the sandbox stands in for (the Piraeus Bank PSD2 API);
// gateways configured with "profile berlingroup" need --profile berlingroup.
const DefaultProfile = "piraeus"

// p12PasswordEnv holds the PKCS#12 password when --p12-password is not given.
const p12PasswordEnv = "BANKEDGE_P12_PASSWORD"

// requestFlags are shared by sign and request.
type requestFlags struct {
	qseal, qsealKey, qwac, p12Password string
	profile, algorithm, method, data   string
	headers                            []string
	requestID                          string
	date                               bool
}

func (f *requestFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.qseal, "qseal", "", "QSEAL certificate: PEM (key in --qseal-key, the same file or <name>-key.pem) or PKCS#12")
	fl.StringVar(&f.qsealKey, "qseal-key", "", "QSEAL private key (PEM)")
	fl.StringVar(&f.qwac, "qwac", "", "QWAC certificate (PEM or PKCS#12), sent in X-Client-Certificate and, for tpp request, in the TLS handshake")
	// The environment is read when the command runs, not as the flag's
	// default, which --help and usage errors would print.
	fl.StringVar(&f.p12Password, "p12-password", "", "password of PKCS#12 files (default $BANKEDGE_P12_PASSWORD, else the p12-password file next to them)")
	fl.StringVar(&f.profile, "profile", DefaultProfile, "signature profile: piraeus (as the bankedge sandbox) or berlingroup")
	fl.StringVar(&f.algorithm, "algorithm", "rsa-sha256", "signature algorithm: rsa-sha256 or rsa-sha512")
	fl.StringVarP(&f.method, "request", "X", "", "HTTP method (default POST with --data, GET without)")
	fl.StringVarP(&f.data, "data", "d", "", "request body, or @file to read it from a file")
	fl.StringArrayVarP(&f.headers, "header", "H", nil, `extra request header "Name: value" (repeatable); PSU-ID, PSU-Corporate-ID and TPP-Redirect-URI are signed in the berlingroup profile`)
	fl.StringVar(&f.requestID, "request-id", "", "X-Request-ID to use (default: a new UUID)")
	fl.BoolVar(&f.date, "date", false, "add a Date header (signed in the berlingroup profile)")
}

// signed is a request with its signed headers.
type signed struct {
	method string
	url    *url.URL
	header http.Header
	body   []byte
	qwac   *tppclient.Identity
	// signer and rawBody let a caller sign the same request again.
	signer  tppclient.Signer
	rawBody []byte
}

func (f *requestFlags) sign(rawURL string) (*signed, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("%q is not an absolute URL", rawURL)
	}
	if f.qseal == "" {
		return nil, fmt.Errorf("--qseal is required")
	}
	if f.p12Password == "" {
		f.p12Password = os.Getenv(p12PasswordEnv)
	}
	if f.p12Password == "" {
		// tpp certs and the sandbox write the password next to the .p12.
		if pwFile := siblingFile(f.qseal, passwordFile); pwFile != "" {
			b, err := os.ReadFile(pwFile)
			if err != nil {
				return nil, err
			}
			f.p12Password = strings.TrimSpace(string(b))
		}
	}
	profile, err := httpsig.ProfileByName(f.profile)
	if err != nil {
		return nil, err
	}
	alg, err := httpsig.ParseAlgorithm(f.algorithm)
	if err != nil {
		return nil, err
	}
	qseal, err := tppclient.LoadIdentity(f.qseal, f.qsealKey, f.p12Password)
	if err != nil {
		return nil, fmt.Errorf("loading QSEAL: %w", err)
	}
	s := &signed{url: u, header: http.Header{}}
	if f.qwac != "" {
		if s.qwac, err = tppclient.LoadIdentity(f.qwac, "", f.p12Password); err != nil {
			return nil, fmt.Errorf("loading QWAC: %w", err)
		}
	}
	if s.body, err = readData(f.data); err != nil {
		return nil, err
	}
	s.method = strings.ToUpper(f.method)
	if s.method == "" {
		s.method = http.MethodGet
		if f.data != "" {
			s.method = http.MethodPost
		}
	}
	for _, h := range f.headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return nil, fmt.Errorf("header %q is not \"Name: value\"", h)
		}
		s.header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	if len(s.body) > 0 && s.header.Get("Content-Type") == "" {
		s.header.Set("Content-Type", "application/json")
	}
	if f.requestID != "" {
		s.header.Set("X-Request-ID", f.requestID)
	}
	if f.date {
		s.header.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	signer := tppclient.Signer{Profile: profile, Algorithm: alg, QSEAL: qseal.Cert, QSEALKey: qseal.Key}
	if s.qwac != nil {
		signer.QWAC = s.qwac.Cert
	}
	s.signer, s.rawBody = signer, s.body
	if s.body, err = signer.Sign(s.method, u.RequestURI(), s.header, s.body); err != nil {
		return nil, err
	}
	return s, nil
}

func readData(data string) ([]byte, error) {
	if rest, ok := strings.CutPrefix(data, "@"); ok {
		if rest == "-" {
			return io.ReadAll(os.Stdin)
		}
		b, err := os.ReadFile(rest)
		if err != nil {
			return nil, fmt.Errorf("reading --data: %w", err)
		}
		return b, nil
	}
	return []byte(data), nil
}

// printedHeaders is the order in which tpp sign prints headers.
var printedHeaders = []string{"X-Request-ID", "Date", "Digest", "Signature", "TPP-Signature-Certificate", "X-Client-Certificate"}

func signCommand() *cobra.Command {
	var f requestFlags
	var bodyOut string
	var vegeta int
	cmd := &cobra.Command{
		Use:   "sign [flags] <url>",
		Short: "Print the headers of a signed request",
		Long: `Prints the headers that sign a request, one "Name: value" per line, for curl
(-H) or Postman. In the piraeus profile the body is signed in minified form, so
send exactly the bytes that --body-out writes.

With --vegeta N it prints N signed requests instead, each with its own
X-Request-ID, as vegeta JSON targets (one per line) for load tests.`,
		Args: cobra.ExactArgs(1),
	}
	f.register(cmd)
	cmd.Flags().StringVar(&bodyOut, "body-out", "", "write the body to send (minified in the piraeus profile) to this file")
	cmd.Flags().IntVar(&vegeta, "vegeta", 0, "print this many signed requests as vegeta JSON targets")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if vegeta > 0 {
			return f.vegetaTargets(cmd.OutOrStdout(), args[0], vegeta)
		}
		s, err := f.sign(args[0])
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		for _, name := range printedHeaders {
			if v := s.header.Get(name); v != "" {
				fmt.Fprintf(out, "%s: %s\n", name, v)
			}
		}
		if bodyOut != "" {
			if err := os.WriteFile(bodyOut, s.body, 0o644); err != nil {
				return err
			}
		}
		return nil
	}
	return cmd
}

func requestCommand() *cobra.Command {
	var f requestFlags
	var caCert string
	var insecure, include, errorToStdout bool
	cmd := &cobra.Command{
		Use:   "request [flags] <url>",
		Short: "Send a signed request over mTLS and print the response",
		Long: `Signs the request with the QSEAL, sends it over TLS presenting the QWAC as
client certificate, and prints the response body (with -i, the status line and
headers first). The status line goes to standard error. The gateway's
certificate is checked against --cacert, by default the qtsp-root.pem next to
the QWAC when there is one.

On an answer other than 2xx, such as a Berlin Group error, the response goes
to standard error and the exit status is 1 (with --error-to-stdout, the
response stays on standard output; the exit status is 1 all the same).`,
		Args: cobra.ExactArgs(1),
	}
	f.register(cmd)
	cmd.Flags().StringVar(&caCert, "cacert", "", "PEM file of the CA that issued the gateway's certificate")
	cmd.Flags().BoolVarP(&insecure, "insecure", "k", false, "do not verify the gateway's certificate")
	cmd.Flags().BoolVarP(&include, "include", "i", false, "print the status line and response headers")
	cmd.Flags().BoolVar(&errorToStdout, "error-to-stdout", false, "print a non-2xx response on standard output too (the exit status is still 1)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if f.qwac == "" {
			return fmt.Errorf("--qwac is required: it is the TLS client certificate")
		}
		s, err := f.sign(args[0])
		if err != nil {
			return err
		}
		if caCert == "" {
			if guess := siblingFile(f.qwac, "qtsp-root.pem"); guess != "" {
				caCert = guess
			}
		}
		var roots *x509.CertPool
		if caCert != "" {
			if roots, err = tppclient.LoadCertPool(caCert); err != nil {
				return fmt.Errorf("--cacert: %w", err)
			}
		}
		req, err := http.NewRequestWithContext(cmd.Context(), s.method, s.url.String(), bytes.NewReader(s.body))
		if err != nil {
			return err
		}
		req.Header = s.header
		resp, err := tppclient.HTTPClient(s.qwac, roots, insecure).Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		ok := resp.StatusCode >= 200 && resp.StatusCode < 300
		out := cmd.OutOrStdout()
		if !ok && !errorToStdout {
			out = cmd.ErrOrStderr()
		}
		if include {
			fmt.Fprintf(out, "%s %s\n", resp.Proto, resp.Status)
			_ = resp.Header.Write(out)
			fmt.Fprintln(out)
		} else {
			fmt.Fprintf(cmd.ErrOrStderr(), "%s %s\n", resp.Proto, resp.Status)
		}
		_, err = io.Copy(out, resp.Body)
		fmt.Fprintln(out)
		if err != nil {
			return err
		}
		if !ok {
			// The answer is the message: no "Error:" line repeats it, and
			// the flags were right.
			cmd.SilenceErrors, cmd.SilenceUsage = true, true
			return &StatusError{Status: resp.StatusCode}
		}
		return nil
	}
	return cmd
}

// StatusError is the error of tpp request when the gateway answers with a
// status other than 2xx; the process exits with status 1.
type StatusError struct {
	// Status is the HTTP status of the answer.
	Status int
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("the gateway answered %d %s", e.Status, http.StatusText(e.Status))
}

// randomPassword returns 24 random hex characters.
func randomPassword() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// siblingFile returns dir(path)/name when that file exists.
func siblingFile(path, name string) string {
	p := filepath.Join(filepath.Dir(path), name)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return ""
}

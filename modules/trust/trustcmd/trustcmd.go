// Package trustcmd adds "bankedge trustlist show": what an eu_trusted_list
// pool would trust, checked the way the gateway checks it, for operators
// who verify a configuration before deploying it.
package trustcmd

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/bankedge/bankedge/modules/trust/fetch"
	"github.com/bankedge/bankedge/modules/trust/tsl"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "trustlist",
		Usage: "show --lotl-signers <pem> [--lotl-url <url>] [--service web|eseal] [--territory GR]",
		Short: "Shows which qualified CAs the EU trusted lists make trusted",
		Long: `
Reads the EU List of Trusted Lists (LOTL) and the national lists it points
to, verifies their signatures as the eu_trusted_list trust pool does, and
prints, per territory, the trust service providers and CA certificates that
would be trusted, and the lists that failed and why.

Run "bankedge trustlist show --help" for the flags.
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(ShowCommand())
		},
	})
}

type showFlags struct {
	lotlURL     string
	lotlSigners string
	mirror      string
	service     string
	territories []string
	timeout     time.Duration
	maxSize     int64
	failOnError bool
}

// ShowCommand is "trustlist show".
func ShowCommand() *cobra.Command {
	var f showFlags
	cmd := &cobra.Command{
		Use:   "show [flags]",
		Short: "Print the QTSPs and CA certificates a pool would trust, and the lists that failed",
		Long: `Fetches the LOTL from --lotl-url (https, http, file:// or a path, e.g. a
mirror for an air-gapped gateway), verifies its signature against the
certificates in --lotl-signers (those published in the Official Journal of
the EU), then fetches each national list and verifies it against the
certificates of its own LOTL pointer. A list that fails, or is more than
24 hours past its NextUpdate, is reported and not used.

The exit status is 1 when the LOTL itself is unusable, and with
--fail-on-error also when any national list is.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return show(cmd.Context(), cmd.OutOrStdout(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.lotlURL, "lotl-url", tsl.DefaultLOTLURL, "LOTL address: https, http, file:// or a path")
	fl.StringVar(&f.lotlSigners, "lotl-signers", "", "PEM file with the certificates allowed to sign the LOTL (required)")
	fl.StringVar(&f.mirror, "mirror", "", "directory with the national lists as <territory>.xml, read instead of the LOTL's addresses")
	fl.StringVar(&f.service, "service", "web", "web (ForWebSiteAuthentication, QWACs) or eseal (ForeSeals, QSealCs)")
	fl.StringSliceVar(&f.territories, "territory", nil, "only this territory's list (repeatable or comma-separated; GR is taken for EL)")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Second, "timeout of each download")
	fl.Int64Var(&f.maxSize, "max-list-size", 32<<20, "largest list accepted, in bytes")
	fl.BoolVar(&f.failOnError, "fail-on-error", false, "exit with status 1 when any national list failed")
	return cmd
}

// errListsFailed is returned under --fail-on-error.
var errListsFailed = errors.New("some trusted lists failed")

func show(ctx context.Context, out io.Writer, f showFlags) error {
	if ctx == nil {
		ctx = context.Background()
	}
	usage := tsl.Usage(f.service)
	if _, err := usage.URI(); err != nil {
		return err
	}
	if f.lotlSigners == "" {
		return errors.New("--lotl-signers is required: the PEM certificates allowed to sign the LOTL, from the Official Journal")
	}
	pemData, err := os.ReadFile(f.lotlSigners)
	if err != nil {
		return err
	}
	signers, err := tsl.ParseCertificatesPEM(pemData)
	if err != nil {
		return fmt.Errorf("%s: %w", f.lotlSigners, err)
	}
	r := &tsl.Resolver{
		LOTLURL:     f.lotlURL,
		Signers:     signers,
		Territories: f.territories,
		Mirror:      f.mirror,
		Fetcher:     &fetch.Client{HTTP: fetch.NewHTTPClient(f.timeout), MaxBytes: f.maxSize, AllowFiles: true, UserAgent: "bankedge-trustlist"},
	}
	snap, err := r.Resolve(ctx, nil)
	if err != nil {
		return err
	}
	report(out, snap, usage)
	if f.failOnError && snap.Failures() {
		return errListsFailed
	}
	return nil
}

// report prints the snapshot for usage.
func report(out io.Writer, snap *tsl.Snapshot, usage tsl.Usage) {
	lotl := snap.LOTL.List
	fmt.Fprintf(out, "LOTL %s\n  sequence %d, issued %s, next update %s\n  signed by %s\n\n",
		snap.LOTL.URL, lotl.SequenceNumber, day(lotl.IssueDate), day(lotl.NextUpdate), subject(snap.LOTL.Signer))

	byTerritory := map[string][]tsl.TrustedCA{}
	for _, ca := range snap.TrustedCAs(usage) {
		byTerritory[ca.Territory] = append(byTerritory[ca.Territory], ca)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	total, used := 0, 0
	var failed []tsl.ListState
	for _, ls := range snap.Lists {
		if ls.Err != nil {
			failed = append(failed, ls)
		}
		if ls.List == nil {
			fmt.Fprintf(tw, "%s\t%s\tnot in force\n\n", ls.Territory, ls.URL)
			continue
		}
		used++
		fmt.Fprintf(tw, "%s\t%s\tsequence %d, next update %s (%s)\n", ls.Territory, ls.URL, ls.List.SequenceNumber, day(ls.List.NextUpdate), ls.Origin)
		cas := byTerritory[ls.Territory]
		if len(cas) == 0 {
			fmt.Fprintf(tw, "\t(no granted CA/QC service for %s)\n", usage)
		}
		sort.SliceStable(cas, func(i, j int) bool { return cas[i].Provider < cas[j].Provider })
		provider := ""
		for _, ca := range cas {
			if ca.Provider != provider {
				provider = ca.Provider
				fmt.Fprintf(tw, "\t%s\n", provider)
			}
			sum := sha256.Sum256(ca.Cert.Raw)
			fmt.Fprintf(tw, "\t  %s\t%s\tSHA-256 %s\tuntil %s\n", ca.Service, subject(ca.Cert), hex.EncodeToString(sum[:]), day(ca.Cert.NotAfter))
			total++
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()

	if snap.LOTL.Err != nil {
		failed = append([]tsl.ListState{snap.LOTL}, failed...)
	}
	if len(failed) > 0 {
		fmt.Fprintf(out, "Failed lists:\n")
		for _, ls := range failed {
			name := ls.Territory
			if name == "" {
				name = "LOTL"
			}
			fmt.Fprintf(out, "  %s %s: %v\n    in force: %s\n", name, ls.URL, ls.Err, ls.Origin)
		}
		fmt.Fprintln(out)
	}
	fmt.Fprintf(out, "%d CA certificate%s would be trusted for %s, from %d of %d national lists.\n",
		total, plural(total), usage, used, len(snap.Lists))
}

func day(t time.Time) string {
	if t.IsZero() {
		return "none"
	}
	return t.UTC().Format("2006-01-02 15:04 MST")
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

var oidOrganizationIdentifier = asn1.ObjectIdentifier{2, 5, 4, 97}

// subject names a certificate readably: CN, O, organizationIdentifier, C.
func subject(c *x509.Certificate) string {
	var parts []string
	add := func(k string, vs ...string) {
		for _, v := range vs {
			parts = append(parts, k+"="+v)
		}
	}
	add("CN", c.Subject.CommonName)
	add("O", c.Subject.Organization...)
	for _, n := range c.Subject.Names {
		if v, ok := n.Value.(string); ok && n.Type.Equal(oidOrganizationIdentifier) {
			add("organizationIdentifier", v)
		}
	}
	add("C", c.Subject.Country...)
	return strings.Join(parts, ", ")
}

package tppcmd

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bankedge/bankedge/internal/certprofile/qcstatements"
	"github.com/bankedge/bankedge/internal/certprofile/tppcert"
	"github.com/bankedge/bankedge/modules/psd2/tppclient"
)

// knownNCAs names the competent authorities of common NCA ids, so that the
// sandbox certificates read like real ones.
var knownNCAs = map[string]string{
	"GR-BOG":   "Bank of Greece",
	"DE-BAFIN": "Federal Financial Supervisory Authority",
	"FR-ACPR":  "Autorité de Contrôle Prudentiel et de Résolution",
	"ES-BDE":   "Banco de España",
	"IT-BI":    "Banca d'Italia",
	"NL-DNB":   "De Nederlandsche Bank",
	"BE-NBB":   "National Bank of Belgium",
}

type certsFlags struct {
	out, orgID, roles, name, ncaName, keyType, p12Password, dns string
	days                                                        int
	// from, user and passwordFile select the CA of a running gateway.
	from, user, passwordFile string
	// force allows replacing files in out.
	force bool
}

func certsCommand() *cobra.Command {
	var f certsFlags
	cmd := &cobra.Command{
		Use:   "certs [flags]",
		Short: "Write a sandbox QTSP root, a QWAC and a QSEAL",
		Long: `Writes, in --out:

  qtsp-root.pem                       the sandbox QTSP's certificate
  qwac.pem, qwac-key.pem, qwac.p12    the QWAC, for mTLS and X-Client-Certificate
  qseal.pem, qseal-key.pem, qseal.p12 the QSEAL, which signs requests
  p12-password                        the password of both .p12 files

Files already in --out are never replaced unless --force is given, and the
files are written together or not at all: the .p12 files and p12-password
always agree.

Both certificates carry the organizationIdentifier and the ETSI TS 119 495
qcStatements (roles, NCA name and id).

With --from, the certificates come from the bankedge CA of a running
gateway, through its admin API (POST /api/v1/certificates/ca/psd2/…), so a
gateway whose PSD2 handlers use trust_pool bankedge trusts them. Without it,
a local sandbox QTSP root is made in --out (and qtsp-root-key.pem kept there
for the next run); a gateway trusts those when its trust_pool holds
qtsp-root.pem. Never let a production gateway trust a sandbox root.`,
		Args: cobra.NoArgs,
	}
	fl := cmd.Flags()
	fl.StringVar(&f.out, "out", "tpp-certs", "output directory")
	fl.StringVar(&f.orgID, "org-id", "", "organizationIdentifier, PSD<country>-<NCA>-<number>, e.g. PSDGR-BOG-123456 (required)")
	fl.StringVar(&f.roles, "roles", "PSP_AI,PSP_PI,PSP_IC", "comma-separated PSD2 roles: PSP_AS, PSP_PI, PSP_AI, PSP_IC")
	fl.StringVar(&f.name, "name", "", "organisation name (subject O); default \"Sandbox TPP <org-id>\"")
	fl.StringVar(&f.ncaName, "nca-name", "", "name of the competent authority (default from the NCA id)")
	fl.StringVar(&f.keyType, "key-type", "rsa2048", "key of both certificates: rsa2048 or rsa3072 (a QSEAL signs with RSA)")
	fl.StringVar(&f.p12Password, "p12-password", "", "password of the PKCS#12 files (default $BANKEDGE_P12_PASSWORD, else a random one); written to p12-password")
	fl.StringVar(&f.dns, "dns", "tpp.example", "DNS name in the QWAC")
	fl.IntVar(&f.days, "days", 365, "validity in days")
	fl.StringVar(&f.from, "from", "", "base URL of a gateway's admin API, e.g. http://127.0.0.1:8080, to get the certificates from its CA")
	fl.StringVar(&f.user, "user", "admin", "admin API user (with --from)")
	fl.StringVar(&f.passwordFile, "password-file", "", "file holding the admin API password (with --from; default $BANKEDGE_ADMIN_PASSWORD)")
	fl.BoolVar(&f.force, "force", false, "replace certificates, keys and p12-password already in --out")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return f.run(cmd.OutOrStdout(), cmd.ErrOrStderr()) }
	return cmd
}

func (f *certsFlags) subject() (tppcert.Subject, error) {
	if f.orgID == "" {
		return tppcert.Subject{}, errors.New("--org-id is required, e.g. --org-id PSDGR-BOG-123456")
	}
	org, err := qcstatements.ParseOrgID(f.orgID)
	if err != nil {
		return tppcert.Subject{}, err
	}
	s := tppcert.Subject{OrgID: f.orgID, Organization: f.name, NCAName: f.ncaName, DNSNames: []string{f.dns}}
	if s.NCAName == "" {
		s.NCAName = knownNCAs[org.NCAID()]
	}
	for r := range strings.SplitSeq(f.roles, ",") {
		role, err := qcstatements.ParseRole(strings.TrimSpace(r))
		if err != nil {
			return s, err
		}
		s.Roles = append(s.Roles, role)
	}
	return s, nil
}

func (f *certsFlags) newKey() (crypto.Signer, error) {
	switch f.keyType {
	case "rsa2048":
		return rsa.GenerateKey(rand.Reader, 2048)
	case "rsa3072":
		return rsa.GenerateKey(rand.Reader, 3072)
	case "rsa4096":
		return rsa.GenerateKey(rand.Reader, 4096)
	}
	return nil, fmt.Errorf("--key-type %q is not rsa2048, rsa3072 or rsa4096", f.keyType)
}

func (f *certsFlags) run(stdout, stderr io.Writer) error {
	if f.p12Password == "" {
		f.p12Password = os.Getenv(p12PasswordEnv)
	}
	subject, err := f.subject()
	if err != nil {
		return err
	}
	if f.days <= 0 {
		return errors.New("--days must be positive")
	}
	// Refuse before any key is made or any request sent.
	reuseRoot := f.from == "" && hasLocalRoot(f.out)
	if !f.force {
		if err := checkFree(f.out, reuseRoot); err != nil {
			return err
		}
	}
	password := f.p12Password
	if password == "" {
		if password, err = randomPassword(); err != nil {
			return err
		}
	}
	set := CertSet{P12Password: password}
	if f.from != "" {
		if err := f.fromGateway(subject, &set); err != nil {
			return err
		}
	} else if err := f.local(subject, &set, reuseRoot); err != nil {
		return err
	}
	if _, err := WriteCertSet(f.out, set, f.force); err != nil {
		return err
	}
	for _, id := range []*tppclient.Identity{set.QWAC, set.QSEAL} {
		kind := "qwac"
		if id == set.QSEAL {
			kind = "qseal"
		}
		fmt.Fprintf(stdout, "%s: %s serial %X, %s, roles %s\n", kind, filepath.Join(f.out, kind+".pem"), id.Cert.SerialNumber, subject.OrgID, f.roles)
	}
	if f.from != "" {
		fmt.Fprintf(stdout, "gateway CA (sandbox QTSP): %s\n", filepath.Join(f.out, rootFile))
	} else {
		fmt.Fprintf(stdout, "sandbox QTSP root: %s\n", filepath.Join(f.out, rootFile))
	}
	fmt.Fprintf(stdout, "PKCS#12 password: in %s\n", filepath.Join(f.out, passwordFile))
	return nil
}

// local issues the QWAC and the QSEAL from a local sandbox root: the one in
// --out when reuseRoot, else a new one.
func (f *certsFlags) local(subject tppcert.Subject, set *CertSet, reuseRoot bool) error {
	var root *sandboxRoot
	var err error
	if reuseRoot {
		root, err = loadRoot(f.out)
	} else {
		root, err = newRoot()
	}
	if err != nil {
		return err
	}
	set.Root, set.RootKey = root.Cert, root.Key
	notBefore := time.Now().Add(-5 * time.Minute)
	notAfter := notBefore.Add(time.Duration(f.days) * 24 * time.Hour)
	for _, kind := range []tppcert.Kind{tppcert.QWAC, tppcert.QSEAL} {
		tmpl, err := tppcert.Template(kind, subject, notBefore, notAfter)
		if err != nil {
			return err
		}
		key, err := f.newKey()
		if err != nil {
			return err
		}
		cert, err := root.issue(tmpl, key.Public())
		if err != nil {
			return fmt.Errorf("issuing %s: %w", kind, err)
		}
		id := &tppclient.Identity{Cert: cert, Key: key, Chain: []*x509.Certificate{root.Cert}}
		if kind == tppcert.QWAC {
			set.QWAC = id
		} else {
			set.QSEAL = id
		}
	}
	return nil
}

const (
	rootFile     = "qtsp-root.pem"
	rootKeyFile  = "qtsp-root-key.pem"
	passwordFile = "p12-password"
)

// setFiles are the files of a CertSet, the root's key aside.
var setFiles = []string{"qwac.pem", "qwac-key.pem", "qwac.p12", "qseal.pem", "qseal-key.pem", "qseal.p12", rootFile, passwordFile}

// sandboxRoot is a local, self-signed sandbox QTSP.
type sandboxRoot tppclient.Identity

// hasLocalRoot reports whether dir holds a local sandbox root with its key,
// which tpp certs reuses so that a gateway trusting it keeps trusting the
// new certificates.
func hasLocalRoot(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, rootKeyFile))
	return err == nil
}

// checkFree refuses a directory that holds any file of a CertSet; with
// reuseRoot, the root and its key are expected there.
func checkFree(dir string, reuseRoot bool) error {
	var taken []string
	for _, name := range append(slices.Clone(setFiles), rootKeyFile) {
		if reuseRoot && (name == rootFile || name == rootKeyFile) {
			continue
		}
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			taken = append(taken, name)
		}
	}
	if len(taken) == 0 {
		return nil
	}
	msg := fmt.Sprintf("%s already holds %s", dir, strings.Join(taken, ", "))
	if slices.Contains(taken, rootFile) && !reuseRoot {
		msg += " (" + rootFile + " without " + rootKeyFile + " is the certificate of another CA, e.g. the sandbox gateway's)"
	}
	return errors.New(msg + ": choose another --out, or add --force to replace them")
}

func loadRoot(dir string) (*sandboxRoot, error) {
	id, err := tppclient.LoadIdentity(filepath.Join(dir, rootFile), filepath.Join(dir, rootKeyFile), "")
	if err != nil {
		return nil, fmt.Errorf("reading the sandbox QTSP in %s: %w", dir, err)
	}
	return (*sandboxRoot)(id), nil
}

func newRoot() (*sandboxRoot, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		Subject: pkix.Name{
			Country: []string{"EU"}, Organization: []string{"bankedge sandbox"},
			CommonName: "bankedge Sandbox QTSP (NOT FOR PRODUCTION)",
		},
		NotBefore:             time.Now().Add(-5 * time.Minute),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	root := &sandboxRoot{Key: key}
	cert, err := root.sign(tmpl, tmpl, key.Public())
	if err != nil {
		return nil, err
	}
	root.Cert = cert
	return root, nil
}

func (r *sandboxRoot) issue(tmpl *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error) {
	return r.sign(tmpl, r.Cert, pub)
}

func (r *sandboxRoot) sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial.Add(serial, big.NewInt(1))
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, r.Key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

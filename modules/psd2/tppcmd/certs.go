package tppcmd

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"software.sslmate.com/src/go-pkcs12"

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
	fl.StringVar(&f.out, "out", "sandbox/tpp", "output directory")
	fl.StringVar(&f.orgID, "org-id", "", "organizationIdentifier, PSD<country>-<NCA>-<number>, e.g. PSDGR-BOG-123456 (required)")
	fl.StringVar(&f.roles, "roles", "PSP_AI,PSP_PI,PSP_IC", "comma-separated PSD2 roles: PSP_AS, PSP_PI, PSP_AI, PSP_IC")
	fl.StringVar(&f.name, "name", "", "organisation name (subject O); default \"Sandbox TPP <org-id>\"")
	fl.StringVar(&f.ncaName, "nca-name", "", "name of the competent authority (default from the NCA id)")
	fl.StringVar(&f.keyType, "key-type", "rsa2048", "key of both certificates: rsa2048 or rsa3072 (a QSEAL signs with RSA)")
	fl.StringVar(&f.p12Password, "p12-password", "", "password of the PKCS#12 files (default $BANKEDGE_P12_PASSWORD, else a random one printed once)")
	fl.StringVar(&f.dns, "dns", "tpp.example", "DNS name in the QWAC")
	fl.IntVar(&f.days, "days", 365, "validity in days")
	fl.StringVar(&f.from, "from", "", "base URL of a gateway's admin API, e.g. http://127.0.0.1:8080, to get the certificates from its CA")
	fl.StringVar(&f.user, "user", "admin", "admin API user (with --from)")
	fl.StringVar(&f.passwordFile, "password-file", "", "file holding the admin API password (with --from; default $BANKEDGE_ADMIN_PASSWORD)")
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
	}
	return nil, fmt.Errorf("--key-type %q is not rsa2048 or rsa3072", f.keyType)
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
	if err := os.MkdirAll(f.out, 0o700); err != nil {
		return err
	}
	if f.from != "" {
		return f.fromGateway(subject, stdout, stderr)
	}
	root, err := loadOrCreateRoot(f.out)
	if err != nil {
		return err
	}
	password := f.p12Password
	if password == "" {
		if password, err = randomPassword(); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "PKCS#12 password (shown once): %s\n", password)
	}
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
		if err := writeIdentity(f.out, kind.String(), &tppclient.Identity{Cert: cert, Key: key, Chain: []*x509.Certificate{root.Cert}}, password); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %s serial %X, %s, roles %s\n", kind, filepath.Join(f.out, kind.String()+".pem"), cert.SerialNumber, subject.OrgID, f.roles)
	}
	fmt.Fprintf(stdout, "sandbox QTSP root: %s\n", filepath.Join(f.out, rootFile))
	return nil
}

const (
	rootFile    = "qtsp-root.pem"
	rootKeyFile = "qtsp-root-key.pem"
)

// sandboxRoot is a local, self-signed sandbox QTSP.
type sandboxRoot tppclient.Identity

func loadOrCreateRoot(dir string) (*sandboxRoot, error) {
	id, err := tppclient.LoadIdentity(filepath.Join(dir, rootFile), filepath.Join(dir, rootKeyFile), "")
	if err == nil {
		return (*sandboxRoot)(id), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading the sandbox QTSP in %s: %w", dir, err)
	}
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
	if err := writePEM(filepath.Join(dir, rootKeyFile), key, nil); err != nil {
		return nil, err
	}
	if err := writePEM(filepath.Join(dir, rootFile), nil, []*x509.Certificate{cert}); err != nil {
		return nil, err
	}
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

// writeIdentity writes <name>.pem, <name>-key.pem and <name>.p12.
func writeIdentity(dir, name string, id *tppclient.Identity, password string) error {
	if err := writePEM(filepath.Join(dir, name+"-key.pem"), id.Key, nil); err != nil {
		return err
	}
	if err := writePEM(filepath.Join(dir, name+".pem"), nil, []*x509.Certificate{id.Cert}); err != nil {
		return err
	}
	p12, err := pkcs12.Modern.Encode(id.Key, id.Cert, id.Chain, password)
	if err != nil {
		return fmt.Errorf("encoding %s.p12: %w", name, err)
	}
	return os.WriteFile(filepath.Join(dir, name+".p12"), p12, 0o600)
}

func writePEM(path string, key crypto.Signer, certs []*x509.Certificate) error {
	var out []byte
	if key != nil {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return err
		}
		out = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	mode := os.FileMode(0o644)
	if key != nil {
		mode = 0o600
	}
	return os.WriteFile(path, out, mode)
}

// WriteIdentity writes <name>.pem, <name>-key.pem and <name>.p12 (with the
// chain, protected by password) into dir, the layout that tpp sign and tpp
// request read.
func WriteIdentity(dir, name string, id *tppclient.Identity, password string) error {
	return writeIdentity(dir, name, id, password)
}

// WriteRoot writes the certificate a gateway trusts as sandbox QTSP to
// dir/qtsp-root.pem, where tpp request looks for it.
func WriteRoot(dir string, root *x509.Certificate) error {
	return writePEM(filepath.Join(dir, rootFile), nil, []*x509.Certificate{root})
}

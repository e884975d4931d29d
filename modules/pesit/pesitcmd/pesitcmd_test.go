package pesitcmd

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/bankedge/bankedge/internal/testpki"
	"github.com/bankedge/bankedge/modules/ca/keystore"
)

// A PEM keystore from the admin API (certificate, chain and an encrypted
// PKCS#8 key in one file) works as --cert with --key-password or
// --key-password-file; without the password, or with a wrong one, the error
// says what to do.
func TestEncryptedKeystoreKey(t *testing.T) {
	ca := testpki.NewCA(t, "pesitcmd test CA")
	leaf := ca.Server(t, "partner.example")
	const password = "Keystore-Pass-9x"
	bundle, err := keystore.EncodeKeystore(keystore.Entry{Key: leaf.Key, Cert: leaf.Cert, Chain: []*x509.Certificate{ca.Cert}}, keystore.FormatPEM, password)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(bundle, []byte("ENCRYPTED PRIVATE KEY")) {
		t.Fatalf("the keystore's key is not encrypted:\n%s", bundle)
	}
	dir := t.TempDir()
	path := testpki.WriteFile(t, dir, "partner.pem", bundle)
	pwFile := testpki.WriteFile(t, dir, "password", []byte(password+"\n"))

	// Each decryption costs the keystore's key derivation, which is slow
	// under the race detector: one with the password file, one (wrong)
	// with --key-password.
	pair, err := (&linkFlags{cert: path, key: path, keyPasswordFile: pwFile}).clientCertificate()
	if err != nil {
		t.Fatal(err)
	}
	if !pair.Leaf.Equal(leaf.Cert) || len(pair.Certificate) != 2 {
		t.Fatalf("got %d certificates, leaf %v", len(pair.Certificate), pair.Leaf.Subject)
	}
	if !pair.PrivateKey.(crypto.Signer).Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(leaf.Key.Public()) {
		t.Fatal("the decrypted key is not the keystore's")
	}
	if _, err := (&linkFlags{cert: path}).clientCertificate(); err == nil || !strings.Contains(err.Error(), "--key-password") {
		t.Fatalf("no password: %v", err)
	}
	_, err = (&linkFlags{cert: path, keyPassword: "wrong-password-1"}).clientCertificate()
	if err == nil || !strings.Contains(err.Error(), "cannot be decrypted") || strings.Contains(err.Error(), "wrong-password-1") {
		t.Fatalf("wrong password: %v", err)
	}
	// An unencrypted key still works without a password.
	plain := testpki.WriteFile(t, dir, "plain.pem", append(testpki.CertPEM(leaf.Cert), testpki.KeyPEM(t, leaf.Key)...))
	if _, err := (&linkFlags{cert: plain}).clientCertificate(); err != nil {
		t.Fatalf("unencrypted key: %v", err)
	}
}

// TestPasswordNotShown: $BANKEDGE_PESIT_PASSWORD must not appear in
// --help or in a usage error, where a flag default would print it.
func TestPasswordNotShown(t *testing.T) {
	const secret = "Sup3r-Secret-PI5"
	t.Setenv("BANKEDGE_PESIT_PASSWORD", secret)
	for _, args := range [][]string{{"--help"}, {}, {"a", "b"}, {"--nosuchflag"}} {
		for _, cmd := range []func() *cobra.Command{sendCommand, fetchCommand} {
			c := cmd()
			var out bytes.Buffer
			c.SetOut(&out)
			c.SetErr(&out)
			c.SetArgs(args)
			_ = c.Execute()
			if strings.Contains(out.String(), secret) {
				t.Fatalf("%s %v prints the password:\n%s", c.Name(), args, out.String())
			}
			if len(args) == 1 && args[0] == "--help" && !strings.Contains(out.String(), "$BANKEDGE_PESIT_PASSWORD") {
				t.Fatalf("%s --help does not say where the password may come from:\n%s", c.Name(), out.String())
			}
		}
	}
}

package keystore

// Independent peers: the files must open in the tools partners actually use,
// not just round-trip through the Go libraries that wrote them.

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func lookTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed: %v", name, err)
	}
	return path
}

// run executes a peer tool and returns its combined output; a non-zero exit
// fails the test with that output.
func run(t *testing.T, tool string, args ...string) string {
	t.Helper()
	out, err := runErr(t, tool, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(tool), strings.Join(args, " "), err, out)
	}
	return out
}

func runErr(t *testing.T, tool string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool, args...)
	// A C locale keeps keytool's list format predictable.
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestOpenSSLPeers(t *testing.T) {
	openssl := lookTool(t, "openssl")
	t.Logf("%s", strings.TrimSpace(run(t, openssl, "version")))
	p := getPKI(t)
	dir := t.TempDir()

	for _, kt := range keyTypes {
		t.Run("pkcs12-info/"+kt, func(t *testing.T) {
			der, err := EncodeKeystore(p.entry(kt), FormatP12, testPassword)
			if err != nil {
				t.Fatal(err)
			}
			path := writeFile(t, dir, kt+".p12", der)
			// Deliberately no -legacy: OpenSSL 3 must read it as shipped.
			out := run(t, openssl, "pkcs12", "-info", "-noout", "-passin", "pass:"+testPassword, "-in", path)
			if !strings.Contains(out, "AES-256-CBC") || !strings.Contains(out, "MAC: sha256") {
				t.Fatalf("unexpected PKCS#12 parameters:\n%s", out)
			}
			// The key bag carries the partner id as friendlyName, and the
			// MAC recomputed after adding it verifies.
			out = run(t, openssl, "pkcs12", "-info", "-nocerts", "-nodes", "-passin", "pass:"+testPassword, "-in", path)
			if !strings.Contains(out, "friendlyName: BANK_XYZ") {
				t.Fatalf("no friendlyName on the key:\n%s", out)
			}
			if _, err := runErr(t, openssl, "pkcs12", "-info", "-noout", "-passin", "pass:wrong", "-in", path); err == nil {
				t.Fatal("openssl accepted a wrong password")
			}
		})
	}

	t.Run("pem-bundle", func(t *testing.T) {
		out, err := EncodeKeystore(p.entry("ed25519"), FormatPEM, testPassword)
		if err != nil {
			t.Fatal(err)
		}
		blocks := pemBlocks(t, out)
		if len(blocks) != 4 {
			t.Fatalf("%d PEM blocks, want 4", len(blocks))
		}
		cert := writeFile(t, dir, "cert.pem", pem.EncodeToMemory(blocks[0]))
		ca := writeFile(t, dir, "ca.pem", append(pem.EncodeToMemory(blocks[1]), pem.EncodeToMemory(blocks[2])...))
		key := writeFile(t, dir, "key.pem", pem.EncodeToMemory(blocks[3]))

		if got := run(t, openssl, "verify", "-CAfile", ca, cert); !strings.Contains(got, ": OK") {
			t.Fatalf("openssl verify: %s", got)
		}
		run(t, openssl, "pkey", "-in", key, "-passin", "pass:"+testPassword, "-noout")
		if _, err := runErr(t, openssl, "pkey", "-in", key, "-passin", "pass:wrong", "-noout"); err == nil {
			t.Fatal("openssl pkey accepted a wrong password")
		}
		// The key must be the certificate's: compare the public keys OpenSSL derives.
		pubFromKey := run(t, openssl, "pkey", "-in", key, "-passin", "pass:"+testPassword, "-pubout")
		pubFromCert := run(t, openssl, "x509", "-in", cert, "-noout", "-pubkey")
		if strings.TrimSpace(pubFromKey) != strings.TrimSpace(pubFromCert) {
			t.Fatalf("public keys differ:\n%s\n%s", pubFromKey, pubFromCert)
		}
	})

	t.Run("pkcs12-truststore", func(t *testing.T) {
		der, err := EncodeTruststore([]*x509.Certificate{p.root, p.issuing}, FormatP12, "pesit-ca", testPassword)
		if err != nil {
			t.Fatal(err)
		}
		path := writeFile(t, dir, "ts.p12", der)
		out := run(t, openssl, "pkcs12", "-info", "-nokeys", "-passin", "pass:"+testPassword, "-in", path)
		for _, want := range []string{"friendlyName: pesit-ca\n", "friendlyName: pesit-ca-2\n"} {
			if !strings.Contains(out, want) {
				t.Fatalf("missing %q in:\n%s", strings.TrimSpace(want), out)
			}
		}
	})
}

// keytoolEntries parses `keytool -list` output into alias → entry type.
func keytoolEntries(out string) map[string]string {
	entries := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		fields := strings.Split(strings.TrimSpace(line), ", ")
		if len(fields) < 3 {
			continue
		}
		// Lines look like "alias, <date>, PrivateKeyEntry," and the date may
		// itself contain ", ", so look for the type in any later field.
		for _, f := range fields[1:] {
			if f = strings.TrimSuffix(f, ","); f == "PrivateKeyEntry" || f == "trustedCertEntry" {
				entries[fields[0]] = f
			}
		}
	}
	return entries
}

func TestKeytoolPeers(t *testing.T) {
	keytool := lookTool(t, "keytool")
	p := getPKI(t)
	dir := t.TempDir()
	cas := []*x509.Certificate{p.root, p.issuing}

	type tc struct {
		name, storetype string
		data            func() ([]byte, error)
		want            map[string]string
	}
	var cases []tc
	for _, kt := range keyTypes {
		cases = append(cases, tc{
			name: "p12-keystore-" + kt, storetype: "PKCS12",
			data: func() ([]byte, error) { return EncodeKeystore(p.entry(kt), FormatP12, testPassword) },
			// The key entry is named after the partner (issue 8, point 10).
			want: map[string]string{"bank_xyz": "PrivateKeyEntry"},
		})
	}
	cases = append(cases,
		tc{
			name: "jks-keystore-ed25519", storetype: "JKS",
			data: func() ([]byte, error) { return EncodeKeystore(p.entry("ed25519"), FormatJKS, testPassword) },
			want: map[string]string{"bank_xyz": "PrivateKeyEntry", "pesit-ca": "trustedCertEntry", "pesit-ca-2": "trustedCertEntry"},
		},
		tc{
			name: "p12-truststore", storetype: "PKCS12",
			data: func() ([]byte, error) { return EncodeTruststore(cas, FormatP12, "pesit-ca", testPassword) },
			want: map[string]string{"pesit-ca": "trustedCertEntry", "pesit-ca-2": "trustedCertEntry"},
		},
		tc{
			name: "jks-truststore", storetype: "JKS",
			data: func() ([]byte, error) { return EncodeTruststore(cas[:1], FormatJKS, "", testPassword) },
			want: map[string]string{"ca": "trustedCertEntry"},
		},
	)

	// Sequential on purpose: each keytool call starts a JVM.
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data, err := c.data()
			if err != nil {
				t.Fatal(err)
			}
			path := writeFile(t, dir, c.name+".store", data)
			out := run(t, keytool, "-list", "-storetype", c.storetype, "-keystore", path, "-storepass", testPassword)
			got := keytoolEntries(out)
			if len(got) != len(c.want) {
				t.Fatalf("entries %v, want %v\n%s", got, c.want, out)
			}
			for alias, typ := range c.want {
				if got[alias] != typ {
					t.Fatalf("alias %q is %q, want %q\n%s", alias, got[alias], typ, out)
				}
			}
			if !strings.Contains(out, "Keystore type: "+c.storetype) {
				t.Fatalf("keytool did not report type %s:\n%s", c.storetype, out)
			}
		})
	}
}

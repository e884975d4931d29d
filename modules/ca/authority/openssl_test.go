package authority

import (
	"context"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// opensslPeer runs openssl in dir; it skips the test when openssl is absent.
func opensslPeer(t *testing.T) func(dir string, args ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not found: the independent peer checks are skipped")
	}
	return func(dir string, args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
}

func writeFile(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// OpenSSL verifies the CA's certificates and CRL, and sees a revocation.
func TestOpenSSLPeer(t *testing.T) {
	t.Parallel()
	openssl := opensslPeer(t)
	for _, kt := range []KeyType{ECDSAP256, ECDSAP384} {
		t.Run(string(kt), func(t *testing.T) {
			t.Parallel()
			// The real clock: openssl checks validity against it.
			a, _ := newCA(t, func(c *Config) { c.KeyType = kt; c.CRLURL = "http://ca.example/crl.der" })
			ctx := context.Background()
			rsaKey, _ := testRSAKeys(t)
			good := issue(t, a, mustECDSA(t, elliptic.P256()).Public(), "good.example.com", 24*time.Hour)
			server, err := a.Issue(ctx, Request{PublicKey: rsaKey.Public(), Template: &x509.Certificate{Subject: pkix.Name{CommonName: "srv"}, DNSNames: []string{"srv.example.com"}}, Purpose: PurposeServer, Validity: 24 * time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			bad := issue(t, a, mustECDSA(t, elliptic.P384()).Public(), "bad.example.com", 24*time.Hour)
			if _, err := a.Revoke(ctx, bad.SerialNumber, 1); err != nil {
				t.Fatal(err)
			}
			crlDER, err := a.CRL(ctx)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			writeFile(t, dir, "ca.pem", a.CertificatePEM())
			writeFile(t, dir, "crl.der", crlDER)
			writeFile(t, dir, "good.pem", certPEM(good))
			writeFile(t, dir, "server.pem", certPEM(server))
			writeFile(t, dir, "bad.pem", certPEM(bad))
			writeFile(t, dir, "ca-crl.pem", append(a.CertificatePEM(), pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crlDER})...))

			out, err := openssl(dir, "crl", "-inform", "DER", "-in", "crl.der", "-CAfile", "ca.pem", "-noout", "-verify")
			if err != nil || !strings.Contains(out, "verify OK") {
				t.Errorf("openssl crl -verify: %v\n%s", err, out)
			}
			out, err = openssl(dir, "crl", "-inform", "DER", "-in", "crl.der", "-noout", "-text")
			if err != nil {
				t.Fatalf("openssl crl -text: %v\n%s", err, out)
			}
			var listed []string
			for _, m := range regexp.MustCompile(`Serial Number: ([0-9A-Fa-f:]+)`).FindAllStringSubmatch(out, -1) {
				n, err := ParseSerial(m[1])
				if err != nil {
					t.Errorf("ParseSerial(%q) from openssl: %v", m[1], err)
					continue
				}
				listed = append(listed, SerialString(n))
			}
			if !slices.Equal(listed, []string{SerialString(bad.SerialNumber)}) {
				t.Errorf("openssl lists revoked serials %v, want [%s]\n%s", listed, SerialString(bad.SerialNumber), out)
			}
			if !strings.Contains(out, "Key Compromise") || !strings.Contains(out, "CRL Number") {
				t.Errorf("openssl crl -text lacks the reason or the CRL number:\n%s", out)
			}

			for _, leaf := range []string{"good.pem", "server.pem", "bad.pem"} {
				out, err := openssl(dir, "verify", "-CAfile", "ca.pem", leaf)
				if err != nil || !strings.Contains(out, leaf+": OK") {
					t.Errorf("openssl verify %s: %v\n%s", leaf, err, out)
				}
			}
			out, err = openssl(dir, "verify", "-crl_check", "-CAfile", "ca-crl.pem", "good.pem")
			if err != nil || !strings.Contains(out, "good.pem: OK") {
				t.Errorf("openssl verify -crl_check good.pem: %v\n%s", err, out)
			}
			out, err = openssl(dir, "verify", "-crl_check", "-CAfile", "ca-crl.pem", "bad.pem")
			if err == nil || !strings.Contains(out, "certificate revoked") {
				t.Errorf("openssl verify -crl_check bad.pem: %v, want 'certificate revoked'\n%s", err, out)
			}
			out, err = openssl(dir, "verify", "-purpose", "sslserver", "-CAfile", "ca.pem", "server.pem")
			if err != nil || !strings.Contains(out, "server.pem: OK") {
				t.Errorf("openssl verify -purpose sslserver: %v\n%s", err, out)
			}
			out, err = openssl(dir, "verify", "-purpose", "sslclient", "-CAfile", "ca.pem", "good.pem")
			if err != nil || !strings.Contains(out, "good.pem: OK") {
				t.Errorf("openssl verify -purpose sslclient: %v\n%s", err, out)
			}
		})
	}
}

// The seed's partner CSR, made by openssl, is signed for CLIENT.
func TestOpenSSLSeedCSR(t *testing.T) {
	t.Parallel()
	openssl := opensslPeer(t)
	dir := t.TempDir()
	out, err := openssl(dir, "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "bank-xyz.key", "-out", "bank-xyz.csr",
		"-subj", "/CN=bank-xyz.example.com/O=Bank XYZ/C=FR")
	if err != nil {
		t.Fatalf("openssl req: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "bank-xyz.csr"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		t.Fatalf("openssl wrote no CSR: %q", b)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := newCA(t, nil)
	cert, err := a.SignCSR(context.Background(), csr, PurposeClient, 365*24*time.Hour, "BANK_XYZ", "admin")
	if err != nil {
		t.Fatalf("SignCSR(CLIENT) of the seed's CSR: %v", err)
	}
	if cert.Subject.String() != "CN=bank-xyz.example.com,O=Bank XYZ,C=FR" {
		t.Errorf("subject %q", cert.Subject)
	}
	if cert.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment || !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("KU %b EKU %v", cert.KeyUsage, cert.ExtKeyUsage)
	}
	rec, err := a.Lookup(context.Background(), cert.SerialNumber)
	if err != nil || rec.PartnerID != "BANK_XYZ" || rec.IssuedBy != "admin" || rec.Purpose != PurposeClient {
		t.Errorf("inventory record %+v, %v", rec, err)
	}
	writeFile(t, dir, "ca.pem", a.CertificatePEM())
	writeFile(t, dir, "bank-xyz.pem", certPEM(cert))
	out, err = openssl(dir, "verify", "-purpose", "sslclient", "-CAfile", "ca.pem", "bank-xyz.pem")
	if err != nil || !strings.Contains(out, "bank-xyz.pem: OK") {
		t.Errorf("openssl verify: %v\n%s", err, out)
	}
	// The certificate is for the key openssl made.
	out, err = openssl(dir, "x509", "-in", "bank-xyz.pem", "-noout", "-pubkey")
	if err != nil {
		t.Fatal(err)
	}
	out2, err := openssl(dir, "pkey", "-in", "bank-xyz.key", "-pubout")
	if err != nil || out != out2 {
		t.Errorf("certificate key differs from openssl's key (%v)", err)
	}
}

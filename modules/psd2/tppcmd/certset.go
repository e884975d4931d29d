package tppcmd

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/bankedge/bankedge/modules/psd2/tppclient"
)

// CertSet is what tpp certs writes into a directory, in the layout tpp sign
// and tpp request read: a QWAC and a QSEAL (certificate, key and PKCS#12
// each), the certificate that issued them, and the PKCS#12 password.
type CertSet struct {
	QWAC, QSEAL *tppclient.Identity
	// Root is the certificate a gateway trusts as sandbox QTSP, written to
	// qtsp-root.pem, where tpp request looks for the gateway's CA.
	Root *x509.Certificate
	// RootKey, for a local sandbox root only, is kept in qtsp-root-key.pem
	// for the next run.
	RootKey crypto.Signer
	// P12Password protects the .p12 files and is written to p12-password.
	P12Password string
}

// WriteCertSet writes set into dir and returns the paths it wrote. Unless
// force, it refuses to replace a file that exists with other content. It
// writes every file under a temporary name first and renames them into
// place once all are written, so that an error leaves dir as it was and the
// .p12 files never disagree with p12-password.
func WriteCertSet(dir string, set CertSet, force bool) ([]string, error) {
	if set.QWAC == nil || set.QSEAL == nil || set.Root == nil {
		return nil, errors.New("a certificate set needs a QWAC, a QSEAL and their root")
	}
	type file struct {
		name string
		data []byte
		perm os.FileMode
	}
	var files []file
	for _, id := range []struct {
		name string
		id   *tppclient.Identity
	}{{"qwac", set.QWAC}, {"qseal", set.QSEAL}} {
		keyPEM, err := keyPEM(id.id.Key)
		if err != nil {
			return nil, err
		}
		p12, err := pkcs12.Modern.Encode(id.id.Key, id.id.Cert, id.id.Chain, set.P12Password)
		if err != nil {
			return nil, fmt.Errorf("encoding %s.p12: %w", id.name, err)
		}
		files = append(files,
			file{id.name + "-key.pem", keyPEM, 0o600},
			file{id.name + ".pem", certPEM(id.id.Cert), 0o644},
			file{id.name + ".p12", p12, 0o600})
	}
	files = append(files, file{rootFile, certPEM(set.Root), 0o644})
	if set.RootKey != nil {
		k, err := keyPEM(set.RootKey)
		if err != nil {
			return nil, err
		}
		files = append(files, file{rootKeyFile, k, 0o600})
	}
	files = append(files, file{passwordFile, []byte(set.P12Password + "\n"), 0o600})

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var taken []string
	for _, f := range files {
		old, err := os.ReadFile(filepath.Join(dir, f.name))
		if err == nil && !bytes.Equal(old, f.data) {
			taken = append(taken, f.name)
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	if len(taken) > 0 && !force {
		return nil, fmt.Errorf("%s already holds %v: choose another --out, or add --force to replace them", dir, taken)
	}

	staged := make([]string, len(files))
	cleanup := func() {
		for _, t := range staged {
			if t != "" {
				os.Remove(t)
			}
		}
	}
	for i, f := range files {
		t, err := os.CreateTemp(dir, "."+f.name+".tmp-*")
		if err != nil {
			cleanup()
			return nil, err
		}
		staged[i] = t.Name()
		_, err = t.Write(f.data)
		if err == nil {
			err = t.Chmod(f.perm)
		}
		if cerr := t.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			cleanup()
			return nil, fmt.Errorf("writing %s: %w", filepath.Join(dir, f.name), err)
		}
	}
	var written []string
	for i, f := range files {
		path := filepath.Join(dir, f.name)
		if err := os.Rename(staged[i], path); err != nil {
			cleanup()
			return written, fmt.Errorf("moving %s into place: %w", path, err)
		}
		staged[i] = ""
		written = append(written, path)
	}
	return written, nil
}

func keyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

package tppcmd

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bankedge/bankedge/internal/certprofile/tppcert"
	"github.com/bankedge/bankedge/modules/psd2/tppclient"
)

// fromGateway asks a running gateway's CA for the QWAC and QSEAL.
func (f *certsFlags) fromGateway(subject tppcert.Subject, stdout, stderr io.Writer) error {
	password := os.Getenv("BANKEDGE_ADMIN_PASSWORD")
	if f.passwordFile != "" {
		b, err := os.ReadFile(f.passwordFile)
		if err != nil {
			return fmt.Errorf("--password-file: %w", err)
		}
		password = strings.TrimSpace(string(b))
	}
	if password == "" {
		return errors.New("--from needs the admin API password: --password-file or $BANKEDGE_ADMIN_PASSWORD")
	}
	p12Password := f.p12Password
	if p12Password == "" {
		var err error
		if p12Password, err = randomPassword(); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "PKCS#12 password (shown once): %s\n", p12Password)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	tppID := strings.ToLower(subject.OrgID)
	var root *x509.Certificate
	for _, kind := range []tppcert.Kind{tppcert.QWAC, tppcert.QSEAL} {
		form := url.Values{
			"type": {kind.String()}, "orgId": {subject.OrgID}, "validityDays": {strconv.Itoa(f.days)},
			"format": {"p12"}, "password": {p12Password}, "keyType": {strings.Replace(f.keyType, "rsa", "rsa-", 1)},
		}
		var roles []string
		for _, r := range subject.Roles {
			roles = append(roles, string(r))
		}
		form.Set("roles", strings.Join(roles, ","))
		for k, v := range map[string]string{"ncaName": subject.NCAName, "organization": subject.Organization, "commonName": f.dns} {
			if v != "" {
				form.Set(k, v)
			}
		}
		req, err := http.NewRequest(http.MethodPost, strings.TrimSuffix(f.from, "/")+"/api/v1/certificates/ca/psd2/"+url.PathEscape(tppID)+"/generate", strings.NewReader(form.Encode()))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(f.user, password)
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("asking %s for a %s: %w", f.from, kind, err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("the gateway refused the %s: %s %s", kind, resp.Status, strings.TrimSpace(string(body)))
		}
		id, err := tppclient.DecodePKCS12(body, p12Password)
		if err != nil {
			return fmt.Errorf("reading the %s from the gateway: %w", kind, err)
		}
		if len(id.Chain) > 0 {
			root = id.Chain[len(id.Chain)-1]
		}
		if err := writeIdentity(f.out, kind.String(), id, p12Password); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %s serial %X, %s, roles %s\n", kind, filepath.Join(f.out, kind.String()+".pem"), id.Cert.SerialNumber, subject.OrgID, f.roles)
	}
	if root != nil {
		if err := writePEM(filepath.Join(f.out, rootFile), nil, []*x509.Certificate{root}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "gateway CA (sandbox QTSP): %s\n", filepath.Join(f.out, rootFile))
	}
	return nil
}

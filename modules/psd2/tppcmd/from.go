package tppcmd

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bankedge/bankedge/internal/certprofile/tppcert"
	"github.com/bankedge/bankedge/modules/psd2/tppclient"
)

// fromGateway asks a running gateway's CA for the QWAC and QSEAL, in
// PKCS#12 files protected by set.P12Password.
func (f *certsFlags) fromGateway(subject tppcert.Subject, set *CertSet) error {
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
	p12Password := set.P12Password
	client := &http.Client{Timeout: 30 * time.Second}
	tppID := strings.ToLower(subject.OrgID)
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
		if len(id.Chain) == 0 {
			return fmt.Errorf("the gateway sent the %s without the CA certificate", kind)
		}
		set.Root = id.Chain[len(id.Chain)-1]
		if kind == tppcert.QWAC {
			set.QWAC = id
		} else {
			set.QSEAL = id
		}
	}
	return nil
}

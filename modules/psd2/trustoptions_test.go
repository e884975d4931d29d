package psd2_test

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/bankedge/bankedge/internal/testcaddy"
)

// The revocation block and client_certificate, as the issue spells them,
// in both handlers, and what is refused.
func TestCaddyfileTrustOptions(t *testing.T) {
	site := func(qwac, qseal string) string {
		return testcaddy.Globals(t.TempDir(), "") + `
http://127.0.0.1:9 {
	psd2_qwac {
		trust_pool file /etc/qtsp.pem
		` + qwac + `
	}
	psd2_qseal {
		trust_pool file /etc/qtsp.pem
		` + qseal + `
	}
}`
	}
	block := "revocation {\n\t\t\tmode     soft\n\t\t\tprefer   crl\n\t\t\ttimeout  2s\n\t\t}"
	out := string(testcaddy.Adapt(t, site(block+"\n\t\tclient_certificate header", "revocation hard")))
	for _, want := range []string{
		`"revocation":{"mode":"soft","prefer":"crl","timeout":2000000000}`, `"client_certificate":"header"`, `"revocation":{"mode":"hard"}`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("adapted config lacks %s:\n%s", want, out)
		}
	}
	for _, bad := range []string{"client_certificate proxy", "client_certificate", "revocation lenient", "revocation {\n\t\t\tprefer ldap\n\t\t}", "revocation {\n\t\t\tretries 3\n\t\t}"} {
		if _, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(site(bad, "")), nil); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(site("", "client_certificate header")), nil); err == nil {
		t.Error("client_certificate accepted in psd2_qseal, where the QWAC is not read")
	}
}

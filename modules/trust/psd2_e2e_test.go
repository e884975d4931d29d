package trust_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/bankedge/bankedge/internal/certprofile/qcstatements"
	"github.com/bankedge/bankedge/internal/certprofile/tppcert"
	"github.com/bankedge/bankedge/internal/testcaddy"
	"github.com/bankedge/bankedge/internal/testpki"
	"github.com/bankedge/bankedge/internal/testtsl"
	_ "github.com/bankedge/bankedge/modules/psd2"
	"github.com/bankedge/bankedge/modules/psd2/httpsig"
	"github.com/bankedge/bankedge/modules/psd2/tppclient"
	"github.com/bankedge/bankedge/modules/trust"
)

// psd2Site is an XS2A site whose psd2_qwac trusts the EU lists' QTSPs for
// website authentication and psd2_qseal those for seals.
type psd2Site struct {
	url      string
	serverCA *testpki.CA
}

func startPSD2Site(t *testing.T, sc *testtsl.Scenario) *psd2Site {
	t.Helper()
	dir := t.TempDir()
	s := &psd2Site{serverCA: testpki.NewCA(t, "Server CA")}
	certFile, keyFile := s.serverCA.ServerFiles(t, dir, "localhost")
	port, up := testcaddy.FreePort(t), testcaddy.FreePort(t)
	s.url = fmt.Sprintf("https://localhost:%d", port)
	pool := func(service string) string {
		return fmt.Sprintf(`trust_pool eu_trusted_list {
			lotl_url     %s
			lotl_signers %s
			service      %s
			territories  GR CY
		}`, sc.URL(testtsl.LOTLPath), sc.SignersFile, service)
	}
	testcaddy.Load(t, testcaddy.Globals(filepath.Join(dir, "storage"), "")+fmt.Sprintf(`
https://localhost:%[1]d {
	bind 127.0.0.1
	tls %[2]s %[3]s {
		client_auth {
			mode request
		}
	}
	psd2_qwac {
		%[4]s
	}
	psd2_qseal {
		profile piraeus
		%[5]s
		require_signature
	}
	reverse_proxy 127.0.0.1:%[6]d {
		header_up X-TPP-Org-Id {psd2.tpp.org_id}
	}
}

http://:%[6]d {
	bind 127.0.0.1
	respond "forwarded for {http.request.header.X-TPP-Org-Id}"
}
`, port, certFile, keyFile, pool("web"), pool("eseal"), up))
	return s
}

// pay sends a signed payment initiation with qwac and qseal and returns the
// status and the Berlin Group code (or the body).
func (s *psd2Site) pay(t *testing.T, qwac, qseal *testpki.Leaf) (int, string) {
	t.Helper()
	h := http.Header{}
	signer := tppclient.Signer{Profile: httpsig.Piraeus, QSEAL: qseal.Cert, QSEALKey: qseal.Key, QWAC: qwac.Cert}
	body, err := signer.Sign(http.MethodPost, "/v1/payments/sepa-credit-transfers", h, []byte(`{"instructedAmount":{"currency":"EUR","amount":"1.00"}}`))
	if err != nil {
		t.Fatal(err)
	}
	h.Set("X-Client-Certificate", base64.StdEncoding.EncodeToString(qwac.Cert.Raw))
	req, _ := http.NewRequest(http.MethodPost, s.url+"/v1/payments/sepa-credit-transfers", bytes.NewReader(body))
	req.Header = h
	resp, err := testpki.Client(s.serverCA.Cert, qwac).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	var bg struct {
		TPPMessages []struct{ Code, Text string } `json:"tppMessages"`
	}
	if json.Unmarshal(out, &bg) == nil && len(bg.TPPMessages) == 1 {
		return resp.StatusCode, bg.TPPMessages[0].Code + ": " + bg.TPPMessages[0].Text
	}
	return resp.StatusCode, string(out)
}

// The PSD2 handlers trust the QTSPs of the EU lists, QWACs from the
// services for website authentication and QSEALs from those for seals, and
// follow a refresh of the lists at once, without a reload: a QTSP granted
// since is trusted, and a QTSP withdrawn since is no longer, although its
// QWAC's verification was cached.
func TestPSD2WithTrustedLists(t *testing.T) {
	trust.SetDocumentReuse(0)
	defer trust.SetDocumentReuse(5 * time.Minute)
	sc := testtsl.NewScenario(t)
	s := startPSD2Site(t, sc)
	tpp := tppcert.Subject{OrgID: "PSDGR-BOG-123456", Roles: []qcstatements.Role{qcstatements.RolePI}}
	issue := func(ca *testpki.CA) (qwac, qseal *testpki.Leaf) {
		return ca.TPP(t, tppcert.QWAC, tpp, testpki.ECKey(t)), ca.TPP(t, tppcert.QSEAL, tpp, testpki.RSAKey(t, 2048, 0))
	}
	grantedQWAC, grantedQSEAL := issue(sc.GrantedCA)
	withdrawnQWAC, withdrawnQSEAL := issue(sc.WithdrawnCA)
	esealQWAC, esealQSEAL := issue(sc.ESealCA)

	expect := func(qwac, qseal *testpki.Leaf, want string) {
		t.Helper()
		status, got := s.pay(t, qwac, qseal)
		if want == "ok" && (status != http.StatusOK || got != "forwarded for PSDGR-BOG-123456") || want != "ok" && !strings.HasPrefix(got, want) {
			t.Fatalf("%s / %s: %d %s, want %s", qwac.Cert.Issuer.CommonName, qseal.Cert.Issuer.CommonName, status, got, want)
		}
	}
	expect(grantedQWAC, grantedQSEAL, "ok")
	expect(grantedQWAC, esealQSEAL, "ok") // the Cypriot QTSP is granted for seals
	expect(withdrawnQWAC, grantedQSEAL, "CERTIFICATE_INVALID: QWAC does not chain to a trusted QTSP")
	expect(esealQWAC, grantedQSEAL, "CERTIFICATE_INVALID: QWAC does not chain to a trusted QTSP")
	expect(grantedQWAC, withdrawnQSEAL, "CERTIFICATE_INVALID: QSEAL does not chain to a trusted QTSP")

	// Greece's sequence 2 grants the withdrawn QTSP and withdraws the
	// granted one. The handlers' pools share the source of this one.
	el := sc.EL(2)
	el.Providers[0].Services[0].Status, el.Providers[1].Services[0].Status = testtsl.Withdrawn, testtsl.Granted
	sc.Server.Put(testtsl.ELPath, sc.ELSigner.Sign(t, el.XML()))
	raw, _ := json.Marshal(map[string]any{"lotl_url": sc.URL(testtsl.LOTLPath), "lotl_signers": sc.SignersFile, "territories": []string{"CY", "GR"}})
	mod, err := caddy.ActiveContext().LoadModuleByID("tls.ca_pool.source.eu_trusted_list", raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := mod.(*trust.EUTrustedList).RefreshNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	expect(withdrawnQWAC, withdrawnQSEAL, "ok")
	expect(grantedQWAC, esealQSEAL, "CERTIFICATE_INVALID: QWAC does not chain to a trusted QTSP")
	expect(withdrawnQWAC, grantedQSEAL, "CERTIFICATE_INVALID: QSEAL does not chain to a trusted QTSP")
}

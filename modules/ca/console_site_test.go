package ca

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/bankedge/bankedge/internal/testcaddy"
	"github.com/bankedge/bankedge/internal/testjwt"
	_ "github.com/bankedge/bankedge/modules/jwtauth"
)

// consoleUsers are the basic_auth users of the admin site under test.
var consoleUsers = map[string]string{
	"alice": "Alice-security-1!", // security_admin
	"bob":   "Bob-partners-22!",  // partner_admin
	"dave":  "Dave-auditor-333!", // auditor
	"eve":   "Eve-no-roles-4444", // authenticated, no role
}

const (
	consoleIssuer   = "https://idp.bank.example"
	consoleAudience = "bankedge-admin"
)

// consoleSite is a running Caddy with the bankedge app and bankedge_api
// (the REST API and the console under /ui/) on two sites: basic_auth with
// a roles block, and jwt_auth whose tokens carry the roles.
type consoleSite struct {
	base, jwtBase string
	storage       string
	jwtKey        testjwt.Key
}

func startConsole(t *testing.T) *consoleSite {
	t.Helper()
	dir := t.TempDir()
	var users strings.Builder
	for u, pw := range consoleUsers {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&users, "\t\t%s %s\n", u, h)
	}
	s := &consoleSite{storage: filepath.Join(dir, "storage"), jwtKey: testjwt.NewEC(t, "console")}
	jwks := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwks, testjwt.JWKS(t, s.jwtKey), 0o600); err != nil {
		t.Fatal(err)
	}
	port, jwtPort := testcaddy.FreePort(t), testcaddy.FreePort(t)
	s.base, s.jwtBase = fmt.Sprintf("http://127.0.0.1:%d", port), fmt.Sprintf("http://127.0.0.1:%d", jwtPort)
	testcaddy.Load(t, testcaddy.Globals(s.storage, `
	bankedge {
		ca {
			key_passphrase test-ca-passphrase
			common_name "bankedge Console Test CA"
		}
	}`)+fmt.Sprintf(`
%s {
	basic_auth {
%s	}
	bankedge_api {
		roles {
			security_admin alice
			partner_admin  bob
			auditor        dave
		}
	}
}
%s {
	jwt_auth {
		jwks        %s
		issuer      %s
		audience    %s
	}
	bankedge_api {
		roles {
			auditor svc-audit
		}
	}
}
`, s.base, users.String(), s.jwtBase, jwks, consoleIssuer, consoleAudience))
	return s
}

// consoleClient is a user's HTTP session with the console: basic auth or
// a bearer token, a cookie jar, no redirects followed.
type consoleClient struct {
	t      *testing.T
	base   string
	user   string
	bearer string
	http   *http.Client
}

func (s *consoleSite) client(t *testing.T, user string) *consoleClient {
	jar, _ := cookiejar.New(nil)
	return &consoleClient{t: t, base: s.base, user: user, http: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

func (s *consoleSite) tokenClient(t *testing.T, sub string, roleClaim []string) *consoleClient {
	c := s.client(t, "")
	c.base = s.jwtBase
	claims := testjwt.Valid(consoleIssuer, consoleAudience, sub)
	claims.Extra = map[string]any{"roles": roleClaim}
	c.bearer = testjwt.Sign(t, s.jwtKey, claims)
	return c
}

type page struct {
	status int
	header http.Header
	body   string
}

func (c *consoleClient) do(method, path string, form url.Values, header map[string]string) page {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return c.send(req, header)
}

func (c *consoleClient) send(req *http.Request, header map[string]string) page {
	c.t.Helper()
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	} else if c.user != "" {
		req.SetBasicAuth(c.user, consoleUsers[c.user])
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return page{resp.StatusCode, resp.Header, string(b)}
}

// doJSON sends a JSON body.
func (c *consoleClient) doJSON(method, path, body string) page {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	return c.send(req, map[string]string{"Content-Type": "application/json"})
}

func (c *consoleClient) get(path string) page {
	c.t.Helper()
	return c.do(http.MethodGet, path, nil, nil)
}

// post sends a form from the console's own origin, as a browser would.
func (c *consoleClient) post(path string, form url.Values) page {
	c.t.Helper()
	return c.do(http.MethodPost, path, form, map[string]string{"Origin": c.base})
}

var csrfMeta = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)

// token loads a page and returns the CSRF token of the session.
func (c *consoleClient) token() string {
	c.t.Helper()
	p := c.get("/ui/")
	m := csrfMeta.FindStringSubmatch(p.body)
	if p.status != http.StatusOK || m == nil {
		c.t.Fatalf("dashboard for %s: %d, no CSRF token\n%s", c.user, p.status, p.body)
	}
	return m[1]
}

package ca_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/bankedge/bankedge/modules/ca/authority"
)

// linkNext matches an RFC 8288 Link header with a next page.
var linkNext = regexp.MustCompile(`^<(/api/v1/certificates/ca/issued\?[^>]*)>; rel="next"$`)

// TestIssuedPagesThroughCaddy pages the inventory through a running Caddy:
// limit and cursor, the Link header to the next page keeping the other
// parameters, the filters, and 400 JSON answers to bad limits and cursors.
func TestIssuedPagesThroughCaddy(t *testing.T) {
	g := startGateway(t, t.TempDir())
	for _, id := range []string{"PAGE_A", "PAGE_B"} {
		expectStatus(t, g.call(t, "POST", "/api/v1/config/partners", nil, map[string]any{"partnerId": id, "password": "ComplexPassword123!"}), 201, "")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var serialsA []string
	for i := range 7 {
		partner := "PAGE_A"
		if i%3 == 2 {
			partner = "PAGE_B"
		}
		a := g.call(t, "POST", "/api/v1/certificates/ca/sign", url.Values{"csrPem": {string(makeCSR(t, key, "paging.example.com", nil))},
			"validityDays": {"30"}, "partnerId": {partner}}, nil)
		expectStatus(t, a, 200, "BEGIN CERTIFICATE")
		if partner == "PAGE_A" {
			serialsA = append([]string{authority.SerialString(parsePEMCert(t, a.body).SerialNumber)}, serialsA...) // newest first
		}
	}
	records := func(a answer) []map[string]any {
		t.Helper()
		var recs []map[string]any
		if err := json.Unmarshal(a.body, &recs); err != nil {
			t.Fatalf("not a JSON array: %v\n%s", err, a.body)
		}
		return recs
	}
	// follow pages from path, checking each Link, and returns the serials.
	follow := func(path string, limit int, keep url.Values) []string {
		t.Helper()
		var serials []string
		for pages := 0; path != ""; pages++ {
			a := g.call(t, "GET", path, nil, nil)
			expectStatus(t, a, 200, "")
			recs := records(a)
			for _, r := range recs {
				serials = append(serials, r["serial"].(string))
				for k, v := range keep {
					if k == "partnerId" && r["partnerId"] != v[0] || k == "status" && r["status"] != v[0] {
						t.Errorf("%s: record %v does not match %s=%s", path, r["serial"], k, v[0])
					}
				}
			}
			link := a.header.Get("Link")
			if link == "" {
				path = ""
				break
			}
			if len(recs) != limit {
				t.Fatalf("%s: a page of %d (limit %d) with a next page", path, len(recs), limit)
			}
			m := linkNext.FindStringSubmatch(link)
			if m == nil {
				t.Fatalf("Link %q is not a next page of the inventory", link)
			}
			next, _ := url.Parse(m[1])
			q := next.Query()
			if q.Get("cursor") == "" {
				t.Fatalf("Link %q has no cursor", link)
			}
			// The shape: the request's parameters, then the cursor.
			if !strings.HasSuffix(m[1], "&cursor="+url.QueryEscape(q.Get("cursor"))) {
				t.Fatalf("Link %q does not end with its cursor", link)
			}
			for k, v := range keep {
				if !slices.Equal(q[k], v) {
					t.Fatalf("Link %q lost %s=%v", link, k, v)
				}
			}
			path = m[1]
			if pages > 20 {
				t.Fatal("paging does not end")
			}
		}
		return serials
	}

	all := g.call(t, "GET", "/api/v1/certificates/ca/issued", nil, nil)
	expectStatus(t, all, 200, "")
	if all.header.Get("Link") != "" {
		t.Errorf("a complete answer has a Link: %s", all.header.Get("Link"))
	}
	var want []string
	for _, r := range records(all) {
		want = append(want, r["serial"].(string))
		if r["certificate"] != nil {
			t.Error("the inventory carries certificates")
		}
	}
	if len(want) < 7 {
		t.Fatalf("inventory of %d records", len(want))
	}
	if got := follow("/api/v1/certificates/ca/issued?limit=2", 2, url.Values{"limit": {"2"}}); !slices.Equal(got, want) {
		t.Errorf("pages of 2:\n got %v\nwant %v", got, want)
	}
	keep := url.Values{"limit": {"2"}, "partnerId": {"PAGE_A"}, "status": {"valid"}, "unrelated": {"kept too"}}
	if got := follow("/api/v1/certificates/ca/issued?"+keep.Encode(), 2, keep); !slices.Equal(got, serialsA) {
		t.Errorf("PAGE_A, pages of 2:\n got %v\nwant %v", got, serialsA)
	}

	// A revocation shows in the revoked view at once.
	expectStatus(t, g.call(t, "POST", "/api/v1/certificates/ca/revoke", url.Values{"serial": {serialsA[1]}, "reason": {"keyCompromise"}}, nil), 200, "")
	rev := g.call(t, "GET", "/api/v1/certificates/ca/issued?status=revoked&limit=1", nil, nil)
	expectStatus(t, rev, 200, "")
	if recs := records(rev); len(recs) != 1 || recs[0]["serial"] != serialsA[1] || recs[0]["revocationReason"] != "keyCompromise" || rev.header.Get("Link") != "" {
		t.Errorf("revoked: %s (Link %q)", rev.body, rev.header.Get("Link"))
	}

	for _, bad := range []string{"limit=0", "limit=1001", "limit=-3", "limit=ten", "limit=2.5", "cursor=not-a-cursor", "cursor=" + strings.Repeat("QQ", 200)} {
		a := g.call(t, "GET", "/api/v1/certificates/ca/issued?"+bad, nil, nil)
		expectStatus(t, a, 400, "")
		if msg, _ := a.json(t)["error"].(string); msg == "" {
			t.Errorf("%s: no error message: %s", bad, a.body)
		}
	}
	expectStatus(t, g.call(t, "GET", "/api/v1/certificates/ca/issued?limit=1000", nil, nil), 200, "")
}

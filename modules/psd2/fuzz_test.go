package psd2

import (
	"net/url"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// FuzzCanonicalPath: a path the gateway lets through reads the same to any
// server behind it: it is its own path.Clean, holds nothing that servers
// decode or drop, and its role is the role of every spelling a server could
// route it to.
func FuzzCanonicalPath(f *testing.F) {
	for _, s := range []string{
		"/v1/payments/sepa-credit-transfers", "/v1/payments%00/x", "/v1/%2570ayments", `/v1\payments`,
		"/v1/payments.json", "/v1/payments;x=1/y", "/v1/accounts/..;/payments", "/v1//payments", "/V1/Payments/",
		"/v2/consents/confirmation-of-funds/1", "/.well-known/x", "/v1/payments./x", "*",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.ParseRequestURI(raw)
		if err != nil {
			return
		}
		if checkCanonicalPath(u) != nil {
			return
		}
		p := u.Path
		if path.Clean(p) != p || u.RawPath != "" || strings.ContainsAny(p, "%;\\ \t\x00") {
			t.Fatalf("%q (path %q) accepted but not canonical", raw, p)
		}
		for _, seg := range strings.Split(p, "/")[1:] {
			if p != "/" && (seg == "" || strings.HasSuffix(seg, ".")) {
				t.Fatalf("%q accepted with segment %q", raw, seg)
			}
		}
		// A service name with a suffix would be /v1/payments to Spring.
		if parts := strings.SplitN(p, "/", 4); len(parts) >= 3 && isVersion(parts[1]) && strings.Contains(parts[2], ".") {
			t.Fatalf("%q accepted with a suffixed service name", raw)
		}
		rolesForPath(p)
	})
}

// FuzzParseJournal: a corrupt journal never crashes the store; what it
// yields are whole records, which encode back to the same bytes.
func FuzzParseJournal(f *testing.F) {
	rec := appendRecord(append([]byte(nil), journalMagic...), "PSDGR-BOG-123456",
		replayEntry{id: uuid.MustParse("1f58df29-d312-4a1a-a006-4068ae99407a"), expires: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()})
	f.Add(rec)
	f.Add(rec[:len(rec)-3])
	f.Add(append(append([]byte(nil), rec...), 0, 0))
	f.Add([]byte("BEPSD2R1\xff\xff"))
	f.Add([]byte("not a journal"))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, rest := parseJournal(data, 0)
		if rest < 0 || rest > len(data) {
			t.Fatalf("rest = %d of %d bytes", rest, len(data))
		}
		var again []byte
		if len(entries) > 0 {
			again = append(again, journalMagic...)
		}
		for _, e := range entries {
			if e.org == "" || len(e.org) > maxJournalOrgID {
				t.Fatalf("entry with an organisation of %d bytes", len(e.org))
			}
			again = appendRecord(again, e.org, replayEntry{id: e.id, expires: e.expires})
		}
		if e2, _ := parseJournal(again, 0); len(e2) != len(entries) {
			t.Fatalf("%d entries re-read as %d", len(entries), len(e2))
		}
	})
}

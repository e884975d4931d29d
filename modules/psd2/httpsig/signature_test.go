package httpsig_test

import (
	"encoding/base64"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/bankedge/bankedge/internal/shareddata"
	"github.com/bankedge/bankedge/modules/psd2/httpsig"
)

// The Piraeus seed's Example 1 signature value (RSA-2048, 256 bytes).
const seedSignature1 = "FMVSTGgdfeafti06NFZNsHAIwVoiaLx7wYXxxfXJiVpyAG3wykS14KK4xS2kSOMtF38ZUB2Ee4JVH9gZti/euae3/QQKNL0NklaGWA8KfjxEJFijvDuBjWX34t1PWYQ329+8jZPdgc78WFGBg69OssNNhvhhJYR6i+GKszvsUxD2lJgQfF+OqfLrUU2DyVEIjfMIgCpQ2AI1fmJLqeEl4jlW2cTlUdnffghGlsAMidec34KGz5woyxMWVYAQbHp0egKDiQFcd6jQQqcaJWA/VtdVm1fqKPuSSbEqnfeC6S8cA0fYUsRTKes57/QJ2KUx8/PX4Qbs01VUDbdSg2cEkg=="

// seedHeader1 is the seed's Example 1 Signature header exactly as printed:
// typographic quotes U+201D on both sides of every value, a space inside the
// quotes before keyId and signature, and spaces after the commas.
const seedHeader1 = "keyId=\u201d 6AA32860FF20999C9D12A78ADBDB1903\u201d, algorithm=\u201drsa-sha256\u201d, headers=\u201ddigest x-request-id\u201d, signature=\u201d " + seedSignature1 + "\u201d"

// bgHeader is the Berlin Group OpenAPI example, with its mixed-case headers
// and the space after the comma before headers.
const bgHeader = `keyId="SN=9FA1,CA=CN=D-TRUST%20CA%202-1%202015,O=D-Trust%20GmbH,C=DE",algorithm="rsa-sha256", headers="Digest X-Request-ID PSU-ID TPP-Redirect-URI Date", signature="Base64(RSA-SHA256(signing string))"`

func TestParseSignatureSeed(t *testing.T) {
	sig, err := httpsig.ParseSignature(seedHeader1)
	if err != nil {
		t.Fatalf("ParseSignature(seed) = %v", err)
	}
	want := httpsig.Signature{
		KeyID:     "6AA32860FF20999C9D12A78ADBDB1903",
		Algorithm: "rsa-sha256",
		Headers:   []string{"digest", "x-request-id"},
		Signature: seedSignature1,
	}
	checkSignature(t, sig, want)

	// The keyId the seed prints is the QSealC serial, compared numerically.
	k, err := httpsig.ParseKeyID(sig.KeyID)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.ToUpper(k.Serial.Text(16)); got != want.KeyID || k.Issuer != "" {
		t.Errorf("ParseKeyID(%q) = %s, issuer %q", sig.KeyID, got, k.Issuer)
	}
	if alg, err := httpsig.ParseAlgorithm(sig.Algorithm); err != nil || alg != httpsig.RSASHA256 {
		t.Errorf("ParseAlgorithm(%q) = %v, %v", sig.Algorithm, alg, err)
	}
	if err := httpsig.Piraeus.CheckHeaders(sig.Headers, nil); err != nil {
		t.Errorf("the seed's headers break the Piraeus profile: %v", err)
	}
}

// TestParseSignatureSeedFile reads the seed in place, when ../shared exists,
// and parses both of its Signature headers as printed.
func TestParseSignatureSeedFile(t *testing.T) {
	data, err := os.ReadFile(shareddata.Path(t, "seeds", "piraeus-psd2-certificates.txt"))
	if err != nil {
		t.Skipf("seed not readable: %v", err)
	}
	var headers []string
	for line := range strings.Lines(string(data)) {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "keyId=") {
			headers = append(headers, line)
		}
	}
	if len(headers) != 2 {
		t.Fatalf("found %d Signature examples in the seed, want 2", len(headers))
	}
	if headers[0] != seedHeader1 {
		t.Errorf("the committed copy of the seed's Example 1 differs from the seed:\n%q\n%q", headers[0], seedHeader1)
	}
	for i, h := range headers {
		sig, err := httpsig.ParseSignature(h)
		if err != nil {
			t.Errorf("example %d: %v", i+1, err)
			continue
		}
		wantAlg := []string{"rsa-sha256", "rsa-sha512"}[i]
		if sig.KeyID != "6AA32860FF20999C9D12A78ADBDB1903" || sig.Algorithm != wantAlg ||
			!slices.Equal(sig.Headers, []string{"digest", "x-request-id"}) || strings.HasPrefix(sig.Signature, " ") {
			t.Errorf("example %d parsed as %+v", i+1, sig)
		}
		if raw, err := base64.StdEncoding.DecodeString(sig.Signature); err != nil || len(raw) != 256 {
			t.Errorf("example %d: signature is not 256 bytes of base64: %d, %v", i+1, len(raw), err)
		}
	}
}

func TestParseSignatureBerlinGroup(t *testing.T) {
	sig, err := httpsig.ParseSignature(bgHeader)
	if err != nil {
		t.Fatalf("ParseSignature(BG example) = %v", err)
	}
	checkSignature(t, sig, httpsig.Signature{
		// The comma inside the quoted keyId does not end the parameter.
		KeyID:     "SN=9FA1,CA=CN=D-TRUST%20CA%202-1%202015,O=D-Trust%20GmbH,C=DE",
		Algorithm: "rsa-sha256",
		Headers:   []string{"digest", "x-request-id", "psu-id", "tpp-redirect-uri", "date"},
		Signature: "Base64(RSA-SHA256(signing string))",
	})
	k, err := httpsig.ParseKeyID(sig.KeyID)
	if err != nil {
		t.Fatal(err)
	}
	if k.Serial.Int64() != 0x9FA1 || k.Issuer != "CN=D-TRUST CA 2-1 2015,O=D-Trust GmbH,C=DE" {
		t.Errorf("ParseKeyID = %X, %q", k.Serial, k.Issuer)
	}
}

func TestParseSignature(t *testing.T) {
	base := httpsig.Signature{KeyID: "k", Algorithm: "rsa-sha256", Headers: []string{"digest", "x-request-id"}, Signature: "c2ln"}
	ok := []struct {
		name, in string
		want     httpsig.Signature
	}{
		{"compact", `keyId="k",algorithm="rsa-sha256",headers="digest x-request-id",signature="c2ln"`, base},
		{"whitespace around = and ,", "keyId = \"k\" ,\talgorithm= \"rsa-sha256\" , headers =\"digest x-request-id\",  signature=\"c2ln\"  ", base},
		{"leading and trailing whitespace", "  keyId=\"k\",algorithm=\"rsa-sha256\",headers=\"digest x-request-id\",signature=\"c2ln\"\t", base},
		{"values trimmed inside quotes", `keyId="  k ",algorithm=" rsa-sha256",headers=" digest   x-request-id ",signature=" c2ln "`, base},
		{"parameter order free", `signature="c2ln",headers="digest x-request-id",algorithm="rsa-sha256",keyId="k"`, base},
		{"parameter names case-insensitive", `KEYID="k",Algorithm="rsa-sha256",HEADERS="digest x-request-id",Signature="c2ln"`, base},
		{"headers lower-cased", `keyId="k",algorithm="rsa-sha256",headers="Digest X-Request-ID",signature="c2ln"`, base},
		{"token values, base64 with / + and =", `keyId=k,algorithm=rsa-sha256,signature=ab/c+d==`,
			httpsig.Signature{KeyID: "k", Algorithm: "rsa-sha256", Signature: "ab/c+d=="}},
		{"unknown parameters ignored", `keyId="k",created=1618884473,algorithm="rsa-sha256",expires="x,y",headers="digest x-request-id",signature="c2ln",foo=bar`, base},
		{"unknown parameter may repeat", `x=1,keyId="k",x=2,algorithm="rsa-sha256",headers="digest x-request-id",signature="c2ln"`, base},
		{"commas and = inside quotes", `keyId="SN=1,CA=CN=a\,b,O=c",signature="a,b=c"`,
			httpsig.Signature{KeyID: `SN=1,CA=CN=a,b,O=c`, Signature: "a,b=c"}},
		{"escaped quote and backslash", `keyId="a\"b\\c",signature="s"`,
			httpsig.Signature{KeyID: `a"b\c`, Signature: "s"}},
		{"tab inside quotes", "keyId=\"a\tb\",signature=\"s\"", httpsig.Signature{KeyID: "a\tb", Signature: "s"}},
		{"trailing comma tolerated", `keyId="k",signature="s",`, httpsig.Signature{KeyID: "k", Signature: "s"}},
		{"no headers parameter", `keyId="k",signature="s"`, httpsig.Signature{KeyID: "k", Signature: "s"}},
		{"typographic opening and closing quotes", "keyId=\u201ck\u201d,signature=\u201cs\u201d", httpsig.Signature{KeyID: "k", Signature: "s"}},
		{"UTF-8 inside quotes", `keyId="SN=1,CA=O=Τράπεζα Πειραιώς",signature="s"`,
			httpsig.Signature{KeyID: "SN=1,CA=O=Τράπεζα Πειραιώς", Signature: "s"}},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			got, err := httpsig.ParseSignature(tc.in)
			if err != nil {
				t.Fatalf("ParseSignature(%q) = %v", tc.in, err)
			}
			checkSignature(t, got, tc.want)
		})
	}

	long := `keyId="k",signature="` + strings.Repeat("A", httpsig.MaxSignatureLen) + `"`
	bad := []struct {
		name, in, wantErr string
	}{
		{"empty", "", "keyId is missing"},
		{"only spaces", "   ", "keyId is missing"},
		{"missing keyId", `algorithm="rsa-sha256",signature="s"`, "keyId is missing"},
		{"empty keyId", `keyId="",signature="s"`, "keyId is missing"},
		{"blank keyId", `keyId="   ",signature="s"`, "keyId is missing"},
		{"missing signature", `keyId="k",algorithm="rsa-sha256",headers="digest"`, "signature is missing"},
		{"empty headers", `keyId="k",headers=" ",signature="s"`, "headers is empty"},
		{"duplicate keyId", `keyId="a",keyId="b",signature="s"`, "given twice"},
		{"duplicate keyId, other case", `keyId="a",signature="s",keyid="b"`, "given twice"},
		{"duplicate signature", `keyId="a",signature="s",SIGNATURE="t"`, "given twice"},
		{"duplicate algorithm", `keyId="a",algorithm="rsa-sha256",algorithm="rsa-sha512",signature="s"`, "given twice"},
		{"duplicate headers", `keyId="a",headers="digest",Headers="digest",signature="s"`, "given twice"},
		{"unterminated quote", `keyId="k,signature=s`, "unterminated"},
		{"unterminated at end", `keyId="k",signature="s`, "unterminated"},
		{"dangling escape", `keyId="k",signature="s\`, "dangling escape"},
		{"newline in quotes", "keyId=\"k\nx\",signature=\"s\"", "control character"},
		{"CR in quotes", "keyId=\"k\",signature=\"s\r\"", "control character"},
		{"NUL in quotes", "keyId=\"k\x00\",signature=\"s\"", "control character"},
		{"DEL in quotes", "keyId=\"k\x7f\",signature=\"s\"", "control character"},
		{"escaped newline", "keyId=\"k\\\nx\",signature=\"s\"", "control character"},
		{"escaped NUL", "keyId=\"k\\\x00\",signature=\"s\"", "control character"},
		{"newline between parameters", "keyId=\"k\",\nsignature=\"s\"", "parameter name"},
		{"missing =", `keyId "k",signature="s"`, "expected '='"},
		{"missing comma", `keyId="k" signature="s"`, "expected ','"},
		{"empty value", `keyId=,signature="s"`, "expected a value"},
		{"no name", `="k",signature="s"`, "parameter name"},
		{"invalid UTF-8", "keyId=\"\xff\",signature=\"s\"", "UTF-8"},
		{"oversize", long, "longer than"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			got, err := httpsig.ParseSignature(tc.in)
			if err == nil {
				t.Fatalf("ParseSignature(%.60q) = %+v, want an error", tc.in, got)
			}
			if !errors.Is(err, httpsig.ErrFormat) {
				t.Errorf("error %v does not wrap ErrFormat", err)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not mention %q", err, tc.wantErr)
			}
		})
	}

	// MaxSignatureLen is the limit itself: a header of exactly that size
	// parses.
	exact := `keyId="k",signature="`
	exact += strings.Repeat("A", httpsig.MaxSignatureLen-len(exact)-1) + `"`
	if _, err := httpsig.ParseSignature(exact); err != nil {
		t.Errorf("a header of exactly MaxSignatureLen bytes: %v", err)
	}
}

func TestSignatureStringRoundTrip(t *testing.T) {
	for _, s := range []httpsig.Signature{
		{KeyID: "6AA32860FF20999C9D12A78ADBDB1903", Algorithm: "rsa-sha256", Headers: []string{"digest", "x-request-id"}, Signature: seedSignature1},
		{KeyID: "SN=9FA1,CA=CN=D-TRUST%20CA%202-1%202015,O=D-Trust%20GmbH,C=DE", Algorithm: "rsa-sha512", Headers: []string{"digest", "x-request-id", "date"}, Signature: "c2ln"},
		// Go renders issuers with backslash escapes; they must survive.
		{KeyID: `SN=1,CA=CN=Foo\, Inc.,O=\"Q\"`, Algorithm: "rsa-sha256", Headers: []string{"digest"}, Signature: "c2ln"},
		{KeyID: "a\u201db\u201cc", Algorithm: "rsa-sha256", Headers: []string{"digest"}, Signature: "s"},
		// No headers and no algorithm: the rendering must still parse.
		{KeyID: "k", Signature: "s"},
	} {
		text := s.String()
		got, err := httpsig.ParseSignature(text)
		if err != nil {
			t.Errorf("ParseSignature(%q) = %v", text, err)
			continue
		}
		checkSignature(t, got, s)
	}

	want := `keyId="k",algorithm="rsa-sha256",headers="digest x-request-id",signature="c2ln"`
	if got := (httpsig.Signature{KeyID: "k", Algorithm: "rsa-sha256", Headers: []string{"digest", "x-request-id"}, Signature: "c2ln"}).String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func checkSignature(t *testing.T, got, want httpsig.Signature) {
	t.Helper()
	if got.KeyID != want.KeyID || got.Algorithm != want.Algorithm || got.Signature != want.Signature || !slices.Equal(got.Headers, want.Headers) {
		t.Errorf("got  %#v\nwant %#v", got, want)
	}
}

func TestParseAlgorithm(t *testing.T) {
	for in, want := range map[string]httpsig.Algorithm{
		"rsa-sha256": httpsig.RSASHA256, "RSA-SHA256": httpsig.RSASHA256, " rsa-sha512 ": httpsig.RSASHA512,
	} {
		if got, err := httpsig.ParseAlgorithm(in); err != nil || got != want {
			t.Errorf("ParseAlgorithm(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "hmac-sha256", "rsa-sha1", "ecdsa-sha256", "hs2019", "rsa-v1_5-sha256"} {
		if _, err := httpsig.ParseAlgorithm(in); !errors.Is(err, httpsig.ErrAlgorithm) {
			t.Errorf("ParseAlgorithm(%q) = %v, want ErrAlgorithm", in, err)
		}
	}
}

func FuzzParseSignature(f *testing.F) {
	f.Add(seedHeader1)
	f.Add(bgHeader)
	f.Add(`keyId="k",algorithm="rsa-sha256",headers="digest x-request-id",signature="c2ln"`)
	f.Add(`keyId="a\"b\\c",signature="s",x=y`)
	f.Add("keyId=\u201ck\u201d,signature=\u201cs\u201d")
	f.Add(`keyId=k,signature=ab/c+d==`)
	f.Add(`keyId="k",keyid="k",signature="s"`)
	f.Add("keyId=\"k\\\n\",signature=\"s\"")
	f.Fuzz(func(t *testing.T, v string) {
		sig, err := httpsig.ParseSignature(v)
		// Parsing into a caller's array gives the same answer.
		with, errWith := httpsig.ParseSignatureWith(v, make([]string, 0, 2))
		if (err == nil) != (errWith == nil) || err == nil && (with.KeyID != sig.KeyID || with.Algorithm != sig.Algorithm ||
			with.Signature != sig.Signature || !slices.Equal(with.Headers, sig.Headers)) {
			t.Fatalf("ParseSignatureWith = %#v, %v; ParseSignature = %#v, %v", with, errWith, sig, err)
		}
		if err != nil {
			if !errors.Is(err, httpsig.ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		if sig.KeyID == "" || sig.Signature == "" {
			t.Fatalf("parsed without keyId or signature: %#v", sig)
		}
		for _, h := range sig.Headers {
			if h == "" || h != strings.ToLower(h) || strings.ContainsAny(h, " \t") {
				t.Fatalf("header name %q is not a lower-case word", h)
			}
		}
		// String escapes quotes and backslashes, so every parsed value
		// survives a round trip.
		text := sig.String()
		again, err := httpsig.ParseSignature(text)
		if err != nil {
			t.Fatalf("String() = %q does not parse: %v", text, err)
		}
		if again.KeyID != sig.KeyID || again.Algorithm != sig.Algorithm || again.Signature != sig.Signature || !slices.Equal(again.Headers, sig.Headers) {
			t.Fatalf("round trip changed the value:\n%#v\n%#v", sig, again)
		}
	})
}

// TestParseSignatureWithAllocatesNothing: with room for the signed
// header names, a Signature header of the usual form (ASCII quotes, no
// escapes, lower-case names, as the bankedge CLI sends it) parses without
// allocating. Upper-case names cost one copy, typographic quotes one per
// value.
func TestParseSignatureWithAllocatesNothing(t *testing.T) {
	var room [8]string
	usual := []string{
		httpsig.Signature{KeyID: "6AA32860FF20999C9D12A78ADBDB1903", Algorithm: "rsa-sha256",
			Headers: []string{"digest", "x-request-id"}, Signature: seedSignature1}.String(),
		strings.ToLower(bgHeader[:strings.Index(bgHeader, "signature=")]) + `signature="` + seedSignature1 + `"`,
	}
	for _, v := range usual {
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := httpsig.ParseSignatureWith(v, room[:0]); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%.40q…: %.1f allocations, want 0", v, allocs)
		}
	}
}

func BenchmarkParseSignature(b *testing.B) {
	for _, bc := range []struct{ name, v string }{
		{"piraeus-seed", seedHeader1},
		{"berlingroup", `keyId="SN=6aa32860ff20999c9d12a78adbdb1903,CA=CN=Test%20QTSP%20Qualified%20CA,O=Test%20QTSP%20S.A.,C=GR,2.5.4.97=#130f56415447522d393939393939393939",algorithm="rsa-sha256", headers="digest x-request-id date", signature="` + seedSignature1 + `"`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.v)))
			for b.Loop() {
				if _, err := httpsig.ParseSignature(bc.v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

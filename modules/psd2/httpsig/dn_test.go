package httpsig_test

import (
	"encoding/asn1"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/bankedge/bankedge/modules/psd2/httpsig"
)

var (
	oidCN = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidC  = asn1.ObjectIdentifier{2, 5, 4, 6}
	oidO  = asn1.ObjectIdentifier{2, 5, 4, 10}
	oidOU = asn1.ObjectIdentifier{2, 5, 4, 11}
	oidDC = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}
)

func TestParseDN(t *testing.T) {
	type attr = httpsig.Attribute
	for _, tc := range []struct {
		name, in string
		want     []attr
	}{
		{"simple", "CN=a,O=b,C=GR", []attr{{oidCN, "a"}, {oidO, "b"}, {oidC, "GR"}}},
		{"escaped comma", `CN=Foo\, Inc.`, []attr{{oidCN, "Foo, Inc."}}},
		{"escaped plus", `CN=a\+b`, []attr{{oidCN, "a+b"}}},
		{"escaped quote", `CN=a\"b\"`, []attr{{oidCN, `a"b"`}}},
		{"escaped backslash", `CN=a\\b`, []attr{{oidCN, `a\b`}}},
		{"escaped semicolon, <, >, =", `CN=a\;\<b\>\=`, []attr{{oidCN, "a;<b>="}}},
		{"hex escape", `CN=a\2Cb\2cc`, []attr{{oidCN, "a,b,c"}}},
		{"hex escapes of UTF-8", `O=Pir\C3\A6us`, []attr{{oidO, "Piræus"}}},
		{"backslash before a non-hex pair", `CN=\4g`, []attr{{oidCN, "4g"}}},
		{"hex escape at the end", `CN=ab\41`, []attr{{oidCN, "abA"}}},
		{"escaped leading #", `CN=\#1`, []attr{{oidCN, "#1"}}},
		{"quoted value", `CN="a, b+c;d",O=x`, []attr{{oidCN, "a, b+c;d"}, {oidO, "x"}}},
		{"quoted value with escapes", `CN="a\"b\\c"`, []attr{{oidCN, `a"b\c`}}},
		{"quoted value keeps inner spaces", `CN=" a b "`, []attr{{oidCN, " a b "}}},
		{"spaces after a quoted value", `CN="a"  ,O=b`, []attr{{oidCN, "a"}, {oidO, "b"}}},
		{"#hex PrintableString", "2.5.4.97=#130f56415447522d393939393939393939", []attr{{oidOrganizationIdentifier, "VATGR-999999999"}}},
		{"#hex UTF8String", "CN=#0c03616263", []attr{{oidCN, "abc"}}},
		{"#hex upper case, spaces after", "CN=#0C03616263  ,O=b", []attr{{oidCN, "abc"}, {oidO, "b"}}},
		{"#hex non-string keeps the content", "CN=#0403616263", []attr{{oidCN, "abc"}}},
		{"multi-valued RDN", "CN=a+O=b,C=GR", []attr{{oidCN, "a"}, {oidO, "b"}, {oidC, "GR"}}},
		{"semicolon separator", "CN=a;O=b", []attr{{oidCN, "a"}, {oidO, "b"}}},
		{"trailing spaces dropped", "CN=abc   ,O=b  ", []attr{{oidCN, "abc"}, {oidO, "b"}}},
		{"escaped trailing space kept", `CN=abc\ ,O=b\20`, []attr{{oidCN, "abc "}, {oidO, "b "}}},
		{"spaces around = and ,", " CN = a , O = b ", []attr{{oidCN, "a"}, {oidO, "b"}}},
		{"inner spaces kept", "CN=a  b", []attr{{oidCN, "a  b"}}},
		{"= inside a value", "CN=a=b", []attr{{oidCN, "a=b"}}},
		{"names are case-insensitive", "cn=a,Ou=b,DC=c", []attr{{oidCN, "a"}, {oidOU, "b"}, {oidDC, "c"}}},
		{"dotted OID", "2.5.4.3=a", []attr{{oidCN, "a"}}},
		{"OID. prefix", "OID.2.5.4.3=a,oid.0.9.2342.19200300.100.1.25=b", []attr{{oidCN, "a"}, {oidDC, "b"}}},
		{"unregistered OID", "1.3.6.1.4.1.311.60.2.1.3=GR", []attr{{asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 60, 2, 1, 3}, "GR"}}},
		{"organizationIdentifier name", "organizationIdentifier=PSDGR-BOG-123456", []attr{{oidOrganizationIdentifier, "PSDGR-BOG-123456"}}},
		{"emailAddress, ST, S, street", "emailAddress=a@b,ST=x,S=y,street=z", []attr{
			{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}, "a@b"}, {asn1.ObjectIdentifier{2, 5, 4, 8}, "x"},
			{asn1.ObjectIdentifier{2, 5, 4, 8}, "y"}, {asn1.ObjectIdentifier{2, 5, 4, 9}, "z"}}},
		{"UTF-8", "O=Τράπεζα Πειραιώς", []attr{{oidO, "Τράπεζα Πειραιώς"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := httpsig.ParseDN(tc.in)
			if err != nil {
				t.Fatalf("ParseDN(%q) = %v", tc.in, err)
			}
			if !sameAttrs(got, tc.want) {
				t.Errorf("ParseDN(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}

	for _, tc := range []struct{ name, in string }{
		{"empty", ""},
		{"spaces", "   "},
		{"empty value", "CN="},
		{"empty value before a separator", "CN=,O=b"},
		{"blank value", "CN=   ,O=b"},
		{"empty quoted value", `CN=""`},
		{"empty #hex string", "CN=#0c00"},
		{"empty #hex NULL", "CN=#0500"},
		{"trailing separator", "CN=a,"},
		{"trailing plus", "CN=a+"},
		{"double separator", "CN=a,,O=b"},
		{"no =", "CN"},
		{"no type", "=a"},
		{"unknown name", "XX=a"},
		{"unknown long name", "commonNameX=a"},
		{"single-arc OID", "2=a"},
		{"OID with an empty arc", "2..5=a"},
		{"OID with letters", "2.5.x=a"},
		{"OID arc too long", "2.5.1234567890=a"},
		{"type with a space inside", "C N=a"},
		{"dangling escape", `CN=a\`},
		{"unterminated quote", `CN="abc`},
		{"junk after a quoted value", `CN="abc"x`},
		{"bad #hex", "CN=#zz"},
		{"odd #hex", "CN=#0c0"},
		{"empty #hex", "CN=#"},
		{"truncated #hex element", "CN=#0c0361"},
		{"two #hex elements", "CN=#0c01610c0162"},
		{"junk after #hex", "CN=#0c03616263 x"},
		{"oversize", "CN=" + strings.Repeat("a", 4<<10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := httpsig.ParseDN(tc.in)
			if !errors.Is(err, httpsig.ErrDN) {
				t.Errorf("ParseDN(%.40q) = %v, %v; want ErrDN", tc.in, got, err)
			}
		})
	}
}

func sameAttrs(a, b []httpsig.Attribute) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Type.Equal(b[i].Type) || a[i].Value != b[i].Value {
			return false
		}
	}
	return true
}

// formatDN renders attributes as RFC 4514 text with every special character
// escaped: control bytes and edge spaces as \XX, the others as \c.
func formatDN(attrs []httpsig.Attribute) string {
	var b strings.Builder
	for i, a := range attrs {
		if i > 0 {
			b.WriteByte(",+;"[i%3])
		}
		b.WriteString(a.Type.String())
		b.WriteByte('=')
		for j := 0; j < len(a.Value); j++ {
			c := a.Value[j]
			switch {
			case c < 0x20 || c == 0x7f || c == ' ' && (j == 0 || j == len(a.Value)-1):
				fmt.Fprintf(&b, `\%02X`, c)
			case strings.IndexByte(`,+"\<>;=#`, c) >= 0:
				b.WriteByte('\\')
				b.WriteByte(c)
			default:
				b.WriteByte(c)
			}
		}
	}
	return b.String()
}

func FuzzParseDN(f *testing.F) {
	f.Add("CN=Test QTSP Qualified CA,O=Test QTSP S.A.,C=GR,2.5.4.97=#130f56415447522d393939393939393939")
	f.Add("C = GR, organizationIdentifier = VATGR-999999999, O = Test QTSP S.A., CN = Test QTSP Qualified CA")
	f.Add(`CN="a\"b, c"+O=\2C\C3\A9\ ;OID.0.9.2342.19200300.100.1.25=x`)
	f.Add(`CN=a\,b\+c\\d\"e`)
	f.Add("CN=#0500")
	f.Add(`CN=""`)
	f.Fuzz(func(t *testing.T, s string) {
		attrs, err := httpsig.ParseDN(s)
		if err != nil {
			if !errors.Is(err, httpsig.ErrDN) {
				t.Fatalf("error %v does not wrap ErrDN", err)
			}
			return
		}
		if len(attrs) == 0 {
			t.Fatal("no attributes and no error")
		}
		for _, a := range attrs {
			if len(a.Type) < 2 || a.Value == "" {
				t.Fatalf("attribute %v: short type or empty value", a)
			}
		}
		// Escaped and re-parsed, the attributes are the same.
		text := formatDN(attrs)
		again, err := httpsig.ParseDN(text)
		if err != nil {
			if len(text) > 4<<10 {
				return // escaping made it longer than ParseDN accepts
			}
			t.Fatalf("formatDN gave %q, which does not parse: %v", text, err)
		}
		if !sameAttrs(attrs, again) {
			t.Fatalf("round trip via %q:\n%v\n%v", text, attrs, again)
		}
	})
}

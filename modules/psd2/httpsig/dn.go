package httpsig

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ErrDN marks a distinguished name that cannot be parsed.
var ErrDN = errors.New("malformed distinguished name")

// Attribute is one type=value pair of a distinguished name.
type Attribute struct {
	Type  asn1.ObjectIdentifier
	Value string
}

// Attribute type names of RFC 4514 and the common additions that Go,
// OpenSSL and Java print.
var attributeTypes = map[string]asn1.ObjectIdentifier{
	"cn":                     {2, 5, 4, 3},
	"sn":                     {2, 5, 4, 4},
	"serialnumber":           {2, 5, 4, 5},
	"c":                      {2, 5, 4, 6},
	"l":                      {2, 5, 4, 7},
	"st":                     {2, 5, 4, 8},
	"s":                      {2, 5, 4, 8},
	"street":                 {2, 5, 4, 9},
	"o":                      {2, 5, 4, 10},
	"ou":                     {2, 5, 4, 11},
	"title":                  {2, 5, 4, 12},
	"postalcode":             {2, 5, 4, 17},
	"gn":                     {2, 5, 4, 42},
	"givenname":              {2, 5, 4, 42},
	"organizationidentifier": {2, 5, 4, 97},
	"dc":                     {0, 9, 2342, 19200300, 100, 1, 25},
	"uid":                    {0, 9, 2342, 19200300, 100, 1, 1},
	"e":                      {1, 2, 840, 113549, 1, 9, 1},
	"emailaddress":           {1, 2, 840, 113549, 1, 9, 1},
}

// maxDNLen bounds what ParseDN accepts.
const maxDNLen = 4 << 10

// ParseDN parses an RFC 4514 string (also RFC 2253 and the Go and OpenSSL
// renderings): attributes separated by ',' or '+', values with backslash
// escapes, "#hex" BER values and quoted values. The order of attributes is
// kept but is not significant to SameName.
func ParseDN(s string) ([]Attribute, error) {
	if len(s) > maxDNLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrDN, maxDNLen)
	}
	var out []Attribute
	i := 0
	for {
		for i < len(s) && s[i] == ' ' {
			i++
		}
		if i >= len(s) {
			if len(out) == 0 {
				return nil, fmt.Errorf("%w: empty", ErrDN)
			}
			return nil, fmt.Errorf("%w: trailing separator", ErrDN)
		}
		eq := strings.IndexByte(s[i:], '=')
		if eq <= 0 {
			return nil, fmt.Errorf("%w: expected type=value at offset %d", ErrDN, i)
		}
		typ, err := parseAttributeType(strings.TrimSpace(s[i : i+eq]))
		if err != nil {
			return nil, err
		}
		i += eq + 1
		value, next, err := parseAttributeValue(s, i)
		if err != nil {
			return nil, err
		}
		// The quoted ("") and #hex (#0c00) forms can also spell an empty
		// value; refuse it as for the plain form, since an empty attribute
		// never names an issuer.
		if value == "" {
			return nil, fmt.Errorf("%w: empty value at offset %d", ErrDN, i)
		}
		out = append(out, Attribute{Type: typ, Value: value})
		i = next
		if i >= len(s) {
			return out, nil
		}
		// s[i] is a separator: ',', ';' or '+'.
		i++
	}
}

func parseAttributeType(t string) (asn1.ObjectIdentifier, error) {
	if oid, ok := attributeTypes[strings.ToLower(t)]; ok {
		return oid, nil
	}
	t = strings.TrimPrefix(strings.TrimPrefix(t, "OID."), "oid.")
	var oid asn1.ObjectIdentifier
	for part := range strings.SplitSeq(t, ".") {
		n := 0
		if part == "" || len(part) > 9 {
			return nil, fmt.Errorf("%w: unknown attribute type %q", ErrDN, t)
		}
		for _, c := range part {
			if c < '0' || c > '9' {
				return nil, fmt.Errorf("%w: unknown attribute type %q", ErrDN, t)
			}
			n = n*10 + int(c-'0')
		}
		oid = append(oid, n)
	}
	if len(oid) < 2 {
		return nil, fmt.Errorf("%w: unknown attribute type %q", ErrDN, t)
	}
	return oid, nil
}

// parseAttributeValue parses the value starting at s[i] and returns it with
// the index of the separator that ends it (or len(s)).
func parseAttributeValue(s string, i int) (string, int, error) {
	for i < len(s) && s[i] == ' ' {
		i++
	}
	if i < len(s) && s[i] == '#' {
		j := i + 1
		for j < len(s) && s[j] != ',' && s[j] != '+' && s[j] != ';' && s[j] != ' ' {
			j++
		}
		der, err := hex.DecodeString(s[i+1 : j])
		if err != nil {
			return "", 0, fmt.Errorf("%w: bad #hex value", ErrDN)
		}
		var raw asn1.RawValue
		if rest, err := asn1.Unmarshal(der, &raw); err != nil || len(rest) > 0 {
			return "", 0, fmt.Errorf("%w: #hex value is not one BER element", ErrDN)
		}
		var v string
		if _, err := asn1.Unmarshal(der, &v); err != nil {
			v = string(raw.Bytes)
		}
		for j < len(s) && s[j] == ' ' {
			j++
		}
		if j < len(s) && s[j] != ',' && s[j] != '+' && s[j] != ';' {
			return "", 0, fmt.Errorf("%w: junk after #hex value", ErrDN)
		}
		return v, j, nil
	}
	if i < len(s) && s[i] == '"' {
		var b strings.Builder
		j := i + 1
		for ; j < len(s) && s[j] != '"'; j++ {
			if s[j] == '\\' && j+1 < len(s) {
				j++
			}
			b.WriteByte(s[j])
		}
		if j >= len(s) {
			return "", 0, fmt.Errorf("%w: unterminated quoted value", ErrDN)
		}
		j++
		for j < len(s) && s[j] == ' ' {
			j++
		}
		if j < len(s) && s[j] != ',' && s[j] != '+' && s[j] != ';' {
			return "", 0, fmt.Errorf("%w: junk after quoted value", ErrDN)
		}
		return b.String(), j, nil
	}
	var b strings.Builder
	trailing := 0 // unescaped trailing spaces, which RFC 4514 drops
	j := i
	for ; j < len(s); j++ {
		c := s[j]
		if c == ',' || c == '+' || c == ';' {
			break
		}
		if c == '\\' {
			if j+1 >= len(s) {
				return "", 0, fmt.Errorf("%w: dangling escape", ErrDN)
			}
			if j+2 < len(s) && isHex(s[j+1]) && isHex(s[j+2]) {
				v, _ := hex.DecodeString(s[j+1 : j+3])
				b.WriteByte(v[0])
				j += 2
			} else {
				b.WriteByte(s[j+1])
				j++
			}
			trailing = 0
			continue
		}
		b.WriteByte(c)
		if c == ' ' {
			trailing++
		} else {
			trailing = 0
		}
	}
	v := b.String()
	v = v[:len(v)-trailing]
	if v == "" {
		return "", 0, fmt.Errorf("%w: empty value", ErrDN)
	}
	return v, j, nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// normalizeValue applies caseIgnoreMatch: case folded, spaces collapsed.
func normalizeValue(v string) string {
	return strings.ToLower(strings.Join(strings.Fields(v), " "))
}

// sameAttributes compares a parsed DN with a certificate name as multisets of
// (type, value): issuers print RDNs in different orders (Go appends unknown
// attributes, OpenSSL prints RFC 2253 order), so order cannot matter.
func sameAttributes(want []Attribute, have pkix.RDNSequence) bool {
	type key struct{ typ, value string }
	counts := map[key]int{}
	n := 0
	for _, rdn := range have {
		for _, atv := range rdn {
			s, ok := atv.Value.(string)
			if !ok {
				s = fmt.Sprint(atv.Value)
			}
			counts[key{atv.Type.String(), normalizeValue(s)}]++
			n++
		}
	}
	if n != len(want) {
		return false
	}
	for _, a := range want {
		k := key{a.Type.String(), normalizeValue(a.Value)}
		if counts[k] == 0 {
			return false
		}
		counts[k]--
	}
	return true
}

package authority

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/publicsuffix"
)

// Bounds of the name policy. A certificate names at most MaxSANs subject
// alternative names, and every name and subject attribute is bounded, so
// that no request can make an inventory record or a handshake heavy.
const (
	MaxSANs        = 100
	maxDNSName     = 253 // RFC 1035
	maxDNSLabel    = 63
	maxEmail       = 254 // RFC 5321 path limit
	maxURI         = 2048
	maxAttrValues  = 4
	maxExtraNames  = 8
	maxExtraLength = 128
)

// attrLimits are the X.520 upper bounds (in characters) of the subject
// attributes a request may set.
var attrLimits = []struct {
	name   string
	max    int
	values func(*pkix.Name) []string
}{
	{"organization", 64, func(n *pkix.Name) []string { return n.Organization }},
	{"organizationalUnit", 64, func(n *pkix.Name) []string { return n.OrganizationalUnit }},
	{"locality", 128, func(n *pkix.Name) []string { return n.Locality }},
	{"state", 128, func(n *pkix.Name) []string { return n.Province }},
	{"streetAddress", 128, func(n *pkix.Name) []string { return n.StreetAddress }},
	{"postalCode", 40, func(n *pkix.Name) []string { return n.PostalCode }},
	{"country", 2, func(n *pkix.Name) []string { return n.Country }},
}

// CheckNames applies the CA's name policy to a certificate template (or a
// CSR's names): subject attributes within their X.520 bounds, printable
// text without control or bidirectional formatting characters; at most
// MaxSANs alternative names; DNS names in preferred name syntax, a
// wildcard only as the whole left-most label of a name below a registrable
// domain, and never a public suffix (golang.org/x/net/publicsuffix; single
// labels outside the list, such as localhost, are internal names and
// allowed); no unspecified, multicast, broadcast, link-local or reserved
// IP addresses; bounded e-mail addresses and URIs. It returns an error
// wrapping ErrPolicy that names the offending value.
func CheckNames(t *x509.Certificate) error {
	if err := checkText("commonName", t.Subject.CommonName, 64); err != nil {
		return err
	}
	for _, a := range attrLimits {
		vs := a.values(&t.Subject)
		if len(vs) > maxAttrValues {
			return policyf("%s has %d values, at most %d are allowed", a.name, len(vs), maxAttrValues)
		}
		for _, v := range vs {
			if err := checkText(a.name, v, a.max); err != nil {
				return err
			}
			if a.name == "country" && (len(v) != 2 || strings.ToUpper(v) != v || !isLetters(v)) {
				return policyf("country %q is not a two-letter ISO 3166 code", v)
			}
		}
	}
	if len(t.Subject.ExtraNames) > maxExtraNames {
		return policyf("the subject has %d extra attributes, at most %d are allowed", len(t.Subject.ExtraNames), maxExtraNames)
	}
	for _, atv := range t.Subject.ExtraNames {
		s, ok := atv.Value.(string)
		if !ok {
			return policyf("subject attribute %s is not text", atv.Type)
		}
		if err := checkText(atv.Type.String(), s, maxExtraLength); err != nil {
			return err
		}
	}
	if n := len(t.DNSNames) + len(t.IPAddresses) + len(t.EmailAddresses) + len(t.URIs); n > MaxSANs {
		return policyf("%d subject alternative names, at most %d are allowed", n, MaxSANs)
	}
	for _, d := range t.DNSNames {
		if err := CheckDNSName(d); err != nil {
			return err
		}
	}
	for _, ip := range t.IPAddresses {
		if err := CheckIP(ip); err != nil {
			return err
		}
	}
	for _, e := range t.EmailAddresses {
		if err := checkEmail(e); err != nil {
			return err
		}
	}
	for _, u := range t.URIs {
		s := u.String()
		if len(s) > maxURI || strings.ContainsFunc(s, forbiddenRune) || u.Scheme == "" {
			return policyf("URI %s is not an absolute URI of at most %d characters", quoteShort(s), maxURI)
		}
	}
	return nil
}

func policyf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrPolicy, fmt.Sprintf(format, args...))
}

// quoteShort quotes s for an error message, cut to 64 characters.
func quoteShort(s string) string {
	if utf8.RuneCountInString(s) > 64 {
		s = string([]rune(s)[:64]) + "…"
	}
	return fmt.Sprintf("%q", s)
}

// forbiddenRune reports control characters and the bidirectional
// formatting characters that make a name display other than it reads.
func forbiddenRune(r rune) bool {
	return unicode.IsControl(r) || r == utf8.RuneError ||
		r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 || r == 0x200e || r == 0x200f
}

func checkText(field, v string, max int) error {
	if !utf8.ValidString(v) || strings.ContainsFunc(v, forbiddenRune) {
		return policyf("%s %s contains control characters or invalid UTF-8", field, quoteShort(v))
	}
	if n := utf8.RuneCountInString(v); n > max {
		return policyf("%s has %d characters, at most %d are allowed", field, n, max)
	}
	return nil
}

func isLetters(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i] | 0x20; c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// CheckDNSName applies the name policy to one DNS name (see CheckNames).
func CheckDNSName(name string) error {
	q := quoteShort(name)
	if name == "" || len(name) > maxDNSName {
		return policyf("DNS name %s must have 1 to %d characters", q, maxDNSName)
	}
	if strings.ContainsFunc(name, func(r rune) bool { return r > unicode.MaxASCII }) {
		return policyf("DNS name %s is not ASCII (IDNs go in their xn-- form)", q)
	}
	labels := strings.Split(name, ".")
	base := name
	if labels[0] == "*" {
		base = strings.Join(labels[1:], ".")
		if len(labels) < 3 {
			return policyf("wildcard %s must stand below a registrable domain, as in *.example.com", q)
		}
		labels = labels[1:]
	}
	for _, l := range labels {
		if err := checkLabel(l); err != nil {
			return policyf("DNS name %s: %v", q, err)
		}
	}
	suffix, icann := publicsuffix.PublicSuffix(strings.ToLower(base))
	// A name equal to its public suffix is a suffix on the list, except a
	// single label outside the list (the list's default rule makes any
	// last label a suffix): localhost and other internal names.
	if suffix == strings.ToLower(base) && (icann || strings.Contains(base, ".")) {
		if base != name {
			return policyf("wildcard %s covers the public suffix %q", q, base)
		}
		return policyf("DNS name %s is a public suffix", q)
	}
	return nil
}

// checkLabel checks one label in preferred name syntax (RFC 1035 §2.3.1,
// RFC 1123 §2.1): letters, digits and inner hyphens, 1 to 63 characters.
func checkLabel(l string) error {
	switch {
	case l == "":
		return fmt.Errorf("empty label (a leading, trailing or double dot)")
	case len(l) > maxDNSLabel:
		return fmt.Errorf("label of %d characters, at most %d are allowed", len(l), maxDNSLabel)
	case l == "*" || strings.Contains(l, "*"):
		return fmt.Errorf("a wildcard is allowed only as the whole left-most label")
	case l[0] == '-' || l[len(l)-1] == '-':
		return fmt.Errorf("label %q starts or ends with a hyphen", l)
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("label %s has a character other than a letter, digit or hyphen", quoteShort(l))
		}
	}
	return nil
}

// CheckIP refuses addresses that name no single host: unspecified,
// multicast, broadcast, link-local and the reserved IPv4 ranges 0/8 and
// 240/4. Loopback and private addresses are internal hosts and allowed.
func CheckIP(ip net.IP) error {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return policyf("IP address %v is not an IPv4 or IPv6 address", ip)
	}
	a = a.Unmap()
	reserved := a.Is4() && (a.As4()[0] == 0 || a.As4()[0] >= 240)
	if a.IsUnspecified() || a.IsMulticast() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || reserved {
		return policyf("IP address %s is unspecified, multicast, broadcast, link-local or reserved", a)
	}
	return nil
}

func checkEmail(e string) error {
	local, domain, ok := strings.Cut(e, "@")
	if !ok || local == "" || len(e) > maxEmail || strings.ContainsFunc(e, func(r rune) bool { return r > unicode.MaxASCII || forbiddenRune(r) || r == ' ' }) {
		return policyf("e-mail address %s is not an ASCII address of at most %d characters", quoteShort(e), maxEmail)
	}
	for _, l := range strings.Split(domain, ".") {
		if err := checkLabel(l); err != nil {
			return policyf("e-mail address %s: %v", quoteShort(e), err)
		}
	}
	return nil
}

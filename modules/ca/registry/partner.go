package registry

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Errors returned by the Registry. Compare with errors.Is.
var (
	// ErrNotFound is returned when the partner does not exist.
	ErrNotFound = errors.New("partner not found")
	// ErrExists is returned by Create when the partner already exists.
	ErrExists = errors.New("partner already exists")
)

// ValidationError reports an invalid field of an Input (or Policy). Field
// is the JSON name of the offending field, so the admin API can return it
// as is. Messages never quote a password.
type ValidationError struct {
	Field   string
	Message string
}

// Error returns "<field>: <message>".
func (e *ValidationError) Error() string { return e.Field + ": " + e.Message }

// Access types of a partner, from the partner's point of view.
const (
	// AccessRead lets the partner only receive files (PeSIT SELECT).
	AccessRead = "read"
	// AccessWrite lets the partner only send files (PeSIT CREATE).
	AccessWrite = "write"
	// AccessBoth lets the partner send and receive files; it is the default.
	AccessBoth = "both"
)

// Field limits.
const (
	maxPartnerIDLen   = 24 // PeSIT PI 3 carries at most 24 characters
	maxDescriptionLen = 1024
	maxFilePatternLen = 255
	maxListEntries    = 256
	maxCommonNameLen  = 64 // X.520 ub-common-name
)

// partnerIDRE is the partner id syntax: the characters PeSIT peers use in
// PI 3. A leading dot is refused so that an id can never name a hidden or
// relative ("..") storage key.
var partnerIDRE = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,23}$`)

// Partner is a PeSIT partner as the admin API shows it. It deliberately has
// no password field of any kind: the hashes live only in the stored record.
type Partner struct {
	// PartnerID is the partner's PeSIT identifier (PI 3): 1 to 24
	// characters among A-Z, a-z, 0-9, '_', '.', '-', not starting with '.'.
	// It is case-sensitive.
	PartnerID string `json:"partnerId"`
	// Enabled says whether the partner may connect.
	Enabled bool `json:"enabled"`
	// AllowedIPs lists the addresses the partner may connect from, as CIDR
	// prefixes (single addresses are stored as /32 or /128). Empty means any
	// address.
	AllowedIPs []string `json:"allowedIps,omitempty"`
	// CertificateBinding, when set, requires the partner to present a TLS
	// client certificate that either has this SHA-256 fingerprint (stored
	// as "sha256:<64 lower-case hex digits>") or this subject common name
	// (stored as "CN=<name>"). A CN binding is only as strong as the CA that
	// verified the certificate.
	CertificateBinding string `json:"certificateBinding,omitempty"`
	// AccessType is "read" (the partner may only receive files), "write"
	// (only send files) or "both" (the default).
	AccessType string `json:"accessType"`
	// MaxConnections is the maximum number of simultaneous connections of
	// the partner; 0 means unlimited. The gateway enforces it.
	MaxConnections int `json:"maxConnections,omitempty"`
	// AllowedFiles lists the file names (PeSIT PI 12) the partner may
	// transfer, as exact names or path.Match globs such as "PAY*.XML".
	// Empty means any file.
	AllowedFiles []string `json:"allowedFiles,omitempty"`
	// Description is free text for operators.
	Description string `json:"description,omitempty"`
	// PesitLegacyPassword exempts the partner's password from the policy's
	// length and character-class rules and limits it to 1 to 8 printable
	// ASCII characters, the most a PeSIT peer can send in PI 5. It requires
	// CertificateBinding or AllowedIPs, because such a password alone is too
	// weak.
	PesitLegacyPassword bool `json:"pesitLegacyPassword,omitempty"`
	// PasswordChangedAt is when the password was last set.
	PasswordChangedAt time.Time `json:"passwordChangedAt"`
	// PasswordExpiresAt is when the password expires under the current
	// policy; nil when the policy sets no maximum age.
	PasswordExpiresAt *time.Time `json:"passwordExpiresAt,omitempty"`
	// CreatedAt is when the partner was created.
	CreatedAt time.Time `json:"createdAt"`
	// UpdatedAt is when the partner was last modified.
	UpdatedAt time.Time `json:"updatedAt"`
}

// AllowsFile reports whether the partner may transfer the file called
// name: AllowedFiles is empty, or name equals one of its entries or matches
// it as a path.Match glob.
func (p Partner) AllowsFile(name string) bool {
	if len(p.AllowedFiles) == 0 {
		return true
	}
	for _, pat := range p.AllowedFiles {
		if pat == name {
			return true
		}
		if ok, err := path.Match(pat, name); err == nil && ok {
			return true
		}
	}
	return false
}

// AllowsAccess reports whether the access type permits the transfer
// direction: write is true when the partner sends a file to us (PeSIT
// CREATE), false when it fetches one (SELECT). An unknown or empty access
// type allows nothing, so that a damaged record fails closed.
func (p Partner) AllowsAccess(write bool) bool {
	switch p.AccessType {
	case AccessBoth:
		return true
	case AccessWrite:
		return write
	case AccessRead:
		return !write
	}
	return false
}

// MatchesCertificate reports whether c satisfies the partner's
// CertificateBinding: its SHA-256 fingerprint (over c.Raw) or its subject
// common name (compared exactly) equals the binding. Without a binding any
// certificate, or none, matches; with one, a nil certificate never does.
// The caller must pass only certificates that TLS has already verified.
func (p Partner) MatchesCertificate(c *x509.Certificate) bool {
	if p.CertificateBinding == "" {
		return true
	}
	if c == nil {
		return false
	}
	if cn, ok := strings.CutPrefix(p.CertificateBinding, "CN="); ok {
		return c.Subject.CommonName == cn
	}
	return p.CertificateBinding == Fingerprint(c)
}

// Fingerprint returns the SHA-256 fingerprint of c in the form stored in
// CertificateBinding: "sha256:" followed by 64 lower-case hex digits.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// allowsIP reports whether addr is within AllowedIPs (empty = any).
func (p Partner) allowsIP(addr netip.Addr) bool {
	if len(p.AllowedIPs) == 0 {
		return true
	}
	if !addr.IsValid() {
		return false
	}
	// IPv4 peers on a dual-stack listener appear as ::ffff:a.b.c.d; the
	// allowlist is written with plain IPv4 prefixes.
	addr = addr.Unmap().WithZone("")
	for _, s := range p.AllowedIPs {
		if pfx, err := netip.ParsePrefix(s); err == nil && pfx.Contains(addr) {
			return true
		}
	}
	return false
}

// validatePartnerID checks the id syntax. It is the guard against storage
// key traversal, so every public method calls it before building a key.
func validatePartnerID(id string) error {
	if !partnerIDRE.MatchString(id) {
		return &ValidationError{Field: "partnerId", Message: fmt.Sprintf(
			"must be 1 to %d characters among A-Z, a-z, 0-9, '_', '.', '-', not starting with '.'", maxPartnerIDLen)}
	}
	return nil
}

// normalizeIPs parses single addresses and CIDR prefixes, returning masked
// CIDR strings without duplicates.
func normalizeIPs(in []string) ([]string, error) {
	if len(in) > maxListEntries {
		return nil, &ValidationError{Field: "allowedIps", Message: fmt.Sprintf("at most %d entries", maxListEntries)}
	}
	var out []string
	seen := make(map[string]bool)
	for i, s := range in {
		s = strings.TrimSpace(s)
		var pfx netip.Prefix
		var err error
		if strings.Contains(s, "/") {
			pfx, err = netip.ParsePrefix(s)
		} else {
			var a netip.Addr
			if a, err = netip.ParseAddr(s); err == nil {
				if a.Zone() != "" {
					// A zone names a local interface; it cannot be matched
					// against peers, and PrefixFrom would silently drop it.
					err = errors.New("zoned address")
				}
				pfx = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil {
			return nil, &ValidationError{Field: "allowedIps", Message: "entry " + strconv.Itoa(i) + " (" + strconv.Quote(s) + ") is not an IP address or CIDR prefix"}
		}
		// An IPv4-mapped prefix would never match: addresses are unmapped
		// before matching.
		if pfx.Addr().Is4In6() {
			bits := pfx.Bits() - 96
			if bits < 0 {
				return nil, &ValidationError{Field: "allowedIps", Message: "entry " + strconv.Itoa(i) + " is an IPv4-mapped prefix shorter than /96"}
			}
			pfx = netip.PrefixFrom(pfx.Addr().Unmap(), bits)
		}
		n := pfx.Masked().String()
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out, nil
}

// normalizeBinding accepts a SHA-256 fingerprint ("sha256:<hex>" or 64 bare
// hex digits, optionally colon-separated, any case) or a subject common name
// ("CN=name" or a plain name), and returns "sha256:<lower hex>" or
// "CN=<name>". The empty string means no binding.
func normalizeBinding(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	hexPart, isFP := cutPrefixFold(s, "sha256:")
	if !isFP {
		// A bare fingerprint: 64 hex digits, or 32 colon-separated pairs.
		if h := strings.ReplaceAll(s, ":", ""); len(h) == 64 && isHex(h) {
			hexPart, isFP = s, true
		}
	}
	if isFP {
		h := strings.ToLower(strings.ReplaceAll(hexPart, ":", ""))
		if len(h) != 64 || !isHex(h) {
			return "", &ValidationError{Field: "certificateBinding", Message: "a SHA-256 fingerprint must have 64 hex digits"}
		}
		return "sha256:" + h, nil
	}
	cn, _ := cutPrefixFold(s, "CN=")
	cn = strings.TrimSpace(cn)
	switch {
	case cn == "":
		return "", &ValidationError{Field: "certificateBinding", Message: "the common name is empty"}
	case strings.Contains(cn, "="):
		return "", &ValidationError{Field: "certificateBinding", Message: `must be a SHA-256 fingerprint or a subject common name ("CN=name"); full distinguished names are not supported`}
	case len(cn) > maxCommonNameLen:
		return "", &ValidationError{Field: "certificateBinding", Message: fmt.Sprintf("the common name must be at most %d bytes", maxCommonNameLen)}
	case !utf8.ValidString(cn) || strings.ContainsFunc(cn, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "", &ValidationError{Field: "certificateBinding", Message: "the common name contains invalid characters"}
	}
	return "CN=" + cn, nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func normalizeAccessType(s string) (string, error) {
	switch a := strings.ToLower(strings.TrimSpace(s)); a {
	case "":
		return AccessBoth, nil
	case AccessRead, AccessWrite, AccessBoth:
		return a, nil
	}
	return "", &ValidationError{Field: "accessType", Message: `must be "read", "write" or "both"`}
}

func normalizeFiles(in []string) ([]string, error) {
	if len(in) > maxListEntries {
		return nil, &ValidationError{Field: "allowedFiles", Message: fmt.Sprintf("at most %d entries", maxListEntries)}
	}
	var out []string
	for i, p := range in {
		if p == "" || len(p) > maxFilePatternLen || !utf8.ValidString(p) {
			return nil, &ValidationError{Field: "allowedFiles", Message: fmt.Sprintf("entry %d must be 1 to %d bytes of valid UTF-8", i, maxFilePatternLen)}
		}
		if _, err := path.Match(p, ""); err != nil {
			return nil, &ValidationError{Field: "allowedFiles", Message: fmt.Sprintf("entry %d (%q) is not a valid glob: %v", i, p, err)}
		}
		out = append(out, p)
	}
	return out, nil
}

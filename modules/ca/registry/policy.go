package registry

import (
	"fmt"
	"strings"
	"time"
)

// Protocol and sanity limits on passwords.
const (
	// MaxPasswordLength is the longest password accepted. It bounds the work
	// of hashing attacker-chosen input and is far above any real policy.
	MaxPasswordLength = 128
	// LegacyPasswordLength is the longest password a PeSIT peer can send:
	// PI 5 carries 8 characters.
	LegacyPasswordLength = 8
)

// Policy is the password policy applied when a partner's password is set.
// The zero Policy in a Registry stands for DefaultPolicy, so that a
// registry that was never configured is not left without rules.
type Policy struct {
	// MinLength is the minimum number of characters (default 12).
	MinLength int `json:"minLength,omitempty"`
	// RequireUpper requires at least one upper-case letter A-Z.
	RequireUpper bool `json:"requireUpper,omitempty"`
	// RequireLower requires at least one lower-case letter a-z.
	RequireLower bool `json:"requireLower,omitempty"`
	// RequireDigit requires at least one digit 0-9.
	RequireDigit bool `json:"requireDigit,omitempty"`
	// RequireSymbol requires at least one printable ASCII character that
	// is neither a letter, a digit nor a space.
	RequireSymbol bool `json:"requireSymbol,omitempty"`
	// History is the number of previous passwords that may not be reused
	// (default 5). The current password can never be set again.
	History int `json:"history,omitempty"`
	// MaxAge is how long a password stays valid after it was set (default
	// 90 days); 0 means passwords never expire. An expired password is
	// refused at authentication with reason password_expired.
	MaxAge time.Duration `json:"maxAge,omitempty"`
}

// DefaultPolicy returns the policy recommended by the PeSIT Wizard security
// guide: at least 12 characters mixing upper- and lower-case letters,
// digits and symbols, rotated every 90 days, no reuse of the last 5.
func DefaultPolicy() Policy {
	return Policy{
		MinLength:     12,
		RequireUpper:  true,
		RequireLower:  true,
		RequireDigit:  true,
		RequireSymbol: true,
		History:       5,
		MaxAge:        90 * 24 * time.Hour,
	}
}

// Validate reports whether the policy itself is usable, so that a
// configuration mistake is caught at start-up rather than on the first
// password change.
func (p Policy) Validate() error {
	switch {
	case p.MinLength < 0 || p.MinLength > MaxPasswordLength:
		return &ValidationError{Field: "minLength", Message: fmt.Sprintf("must be between 0 and %d", MaxPasswordLength)}
	case p.History < 0 || p.History > 100:
		return &ValidationError{Field: "history", Message: "must be between 0 and 100"}
	case p.MaxAge < 0:
		return &ValidationError{Field: "maxAge", Message: "must not be negative"}
	}
	return nil
}

// Check reports whether password satisfies the policy and the protocol
// limits that apply to every non-legacy password (printable ASCII, because
// PeSIT PI 5 is ASCII; at most MaxPasswordLength characters). The returned
// *ValidationError lists every unmet rule and never quotes the password.
func (p Policy) Check(password string) error {
	if password == "" {
		return &ValidationError{Field: "password", Message: "is required"}
	}
	if !printableASCII(password) {
		return &ValidationError{Field: "password", Message: "must contain only printable ASCII characters (PeSIT PI 5 is ASCII)"}
	}
	if len(password) > MaxPasswordLength {
		return &ValidationError{Field: "password", Message: fmt.Sprintf("must be at most %d characters", MaxPasswordLength)}
	}
	var upper, lower, digit, symbol bool
	for i := 0; i < len(password); i++ {
		switch c := password[i]; {
		case c >= 'A' && c <= 'Z':
			upper = true
		case c >= 'a' && c <= 'z':
			lower = true
		case c >= '0' && c <= '9':
			digit = true
		case c != ' ':
			symbol = true
		}
	}
	var missing []string
	if len(password) < p.MinLength {
		missing = append(missing, fmt.Sprintf("at least %d characters", p.MinLength))
	}
	if p.RequireUpper && !upper {
		missing = append(missing, "an upper-case letter (A-Z)")
	}
	if p.RequireLower && !lower {
		missing = append(missing, "a lower-case letter (a-z)")
	}
	if p.RequireDigit && !digit {
		missing = append(missing, "a digit (0-9)")
	}
	if p.RequireSymbol && !symbol {
		missing = append(missing, "a symbol (printable ASCII other than a letter, digit or space)")
	}
	if len(missing) > 0 {
		return &ValidationError{Field: "password", Message: "does not meet the password policy: it needs " + strings.Join(missing, ", ")}
	}
	return nil
}

// checkLegacyPassword applies the rules for partners flagged
// pesitLegacyPassword: 1 to 8 printable ASCII characters, exempt from the
// policy's length and character-class rules because PeSIT PI 5 cannot
// carry more.
func checkLegacyPassword(password string) error {
	switch {
	case password == "":
		return &ValidationError{Field: "password", Message: "is required"}
	case !printableASCII(password):
		return &ValidationError{Field: "password", Message: "must contain only printable ASCII characters (PeSIT PI 5 is ASCII)"}
	case len(password) > LegacyPasswordLength:
		return &ValidationError{Field: "password", Message: fmt.Sprintf(
			"a pesitLegacyPassword password must be 1 to %d characters, because PeSIT PI 5 carries %d",
			LegacyPasswordLength, LegacyPasswordLength)}
	case strings.HasSuffix(password, " "):
		// Peers pad PI 5 with blanks to 8 characters, so trailing blanks
		// cannot be told apart from padding.
		return &ValidationError{Field: "password", Message: "a pesitLegacyPassword password must not end with a space, because PeSIT pads PI 5 with spaces"}
	}
	return nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

package httpsig

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strings"
)

// ErrKeyID marks a keyId that cannot be parsed.
var ErrKeyID = errors.New("malformed keyId")

// KeyID names the certificate that made a signature: its serial number and,
// in the Berlin Group form, its issuer.
type KeyID struct {
	Serial *big.Int
	// Issuer is the CA= part after percent-decoding; empty in the Piraeus form.
	Issuer string
}

// ParseKeyID accepts the Berlin Group form "SN=<hex>,CA=<issuer DN>" (the DN
// may be percent-encoded, as in the Berlin Group examples) and the Piraeus
// form, a bare hexadecimal serial. Serials may carry colons or spaces, as
// openssl prints them.
func ParseKeyID(s string) (KeyID, error) {
	var k KeyID
	s = strings.TrimSpace(s)
	serial := s
	if len(s) >= 3 && strings.EqualFold(s[:3], "SN=") {
		rest := s[3:]
		if i := indexFold(rest, ",CA="); i >= 0 {
			serial, k.Issuer = rest[:i], rest[i+4:]
			if dec, err := url.PathUnescape(k.Issuer); err == nil {
				k.Issuer = dec
			}
			k.Issuer = strings.TrimSpace(k.Issuer)
			if k.Issuer == "" {
				return k, fmt.Errorf("%w: empty CA", ErrKeyID)
			}
		} else {
			serial = rest
		}
	}
	n, err := ParseSerial(serial)
	if err != nil {
		return k, err
	}
	k.Serial = n
	return k, nil
}

func indexFold(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}

// ParseSerial parses a hexadecimal serial number, ignoring case, colons,
// spaces and an optional 0x prefix.
func ParseSerial(s string) (*big.Int, error) {
	s = strings.TrimSpace(s)
	if len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X") {
		s = s[2:]
	}
	clean := strings.Map(func(r rune) rune {
		if r == ':' || r == ' ' {
			return -1
		}
		return r
	}, s)
	if clean == "" || len(clean) > 64 {
		return nil, fmt.Errorf("%w: serial %q is not 1 to 64 hex digits", ErrKeyID, s)
	}
	if _, err := hex.DecodeString(evenHex(clean)); err != nil {
		return nil, fmt.Errorf("%w: serial %q is not hexadecimal", ErrKeyID, s)
	}
	n, _ := new(big.Int).SetString(clean, 16)
	return n, nil
}

func evenHex(s string) string {
	if len(s)%2 == 1 {
		return "0" + s
	}
	return s
}

// Matches reports whether the keyId names c: the serial compared as a
// number, and the issuer, when given, compared as a distinguished name.
func (k KeyID) Matches(c *x509.Certificate) error {
	// A KeyID not made by ParseKeyID may lack a serial; refuse it rather
	// than panic in Cmp.
	if k.Serial == nil || c.SerialNumber == nil || k.Serial.Cmp(c.SerialNumber) != 0 {
		return fmt.Errorf("keyId serial %X does not match the certificate serial %X", k.Serial, c.SerialNumber)
	}
	if k.Issuer == "" {
		return nil
	}
	want, err := ParseDN(k.Issuer)
	if err != nil {
		return fmt.Errorf("keyId CA: %w", err)
	}
	var issuer pkix.RDNSequence
	if _, err := asn1.Unmarshal(c.RawIssuer, &issuer); err != nil {
		return fmt.Errorf("certificate issuer: %w", err)
	}
	if !sameAttributes(want, issuer) {
		return errors.New("keyId CA does not name the certificate issuer")
	}
	return nil
}

// String renders the Berlin Group form with a percent-encoded issuer, or the
// bare upper-case serial when there is no issuer.
func (k KeyID) String() string {
	sn := strings.ToUpper(k.Serial.Text(16))
	if k.Issuer == "" {
		return sn
	}
	// Spaces are encoded as the Berlin Group examples do; '%' must be
	// encoded too, or ParseKeyID's percent-decoding would change the name.
	return "SN=" + sn + ",CA=" + issuerEscaper.Replace(k.Issuer)
}

var issuerEscaper = strings.NewReplacer("%", "%25", " ", "%20")

// Package qcstatements encodes and decodes the qcStatements certificate
// extension (RFC 3739, ETSI EN 319 412-5) with the PSD2 statement of ETSI
// TS 119 495, and the organizationIdentifier subject attribute that carries a
// PSD2 authorisation number.
//
// Parsing is lenient where real certificates are known to deviate: unknown
// statements are ignored, roles whose OID this version does not know are
// kept apart (PSD2.Others) rather than refused, the role OID decides over the
// role name, and a single statement that is not wrapped in a SEQUENCE is
// accepted.
package qcstatements

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Object identifiers used by qualified PSD2 certificates.
var (
	OIDExtension              = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 3}
	OIDOrganizationIdentifier = asn1.ObjectIdentifier{2, 5, 4, 97}

	OIDQcCompliance   = asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 1}
	OIDQcSSCD         = asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 4}
	OIDQcPDS          = asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 5}
	OIDQcType         = asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 6}
	OIDQcTypeESign    = asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 6, 1}
	OIDQcTypeESeal    = asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 6, 2}
	OIDQcTypeWeb      = asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 6, 3}
	OIDPKIXQCSyntax2  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 11, 2}
	OIDSemanticsLegal = asn1.ObjectIdentifier{0, 4, 0, 194121, 1, 2}

	OIDPSD2 = asn1.ObjectIdentifier{0, 4, 0, 19495, 2}
)

// Role is a PSD2 role of a payment service provider, named as in
// ETSI TS 119 495 (PSP_AS, PSP_PI, PSP_AI, PSP_IC).
type Role string

// The PSD2 roles defined by ETSI TS 119 495.
const (
	RoleAS Role = "PSP_AS" // account servicing (ASPSP)
	RolePI Role = "PSP_PI" // payment initiation (PISP)
	RoleAI Role = "PSP_AI" // account information (AISP)
	RoleIC Role = "PSP_IC" // issuing of card-based payment instruments (CBPII)
)

var roleOIDs = map[Role]asn1.ObjectIdentifier{
	RoleAS: {0, 4, 0, 19495, 1, 1},
	RolePI: {0, 4, 0, 19495, 1, 2},
	RoleAI: {0, 4, 0, 19495, 1, 3},
	RoleIC: {0, 4, 0, 19495, 1, 4},
}

// ParseRole returns the role with the given name, accepting only the four
// roles of ETSI TS 119 495.
func ParseRole(name string) (Role, error) {
	r := Role(name)
	if _, ok := roleOIDs[r]; !ok {
		return "", fmt.Errorf("unknown PSD2 role %q (want PSP_AS, PSP_PI, PSP_AI or PSP_IC)", name)
	}
	return r, nil
}

// OID returns the object identifier of a known role, or nil.
func (r Role) OID() asn1.ObjectIdentifier { return roleOIDs[r] }

func roleForOID(oid asn1.ObjectIdentifier) (Role, bool) {
	for r, o := range roleOIDs {
		if o.Equal(oid) {
			return r, true
		}
	}
	return "", false
}

// QcType is the type of a qualified certificate (EN 319 412-5 QcType).
type QcType int

// The QcType values.
const (
	QcTypeUnknown QcType = iota
	QcTypeESign
	QcTypeESeal
	QcTypeWeb
)

func (t QcType) String() string {
	switch t {
	case QcTypeESign:
		return "esign"
	case QcTypeESeal:
		return "eseal"
	case QcTypeWeb:
		return "web"
	}
	return "unknown"
}

// PSD2 is the PSD2QcType statement: the roles granted by the national
// competent authority (NCA), and that authority's name and identifier.
type PSD2 struct {
	// Roles are the roles of ETSI TS 119 495 that this version knows,
	// identified by their OID.
	Roles []Role
	// Others are the roles whose OID this version does not know (roles
	// of later versions of TS 119 495 or of an NCA, such as PSP_CB,
	// PSP_PA, VOP_RS or VOP_VS). They grant nothing a known role is
	// needed for; they are kept so that they can be carried upstream.
	Others  []OtherRole
	NCAName string
	NCAID   string
}

// OtherRole is a RoleOfPSP whose OID this version does not know.
type OtherRole struct {
	OID asn1.ObjectIdentifier
	// Name is the roleOfPspName as the certificate spells it.
	Name string
}

// maxRoleLabel bounds the length of a role name carried as a label.
const maxRoleLabel = 64

// Label is the name the role is carried by: its roleOfPspName when that is
// a plain word (letters, digits, '_', '-' and '.', at most 64) and not the
// name of a known role, which it must not pose as; otherwise its OID in
// dotted form.
func (r OtherRole) Label() string {
	ok := r.Name != "" && len(r.Name) <= maxRoleLabel
	for i := 0; ok && i < len(r.Name); i++ {
		c := r.Name[i]
		ok = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.'
	}
	if ok {
		for known := range roleOIDs {
			if strings.EqualFold(r.Name, string(known)) {
				ok = false
			}
		}
	}
	if ok {
		return r.Name
	}
	return r.OID.String()
}

// HasRole reports whether r is among the roles.
func (p *PSD2) HasRole(r Role) bool {
	for _, have := range p.Roles {
		if have == r {
			return true
		}
	}
	return false
}

func (p *PSD2) hasOther(oid asn1.ObjectIdentifier) bool {
	for _, o := range p.Others {
		if o.OID.Equal(oid) {
			return true
		}
	}
	return false
}

// PDSLocation is one entry of the QcPDS statement.
type PDSLocation struct {
	URL      string
	Language string
}

// Statements is the decoded content of a qcStatements extension. Statements
// that are not listed here are skipped when parsing.
type Statements struct {
	Compliance  bool
	SSCD        bool
	LegalPerson bool
	Types       []QcType
	PDS         []PDSLocation
	PSD2        *PSD2
}

// HasType reports whether the QcType statement lists t.
func (s *Statements) HasType(t QcType) bool {
	for _, have := range s.Types {
		if have == t {
			return true
		}
	}
	return false
}

// Errors returned by Parse.
var (
	ErrMalformed = errors.New("malformed qcStatements")
)

// maxExtensionLen bounds the input so that a hostile certificate cannot make
// the parser walk megabytes of nested structures.
const maxExtensionLen = 16 << 10

// Parse decodes the value (the OCTET STRING content) of a qcStatements
// extension.
func Parse(der []byte) (Statements, error) {
	var st Statements
	if len(der) > maxExtensionLen {
		return st, fmt.Errorf("%w: extension is %d bytes", ErrMalformed, len(der))
	}
	input := cryptobyte.String(der)
	var outer cryptobyte.String
	if !input.ReadASN1(&outer, cbasn1.SEQUENCE) || !input.Empty() {
		return st, fmt.Errorf("%w: not a SEQUENCE", ErrMalformed)
	}
	// Some issuers encode a single statement without the SEQUENCE OF wrapper.
	if outer.PeekASN1Tag(cbasn1.OBJECT_IDENTIFIER) {
		if err := st.addStatement(outer); err != nil {
			return st, err
		}
		return st, nil
	}
	for !outer.Empty() {
		var stmt cryptobyte.String
		if !outer.ReadASN1(&stmt, cbasn1.SEQUENCE) {
			return st, fmt.Errorf("%w: statement is not a SEQUENCE", ErrMalformed)
		}
		if err := st.addStatement(stmt); err != nil {
			return st, err
		}
	}
	return st, nil
}

// addStatement decodes the body of one QCStatement: an OID and an optional
// statementInfo.
func (st *Statements) addStatement(stmt cryptobyte.String) error {
	var oid asn1.ObjectIdentifier
	if !stmt.ReadASN1ObjectIdentifier(&oid) {
		return fmt.Errorf("%w: statement without an OID", ErrMalformed)
	}
	var info cryptobyte.String
	var hasInfo bool
	if !stmt.Empty() {
		var tag cbasn1.Tag
		if !stmt.ReadAnyASN1Element(&info, &tag) || !stmt.Empty() {
			return fmt.Errorf("%w: statement %s has trailing data", ErrMalformed, oid)
		}
		hasInfo = true
	}
	switch {
	case oid.Equal(OIDQcCompliance):
		st.Compliance = true
	case oid.Equal(OIDQcSSCD):
		st.SSCD = true
	case oid.Equal(OIDPKIXQCSyntax2):
		if hasInfo {
			var sem cryptobyte.String
			var semID asn1.ObjectIdentifier
			if info.ReadASN1(&sem, cbasn1.SEQUENCE) && sem.PeekASN1Tag(cbasn1.OBJECT_IDENTIFIER) &&
				sem.ReadASN1ObjectIdentifier(&semID) && semID.Equal(OIDSemanticsLegal) {
				st.LegalPerson = true
			}
		}
	case oid.Equal(OIDQcType):
		if !hasInfo {
			return fmt.Errorf("%w: QcType without types", ErrMalformed)
		}
		var types cryptobyte.String
		if !info.ReadASN1(&types, cbasn1.SEQUENCE) {
			return fmt.Errorf("%w: QcType is not a SEQUENCE OF OID", ErrMalformed)
		}
		for !types.Empty() {
			var t asn1.ObjectIdentifier
			if !types.ReadASN1ObjectIdentifier(&t) {
				return fmt.Errorf("%w: QcType entry is not an OID", ErrMalformed)
			}
			switch {
			case t.Equal(OIDQcTypeESign):
				st.Types = append(st.Types, QcTypeESign)
			case t.Equal(OIDQcTypeESeal):
				st.Types = append(st.Types, QcTypeESeal)
			case t.Equal(OIDQcTypeWeb):
				st.Types = append(st.Types, QcTypeWeb)
			default:
				st.Types = append(st.Types, QcTypeUnknown)
			}
		}
	case oid.Equal(OIDQcPDS):
		if !hasInfo {
			return fmt.Errorf("%w: QcPDS without locations", ErrMalformed)
		}
		pds, err := parsePDS(info)
		if err != nil {
			return err
		}
		st.PDS = pds
	case oid.Equal(OIDPSD2):
		if !hasInfo {
			return fmt.Errorf("%w: PSD2 statement without PSD2QcType", ErrMalformed)
		}
		p, err := parsePSD2(info)
		if err != nil {
			return err
		}
		st.PSD2 = &p
	}
	return nil
}

func parsePDS(info cryptobyte.String) ([]PDSLocation, error) {
	var list cryptobyte.String
	if !info.ReadASN1(&list, cbasn1.SEQUENCE) {
		return nil, fmt.Errorf("%w: QcPDS is not a SEQUENCE", ErrMalformed)
	}
	var out []PDSLocation
	for !list.Empty() {
		var loc cryptobyte.String
		var url, lang string
		if !list.ReadASN1(&loc, cbasn1.SEQUENCE) || !readString(&loc, &url) || !readString(&loc, &lang) {
			return nil, fmt.Errorf("%w: bad QcPDS location", ErrMalformed)
		}
		out = append(out, PDSLocation{URL: url, Language: lang})
	}
	return out, nil
}

func parsePSD2(info cryptobyte.String) (PSD2, error) {
	var p PSD2
	var body, roles cryptobyte.String
	if !info.ReadASN1(&body, cbasn1.SEQUENCE) || !body.ReadASN1(&roles, cbasn1.SEQUENCE) {
		return p, fmt.Errorf("%w: PSD2QcType is not SEQUENCE { SEQUENCE OF RoleOfPSP, … }", ErrMalformed)
	}
	for !roles.Empty() {
		var role cryptobyte.String
		var oid asn1.ObjectIdentifier
		var name string
		if !roles.ReadASN1(&role, cbasn1.SEQUENCE) || !role.ReadASN1ObjectIdentifier(&oid) || !readString(&role, &name) {
			return p, fmt.Errorf("%w: bad RoleOfPSP", ErrMalformed)
		}
		// The OID decides; a mismatching name is tolerated. Roles this
		// version does not know come from later versions of TS 119 495 or
		// from NCAs: kept apart, not refused.
		if r, ok := roleForOID(oid); ok {
			if !p.HasRole(r) {
				p.Roles = append(p.Roles, r)
			}
		} else if !p.hasOther(oid) {
			p.Others = append(p.Others, OtherRole{OID: oid, Name: name})
		}
	}
	if !readString(&body, &p.NCAName) || !readString(&body, &p.NCAID) {
		return p, fmt.Errorf("%w: PSD2QcType lacks nCAName or nCAId", ErrMalformed)
	}
	return p, nil
}

// readString reads a UTF8String, PrintableString or IA5String.
func readString(s *cryptobyte.String, out *string) bool {
	var v cryptobyte.String
	var tag cbasn1.Tag
	if !s.ReadAnyASN1(&v, &tag) {
		return false
	}
	switch tag {
	case cbasn1.UTF8String, cbasn1.PrintableString, cbasn1.IA5String:
		*out = string(v)
		return true
	}
	return false
}

// FromCertificate finds and decodes the qcStatements extension of c. present
// is false when the certificate has no such extension.
func FromCertificate(c *x509.Certificate) (st Statements, present bool, err error) {
	for _, ext := range c.Extensions {
		if ext.Id.Equal(OIDExtension) {
			st, err = Parse(ext.Value)
			return st, true, err
		}
	}
	return st, false, nil
}

// Marshal encodes s as the value of a qcStatements extension, in the order
// used by ETSI examples: semantics, compliance, SSCD, type, PDS, PSD2.
func Marshal(s Statements) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		if s.LegalPerson {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(OIDPKIXQCSyntax2)
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(OIDSemanticsLegal)
				})
			})
		}
		if s.Compliance {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(OIDQcCompliance) })
		}
		if s.SSCD {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(OIDQcSSCD) })
		}
		if len(s.Types) > 0 {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(OIDQcType)
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					for _, t := range s.Types {
						switch t {
						case QcTypeESign:
							b.AddASN1ObjectIdentifier(OIDQcTypeESign)
						case QcTypeESeal:
							b.AddASN1ObjectIdentifier(OIDQcTypeESeal)
						case QcTypeWeb:
							b.AddASN1ObjectIdentifier(OIDQcTypeWeb)
						default:
							b.SetError(fmt.Errorf("cannot encode QcType %d", t))
						}
					}
				})
			})
		}
		if len(s.PDS) > 0 {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(OIDQcPDS)
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					for _, l := range s.PDS {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1(cbasn1.IA5String, func(b *cryptobyte.Builder) { b.AddBytes([]byte(l.URL)) })
							b.AddASN1(cbasn1.PrintableString, func(b *cryptobyte.Builder) { b.AddBytes([]byte(l.Language)) })
						})
					}
				})
			})
		}
		if s.PSD2 != nil {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(OIDPSD2)
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						for _, r := range s.PSD2.Roles {
							oid := r.OID()
							if oid == nil {
								b.SetError(fmt.Errorf("cannot encode unknown role %q", r))
								return
							}
							b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
								b.AddASN1ObjectIdentifier(oid)
								addUTF8(b, string(r))
							})
						}
						for _, r := range s.PSD2.Others {
							b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
								b.AddASN1ObjectIdentifier(r.OID)
								addUTF8(b, r.Name)
							})
						}
					})
					addUTF8(b, s.PSD2.NCAName)
					addUTF8(b, s.PSD2.NCAID)
				})
			})
		}
	})
	return b.Bytes()
}

func addUTF8(b *cryptobyte.Builder, s string) {
	if s == "" {
		b.SetError(errors.New("PSD2QcType strings must not be empty"))
		return
	}
	b.AddASN1(cbasn1.UTF8String, func(b *cryptobyte.Builder) { b.AddBytes([]byte(s)) })
}

// Extension wraps Marshal's output as a certificate extension.
func Extension(s Statements, critical bool) (pkix.Extension, error) {
	v, err := Marshal(s)
	if err != nil {
		return pkix.Extension{}, fmt.Errorf("encoding qcStatements: %w", err)
	}
	return pkix.Extension{Id: OIDExtension, Critical: critical, Value: v}, nil
}

// OrganizationIdentifier returns the organizationIdentifier (2.5.4.97)
// attribute of a name, which Go's pkix.Name has no field for.
func OrganizationIdentifier(n pkix.Name) string {
	for _, atv := range n.Names {
		if atv.Type.Equal(OIDOrganizationIdentifier) {
			if s, ok := atv.Value.(string); ok {
				return s
			}
		}
	}
	return ""
}

// The number after the NCA id may itself contain hyphens or dots, so only the
// first two separators are structural.
var orgIDPattern = regexp.MustCompile(`^PSD([A-Z]{2})-([A-Z]{2,8})-(.+)$`)

// OrgID is a parsed PSD2 organizationIdentifier, e.g. PSDGR-BOG-123456.
type OrgID struct {
	Country       string // ISO 3166 code of the NCA, e.g. GR
	NCA           string // NCA abbreviation, e.g. BOG
	Authorisation string // authorisation number issued by the NCA
}

// NCAID returns the NCA identifier as it appears in PSD2QcType, e.g. GR-BOG.
func (o OrgID) NCAID() string { return o.Country + "-" + o.NCA }

// ParseOrgID parses a PSD2 organizationIdentifier ("PSD" + country + "-" +
// NCA + "-" + authorisation number).
func ParseOrgID(s string) (OrgID, error) {
	m := orgIDPattern.FindStringSubmatch(s)
	if m == nil {
		return OrgID{}, fmt.Errorf("organizationIdentifier %q is not of the form PSDXX-NCA-ID", s)
	}
	return OrgID{Country: m[1], NCA: m[2], Authorisation: m[3]}, nil
}

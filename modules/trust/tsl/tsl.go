// Package tsl reads ETSI TS 119 612 trusted lists: the EU List of Trusted
// Lists (LOTL) and the national lists it points to. It verifies their
// enveloped XML signatures against certificates given by the caller, parses
// only the signed bytes, and selects the qualified CA certificates that a
// QWAC or QSealC must chain to. It has no Caddy imports.
package tsl

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// URIs of ETSI TS 119 612.
const (
	// Namespace is the namespace of a trusted list.
	Namespace = "http://uri.etsi.org/02231/v2#"
	// TypeLOTL is the TSLType of the EU list of the lists.
	TypeLOTL = "http://uri.etsi.org/TrstSvc/TrustedList/TSLType/EUlistofthelists"
	// TypeEUGeneric is the TSLType of an EU member state's list.
	TypeEUGeneric = "http://uri.etsi.org/TrstSvc/TrustedList/TSLType/EUgeneric"
	// MimeTypeXML marks the pointer to the XML form of a list.
	MimeTypeXML = "application/vnd.etsi.tsl+xml"
	// ServiceTypeCAQC is a CA issuing qualified certificates.
	ServiceTypeCAQC = "http://uri.etsi.org/TrstSvc/Svctype/CA/QC"
	// StatusGranted is the current status of a qualified service in force.
	StatusGranted = "http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/granted"
	// StatusWithdrawn is the status of a service no longer qualified.
	StatusWithdrawn = "http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/withdrawn"
	// ForWebSiteAuthentication marks a CA/QC service issuing QWACs.
	ForWebSiteAuthentication = "http://uri.etsi.org/TrstSvc/TrustedList/SvcInfoExt/ForWebSiteAuthentication"
	// ForESeals marks a CA/QC service issuing qualified seal certificates.
	ForESeals = "http://uri.etsi.org/TrstSvc/TrustedList/SvcInfoExt/ForeSeals"
	// ForESignatures marks a CA/QC service issuing qualified signature
	// certificates.
	ForESignatures = "http://uri.etsi.org/TrstSvc/TrustedList/SvcInfoExt/ForeSignatures"
)

// Usage is what a qualified CA must be listed for.
type Usage string

// The usages of the eu_trusted_list pool.
const (
	// UsageWeb selects CAs listed ForWebSiteAuthentication (QWACs).
	UsageWeb Usage = "web"
	// UsageESeal selects CAs listed ForeSeals (QSealCs).
	UsageESeal Usage = "eseal"
)

// URI returns the AdditionalServiceInformation URI of u.
func (u Usage) URI() (string, error) {
	switch u {
	case UsageWeb:
		return ForWebSiteAuthentication, nil
	case UsageESeal:
		return ForESeals, nil
	}
	return "", fmt.Errorf("unknown service %q: want web or eseal", string(u))
}

// List is a parsed trusted list.
type List struct {
	// Type is the TSLType URI.
	Type string
	// Territory is the SchemeTerritory ("EU" for the LOTL, "EL" for Greece).
	Territory string
	// SequenceNumber is TSLSequenceNumber; it grows with every issue.
	SequenceNumber int
	// Operator is the scheme operator's name.
	Operator string
	// IssueDate is ListIssueDateTime.
	IssueDate time.Time
	// NextUpdate is when the next issue is due; zero for a closed list.
	NextUpdate time.Time
	// Pointers are the pointers to other lists (the LOTL's national lists).
	Pointers []Pointer
	// Providers are the trust service providers of a national list.
	Providers []Provider
}

// Pointer is an OtherTSLPointer.
type Pointer struct {
	// Location is TSLLocation, the URL of the list.
	Location string
	// Territory is the pointed list's SchemeTerritory.
	Territory string
	// Type is the pointed list's TSLType.
	Type string
	// MimeType tells the XML pointer from the PDF one.
	MimeType string
	// Certificates may sign the pointed list.
	Certificates []*x509.Certificate
}

// Provider is a trust service provider (a QTSP for qualified services).
type Provider struct {
	// Name is the TSPName (English when the list has it).
	Name string
	// Services are its trust services.
	Services []Service
}

// Service is a trust service in its current state.
type Service struct {
	// Type is ServiceTypeIdentifier.
	Type string
	// Name is ServiceName (English when the list has it).
	Name string
	// Status is the current ServiceStatus.
	Status string
	// StatusStart is StatusStartingTime.
	StatusStart time.Time
	// AdditionalInfo are the AdditionalServiceInformation URIs.
	AdditionalInfo []string
	// Certificates are the X509Certificate digital identities.
	Certificates []*x509.Certificate
}

// Qualifies reports whether s is a granted CA/QC service listed for u.
func (s *Service) Qualifies(u Usage) bool {
	uri, err := u.URI()
	if err != nil || s.Type != ServiceTypeCAQC || s.Status != StatusGranted {
		return false
	}
	for _, ai := range s.AdditionalInfo {
		if ai == uri {
			return true
		}
	}
	return false
}

// Expired reports whether the list is past its NextUpdate plus grace. A list
// without NextUpdate is closed, hence expired.
func (l *List) Expired(now time.Time, grace time.Duration) bool {
	return l.NextUpdate.IsZero() || now.After(l.NextUpdate.Add(grace))
}

// XMLPointers returns the LOTL's pointers to national lists in XML.
func (l *List) XMLPointers() []Pointer {
	var out []Pointer
	for _, p := range l.Pointers {
		if p.MimeType == MimeTypeXML && p.Type != TypeLOTL {
			out = append(out, p)
		}
	}
	return out
}

// maxListSize bounds what Parse accepts; the largest national lists are a
// few megabytes.
const maxListSize = 64 << 20

// Parse reads a trusted list. Give it the Signed bytes of VerifyEnveloped:
// Parse itself checks no signature.
func Parse(data []byte) (*List, error) {
	if len(data) > maxListSize {
		return nil, fmt.Errorf("trusted list of %d bytes is larger than %d", len(data), maxListSize)
	}
	var x xmlTSL
	dec := xml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&x); err != nil {
		return nil, fmt.Errorf("parsing trusted list: %w", err)
	}
	if x.XMLName.Space != Namespace || x.XMLName.Local != "TrustServiceStatusList" {
		return nil, fmt.Errorf("root element is {%s}%s, not a TS 119 612 TrustServiceStatusList", x.XMLName.Space, x.XMLName.Local)
	}
	si := x.SchemeInformation
	l := &List{
		Type:      strings.TrimSpace(si.TSLType),
		Territory: strings.TrimSpace(si.SchemeTerritory),
		Operator:  pickName(si.SchemeOperatorName),
	}
	var err error
	if l.SequenceNumber, err = strconv.Atoi(strings.TrimSpace(si.TSLSequenceNumber)); err != nil || l.SequenceNumber < 1 {
		return nil, fmt.Errorf("TSLSequenceNumber %q is not a positive integer", si.TSLSequenceNumber)
	}
	if l.IssueDate, err = parseTime(si.ListIssueDateTime); err != nil {
		return nil, fmt.Errorf("ListIssueDateTime: %w", err)
	}
	if s := strings.TrimSpace(si.NextUpdate.DateTime); s != "" {
		if l.NextUpdate, err = parseTime(s); err != nil {
			return nil, fmt.Errorf("NextUpdate: %w", err)
		}
	}
	for i, p := range si.Pointers {
		ptr := Pointer{Location: strings.TrimSpace(p.TSLLocation)}
		for _, oi := range p.OtherInformation {
			switch {
			case oi.TSLType != "":
				ptr.Type = strings.TrimSpace(oi.TSLType)
			case oi.SchemeTerritory != "":
				ptr.Territory = strings.TrimSpace(oi.SchemeTerritory)
			case oi.MimeType != "":
				ptr.MimeType = strings.TrimSpace(oi.MimeType)
			}
		}
		for _, sdi := range p.Identities {
			certs, err := parseDigitalIDs(sdi.DigitalIDs)
			if err != nil {
				return nil, fmt.Errorf("pointer %d (%s): %w", i+1, ptr.Territory, err)
			}
			ptr.Certificates = append(ptr.Certificates, certs...)
		}
		l.Pointers = append(l.Pointers, ptr)
	}
	for _, tsp := range x.Providers {
		prov := Provider{Name: pickName(tsp.Names)}
		for _, svc := range tsp.Services {
			info := svc.Info
			s := Service{
				Type:   strings.TrimSpace(info.Type),
				Name:   pickName(info.Names),
				Status: strings.TrimSpace(info.Status),
			}
			if info.StatusStart != "" {
				if s.StatusStart, err = parseTime(info.StatusStart); err != nil {
					return nil, fmt.Errorf("service %q StatusStartingTime: %w", s.Name, err)
				}
			}
			for _, ext := range info.Extensions {
				for _, u := range ext.AdditionalInfo {
					s.AdditionalInfo = append(s.AdditionalInfo, strings.TrimSpace(u))
				}
			}
			if s.Certificates, err = parseDigitalIDs(info.Identity.DigitalIDs); err != nil {
				return nil, fmt.Errorf("service %q of %q: %w", s.Name, prov.Name, err)
			}
			prov.Services = append(prov.Services, s)
		}
		l.Providers = append(l.Providers, prov)
	}
	return l, nil
}

func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		// xsd:dateTime without a zone; lists are in UTC.
		if t, err = time.Parse("2006-01-02T15:04:05", s); err != nil {
			return time.Time{}, fmt.Errorf("%q is not an xsd:dateTime", s)
		}
	}
	return t.UTC(), nil
}

// pickName returns the English name, else the first.
func pickName(names []xmlName) string {
	for _, n := range names {
		if strings.EqualFold(n.Lang, "en") {
			return strings.TrimSpace(n.Value)
		}
	}
	if len(names) > 0 {
		return strings.TrimSpace(names[0].Value)
	}
	return ""
}

func parseDigitalIDs(ids []xmlDigitalID) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for _, id := range ids {
		if id.X509Certificate == "" {
			continue // X509SubjectName, X509SKI: names of a certificate given elsewhere
		}
		der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(id.X509Certificate), ""))
		if err != nil {
			return nil, errors.New("X509Certificate is not base64")
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("X509Certificate: %w", err)
		}
		out = append(out, cert)
	}
	return out, nil
}

// The XML form. Element names only, so that prefixes do not matter; the
// root's namespace is checked in Parse.
type xmlTSL struct {
	XMLName           xml.Name             `xml:"TrustServiceStatusList"`
	SchemeInformation xmlSchemeInformation `xml:"SchemeInformation"`
	Providers         []xmlTSP             `xml:"TrustServiceProviderList>TrustServiceProvider"`
}

type xmlSchemeInformation struct {
	TSLSequenceNumber  string        `xml:"TSLSequenceNumber"`
	TSLType            string        `xml:"TSLType"`
	SchemeOperatorName []xmlName     `xml:"SchemeOperatorName>Name"`
	SchemeTerritory    string        `xml:"SchemeTerritory"`
	Pointers           []xmlPointer  `xml:"PointersToOtherTSL>OtherTSLPointer"`
	ListIssueDateTime  string        `xml:"ListIssueDateTime"`
	NextUpdate         xmlNextUpdate `xml:"NextUpdate"`
}

type xmlNextUpdate struct {
	DateTime string `xml:"dateTime"`
}

type xmlName struct {
	Lang  string `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
	Value string `xml:",chardata"`
}

type xmlPointer struct {
	Identities       []xmlServiceDigitalIdentity `xml:"ServiceDigitalIdentities>ServiceDigitalIdentity"`
	TSLLocation      string                      `xml:"TSLLocation"`
	OtherInformation []xmlOtherInformation       `xml:"AdditionalInformation>OtherInformation"`
}

type xmlOtherInformation struct {
	TSLType         string `xml:"TSLType"`
	SchemeTerritory string `xml:"SchemeTerritory"`
	MimeType        string `xml:"MimeType"`
}

type xmlServiceDigitalIdentity struct {
	DigitalIDs []xmlDigitalID `xml:"DigitalId"`
}

type xmlDigitalID struct {
	X509Certificate string `xml:"X509Certificate"`
}

type xmlTSP struct {
	Names    []xmlName    `xml:"TSPInformation>TSPName>Name"`
	Services []xmlService `xml:"TSPServices>TSPService"`
}

type xmlService struct {
	Info xmlServiceInformation `xml:"ServiceInformation"`
}

type xmlServiceInformation struct {
	Type        string                    `xml:"ServiceTypeIdentifier"`
	Names       []xmlName                 `xml:"ServiceName>Name"`
	Identity    xmlServiceDigitalIdentity `xml:"ServiceDigitalIdentity"`
	Status      string                    `xml:"ServiceStatus"`
	StatusStart string                    `xml:"StatusStartingTime"`
	Extensions  []xmlExtension            `xml:"ServiceInformationExtensions>Extension"`
}

type xmlExtension struct {
	AdditionalInfo []string `xml:"AdditionalServiceInformation>URI"`
}

// ParseSigned verifies the enveloped signature of doc against signers and
// parses the signed bytes.
func ParseSigned(doc []byte, signers []*x509.Certificate) (*List, *Verified, error) {
	v, err := VerifyEnveloped(doc, signers)
	if err != nil {
		return nil, nil, fmt.Errorf("signature: %w", err)
	}
	l, err := Parse(v.Signed)
	if err != nil {
		return nil, nil, err
	}
	// The signer certificate must have been valid when the list was issued.
	if l.IssueDate.Before(v.Signer.NotBefore) || l.IssueDate.After(v.Signer.NotAfter) {
		return nil, nil, fmt.Errorf("signer certificate %q was not valid at the list's issue date %s",
			v.Signer.Subject.CommonName, l.IssueDate.Format(time.RFC3339))
	}
	return l, v, nil
}

// ParseCertificatesPEM reads every CERTIFICATE block of PEM data, such as
// the LOTL signer certificates of the Official Journal.
func ParseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return out, nil
}

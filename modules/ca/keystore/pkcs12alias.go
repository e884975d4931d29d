package keystore

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash"
	"unicode/utf16"
)

// go-pkcs12 writes no friendlyName, so Java names the key entry "1". A
// PKCS#12 key entry's alias is the friendlyName attribute of its key bag
// (RFC 7292 §4.2, PKCS #9); setKeyFriendlyName adds it to an encoded PFX
// and computes its MAC again. The key bag sits in the unencrypted
// SafeContents (it is shrouded on its own), so nothing is decrypted.

var (
	oidDataContentType = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidKeyBag          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 1}
	oidShroudedKeyBag  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 2}
	oidFriendlyName    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 20}
	oidSHA1            = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256          = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
)

type pfxPdu struct {
	Version  int
	AuthSafe contentInfo
	MacData  macData `asn1:"optional"`
}

type contentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"tag:0,explicit,optional"`
}

type macData struct {
	Mac        digestInfo
	MacSalt    []byte
	Iterations int `asn1:"optional,default:1"`
}

type digestInfo struct {
	Algorithm pkix.AlgorithmIdentifier
	Digest    []byte
}

type safeBag struct {
	ID         asn1.ObjectIdentifier
	Value      asn1.RawValue     `asn1:"tag:0,explicit"`
	Attributes []pkcs12Attribute `asn1:"set,optional"`
}

type pkcs12Attribute struct {
	ID    asn1.ObjectIdentifier
	Value asn1.RawValue `asn1:"set"`
}

// bmpString encodes s as UTF-16 big-endian, the BMPString of ASN.1.
func bmpString(s string) []byte {
	var out []byte
	for _, u := range utf16.Encode([]rune(s)) {
		out = append(out, byte(u>>8), byte(u))
	}
	return out
}

// setKeyFriendlyName returns pfx with friendlyName name on its key bag.
func setKeyFriendlyName(pfx []byte, password, name string) ([]byte, error) {
	var p pfxPdu
	if rest, err := asn1.Unmarshal(pfx, &p); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("reading the PFX: %v", err)
	}
	var authSafeDER []byte
	if _, err := asn1.Unmarshal(p.AuthSafe.Content.Bytes, &authSafeDER); err != nil {
		return nil, fmt.Errorf("reading the authenticated safe: %w", err)
	}
	var safes []contentInfo
	if _, err := asn1.Unmarshal(authSafeDER, &safes); err != nil {
		return nil, fmt.Errorf("reading the authenticated safe: %w", err)
	}
	nameValue, err := asn1.Marshal(asn1.RawValue{Tag: asn1.TagBMPString, Bytes: bmpString(name)})
	if err != nil {
		return nil, err
	}
	found := false
	for i, ci := range safes {
		if !ci.ContentType.Equal(oidDataContentType) {
			continue // the encrypted certificates
		}
		var data []byte
		if _, err := asn1.Unmarshal(ci.Content.Bytes, &data); err != nil {
			return nil, fmt.Errorf("reading a SafeContents: %w", err)
		}
		var bags []safeBag
		if _, err := asn1.Unmarshal(data, &bags); err != nil {
			return nil, fmt.Errorf("reading a SafeContents: %w", err)
		}
		for j := range bags {
			if bags[j].ID.Equal(oidShroudedKeyBag) || bags[j].ID.Equal(oidKeyBag) {
				bags[j].Attributes = append(bags[j].Attributes, pkcs12Attribute{
					ID:    oidFriendlyName,
					Value: asn1.RawValue{Tag: asn1.TagSet, IsCompound: true, Bytes: nameValue},
				})
				found = true
			}
		}
		if data, err = asn1.Marshal(bags); err != nil {
			return nil, err
		}
		octets, err := asn1.Marshal(data)
		if err != nil {
			return nil, err
		}
		safes[i].Content = asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: octets}
	}
	if !found {
		return nil, errors.New("the PFX has no key bag")
	}
	if authSafeDER, err = asn1.Marshal(safes); err != nil {
		return nil, err
	}
	octets, err := asn1.Marshal(authSafeDER)
	if err != nil {
		return nil, err
	}
	p.AuthSafe.Content = asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: octets}
	if err := p.MacData.compute(authSafeDER, password); err != nil {
		return nil, err
	}
	return asn1.Marshal(p)
}

// compute sets the MAC of content (RFC 7292 §5, appendix B): HMAC keyed
// with the PKCS#12 KDF of the password (ID 3), with the digest the encoder
// chose.
func (m *macData) compute(content []byte, password string) error {
	var h func() hash.Hash
	switch alg := m.Mac.Algorithm.Algorithm; {
	case alg.Equal(oidSHA256):
		h = sha256.New
	case alg.Equal(oidSHA1):
		h = sha1.New
	default:
		return fmt.Errorf("unsupported PKCS#12 MAC algorithm %v", alg)
	}
	// The password is a zero-terminated BMPString.
	pw := append(bmpString(password), 0, 0)
	defer clear(pw)
	key := pkcs12KDF(h, m.MacSalt, pw, m.Iterations, 3, h().Size())
	mac := hmac.New(h, key)
	mac.Write(content)
	m.Mac.Digest = mac.Sum(nil)
	return nil
}

// pkcs12KDF is the key derivation of RFC 7292 appendix B.2.
func pkcs12KDF(h func() hash.Hash, salt, password []byte, iterations int, id byte, size int) []byte {
	v := h().BlockSize()
	fill := func(b []byte) []byte {
		if len(b) == 0 {
			return nil
		}
		out := make([]byte, v*((len(b)+v-1)/v))
		for i := range out {
			out[i] = b[i%len(b)]
		}
		return out
	}
	d := make([]byte, v)
	for i := range d {
		d[i] = id
	}
	in := append(fill(salt), fill(password)...)
	var out []byte
	for len(out) < size {
		hh := h()
		hh.Write(d)
		hh.Write(in)
		a := hh.Sum(nil)
		for range iterations - 1 {
			hh.Reset()
			hh.Write(a)
			a = hh.Sum(a[:0])
		}
		out = append(out, a...)
		if len(out) >= size {
			break
		}
		// I_j = (I_j + B + 1) mod 2^(8v), with B = A repeated to v bytes.
		b := fill(a)
		for j := 0; j < len(in); j += v {
			carry := 1
			for k := v - 1; k >= 0; k-- {
				s := int(in[j+k]) + int(b[k]) + carry
				in[j+k], carry = byte(s), s>>8
			}
		}
	}
	return out[:size]
}

package fpdu

import (
	"bytes"
	"fmt"
)

// PreConnectionLen is the size of the pre-connection string, without its
// optional 2-byte prefix.
const PreConnectionLen = 24

// preConnectionTag is "PESIT   " in EBCDIC, the first 8 bytes of every
// pre-connection.
var preConnectionTag = []byte{0xD7, 0xC5, 0xE2, 0xC9, 0xE3, 0x40, 0x40, 0x40}

// Pre-connection answers in EBCDIC.
var (
	answerACK = []byte{0xC1, 0xC3, 0xD2, 0xF0} // "ACK0"
	answerNAK = []byte{0xD5, 0xC1, 0xD2, 0xF0} // "NAK0"
)

// ParsePreConnection decodes the 24-byte EBCDIC pre-connection string
// ("PESIT   ", identifier, password), given with or without its 00 18
// prefix. The identifier and password come back in Latin-1 (plain ASCII for
// printable text) without trailing blanks. Error texts never include the
// password.
func ParsePreConnection(b []byte) (id, password string, err error) {
	switch {
	case len(b) == PreConnectionLen+2 && b[0] == 0 && b[1] == PreConnectionLen:
		b = b[2:]
	case len(b) < PreConnectionLen:
		return "", "", fmt.Errorf("parsing pre-connection: %d bytes: %w", len(b), ErrTruncated)
	case len(b) != PreConnectionLen:
		return "", "", fmt.Errorf("parsing pre-connection: %d bytes, want 24 or 00 18 + 24: %w", len(b), ErrMalformed)
	}
	if !bytes.Equal(b[:8], preConnectionTag) {
		return "", "", fmt.Errorf("parsing pre-connection: no EBCDIC \"PESIT   \" tag: %w", ErrMalformed)
	}
	var buf [16]byte
	ascii := FromEBCDIC(buf[:0], b[8:24])
	id = string(trimPad(ascii[:8]))
	password = string(trimPad(ascii[8:]))
	if id == "" {
		return "", "", fmt.Errorf("parsing pre-connection: empty identifier: %w", ErrMalformed)
	}
	return id, password, nil
}

// trimPad drops trailing blanks and NULs, the two paddings seen in fixed
// fields.
func trimPad(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == 0) {
		b = b[:len(b)-1]
	}
	return b
}

// AppendPreConnection appends the EBCDIC pre-connection string for id (1-8
// characters) and password (0-8 characters), blank-padded, to dst, with
// the 00 18 prefix if prefixed. Both must be printable ASCII.
func AppendPreConnection(dst []byte, id, password string, prefixed bool) ([]byte, error) {
	if len(id) == 0 || len(id) > 8 || !printable([]byte(id)) {
		return dst, fmt.Errorf("building pre-connection: identifier must be 1-8 printable ASCII characters: %w", ErrMalformed)
	}
	if len(password) > 8 || (password != "" && !printable([]byte(password))) {
		return dst, fmt.Errorf("building pre-connection: password must be 0-8 printable ASCII characters: %w", ErrMalformed)
	}
	if prefixed {
		dst = append(dst, 0, PreConnectionLen)
	}
	dst = append(dst, preConnectionTag...)
	var field [8]byte
	for _, s := range [2]string{id, password} {
		n := copy(field[:], s)
		for i := n; i < len(field); i++ {
			field[i] = ' '
		}
		dst = ToEBCDIC(dst, field[:])
	}
	return dst, nil
}

// AppendPreConnectionAnswer appends the server's answer, "ACK0" if ack else
// "NAK0" in EBCDIC, to dst, with the 00 04 prefix if prefixed.
func AppendPreConnectionAnswer(dst []byte, ack, prefixed bool) []byte {
	if prefixed {
		dst = append(dst, 0, 4)
	}
	if ack {
		return append(dst, answerACK...)
	}
	return append(dst, answerNAK...)
}

// ParsePreConnectionAnswer decodes a 4-byte "ACK0"/"NAK0" answer, with or
// without its 00 04 prefix, and reports whether it accepts.
func ParsePreConnectionAnswer(b []byte) (ack bool, err error) {
	if len(b) == 6 && b[0] == 0 && b[1] == 4 {
		b = b[2:]
	}
	switch {
	case bytes.Equal(b, answerACK):
		return true, nil
	case bytes.Equal(b, answerNAK):
		return false, nil
	case len(b) < 4:
		return false, fmt.Errorf("parsing pre-connection answer: %d bytes: %w", len(b), ErrTruncated)
	}
	return false, fmt.Errorf("parsing pre-connection answer: % x is neither ACK0 nor NAK0: %w", b, ErrMalformed)
}

// ToEBCDIC appends src, read as Latin-1 (so ASCII), converted to EBCDIC
// code page 037, to dst. The mapping is a bijection over all 256 bytes.
func ToEBCDIC(dst, src []byte) []byte {
	for _, c := range src {
		dst = append(dst, latin1ToEBCDIC[c])
	}
	return dst
}

// FromEBCDIC appends src, read as EBCDIC code page 037, converted to
// Latin-1 (ASCII for the printable range), to dst.
func FromEBCDIC(dst, src []byte) []byte {
	for _, c := range src {
		dst = append(dst, ebcdicToLatin1[c])
	}
	return dst
}

// latin1ToEBCDIC is the inverse of ebcdicToLatin1.
var latin1ToEBCDIC = func() (t [256]byte) {
	for e, l := range ebcdicToLatin1 {
		t[l] = byte(e)
	}
	return t
}()

// ebcdicToLatin1 maps code page 037 to ISO-8859-1, as Unicode's CP037
// table does (0x25 is LF, 0x15 NEL).
var ebcdicToLatin1 = [256]byte{
	0x00, 0x01, 0x02, 0x03, 0x9c, 0x09, 0x86, 0x7f, 0x97, 0x8d, 0x8e, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, // 00
	0x10, 0x11, 0x12, 0x13, 0x9d, 0x85, 0x08, 0x87, 0x18, 0x19, 0x92, 0x8f, 0x1c, 0x1d, 0x1e, 0x1f, // 10
	0x80, 0x81, 0x82, 0x83, 0x84, 0x0a, 0x17, 0x1b, 0x88, 0x89, 0x8a, 0x8b, 0x8c, 0x05, 0x06, 0x07, // 20
	0x90, 0x91, 0x16, 0x93, 0x94, 0x95, 0x96, 0x04, 0x98, 0x99, 0x9a, 0x9b, 0x14, 0x15, 0x9e, 0x1a, // 30
	0x20, 0xa0, 0xe2, 0xe4, 0xe0, 0xe1, 0xe3, 0xe5, 0xe7, 0xf1, 0xa2, 0x2e, 0x3c, 0x28, 0x2b, 0x7c, // 40
	0x26, 0xe9, 0xea, 0xeb, 0xe8, 0xed, 0xee, 0xef, 0xec, 0xdf, 0x21, 0x24, 0x2a, 0x29, 0x3b, 0xac, // 50
	0x2d, 0x2f, 0xc2, 0xc4, 0xc0, 0xc1, 0xc3, 0xc5, 0xc7, 0xd1, 0xa6, 0x2c, 0x25, 0x5f, 0x3e, 0x3f, // 60
	0xf8, 0xc9, 0xca, 0xcb, 0xc8, 0xcd, 0xce, 0xcf, 0xcc, 0x60, 0x3a, 0x23, 0x40, 0x27, 0x3d, 0x22, // 70
	0xd8, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0xab, 0xbb, 0xf0, 0xfd, 0xfe, 0xb1, // 80
	0xb0, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72, 0xaa, 0xba, 0xe6, 0xb8, 0xc6, 0xa4, // 90
	0xb5, 0x7e, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0xa1, 0xbf, 0xd0, 0xdd, 0xde, 0xae, // a0
	0x5e, 0xa3, 0xa5, 0xb7, 0xa9, 0xa7, 0xb6, 0xbc, 0xbd, 0xbe, 0x5b, 0x5d, 0xaf, 0xa8, 0xb4, 0xd7, // b0
	0x7b, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0xad, 0xf4, 0xf6, 0xf2, 0xf3, 0xf5, // c0
	0x7d, 0x4a, 0x4b, 0x4c, 0x4d, 0x4e, 0x4f, 0x50, 0x51, 0x52, 0xb9, 0xfb, 0xfc, 0xf9, 0xfa, 0xff, // d0
	0x5c, 0xf7, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0xb2, 0xd4, 0xd6, 0xd2, 0xd3, 0xd5, // e0
	0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0xb3, 0xdb, 0xdc, 0xd9, 0xda, 0x9f, // f0
}

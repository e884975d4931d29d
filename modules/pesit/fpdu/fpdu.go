// Package fpdu is a codec for PeSIT version E (Hors-SIT profile) protocol
// data units (FPDUs), as exchanged by Connect:Express, Transfer CFT and
// PeSIT Wizard over TCP and TLS.
//
// It covers the 6-byte FPDU header, PI/PGI parameter units, diagnostics,
// multi-article data FPDUs, the NSDU framing used on TCP (2-byte length
// prefix) and TLS (prefix or raw), the EBCDIC pre-connection, detection of a
// PeSIT stream from its first bytes, and CONNECT parsing and credential
// rewriting.
//
// Decoding never copies: parameters and payloads alias the input slice, so a
// caller that keeps them beyond the life of the input must copy them. The
// hot-path entry points (ParseHeader, ParamIter, ArticleIter, Reader) do not
// allocate.
//
// PI 5 (access control) carries passwords. No String, GoString or error text
// in this package ever contains its value.
package fpdu

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap one of them, so
// callers can classify failures with errors.Is.
var (
	// ErrTruncated means the input ends before a length it announces.
	ErrTruncated = errors.New("pesit: truncated")
	// ErrTooLarge means a unit exceeds the configured or encodable maximum.
	ErrTooLarge = errors.New("pesit: too large")
	// ErrMalformed means the bytes violate the PeSIT encoding rules.
	ErrMalformed = errors.New("pesit: malformed")
	// ErrUnknownType means the header carries a phase/type pair that is not
	// in the PeSIT E FPDU table.
	ErrUnknownType = errors.New("pesit: unknown FPDU type")
	// ErrOrder means parameters are not in strictly ascending code order
	// (which also rules out duplicates). It is kept apart from ErrMalformed
	// because Connect:Express answers diagnostic 318 to exactly this.
	ErrOrder = errors.New("pesit: parameters out of order or duplicated")
	// ErrMissing means a mandatory parameter is absent.
	ErrMissing = errors.New("pesit: mandatory parameter missing")
)

// HeaderLen is the size of the FPDU header: LTM (2), phase, type, ID.DST,
// ID.SRC.
const HeaderLen = 6

// MaxFPDULen is the largest FPDU the 2-byte LTM can describe.
const MaxFPDULen = 0xFFFF

// Phase byte values (header offset 2).
const (
	PhaseData       byte = 0x00 // DTF, DTFDA, DTFMA, DTFFA
	PhaseConnection byte = 0x40 // CONNECT .. ABORT
	PhaseFile       byte = 0xC0 // every other FPDU
)

// Type identifies an FPDU by its phase and type bytes, packed as
// phase<<8 | type so that a Type reads like the header bytes in hex.
type Type uint16

// FPDU types of PeSIT version E (reference §2.3).
const (
	TypeConnect     Type = 0x4020
	TypeAConnect    Type = 0x4021
	TypeRConnect    Type = 0x4022
	TypeRelease     Type = 0x4023
	TypeRelConf     Type = 0x4024
	TypeAbort       Type = 0x4025
	TypeCreate      Type = 0xC011
	TypeAckCreate   Type = 0xC030
	TypeSelect      Type = 0xC012
	TypeAckSelect   Type = 0xC031
	TypeDeselect    Type = 0xC013
	TypeAckDeselect Type = 0xC032
	TypeORF         Type = 0xC014
	TypeAckORF      Type = 0xC033
	TypeCRF         Type = 0xC015
	TypeAckCRF      Type = 0xC034
	TypeRead        Type = 0xC001
	TypeAckRead     Type = 0xC035
	TypeWrite       Type = 0xC002
	TypeAckWrite    Type = 0xC036
	TypeDTF         Type = 0x0000
	TypeDTFMA       Type = 0x0040 // middle of a segmented article; lower than DTFDA on purpose
	TypeDTFDA       Type = 0x0041 // start of a segmented article
	TypeDTFFA       Type = 0x0042 // end of a segmented article
	TypeDTFEnd      Type = 0xC004
	TypeSyn         Type = 0xC003
	TypeAckSyn      Type = 0xC038
	TypeResyn       Type = 0xC005
	TypeAckResyn    Type = 0xC039
	TypeIDT         Type = 0xC006
	TypeAckIDT      Type = 0xC03A
	TypeTransEnd    Type = 0xC008
	TypeAckTransEnd Type = 0xC037
	TypeMsg         Type = 0xC016
	TypeMsgDM       Type = 0xC017
	TypeMsgMM       Type = 0xC018
	TypeMsgFM       Type = 0xC019
	TypeAckMsg      Type = 0xC03B
)

// typeNames gives the mnemonics; Known must agree with it (a test checks).
var typeNames = map[Type]string{
	TypeConnect: "CONNECT", TypeAConnect: "ACONNECT", TypeRConnect: "RCONNECT",
	TypeRelease: "RELEASE", TypeRelConf: "RELCONF", TypeAbort: "ABORT",
	TypeCreate: "CREATE", TypeAckCreate: "ACK_CREATE",
	TypeSelect: "SELECT", TypeAckSelect: "ACK_SELECT",
	TypeDeselect: "DESELECT", TypeAckDeselect: "ACK_DESELECT",
	TypeORF: "ORF", TypeAckORF: "ACK_ORF", TypeCRF: "CRF", TypeAckCRF: "ACK_CRF",
	TypeRead: "READ", TypeAckRead: "ACK_READ", TypeWrite: "WRITE", TypeAckWrite: "ACK_WRITE",
	TypeDTF: "DTF", TypeDTFMA: "DTFMA", TypeDTFDA: "DTFDA", TypeDTFFA: "DTFFA",
	TypeDTFEnd: "DTF_END", TypeSyn: "SYN", TypeAckSyn: "ACK_SYN",
	TypeResyn: "RESYN", TypeAckResyn: "ACK_RESYN", TypeIDT: "IDT", TypeAckIDT: "ACK_IDT",
	TypeTransEnd: "TRANS_END", TypeAckTransEnd: "ACK_TRANS_END",
	TypeMsg: "MSG", TypeMsgDM: "MSGDM", TypeMsgMM: "MSGMM", TypeMsgFM: "MSGFM", TypeAckMsg: "ACK_MSG",
}

// MakeType packs header bytes 2 and 3 into a Type without validating them.
func MakeType(phase, code byte) Type { return Type(phase)<<8 | Type(code) }

// Phase returns the phase byte (header offset 2).
func (t Type) Phase() byte { return byte(t >> 8) }

// Code returns the type byte (header offset 3).
func (t Type) Code() byte { return byte(t) }

// Known reports whether t is in the PeSIT E FPDU table.
func (t Type) Known() bool {
	c := t.Code()
	switch t.Phase() {
	case PhaseData:
		return c == 0x00 || (c >= 0x40 && c <= 0x42)
	case PhaseConnection:
		return c >= 0x20 && c <= 0x25
	case PhaseFile:
		return c < 64 && fileCodes&(1<<c) != 0
	}
	return false
}

// fileCodes has bit n set when (0xC0, n) is a known type. A bit set keeps
// Known branch-light on the Reader's per-FPDU path, where a map lookup
// would dominate.
const fileCodes uint64 = 1<<0x01 | 1<<0x02 | 1<<0x03 | 1<<0x04 | 1<<0x05 | 1<<0x06 | 1<<0x08 |
	1<<0x11 | 1<<0x12 | 1<<0x13 | 1<<0x14 | 1<<0x15 | 1<<0x16 | 1<<0x17 | 1<<0x18 | 1<<0x19 |
	1<<0x30 | 1<<0x31 | 1<<0x32 | 1<<0x33 | 1<<0x34 | 1<<0x35 | 1<<0x36 | 1<<0x37 |
	1<<0x38 | 1<<0x39 | 1<<0x3A | 1<<0x3B

// String returns the FPDU mnemonic ("ACK_CREATE", "DTF_END"), or the raw
// bytes in hex for unknown types.
func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("FPDU(%02x %02x)", t.Phase(), t.Code())
}

// IsData reports whether t carries file data (DTF, DTFDA, DTFMA, DTFFA):
// its content is raw payload, not parameters.
func (t Type) IsData() bool {
	return t == TypeDTF || t == TypeDTFDA || t == TypeDTFMA || t == TypeDTFFA
}

// Concatenable reports whether t may share an NSDU with other FPDUs.
// PeSIT E allows that only for data FPDUs, DTF.END and SYN (§4.5); peers
// such as CFT reject any other concatenation.
func (t Type) Concatenable() bool {
	return t.IsData() || t == TypeDTFEnd || t == TypeSyn
}

// Header is the fixed 6-byte FPDU header.
type Header struct {
	Length uint16 // LTM: whole FPDU length including the header
	Type   Type
	DstID  byte // ID.DST: connection id at the receiver
	SrcID  byte // ID.SRC: sender's id, 0, or the article count of a multi-article DTF
}

// ParseHeader decodes the header at the start of b. It needs only the first
// 6 bytes and does not check that b holds the whole FPDU, so callers can
// peek; use Decode or CutFPDU for a full frame. It rejects LTM < 6 and
// phase/type pairs outside the PeSIT E table.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, fmt.Errorf("parsing FPDU header: %d of %d bytes: %w", len(b), HeaderLen, ErrTruncated)
	}
	h := Header{
		Length: binary.BigEndian.Uint16(b),
		Type:   MakeType(b[2], b[3]),
		DstID:  b[4],
		SrcID:  b[5],
	}
	if h.Length < HeaderLen {
		return Header{}, fmt.Errorf("parsing FPDU header: LTM %d below %d: %w", h.Length, HeaderLen, ErrMalformed)
	}
	if !h.Type.Known() {
		return Header{}, fmt.Errorf("parsing FPDU header: phase %#02x type %#02x: %w", b[2], b[3], ErrUnknownType)
	}
	return h, nil
}

// AppendHeader appends the 6 header bytes of h to dst.
func AppendHeader(dst []byte, h Header) []byte {
	return append(dst, byte(h.Length>>8), byte(h.Length), h.Type.Phase(), h.Type.Code(), h.DstID, h.SrcID)
}

// String formats the header for logs, e.g. "CONNECT len=42 dst=0 src=1".
func (h Header) String() string {
	return fmt.Sprintf("%v len=%d dst=%d src=%d", h.Type, h.Length, h.DstID, h.SrcID)
}

// CutFPDU splits the first FPDU off b, using its LTM. It validates the
// header and that b holds the whole FPDU; rest is what follows it.
func CutFPDU(b []byte) (fpdu, rest []byte, err error) {
	h, err := ParseHeader(b)
	if err != nil {
		return nil, b, err
	}
	if int(h.Length) > len(b) {
		return nil, b, fmt.Errorf("cutting %v: LTM %d exceeds the %d bytes available: %w", h.Type, h.Length, len(b), ErrTruncated)
	}
	return b[:h.Length], b[h.Length:], nil
}

package fpdu

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
)

// VersionE is the PI 6 value for PeSIT version E.
const VersionE = 2

// MaxIDLen is the longest requester or server identifier (PI 3, PI 4) of
// the Hors-SIT profile.
const MaxIDLen = 24

// MaxPI5Len is the longest PI 5: an 8-byte password then an 8-byte new
// password.
const MaxPI5Len = 16

// Secret holds sensitive bytes such as a PI 5 password. Every formatting
// path (fmt verbs, String, JSON, slog) prints "[REDACTED]" instead of the
// content; use the bytes directly when they are needed.
type Secret []byte

const redacted = "[REDACTED]"

// String returns "[REDACTED]".
func (Secret) String() string { return redacted }

// GoString returns "[REDACTED]".
func (Secret) GoString() string { return redacted }

// Format writes "[REDACTED]" for every verb, so %x or %q leak nothing.
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// MarshalJSON encodes the secret as the string "[REDACTED]".
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// Connect holds the fields of a CONNECT FPDU that authentication and audit
// need.
type Connect struct {
	DstID, SrcID  byte   // 0 and the requester's connection id X
	RequesterID   string // PI 3, trailing blanks trimmed
	ServerID      string // PI 4, trailing blanks trimmed
	Password      Secret // PI 5 as received (a copy): see PasswordFromPI5
	HasPassword   bool
	Version       byte   // PI 6; VersionE = 2
	SyncInterval  uint16 // PI 7 bytes 1-2, in KB; 0 = no sync points
	SyncWindow    byte   // PI 7 byte 3: acknowledgement window
	HasSync       bool   // PI 7 present
	AccessType    byte   // PI 22: 0 write, 1 read, 2 mixed
	HasAccessType bool   // PI 22 present (the spec makes it mandatory)
	Resync        bool   // PI 23 = 1
	CRC           bool   // PI 1 = 1
}

// String formats c for logs; the password is never shown.
func (c Connect) String() string {
	return fmt.Sprintf("CONNECT dst=%d src=%d requester=%q server=%q password=%t version=%d sync=%d/%d access=%d",
		c.DstID, c.SrcID, c.RequesterID, c.ServerID, c.HasPassword, c.Version, c.SyncInterval, c.SyncWindow, c.AccessType)
}

// checkConnect validates a CONNECT strictly: LTM = len, well-formed and
// ordered parameters, PI 3, 4 and 6 present. It does not allocate.
func checkConnect(b []byte) error {
	h, err := ParseHeader(b)
	if err != nil {
		return fmt.Errorf("checking CONNECT: %w", err)
	}
	if h.Type != TypeConnect {
		return fmt.Errorf("checking CONNECT: got %v: %w", h.Type, ErrMalformed)
	}
	if int(h.Length) != len(b) {
		return fmt.Errorf("checking CONNECT: LTM %d for %d bytes: %w", h.Length, len(b), ErrMalformed)
	}
	body := b[HeaderLen:]
	if _, err := checkParams(body, false, 0); err != nil {
		return fmt.Errorf("checking CONNECT: %w", err)
	}
	var seen [3]bool
	it := NewParamIter(body)
	for it.Next() {
		switch it.Param().Code {
		case PIRequesterID:
			seen[0] = true
		case PIServerID:
			seen[1] = true
		case PIVersion:
			seen[2] = true
		}
	}
	for i, code := range [3]byte{PIRequesterID, PIServerID, PIVersion} {
		if !seen[i] {
			return fmt.Errorf("checking CONNECT: no PI %d: %w", code, ErrMissing)
		}
	}
	return nil
}

// ParseConnect decodes a CONNECT FPDU strictly. PI 3, 4 and 6 are
// required; PI 1, 6, 7, 22 and 23 must have their documented sizes.
func ParseConnect(fpdu []byte) (Connect, error) {
	if err := checkConnect(fpdu); err != nil {
		return Connect{}, err
	}
	c := Connect{DstID: fpdu[4], SrcID: fpdu[5]}
	it := NewParamIter(fpdu[HeaderLen:])
	for it.Next() {
		p := it.Param()
		if err := c.set(p); err != nil {
			return Connect{}, fmt.Errorf("parsing CONNECT: %w", err)
		}
	}
	return c, nil
}

func (c *Connect) set(p Param) error {
	oneByte := func() (byte, error) {
		if len(p.Value) != 1 {
			return 0, fmt.Errorf("PI %d: %d bytes, want 1: %w", p.Code, len(p.Value), ErrMalformed)
		}
		return p.Value[0], nil
	}
	var err error
	switch p.Code {
	case PICRC:
		var v byte
		v, err = oneByte()
		c.CRC = v == 1
	case PIRequesterID:
		c.RequesterID = p.Text()
	case PIServerID:
		c.ServerID = p.Text()
	case PIAccessControl:
		c.Password, c.HasPassword = Secret(append([]byte(nil), p.Value...)), true
	case PIVersion:
		var v uint64
		if v, err = p.Uint(); err == nil && v > 0xFF {
			err = fmt.Errorf("PI 6: version %d: %w", v, ErrMalformed)
		}
		c.Version = byte(v)
	case PISyncPoints:
		if len(p.Value) != 3 {
			return fmt.Errorf("PI 7: %d bytes, want 3: %w", len(p.Value), ErrMalformed)
		}
		c.SyncInterval, c.SyncWindow, c.HasSync = binary.BigEndian.Uint16(p.Value), p.Value[2], true
	case PIAccessType:
		c.AccessType, err = oneByte()
		c.HasAccessType = err == nil
	case PIResync:
		var v byte
		v, err = oneByte()
		c.Resync = v == 1
	}
	return err
}

// Append encodes c as a CONNECT in canonical order (PI 1 if CRC, 3, 4, 5
// if HasPassword, 6, 7 if HasSync, 22, 23 if Resync) and appends it to
// dst. PI 22 is always sent because the spec makes it mandatory.
func (c Connect) Append(dst []byte) ([]byte, error) {
	params := make([]Param, 0, 8)
	if c.CRC {
		params = append(params, PIByte(PICRC, 1))
	}
	params = append(params, PIString(PIRequesterID, c.RequesterID), PIString(PIServerID, c.ServerID))
	if c.HasPassword {
		params = append(params, PI(PIAccessControl, c.Password))
	}
	params = append(params, PIByte(PIVersion, c.Version))
	if c.HasSync {
		params = append(params, PI(PISyncPoints, []byte{byte(c.SyncInterval >> 8), byte(c.SyncInterval), c.SyncWindow}))
	}
	params = append(params, PIByte(PIAccessType, c.AccessType))
	if c.Resync {
		params = append(params, PIByte(PIResync, 1))
	}
	return AppendFPDU(dst, TypeConnect, c.DstID, c.SrcID, params...)
}

// RewriteConnect re-encodes the CONNECT fpdu into dst with PI 3 and PI 4
// set to requester and server and PI 5 set to password (removed if
// password is empty), keeping every other parameter unit byte for byte and
// in order, and fixing LTM. It is how a gateway swaps partner credentials
// for the backend's. ids must be 1-24 bytes and password at most 16; pad a
// short password with PadPassword first if the peer expects blanks.
func RewriteConnect(dst, fpdu []byte, requester, server string, password []byte) ([]byte, error) {
	if err := checkConnect(fpdu); err != nil {
		return dst, fmt.Errorf("rewriting CONNECT: %w", err)
	}
	for _, id := range [2]string{requester, server} {
		if len(id) == 0 || len(id) > MaxIDLen {
			return dst, fmt.Errorf("rewriting CONNECT: identifier of %d bytes, want 1-%d: %w", len(id), MaxIDLen, ErrMalformed)
		}
	}
	if len(password) > MaxPI5Len {
		return dst, fmt.Errorf("rewriting CONNECT: password of %d bytes, want at most %d: %w", len(password), MaxPI5Len, ErrMalformed)
	}
	start := len(dst)
	out := append(dst, fpdu[:HeaderLen]...)
	emitted := false
	emit := func() {
		out = append(out, PIRequesterID, byte(len(requester)))
		out = append(out, requester...)
		out = append(out, PIServerID, byte(len(server)))
		out = append(out, server...)
		if len(password) > 0 {
			out = append(out, PIAccessControl, byte(len(password)))
			out = append(out, password...)
		}
		emitted = true
	}
	it := NewParamIter(fpdu[HeaderLen:])
	for it.Next() {
		code := it.Param().Code
		if code >= PIRequesterID && !emitted {
			emit()
		}
		if code < PIRequesterID || code > PIAccessControl {
			out = append(out, it.Raw()...)
		}
	}
	if !emitted {
		emit()
	}
	n := len(out) - start
	if n > MaxFPDULen {
		return dst, fmt.Errorf("rewriting CONNECT: %d bytes: %w", n, ErrTooLarge)
	}
	binary.BigEndian.PutUint16(out[start:], uint16(n))
	return out, nil
}

// PasswordFromPI5 splits a PI 5 value into the current password (bytes
// 1-8) and the new password (bytes 9-16, empty if absent), each without
// trailing blanks. Bytes beyond 16, which the spec does not allow but some
// peers send, are ignored; compare the raw value to detect them.
func PasswordFromPI5(v []byte) (current, newPw string) {
	cur, nw := v, []byte(nil)
	if len(v) > 8 {
		cur, nw = v[:8], v[8:min(len(v), MaxPI5Len)]
	}
	return string(trimBlanks(cur)), string(trimBlanks(nw))
}

func trimBlanks(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == ' ' {
		b = b[:len(b)-1]
	}
	return b
}

// PadPassword returns pw blank-padded to 8 bytes, as Connect:Express sends
// it. A password of 8 bytes or more is returned unchanged.
func PadPassword(pw string) []byte {
	b := []byte(pw)
	for len(b) < 8 {
		b = append(b, ' ')
	}
	return b
}

package fpdu

import (
	"bytes"
	"errors"
	"testing"
)

func TestDetectGolden(t *testing.T) {
	tests := []struct {
		name     string
		kind     Kind
		prefixed bool
	}{
		{"connect-minimal", KindConnect, false},
		{"connect-prefixed", KindConnect, true},
		{"connect-sync", KindConnect, false},
		{"cx-connect", KindConnect, false},
		{"preconnect", KindPreConnection, false},
		{"preconnect-prefixed", KindPreConnection, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			unit := vec(t, tt.name)
			// Followed by more traffic, the result must not change.
			full := append(bytes.Clone(unit), 0x00, 0x0b, 0x40, 0x23)
			d, err := Detect(full)
			if err != nil || d.Kind != tt.kind || d.Prefixed != tt.prefixed || d.Need != len(unit) {
				t.Fatalf("Detect = %+v, %v", d, err)
			}
			// Every strict prefix needs more, never more than the unit holds,
			// and following Need converges on the full answer.
			for k := 0; k < len(unit); k++ {
				d, err := Detect(unit[:k])
				if !errors.Is(err, ErrNeedMore) || d.Need <= k || d.Need > len(unit) {
					t.Fatalf("Detect(%d bytes) = %+v, %v", k, d, err)
				}
			}
			n := 0
			for steps := 0; ; steps++ {
				d, err := Detect(unit[:n])
				if err == nil {
					break
				}
				if !errors.Is(err, ErrNeedMore) || steps > 3 {
					t.Fatalf("after %d steps: %+v %v", steps, d, err)
				}
				n = d.Need
			}
		})
	}
	// A 24-byte CONNECT starts 00 18, like a prefixed pre-connection.
	c, err := Connect{SrcID: 1, RequesterID: "ABCD", ServerID: "EFGH", Version: 2}.Append(nil)
	if err != nil || len(c) != 24 {
		t.Fatal(len(c), err)
	}
	p, _ := AppendNSDU(nil, FramingPrefixed, c)
	for _, b := range [][]byte{c, p} {
		if d, err := Detect(b); err != nil || d.Kind != KindConnect || d.Need != len(b) {
			t.Errorf("Detect(% x) = %+v, %v", b, d, err)
		}
	}
}

func TestDetectNotPeSIT(t *testing.T) {
	missing6 := mustHex("00 17 40 20 00 01 03 04 4c 4f 4f 50 04 06 43 45 54 4f 4d 31 16 01 00")
	tests := map[string][]byte{
		"http":             []byte("GET / HTTP/1.1\r\n"),
		"tls":              mustHex("16 03 01 02 00 01 00 01 fc 03 03"),
		"ssh":              []byte("SSH-2.0-OpenSSH_9.6\r\n"),
		"empty prefix":     mustHex("00 00 00 00 40 20"),
		"aconnect first":   vec(t, "aconnect"),
		"huge LTM":         mustHex("10 01 40 20 00 01"),
		"prefix mismatch":  mustHex("00 2a 00 2b 40 20"),
		"no PI 6":          missing6,
		"bad tag":          mustHex("d7 c5 e2 c9 e3 c1 40 40 c2 c1 d5 d2 6d e7 e8 e9 e2 c5 c3 d9 c5 e3 f0 f1"),
		"bad tag later":    append(mustHex("d7 c5 e2 c9 e3 40 40 41"), make([]byte, 16)...),
		"params unordered": mustHex("00 12 40 20 00 01 04 01 42 03 01 41 06 01 02 16 01 00"),
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			d, err := Detect(b)
			if !errors.Is(err, ErrNotPeSIT) {
				t.Fatalf("Detect = %+v, %v", d, err)
			}
		})
	}
	// Decide early, on the first bytes, where possible.
	for _, b := range [][]byte{{'G'}, {0x16}, {0x00, 0x03}, mustHex("00 2a 41")} {
		if _, err := Detect(b); !errors.Is(err, ErrNotPeSIT) {
			t.Errorf("Detect(% x) = %v, want early ErrNotPeSIT", b, err)
		}
	}
	if d, err := Detect(nil); !errors.Is(err, ErrNeedMore) || d.Need != HeaderLen {
		t.Errorf("Detect(nil) = %+v, %v", d, err)
	}
	if d, err := Detect(mustHex("10 00")); !errors.Is(err, ErrNeedMore) || d.Need != HeaderLen {
		t.Errorf("Detect(10 00) = %+v, %v: MaxConnectLen itself is allowed", d, err)
	}
	if KindConnect.String() != "connect" || KindPreConnection.String() != "pre-connection" || KindUnknown.String() != "unknown" {
		t.Error("Kind.String")
	}
}

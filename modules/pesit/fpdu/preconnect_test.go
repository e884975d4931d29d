package fpdu

import (
	"bytes"
	"errors"
	"testing"
)

func TestPreConnectionGolden(t *testing.T) {
	for _, prefixed := range []bool{false, true} {
		name := "preconnect"
		if prefixed {
			name += "-prefixed"
		}
		want := vec(t, name)
		id, pw, err := ParsePreConnection(want)
		if err != nil || id != "BANK_XYZ" || pw != "SECRET01" {
			t.Errorf("%s: ParsePreConnection = %q, %v", name, id, err)
		}
		got, err := AppendPreConnection([]byte{1}, "BANK_XYZ", "SECRET01", prefixed)
		if err != nil || !bytes.Equal(got[1:], want) {
			t.Errorf("%s: AppendPreConnection = % x, %v", name, got, err)
		}
	}
	for _, tt := range []struct {
		name          string
		ack, prefixed bool
	}{{"ack0", true, false}, {"ack0-prefixed", true, true}, {"nak0", false, false}, {"nak0-prefixed", false, true}} {
		want := vec(t, tt.name)
		if got := AppendPreConnectionAnswer(nil, tt.ack, tt.prefixed); !bytes.Equal(got, want) {
			t.Errorf("%s: AppendPreConnectionAnswer = % x", tt.name, got)
		}
		ack, err := ParsePreConnectionAnswer(want)
		if err != nil || ack != tt.ack {
			t.Errorf("%s: ParsePreConnectionAnswer = %v, %v", tt.name, ack, err)
		}
	}
}

func TestPreConnectionPadding(t *testing.T) {
	b, err := AppendPreConnection(nil, "LOOP", "", true)
	if err != nil {
		t.Fatal(err)
	}
	want := mustHex("00 18 d7 c5 e2 c9 e3 40 40 40 d3 d6 d6 d7 40 40 40 40 40 40 40 40 40 40 40 40")
	if !bytes.Equal(b, want) {
		t.Fatalf("got % x", b)
	}
	id, pw, err := ParsePreConnection(b)
	if err != nil || id != "LOOP" || pw != "" {
		t.Fatalf("got %q %v", id, err)
	}
}

func TestPreConnectionErrors(t *testing.T) {
	good := vec(t, "preconnect")
	bad := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"short", good[:23], ErrTruncated},
		{"long", append(bytes.Clone(good), 0), ErrMalformed},
		{"wrong prefix", append([]byte{0, 0x19}, good...), ErrMalformed},
		{"tag", bad(func(b []byte) []byte { b[4] = 0xC4; return b }), ErrMalformed},
		{"blank id", bad(func(b []byte) []byte { copy(b[8:16], bytes.Repeat([]byte{0x40}, 8)); return b }), ErrMalformed},
	}
	for _, tt := range tests {
		if _, _, err := ParsePreConnection(tt.in); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	for _, args := range [][2]string{{"", "pw"}, {"NINECHARS", "pw"}, {"ID", "NINECHARS"}, {"ID\n", "pw"}, {"ID", "pé"}} {
		if _, err := AppendPreConnection(nil, args[0], args[1], false); !errors.Is(err, ErrMalformed) {
			t.Errorf("AppendPreConnection(%q): %v", args[0], err)
		}
	}
	for _, in := range [][]byte{nil, mustHex("c1 c3 d2"), mustHex("c1 c3 d2 f1"), mustHex("00 05 c1 c3 d2 f0"), mustHex("c1 c3 d2 f0 00")} {
		if _, err := ParsePreConnectionAnswer(in); err == nil {
			t.Errorf("ParsePreConnectionAnswer(% x) accepted", in)
		}
	}
}

func TestEBCDIC(t *testing.T) {
	// The table must be a bijection.
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	e := ToEBCDIC(nil, all)
	seen := map[byte]bool{}
	for _, c := range e {
		seen[c] = true
	}
	if len(seen) != 256 {
		t.Fatalf("ToEBCDIC is not a bijection: %d values", len(seen))
	}
	if back := FromEBCDIC(nil, e); !bytes.Equal(back, all) {
		t.Fatal("FromEBCDIC(ToEBCDIC(x)) != x")
	}
	// Spot checks of code page 037.
	for ascii, ebc := range map[string]string{
		"PESIT   ":   "d7 c5 e2 c9 e3 40 40 40",
		"ACK0":       "c1 c3 d2 f0",
		"NAK0":       "d5 c1 d2 f0",
		"az09_.!$[]": "81 a9 f0 f9 6d 4b 5a 5b ba bb",
		"\n":         "25",
	} {
		if got := ToEBCDIC(nil, []byte(ascii)); !bytes.Equal(got, mustHex(ebc)) {
			t.Errorf("ToEBCDIC(%q) = % x, want %s", ascii, got, ebc)
		}
	}
}

package fpdu

import (
	"bytes"
	"errors"
	"testing"
)

func TestRewriteConnect(t *testing.T) {
	cx := vec(t, "cx-connect")
	out, err := RewriteConnect([]byte{0xEE}, cx, "BANK_XYZ", "BACKEND", PadPassword("s3cr"))
	if err != nil {
		t.Fatal(err)
	}
	if out[0] != 0xEE {
		t.Fatal("dst prefix lost")
	}
	want := mustHex("00 2e 40 20 00 62 03 08 42 41 4e 4b 5f 58 59 5a 04 07 42 41 43 4b 45 4e 44" +
		"05 08 73 33 63 72 20 20 20 20 06 01 02 07 03 00 20 02 16 01 02")
	if !bytes.Equal(out[1:], want) {
		t.Fatalf("got  % x\nwant % x", out[1:], want)
	}
	c, err := ParseConnect(out[1:])
	if err != nil || c.RequesterID != "BANK_XYZ" || c.ServerID != "BACKEND" || c.SrcID != 0x62 {
		t.Fatalf("%v %v", c, err)
	}
	if cur, _ := PasswordFromPI5(c.Password); cur != "s3cr" {
		t.Errorf("password %q", cur)
	}

	// No password: PI 5 disappears; everything else stays byte for byte.
	out, err = RewriteConnect(nil, cx, "CXCLIENT", "PESITSRV", nil)
	if err != nil {
		t.Fatal(err)
	}
	wantNoPw := append(bytes.Clone(cx[:26]), cx[36:]...)
	wantNoPw[1] = byte(len(wantNoPw))
	if !bytes.Equal(out, wantNoPw) {
		t.Fatalf("no password:\n got % x\nwant % x", out, wantNoPw)
	}

	// Adding a password where there was none, and a PI 1 kept before PI 3.
	in := mustHex("00 1d 40 20 00 01 01 01 00 03 04 4c 4f 4f 50 04 06 43 45 54 4f 4d 31 06 01 02 16 01 00")
	out, err = RewriteConnect(nil, in, "LOOP", "CETOM1", []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	want = mustHex("00 21 40 20 00 01 01 01 00 03 04 4c 4f 4f 50 04 06 43 45 54 4f 4d 31 05 02 70 77 06 01 02 16 01 00")
	if !bytes.Equal(out, want) {
		t.Fatalf("insert PI 5:\n got % x\nwant % x", out, want)
	}

	// A non-canonical long LI on another PI is copied, not normalised.
	in = mustHex("00 2e 40 20 00 01 03 08 42 41 4e 4b 5f 58 59 5a 04 08 50 45 53 49 54 53 52 56 06 01 02 16 01 00 63 ff 00 0a 20 20 20 20 20 20 20 20 20 20")
	if _, err := Decode(in); err != nil {
		t.Fatal(err)
	}
	out, err = RewriteConnect(nil, in, "BANK_XYZ", "PESITSRV", nil)
	if err != nil || !bytes.Equal(out, in) {
		t.Fatalf("identity rewrite: %v\n got % x\nwant % x", err, out, in)
	}
}

func TestRewriteConnectErrors(t *testing.T) {
	cx := vec(t, "cx-connect")
	tests := []struct {
		name     string
		in       []byte
		req, srv string
		pw       []byte
		want     error
	}{
		{"not connect", vec(t, "aconnect"), "A", "B", nil, ErrMalformed},
		{"empty requester", cx, "", "B", nil, ErrMalformed},
		{"long server", cx, "A", "0123456789012345678901234", nil, ErrMalformed},
		{"long password", cx, "A", "B", []byte("01234567890123456"), ErrMalformed},
		{"no PI 6", mustHex("00 17 40 20 00 01 03 04 4c 4f 4f 50 04 06 43 45 54 4f 4d 31 16 01 00"), "A", "B", nil, ErrMissing},
		{"unordered", mustHex("00 12 40 20 00 01 04 01 42 03 01 41 06 01 02 16 01 00"), "A", "B", nil, ErrOrder},
		{"truncated", cx[:40], "A", "B", nil, ErrMalformed},
	}
	for _, tt := range tests {
		dst := []byte("keep")
		out, err := RewriteConnect(dst, tt.in, tt.req, tt.srv, tt.pw)
		if !errors.Is(err, tt.want) || string(out) != "keep" {
			t.Errorf("%s: %v (dst %q), want %v", tt.name, err, out, tt.want)
		}
	}
}

func TestParseConnectFieldErrors(t *testing.T) {
	for name, in := range map[string]string{
		"PI 7 size":  "00 13 40 20 00 01 03 01 41 04 01 42 06 01 02 07 02 00 20",
		"PI 22 size": "00 13 40 20 00 01 03 01 41 04 01 42 06 01 02 16 02 00 01",
		"PI 6 huge":  "00 12 40 20 00 01 03 01 41 04 01 42 06 02 01 02",
	} {
		if _, err := ParseConnect(mustHex(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	c, err := ParseConnect(mustHex("00 16 40 20 00 01 01 01 01 03 01 41 04 01 42 06 02 00 02 16 01 01"))
	if err != nil || !c.CRC || c.Version != 2 || c.AccessType != 1 || c.HasPassword || c.HasSync {
		t.Errorf("%v %v", c, err)
	}
}

func TestPasswordHelpers(t *testing.T) {
	tests := []struct {
		in, cur, nw string
	}{
		{"SECRET01", "SECRET01", ""},
		{"test123 ", "test123", ""},
		{"abc", "abc", ""},
		{"", "", ""},
		{"old     new", "old", "new"},
		{"oldpass1newpass2", "oldpass1", "newpass2"},
		{"ComplexPassword123!", "ComplexP", "assword1"},
	}
	for _, tt := range tests {
		cur, nw := PasswordFromPI5([]byte(tt.in))
		if cur != tt.cur || nw != tt.nw {
			t.Errorf("PasswordFromPI5(%q) = %q, %q", tt.in, cur, nw)
		}
	}
	if got := string(PadPassword("test123")); got != "test123 " {
		t.Errorf("PadPassword = %q", got)
	}
	if got := string(PadPassword("")); got != "        " {
		t.Errorf("PadPassword empty = %q", got)
	}
	if got := string(PadPassword("0123456789")); got != "0123456789" {
		t.Errorf("PadPassword long = %q", got)
	}
}

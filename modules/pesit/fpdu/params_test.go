package fpdu

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestTypeTable(t *testing.T) {
	if len(typeNames) != 38 {
		t.Fatalf("%d named types, want 38 (reference §2.3)", len(typeNames))
	}
	for ty, name := range typeNames {
		if !ty.Known() || ty.String() != name {
			t.Errorf("%04x: Known=%v String=%q", uint16(ty), ty.Known(), ty.String())
		}
		if _, err := ParseHeader([]byte{0, 6, ty.Phase(), ty.Code(), 0, 0}); err != nil {
			t.Errorf("%v: %v", ty, err)
		}
	}
	// Known must agree with the name table for every possible pair.
	for v := 0; v <= 0xFFFF; v++ {
		ty := Type(v)
		_, named := typeNames[ty]
		if ty.Known() != named {
			t.Fatalf("%04x: Known=%v named=%v", v, ty.Known(), named)
		}
	}
	data := map[Type]bool{TypeDTF: true, TypeDTFDA: true, TypeDTFMA: true, TypeDTFFA: true}
	concat := map[Type]bool{TypeDTF: true, TypeDTFDA: true, TypeDTFMA: true, TypeDTFFA: true, TypeDTFEnd: true, TypeSyn: true}
	for ty := range typeNames {
		if ty.IsData() != data[ty] || ty.Concatenable() != concat[ty] {
			t.Errorf("%v: IsData=%v Concatenable=%v", ty, ty.IsData(), ty.Concatenable())
		}
	}
	if s := MakeType(0xC0, 0x07).String(); s != "FPDU(c0 07)" {
		t.Errorf("unknown type String = %q", s)
	}
}

func TestParseHeaderErrors(t *testing.T) {
	tests := []struct {
		in   string
		want error
	}{
		{"", ErrTruncated},
		{"00 2a 40 20 00", ErrTruncated},
		{"00 05 40 20 00 01", ErrMalformed},
		{"00 00 40 20 00 01", ErrMalformed},
		{"00 06 c0 07 00 00", ErrUnknownType},
		{"00 06 80 20 00 00", ErrUnknownType},
		{"00 06 00 01 00 00", ErrUnknownType},
	}
	for _, tt := range tests {
		if _, err := ParseHeader(mustHex(tt.in)); !errors.Is(err, tt.want) {
			t.Errorf("ParseHeader(%s) = %v, want %v", tt.in, err, tt.want)
		}
	}
	// ParseHeader only needs 6 bytes, whatever LTM says.
	h, err := ParseHeader(mustHex("00 2a 40 20 00 01"))
	if err != nil || h != (Header{42, TypeConnect, 0, 1}) {
		t.Errorf("peek: %v %v", h, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, in string
		want     error
	}{
		{"LTM beyond input", "00 0c 40 21 01 05 06 01 02", ErrTruncated},
		{"LTM short of input", "00 08 40 21 01 05 06 01 02", ErrMalformed},
		{"value beyond body", "00 09 40 21 01 05 06 02 02", ErrTruncated},
		{"code without LI", "00 07 40 24 01 05 63", ErrTruncated},
		{"long LI cut", "00 09 40 24 01 05 63 ff 01", ErrTruncated},
		{"LI zero", "00 08 40 24 01 05 63 00", ErrMalformed},
		{"long LI zero", "00 0a 40 24 01 05 63 ff 00 00", ErrMalformed},
		{"descending", "00 0c 40 21 01 05 07 01 00 06 01 02", ErrOrder},
		{"duplicate", "00 0c 40 21 01 05 06 01 02 06 01 02", ErrOrder},
		{"order inside PGI", "00 0e c0 31 62 00 09 06 0c 01 41 0b 01 00", ErrOrder},
		{"PGI inside PGI", "00 0e c0 31 62 00 09 06 0b 01 00 1e 01 80", ErrMalformed},
		{"broken PGI content", "00 0b c0 31 62 00 09 03 0b 05 00", ErrTruncated},
		{"unknown type", "00 06 c0 07 00 00", ErrUnknownType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(mustHex(tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestDecodeLenient(t *testing.T) {
	// Frame 3 of cx-push-1mb.raw as README.md lists it: empty PGIs, LI = 0.
	create := mustHex("00 1d c0 11 e2 00 09 00 0d 03 00 24 c9 10 01 02 11 01 00 19 02 ff ff 1e 00 28 00 32 00")
	if _, err := Decode(create); !errors.Is(err, ErrMalformed) {
		t.Fatalf("strict Decode = %v, want ErrMalformed", err)
	}
	f, err := DecodeOptions{Lenient: true}.Decode(create)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Params) != 8 {
		t.Fatalf("%d params: %v", len(f.Params), f)
	}
	p, _ := f.Get(PITransferID)
	if v, err := p.Uint(); err != nil || v != 0x24c9 {
		t.Errorf("PI 13 with leading zero = %#x, %v", v, err)
	}
	if s := f.String(); !strings.Contains(s, "PGI9{} PI13=0024c9") {
		t.Errorf("String = %s", s)
	}
	// The ISO-session ABORT form: a bare diagnostic, lenient only.
	abort := mustHex("00 09 40 25 05 01 02 00 cd")
	if _, err := Decode(abort); err == nil {
		t.Fatal("strict Decode accepted a bare-diagnostic ABORT")
	}
	f, err = DecodeOptions{Lenient: true}.Decode(abort)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := f.Diag(); err != nil || d != (Diag{2, 205}) {
		t.Errorf("bare ABORT Diag = %v, %v", d, err)
	}
}

func TestLIForms(t *testing.T) {
	// PI 99 with 254 blanks, as C:X sends it: one-byte LI FE.
	blanks := bytes.Repeat([]byte{' '}, 254)
	b, err := AppendFPDU(nil, TypeRelConf, 1, 5, PI(PIFreeMessage, blanks))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 6+2+254 || !bytes.Equal(b[6:8], []byte{0x63, 0xFE}) {
		t.Fatalf("PI 99 x254: % x", b[:10])
	}
	// PI 91 with 300 bytes: 5B FF 01 2C, 304 bytes in all.
	msg := bytes.Repeat([]byte("0123456789"), 30)
	b, err = AppendFPDU(nil, TypeMsgMM, 5, 0, PI(PIMessage, msg))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 6+304 || !bytes.Equal(b[:10], mustHex("01 36 c0 18 05 00 5b ff 01 2c")) {
		t.Fatalf("PI 91 x300: % x (len %d)", b[:10], len(b))
	}
	f, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := f.Get(PIMessage); !ok || !bytes.Equal(p.Value, msg) {
		t.Fatalf("PI 91 decoded to %d bytes", len(p.Value))
	}
	// Boundaries: 254 is short form, 255 needs the escape.
	for n, wantHdr := range map[int]string{1: "5b 01", 254: "5b fe", 255: "5b ff 00 ff", 65535: "5b ff ff ff"} {
		u, err := appendUnit(nil, PIMessage, make([]byte, n))
		if err != nil || !bytes.Equal(u[:len(wantHdr)/3+1], mustHex(wantHdr)) {
			t.Errorf("%d bytes: % x %v", n, u[:4], err)
		}
	}
	if _, err := appendUnit(nil, PIMessage, make([]byte, 65536)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("65536-byte value: %v", err)
	}
	// A non-canonical long LI for a short value is accepted on input.
	f, err = Decode(mustHex("00 0b 40 24 01 05 63 ff 00 01 41"))
	if err != nil || len(f.Params) != 1 || string(f.Params[0].Value) != "A" {
		t.Fatalf("long-form LI for 1 byte: %v %v", f, err)
	}
}

func TestEncodeErrors(t *testing.T) {
	tests := []struct {
		name   string
		params []Param
		want   error
	}{
		{"order", []Param{PIByte(7, 0), PIByte(6, 2)}, ErrOrder},
		{"duplicate", []Param{PIByte(6, 2), PIByte(6, 2)}, ErrOrder},
		{"empty value", []Param{PI(99, nil)}, ErrMalformed},
		{"PGI order", []Param{PGI(9, PIString(12, "F"), PIByte(11, 0))}, ErrOrder},
		{"PGI nested", []Param{PGI(9, PGI(30, PIByte(31, 0)))}, ErrMalformed},
		{"PGI bad code", []Param{PGI(8, PIByte(11, 0))}, ErrMalformed},
		{"PGI empty", []Param{PGI(9)}, ErrMalformed},
		{"raw PGI malformed", []Param{PI(9, []byte{0x0b, 0x05, 0})}, ErrTruncated},
		{"too large", []Param{PI(91, make([]byte, 40000)), PI(99, make([]byte, 30000))}, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("keep")
			out, err := AppendFPDU(dst, TypeAckSelect, 1, 0, tt.params...)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if string(out) != "keep" {
				t.Errorf("dst changed on error: %q", out)
			}
		})
	}
	if _, err := AppendFPDU(nil, MakeType(0xC0, 0x07), 0, 0); !errors.Is(err, ErrUnknownType) {
		t.Errorf("unknown type: %v", err)
	}
	if _, err := AppendFPDU(nil, TypeDTF, 0, 0, PIByte(2, 0)); !errors.Is(err, ErrMalformed) {
		t.Errorf("DTF with params: %v", err)
	}
	if _, err := AppendData(nil, TypeSyn, 0, nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("AppendData(SYN): %v", err)
	}
	if _, err := AppendDTF(nil, 0, make([]byte, 65530)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("DTF 65530: %v", err)
	}
	if b, err := AppendDTF(nil, 0, make([]byte, 65529)); err != nil || len(b) != 65535 {
		t.Errorf("DTF 65529: %v", err)
	}
}

func TestPIUint(t *testing.T) {
	tests := []struct {
		v    uint64
		min  int
		want string
	}{
		{0, 0, "00"}, {1, 0, "01"}, {0x24cb, 0, "24 cb"}, {0x24cb, 3, "00 24 cb"},
		{1 << 20, 0, "10 00 00"}, {12, 8, "00 00 00 00 00 00 00 0c"}, {12, 20, "00 00 00 00 00 00 00 0c"},
		{^uint64(0), 0, "ff ff ff ff ff ff ff ff"},
	}
	for _, tt := range tests {
		p := PIUint(27, tt.v, tt.min)
		if !bytes.Equal(p.Value, mustHex(tt.want)) {
			t.Errorf("PIUint(%#x, %d) = % x", tt.v, tt.min, p.Value)
		}
		if v, err := p.Uint(); err != nil || v != tt.v {
			t.Errorf("Uint back = %#x, %v", v, err)
		}
	}
	if _, err := PI(27, nil).Uint(); !errors.Is(err, ErrMalformed) {
		t.Errorf("empty Uint: %v", err)
	}
	if v, err := PI(27, mustHex("00 00 01 00 00 00 00 00 00 00 05")).Uint(); !errors.Is(err, ErrTooLarge) {
		t.Errorf("9 significant bytes: %d %v", v, err)
	}
	if v, err := PI(27, mustHex("00 00 00 01 00 00 00 00 00 00 05")).Uint(); err != nil || v != 1<<56|5 {
		t.Errorf("8 significant bytes after zeros: %#x %v", v, err)
	}
}

func TestParamText(t *testing.T) {
	p := PIString(PIFileName, "FILE   ")
	if p.Text() != "FILE" || string(p.Trimmed()) != "FILE" {
		t.Errorf("Text = %q", p.Text())
	}
	if PIString(12, "    ").Text() != "" {
		t.Error("all blanks must be empty")
	}
	if ParamName(PIRequesterID) != "requester id" || ParamName(75) != "security PI 75" || ParamName(200) != "PI 200" {
		t.Errorf("ParamName: %q %q %q", ParamName(3), ParamName(75), ParamName(200))
	}
}

func TestParamsIterators(t *testing.T) {
	body := vec(t, "pw-ack-select")[HeaderLen:]
	var codes []byte
	for p, err := range Params(body) {
		if err != nil {
			t.Fatal(err)
		}
		codes = append(codes, p.Code)
	}
	if !bytes.Equal(codes, []byte{2, 9, 13, 25, 30, 40, 50}) {
		t.Errorf("codes %v", codes)
	}
	// Early break and errors.
	n := 0
	for range Params(body) {
		n++
		break
	}
	if n != 1 {
		t.Errorf("break: %d", n)
	}
	var gotErr error
	for _, err := range Params([]byte{0x06, 0x05, 0x02}) {
		gotErr = err
	}
	if !errors.Is(gotErr, ErrTruncated) {
		t.Errorf("Params error = %v", gotErr)
	}
	it := NewParamIter(body)
	it.Next()
	it.Next()
	if p := it.Param(); p.Code != 9 || !bytes.Equal(it.Raw(), mustHex("09 0d 0b 01 00 0c 08 54 45 53 54 46 49 4c 45")) {
		t.Errorf("Raw = % x", it.Raw())
	}
	ch := it.Param().Children()
	var inner []string
	for ch.Next() {
		inner = append(inner, ch.Param().String())
	}
	if strings.Join(inner, " ") != `PI11=00 PI12="TESTFILE"` || ch.Err() != nil {
		t.Errorf("children %v %v", inner, ch.Err())
	}
	// Values alias the input and are capacity-limited so append copies.
	v := it.Param().Value
	if &v[0] != &body[7] || cap(v) != len(v) {
		t.Errorf("Value does not alias input exactly")
	}
}

func TestNoSecretsInText(t *testing.T) {
	const secret = "SECRET01"
	b := vec(t, "connect-minimal")
	f, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConnect(b)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := f.Get(PIAccessControl)
	outs := []string{
		f.String(), p.String(), c.String(),
		fmt.Sprintf("%v %+v %#v %s %x %q", c, c, c, c.Password, c.Password, c.Password),
		fmt.Sprintf("%v %+v %#v %#v %#v", f, p, f, p, []Param{p}),
	}
	js, _ := c.Password.MarshalJSON()
	outs = append(outs, string(js), c.Password.LogValue().String())
	// Errors built from a CONNECT carrying the password must not echo it.
	bad := bytes.Clone(b)
	bad[27] = 0x09 // PI 5's LI now overruns into PI 6
	_, err1 := Decode(bad)
	_, err2 := RewriteConnect(nil, b, "A", "B", []byte("0123456789ABCDEFG"))
	_, _, err3 := ParsePreConnection(append(vec(t, "preconnect")[:23], 0xFF, 0x00))
	_, err4 := AppendPreConnection(nil, "ID", "SECRET01X", false)
	for _, err := range []error{err1, err2, err3, err4} {
		if err == nil {
			t.Fatal("expected an error")
		}
		outs = append(outs, err.Error())
	}
	for _, s := range outs {
		for _, leak := range []string{secret, "0123456789", fmt.Sprintf("%x", secret), "53 45 43 52"} {
			if strings.Contains(s, leak) {
				t.Errorf("secret leaked in %q", s)
			}
		}
	}
}

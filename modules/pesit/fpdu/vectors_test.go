package fpdu

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	vectorsOnce sync.Once
	vectors     map[string][]byte
	vectorsErr  error
)

// vec returns a named vector from testdata/vectors.txt.
func vec(tb testing.TB, name string) []byte {
	tb.Helper()
	vectorsOnce.Do(func() { vectors, vectorsErr = loadVectors(filepath.Join("testdata", "vectors.txt")) })
	if vectorsErr != nil {
		tb.Fatal(vectorsErr)
	}
	b, ok := vectors[name]
	if !ok {
		tb.Fatalf("no vector %q in testdata/vectors.txt", name)
	}
	return bytes.Clone(b)
}

func loadVectors(path string) (map[string][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[string][]byte{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, hx, ok := strings.Cut(line, ":")
		if !ok {
			return nil, errors.New("bad vector line: " + line)
		}
		b, err := hex.DecodeString(strings.ReplaceAll(hx, " ", ""))
		if err != nil {
			return nil, err
		}
		m[strings.TrimSpace(name)] = b
	}
	return m, sc.Err()
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// goldenFrames lists every FPDU vector with an independent way of building
// it through the encoder API and the expected decoded form.
var goldenFrames = []struct {
	name  string
	build func() ([]byte, error)
	want  string // FPDU.String of the decoded vector
}{
	{"connect-minimal", func() ([]byte, error) {
		return AppendFPDU(nil, TypeConnect, 0, 1, PIString(PIRequesterID, "BANK_XYZ"), PIString(PIServerID, "PESITSRV"),
			PI(PIAccessControl, PadPassword("SECRET01")), PIByte(PIVersion, VersionE), PIByte(PIAccessType, 0))
	}, `CONNECT len=42 dst=0 src=1 PI3="BANK_XYZ" PI4="PESITSRV" PI5=<redacted 8 bytes> PI6=02 PI22=00`},
	{"connect-sync", func() ([]byte, error) {
		return AppendFPDU(nil, TypeConnect, 0, 1, PIString(3, "BANK_XYZ"), PIString(4, "PESITSRV"),
			PI(5, []byte("SECRET01")), PIByte(6, 2), PI(7, []byte{0, 0x40, 2}), PIByte(22, 0), PIByte(23, 1))
	}, `CONNECT len=50 dst=0 src=1 PI3="BANK_XYZ" PI4="PESITSRV" PI5=<redacted 8 bytes> PI6=02 PI7=004002 PI22=00 PI23=01`},
	{"cx-connect", func() ([]byte, error) {
		return AppendFPDU(nil, TypeConnect, 0, 0x62, PIString(3, "CXCLIENT"), PIString(4, "PESITSRV"),
			PI(5, PadPassword("test123")), PIByte(6, 2), PI(7, []byte{0, 0x20, 2}), PIByte(22, 2))
	}, `CONNECT len=47 dst=0 src=98 PI3="CXCLIENT" PI4="PESITSRV" PI5=<redacted 8 bytes> PI6=02 PI7=002002 PI22=02`},
	{"aconnect", func() ([]byte, error) {
		return AppendFPDU(nil, TypeAConnect, 1, 5, PIByte(PIVersion, 2))
	}, `ACONNECT len=9 dst=1 src=5 PI6=02`},
	{"aconnect-sync", func() ([]byte, error) {
		return AppendFPDU(nil, TypeAConnect, 1, 5, PIByte(6, 2), PI(7, []byte{0, 0x40, 2}), PIByte(23, 1))
	}, `ACONNECT len=17 dst=1 src=5 PI6=02 PI7=004002 PI23=01`},
	{"pw-aconnect-pull", func() ([]byte, error) {
		return AppendFPDU(nil, TypeAConnect, 0x62, 0x23, PIByte(6, 2), PI(7, []byte{0, 0x20, 2}))
	}, `ACONNECT len=14 dst=98 src=35 PI6=02 PI7=002002`},
	{"pw-aconnect-push", func() ([]byte, error) {
		return AppendFPDU(nil, TypeAConnect, 0x62, 0xE2, PIByte(6, 2), PI(7, []byte{0, 0x20, 2}))
	}, `ACONNECT len=14 dst=98 src=226 PI6=02 PI7=002002`},
	{"cx-aconnect", func() ([]byte, error) {
		return AppendFPDU(nil, TypeAConnect, 1, 0x61, PIByte(6, 2), PI(7, []byte{0, 0, 0}))
	}, `ACONNECT len=14 dst=1 src=97 PI6=02 PI7=000000`},
	{"rconnect-304", func() ([]byte, error) {
		return AppendFPDU(nil, TypeRConnect, 1, 0, NewDiag(ReasonUnauthorized).Param())
	}, `RCONNECT len=11 dst=1 src=0 PI2=030130`},
	{"rconnect-301", func() ([]byte, error) {
		return AppendFPDU(nil, TypeRConnect, 1, 0, NewDiag(ReasonUnknownID).Param())
	}, `RCONNECT len=11 dst=1 src=0 PI2=03012d`},
	{"release", func() ([]byte, error) {
		return AppendFPDU(nil, TypeRelease, 5, 1, DiagOK.Param())
	}, `RELEASE len=11 dst=5 src=1 PI2=000000`},
	{"relconf", func() ([]byte, error) {
		return AppendFPDU(nil, TypeRelConf, 1, 5)
	}, `RELCONF len=6 dst=1 src=5`},
	{"abort-311", func() ([]byte, error) {
		return AppendFPDU(nil, TypeAbort, 5, 1, NewDiag(ReasonProtocolError).Param())
	}, `ABORT len=11 dst=5 src=1 PI2=030137`},
	{"pw-ack-select", func() ([]byte, error) {
		return AppendFPDU(nil, TypeAckSelect, 0x62, 0,
			DiagOK.Param(),
			PGI(PGIFileID, PIByte(PIFileType, 0), PIString(PIFileName, "TESTFILE")),
			PIUint(PITransferID, 0x24cb, 0),
			PIUint(PIMaxEntitySize, 0xffff, 0),
			PGI(PGILogicalAttrs, PIByte(PIArticleFormat, 0x80), PIUint(PIArticleLength, 1024, 2)),
			PGI(PGIPhysicalAttrs, PIUint(PIMaxSpace, 0x100000, 0)),
			PGI(PGIHistoricAttrs, PIString(PICreationDate, "260119012505")))
	}, `ACK_SELECT len=66 dst=98 src=0 PI2=000000 PGI9{PI11=00 PI12="TESTFILE"} PI13=24cb PI25=ffff ` +
		`PGI30{PI31=80 PI32=0400} PGI40{PI42=100000} PGI50{PI51="260119012505"}`},
	{"ack-select-205", func() ([]byte, error) {
		return AppendFPDU(nil, TypeAckSelect, 0x62, 0, NewDiag(ReasonFileNotFound).Param(), PIString(PIFreeMessage, "FILE NOT FOUND"))
	}, `ACK_SELECT len=27 dst=98 src=0 PI2=0200cd PI99="FILE NOT FOUND"`},
	{"cx-trans-end", func() ([]byte, error) {
		return AppendFPDU(nil, TypeTransEnd, 0xE2, 0, PIUint(PIByteCount, 1<<20, 0), PIUint(PIArticleCount, 1024, 0))
	}, `TRANS_END len=15 dst=226 src=0 PI27=100000 PI28=0400`},
	{"syn-1", func() ([]byte, error) {
		return AppendFPDU(nil, TypeSyn, 0xE2, 0, PIUint(PISyncNumber, 1, 0))
	}, `SYN len=9 dst=226 src=0 PI20=01`},
	{"ack-syn-1", func() ([]byte, error) {
		return AppendFPDU(nil, TypeAckSyn, 0x62, 0, PIUint(PISyncNumber, 1, 0))
	}, `ACK_SYN len=9 dst=98 src=0 PI20=01`},
	{"cx-dtf-multi-header", func() ([]byte, error) {
		return AppendHeader(nil, Header{Length: 6, Type: TypeDTF, DstID: 0xE2, SrcID: 3}), nil
	}, `DTF len=6 dst=226 src=3`},
	{"cx-dtfda-header", func() ([]byte, error) { return AppendData(nil, TypeDTFDA, 0xE2, nil) }, `DTFDA len=6 dst=226 src=0`},
	{"cx-dtffa-header", func() ([]byte, error) { return AppendData(nil, TypeDTFFA, 0xE2, nil) }, `DTFFA len=6 dst=226 src=0`},
	{"dtf-multi-3", func() ([]byte, error) {
		return AppendArticles(nil, 5, []byte("ABC"), []byte("DE"), []byte("F"))
	}, `DTF len=18 dst=5 src=3 data=12B`},
	{"dtf-hello", func() ([]byte, error) {
		return AppendDTF(nil, 0x61, []byte("Hello PeSIT!"))
	}, `DTF len=18 dst=97 src=0 data=12B`},
}

func TestGoldenFrames(t *testing.T) {
	for _, g := range goldenFrames {
		t.Run(g.name, func(t *testing.T) {
			want := vec(t, g.name)
			got, err := g.build()
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("build:\n got % x\nwant % x", got, want)
			}
			f, err := Decode(want)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if s := f.String(); s != g.want {
				t.Errorf("decoded:\n got %s\nwant %s", s, g.want)
			}
			re, err := f.Append([]byte{0xAA})
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			if !bytes.Equal(re[1:], want) || re[0] != 0xAA {
				t.Errorf("re-encode:\n got % x\nwant AA % x", re, want)
			}
		})
	}
}

func TestGoldenConnect(t *testing.T) {
	tests := []struct {
		name, requester, server, password, newPassword string
		src                                            byte
		sync                                           [2]int // interval, window; -1 when absent
		access                                         byte
		resync                                         bool
	}{
		{"connect-minimal", "BANK_XYZ", "PESITSRV", "SECRET01", "", 1, [2]int{-1, -1}, 0, false},
		{"connect-sync", "BANK_XYZ", "PESITSRV", "SECRET01", "", 1, [2]int{64, 2}, 0, true},
		{"cx-connect", "CXCLIENT", "PESITSRV", "test123", "", 0x62, [2]int{32, 2}, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := vec(t, tt.name)
			c, err := ParseConnect(b)
			if err != nil {
				t.Fatal(err)
			}
			if c.RequesterID != tt.requester || c.ServerID != tt.server || c.SrcID != tt.src || c.DstID != 0 {
				t.Errorf("ids: got %v", c)
			}
			if !c.HasPassword || len(c.Password) != 8 {
				t.Fatalf("password: has=%v len=%d", c.HasPassword, len(c.Password))
			}
			cur, nw := PasswordFromPI5(c.Password)
			if cur != tt.password || nw != tt.newPassword {
				t.Errorf("PasswordFromPI5: got %q/%q", cur, nw)
			}
			if c.Version != VersionE || !c.HasAccessType || c.AccessType != tt.access || c.Resync != tt.resync || c.CRC {
				t.Errorf("fields: %v resync=%v crc=%v", c, c.Resync, c.CRC)
			}
			if tt.sync[0] < 0 {
				if c.HasSync {
					t.Errorf("unexpected PI 7")
				}
			} else if !c.HasSync || int(c.SyncInterval) != tt.sync[0] || int(c.SyncWindow) != tt.sync[1] {
				t.Errorf("PI 7: %v %d/%d", c.HasSync, c.SyncInterval, c.SyncWindow)
			}
			re, err := c.Append(nil)
			if err != nil || !bytes.Equal(re, b) {
				t.Errorf("Connect.Append: %v\n got % x\nwant % x", err, re, b)
			}
		})
	}
}

func TestGoldenPrefixedConnect(t *testing.T) {
	raw := vec(t, "connect-minimal")
	want := vec(t, "connect-prefixed")
	got, err := AppendNSDU(nil, FramingPrefixed, raw)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("AppendNSDU: %v\n got % x\nwant % x", err, got, want)
	}
	got, err = AppendNSDU(nil, FramingRaw, raw)
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("AppendNSDU raw: %v % x", err, got)
	}
	r := NewReader(bytes.NewReader(want), FramingAuto)
	f, err := r.Next()
	if err != nil || !bytes.Equal(f, raw) || r.Framing() != FramingPrefixed {
		t.Fatalf("Reader: %v %v % x", err, r.Framing(), f)
	}
}

func TestGoldenDiagnostics(t *testing.T) {
	tests := []struct {
		name   string
		diag   Diag
		str    string
		text   string
		reason uint16
	}{
		{"diag-success", DiagOK, "0-000", "success", 0},
		{"diag-3-301", Diag{3, 301}, "3-301", "requested identification unknown", ReasonUnknownID},
		{"diag-3-304", Diag{3, 304}, "3-304", "requester not authorised", ReasonUnauthorized},
		{"diag-3-308", Diag{3, 308}, "3-308", "version not supported", ReasonVersionUnsupported},
		{"diag-3-311", Diag{3, 311}, "3-311", "remote PeSIT protocol error", ReasonProtocolError},
		{"diag-3-318", Diag{3, 318}, "3-318", "mandatory PI absent or illegal PI content", ReasonBadParameter},
		{"diag-2-205", Diag{2, 205}, "2-205", "file not found", ReasonFileNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := vec(t, tt.name)
			d, err := ParseDiag(b)
			if err != nil || d != tt.diag {
				t.Fatalf("ParseDiag(% x) = %v, %v", b, d, err)
			}
			if d.String() != tt.str || d.Text() != tt.text {
				t.Errorf("got %q %q", d.String(), d.Text())
			}
			if got := d.Bytes(); !bytes.Equal(got[:], b) {
				t.Errorf("Bytes = % x", got)
			}
			if NewDiag(tt.reason) != tt.diag {
				t.Errorf("NewDiag(%d) = %v", tt.reason, NewDiag(tt.reason))
			}
			if d.OK() != (tt.reason == 0) {
				t.Errorf("OK = %v", d.OK())
			}
		})
	}
	for _, name := range []string{"rconnect-304", "rconnect-301", "abort-311", "release"} {
		f, err := Decode(vec(t, name))
		if err != nil {
			t.Fatal(err)
		}
		d, err := f.Diag()
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]Diag{"rconnect-304": {3, 304}, "rconnect-301": {3, 301}, "abort-311": {3, 311}, "release": DiagOK}[name]
		if d != want {
			t.Errorf("%s: Diag = %v, want %v", name, d, want)
		}
	}
}

func TestGoldenAckSelectGet(t *testing.T) {
	f, err := Decode(vec(t, "pw-ack-select"))
	if err != nil {
		t.Fatal(err)
	}
	num := func(code byte) uint64 {
		t.Helper()
		p, ok := f.Get(code)
		if !ok {
			t.Fatalf("Get(%d) missing", code)
		}
		v, err := p.Uint()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := num(PITransferID); v != 0x24cb {
		t.Errorf("PI 13 = %#x", v)
	}
	if v := num(PIMaxEntitySize); v != 0xffff {
		t.Errorf("PI 25 = %#x", v)
	}
	if v := num(PIArticleLength); v != 1024 {
		t.Errorf("PI 32 = %d", v)
	}
	if v := num(PIMaxSpace); v != 0x100000 {
		t.Errorf("PI 42 = %#x", v)
	}
	if v := num(PIFileType); v != 0 {
		t.Errorf("PI 11 = %d", v)
	}
	if p, _ := f.Get(PIFileName); p.Text() != "TESTFILE" {
		t.Errorf("PI 12 = %q", p.Text())
	}
	if p, _ := f.Get(PICreationDate); p.Text() != "260119012505" {
		t.Errorf("PI 51 = %q", p.Text())
	}
	if p, ok := f.Get(PGILogicalAttrs); !ok || !p.IsGroup() || len(p.Value) != 7 {
		t.Errorf("PGI 30 = %v", p)
	}
	if _, ok := f.Get(PIFreeMessage); ok {
		t.Errorf("PI 99 should be absent")
	}
	if d, err := f.Diag(); err != nil || !d.OK() {
		t.Errorf("Diag = %v, %v", d, err)
	}
}

func TestGoldenArticles(t *testing.T) {
	f, err := Decode(vec(t, "dtf-multi-3"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	it := f.Articles()
	for it.Next() {
		got = append(got, string(it.Article()))
	}
	if it.Err() != nil || strings.Join(got, ",") != "ABC,DE,F" {
		t.Fatalf("articles %q, err %v", got, it.Err())
	}
	f, _ = Decode(vec(t, "dtf-hello"))
	it = f.Articles()
	if !it.Next() || string(it.Article()) != "Hello PeSIT!" || it.Next() || it.Err() != nil {
		t.Fatalf("mono article: %q %v", it.Article(), it.Err())
	}
	// The recorder stripped the data of this 3-article DTF.
	f, _ = Decode(vec(t, "cx-dtf-multi-header"))
	it = f.Articles()
	if it.Next() || !errors.Is(it.Err(), ErrTruncated) {
		t.Fatalf("stripped multi-article DTF: err %v", it.Err())
	}
}

func TestGoldenPI5Unit(t *testing.T) {
	want := vec(t, "pi5-test123")
	got, err := appendUnit(nil, PIAccessControl, PadPassword("test123"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("got % x, %v", got, err)
	}
}

package fpdu

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// The Connect:Express recordings live in the shared folder beside the
// module root and are read in place, never copied into the repository.

type record struct {
	sent bool
	fpdu []byte
}

// tracesDir returns shared/testdata/pesit-traces next to the module root,
// or skips the test when that folder is absent (e.g. a bare checkout).
func tracesDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Skip("module root not found")
		}
		dir = parent
	}
	traces := filepath.Join(dir, "..", "shared", "testdata", "pesit-traces")
	if _, err := os.Stat(traces); err != nil {
		tb.Skipf("recordings not available: %v", err)
	}
	return traces
}

// readRecording parses [dir 1B][len 2B BE][FPDU] records.
func readRecording(tb testing.TB, name string) []record {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(tracesDir(tb), name))
	if err != nil {
		tb.Fatal(err)
	}
	var recs []record
	for off := 0; off < len(b); {
		if len(b)-off < 3 {
			tb.Fatalf("%s: stray %d bytes at %d", name, len(b)-off, off)
		}
		n := int(binary.BigEndian.Uint16(b[off+1:]))
		if b[off] > 1 || off+3+n > len(b) {
			tb.Fatalf("%s: bad record at %d", name, off)
		}
		recs = append(recs, record{sent: b[off] == 1, fpdu: b[off+3 : off+3+n]})
		off += 3 + n
	}
	return recs
}

var recordings = []struct {
	name   string
	frames int
	sha256 string
}{
	{"cx-push-1mb.raw", 847, "2e5a05327225bc08feca38f6dcc6b721eada1b9c4d970e087461d50e93e23cb2"},
	{"simple-push.raw", 25, "00d24293215aad0e03dfa55e9d84450c2bd034fcf26389ac123da14d11689ef8"},
	{"connect-release.raw", 6, "95535a6cf15ae6e2f2a1014eb6114a080d999e928daab870b0c9c59a8ea1f950"},
}

func TestRecordings(t *testing.T) {
	for _, rec := range recordings {
		t.Run(rec.name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(tracesDir(t), rec.name))
			if err != nil {
				t.Fatal(err)
			}
			if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != rec.sha256 {
				t.Fatalf("recording changed: sha256 %x", sum)
			}
			recs := readRecording(t, rec.name)
			if len(recs) != rec.frames {
				t.Fatalf("%d frames, want %d", len(recs), rec.frames)
			}
			strictFailures := 0
			for i, r := range recs {
				h, err := ParseHeader(r.fpdu)
				if err != nil || int(h.Length) != len(r.fpdu) {
					t.Fatalf("frame %d: %v (LTM %d, %d bytes)", i+1, err, h.Length, len(r.fpdu))
				}
				lenient, err := DecodeOptions{Lenient: true}.Decode(r.fpdu)
				if err != nil {
					t.Fatalf("frame %d lenient: %v", i+1, err)
				}
				f, err := Decode(r.fpdu)
				if r.sent {
					// Sent frames are byte-exact: strict decode, re-encode.
					if err != nil {
						t.Fatalf("sent frame %d %v: %v", i+1, h.Type, err)
					}
					re, err := f.Append(nil)
					if err != nil || !bytes.Equal(re, r.fpdu) {
						t.Fatalf("sent frame %d %v re-encoded: %v\n got % x\nwant % x", i+1, h.Type, err, re, r.fpdu)
					}
					continue
				}
				if err != nil {
					// Only the re-serialised empty PGIs may fail strict mode.
					if !errors.Is(err, ErrMalformed) || !hasEmptyPGI(lenient) {
						t.Fatalf("received frame %d %v: %v", i+1, h.Type, err)
					}
					strictFailures++
				}
			}
			wantFailures := map[string]int{"cx-push-1mb.raw": 1}[rec.name] // the CREATE
			if strictFailures != wantFailures {
				t.Errorf("%d received frames fail strict decoding, want %d", strictFailures, wantFailures)
			}
		})
	}
}

func hasEmptyPGI(f FPDU) bool {
	for _, p := range f.Params {
		if p.IsGroup() && len(p.Value) == 0 {
			return true
		}
	}
	return false
}

func TestRecordingCXPushCounts(t *testing.T) {
	recs := readRecording(t, "cx-push-1mb.raw")
	got := map[string]int{}
	multi := 0
	for _, r := range recs {
		h, err := ParseHeader(r.fpdu)
		if err != nil {
			t.Fatal(err)
		}
		dir := "recv"
		if r.sent {
			dir = "sent"
		}
		got[dir+" "+h.Type.String()]++
		if h.Type == TypeDTF && h.SrcID == 3 {
			multi++
		}
	}
	// Frame counts from the recordings README.
	want := map[string]int{
		"recv CONNECT": 1, "recv CREATE": 1, "recv ORF": 1, "recv WRITE": 1,
		"recv DTF": 256, "recv DTFDA": 256, "recv DTFFA": 256, "recv SYN": 31,
		"recv DTF_END": 1, "recv TRANS_END": 1, "recv CRF": 1, "recv DESELECT": 1, "recv RELEASE": 1,
		"sent ACONNECT": 1, "sent ACK_CREATE": 1, "sent ACK_ORF": 1, "sent ACK_WRITE": 1,
		"sent ACK_SYN": 31, "sent ACK_TRANS_END": 1, "sent ACK_CRF": 1, "sent ACK_DESELECT": 1, "sent RELCONF": 1,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("counts:\n got %v\nwant %v", got, want)
	}
	if multi != 256 {
		t.Errorf("%d multi-article DTFs with ID.SRC = 3, want 256", multi)
	}
	// SYN numbers run 1..31 and each ACK(SYN) echoes its SYN.
	next := uint64(1)
	for i, r := range recs {
		f, err := DecodeOptions{Lenient: true}.Decode(r.fpdu)
		if err != nil {
			t.Fatal(err)
		}
		if f.Type != TypeSyn {
			continue
		}
		p, _ := f.Get(PISyncNumber)
		n, err := p.Uint()
		if err != nil || n != next {
			t.Fatalf("SYN %d: %d %v", next, n, err)
		}
		ack, err := Decode(recs[i+1].fpdu)
		if err != nil || ack.Type != TypeAckSyn {
			t.Fatalf("frame after SYN %d: %v %v", n, ack.Type, err)
		}
		if q, _ := ack.Get(PISyncNumber); !bytes.Equal(q.Value, p.Value) {
			t.Fatalf("ACK(SYN) %d echoes % x", n, q.Value)
		}
		next++
	}
	if next != 32 {
		t.Errorf("last SYN %d", next-1)
	}
	// The received CONNECT, the basis for authentication.
	c, err := ParseConnect(recs[0].fpdu)
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := PasswordFromPI5(c.Password)
	if c.RequesterID != "CXCLIENT" || c.ServerID != "PESITSRV" || cur != "test123" || c.SrcID != 0x62 ||
		c.SyncInterval != 32 || c.SyncWindow != 2 || c.AccessType != 2 {
		t.Errorf("CONNECT: %v", c)
	}
	for _, f := range []Framing{FramingPrefixed, FramingRaw} {
		b := must(AppendNSDU(nil, f, recs[0].fpdu))
		if d, err := Detect(b); err != nil || d.Kind != KindConnect || d.Prefixed != (f == FramingPrefixed) {
			t.Errorf("Detect %v: %+v %v", f, d, err)
		}
	}
	// TRANS.END totals.
	te, _ := Decode(recs[839].fpdu)
	bc, _ := te.Get(PIByteCount)
	ac, _ := te.Get(PIArticleCount)
	if n, _ := bc.Uint(); te.Type != TypeTransEnd || n != 1<<20 {
		t.Errorf("TRANS.END byte count %d (%v)", n, te.Type)
	}
	if n, _ := ac.Uint(); n != 1024 {
		t.Errorf("TRANS.END article count %d", n)
	}
}

// TestRecordingThroughReader replays the C:X push through the Reader in
// both framings, packing the received data FPDUs the way C:X fills an NSDU.
func TestRecordingThroughReader(t *testing.T) {
	recs := readRecording(t, "cx-push-1mb.raw")
	var nsdus [][][]byte
	var cur [][]byte
	flush := func() {
		if len(cur) > 0 {
			nsdus = append(nsdus, cur)
			cur = nil
		}
	}
	received := 0
	for _, r := range recs {
		if r.sent {
			continue
		}
		received++
		if h, _ := ParseHeader(r.fpdu); h.Type.Concatenable() {
			if cur = append(cur, r.fpdu); len(cur) == 3 {
				flush()
			}
			continue
		}
		flush()
		nsdus = append(nsdus, [][]byte{r.fpdu})
	}
	flush()
	if len(nsdus) >= received-500 {
		t.Fatalf("packing produced %d NSDUs for %d FPDUs", len(nsdus), received)
	}
	var want [][]byte
	for _, r := range recs {
		if !r.sent {
			want = append(want, r.fpdu)
		}
	}
	for _, f := range []Framing{FramingPrefixed, FramingRaw} {
		stream, _ := encodeStream(t, nsdus, f)
		r := NewReader(bytes.NewReader(stream), FramingAuto)
		for i, w := range want {
			got, err := r.Next()
			if err != nil || !bytes.Equal(got, w) {
				t.Fatalf("%v frame %d: %v", f, i, err)
			}
		}
		if _, err := r.Next(); err != io.EOF || r.Framing() != f {
			t.Fatalf("%v end: %v, framing %v", f, err, r.Framing())
		}
	}
}

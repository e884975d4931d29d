package fpdu

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/bankedge/bankedge/internal/shareddata"
)

// The Connect:Express recordings live in the shared folder beside the
// module root and are read in place, never copied into the repository.

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
			raw, err := os.ReadFile(shareddata.Path(t, "testdata", "pesit-traces", rec.name))
			if err != nil {
				t.Fatal(err)
			}
			if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != rec.sha256 {
				t.Fatalf("recording changed: sha256 %x", sum)
			}
			recs := shareddata.PeSITRecording(t, rec.name)
			if len(recs) != rec.frames {
				t.Fatalf("%d frames, want %d", len(recs), rec.frames)
			}
			strictFailures := 0
			for i, r := range recs {
				h, err := ParseHeader(r.FPDU)
				if err != nil || int(h.Length) != len(r.FPDU) {
					t.Fatalf("frame %d: %v (LTM %d, %d bytes)", i+1, err, h.Length, len(r.FPDU))
				}
				lenient, err := DecodeOptions{Lenient: true}.Decode(r.FPDU)
				if err != nil {
					t.Fatalf("frame %d lenient: %v", i+1, err)
				}
				f, err := Decode(r.FPDU)
				if r.Sent {
					// Sent frames are byte-exact: strict decode, re-encode.
					if err != nil {
						t.Fatalf("sent frame %d %v: %v", i+1, h.Type, err)
					}
					re, err := f.Append(nil)
					if err != nil || !bytes.Equal(re, r.FPDU) {
						t.Fatalf("sent frame %d %v re-encoded: %v\n got % x\nwant % x", i+1, h.Type, err, re, r.FPDU)
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
	recs := shareddata.PeSITRecording(t, "cx-push-1mb.raw")
	got := map[string]int{}
	multi := 0
	for _, r := range recs {
		h, err := ParseHeader(r.FPDU)
		if err != nil {
			t.Fatal(err)
		}
		dir := "recv"
		if r.Sent {
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
		f, err := DecodeOptions{Lenient: true}.Decode(r.FPDU)
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
		ack, err := Decode(recs[i+1].FPDU)
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
	c, err := ParseConnect(recs[0].FPDU)
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := PasswordFromPI5(c.Password)
	if c.RequesterID != "CXCLIENT" || c.ServerID != "PESITSRV" || cur != "test123" || c.SrcID != 0x62 ||
		c.SyncInterval != 32 || c.SyncWindow != 2 || c.AccessType != 2 {
		t.Errorf("CONNECT: %v", c)
	}
	for _, f := range []Framing{FramingPrefixed, FramingRaw} {
		b := must(AppendNSDU(nil, f, recs[0].FPDU))
		if d, err := Detect(b); err != nil || d.Kind != KindConnect || d.Prefixed != (f == FramingPrefixed) {
			t.Errorf("Detect %v: %+v %v", f, d, err)
		}
	}
	// TRANS.END totals.
	te, _ := Decode(recs[839].FPDU)
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
	recs := shareddata.PeSITRecording(t, "cx-push-1mb.raw")
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
		if r.Sent {
			continue
		}
		received++
		if h, _ := ParseHeader(r.FPDU); h.Type.Concatenable() {
			if cur = append(cur, r.FPDU); len(cur) == 3 {
				flush()
			}
			continue
		}
		flush()
		nsdus = append(nsdus, [][]byte{r.FPDU})
	}
	flush()
	if len(nsdus) >= received-500 {
		t.Fatalf("packing produced %d NSDUs for %d FPDUs", len(nsdus), received)
	}
	var want [][]byte
	for _, r := range recs {
		if !r.Sent {
			want = append(want, r.FPDU)
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

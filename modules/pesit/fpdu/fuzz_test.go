package fpdu

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// Seeds come from testdata/vectors.txt via f.Add and from the committed
// corpus in testdata/fuzz/FuzzXxx, which plain `go test` also runs.

var fpduVectors = []string{
	"connect-minimal", "connect-sync", "cx-connect", "aconnect", "aconnect-sync",
	"rconnect-304", "rconnect-301", "release", "relconf", "abort-311",
	"pw-aconnect-pull", "pw-aconnect-push", "cx-aconnect", "pw-ack-select", "cx-trans-end",
	"cx-dtf-multi-header", "cx-dtfda-header", "cx-dtffa-header", "dtf-multi-3", "dtf-hello",
	"syn-1", "ack-syn-1", "ack-select-205",
}

// canonical reports whether every LI in a control FPDU uses the shortest
// form, the condition for a byte-exact re-encoding.
func canonical(b []byte) bool {
	var walk func(body []byte) bool
	walk = func(body []byte) bool {
		it := NewParamIter(body)
		it.AllowEmpty = true
		for it.Next() {
			raw, p := it.Raw(), it.Param()
			if raw[1] == 0xFF && len(p.Value) < 0xFF {
				return false
			}
			if p.IsGroup() && !walk(p.Value) {
				return false
			}
		}
		return true
	}
	return len(b) < HeaderLen || MakeType(b[2], b[3]).IsData() || walk(b[HeaderLen:])
}

func FuzzDecode(f *testing.F) {
	for _, name := range fpduVectors {
		f.Add(vec(f, name))
	}
	f.Add(mustHex("00 1d c0 11 e2 00 09 00 0d 03 00 24 c9 10 01 02 11 01 00 19 02 ff ff 1e 00 28 00 32 00"))
	f.Add(mustHex("00 0b 40 24 01 05 63 ff 00 01 41"))
	f.Add(mustHex("00 09 40 25 05 01 02 00 cd"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := Decode(b)
		lf, lerr := DecodeOptions{Lenient: true}.Decode(b)
		if lerr == nil {
			_ = lf.String()
			_, _ = lf.Diag()
			_, _ = lf.Get(PIFileName)
		}
		if err != nil {
			if errors.Is(err, ErrMalformed) || errors.Is(err, ErrTruncated) || errors.Is(err, ErrOrder) || errors.Is(err, ErrUnknownType) {
				return
			}
			t.Fatalf("unclassified error: %v", err)
		}
		if lerr != nil {
			t.Fatalf("strict accepted but lenient refused: %v", lerr)
		}
		_, _ = fr.Diag()
		for _, p := range fr.Params {
			_ = p.String()
			_, _ = p.Uint()
		}
		it := fr.Articles()
		for it.Next() {
			_ = it.Article()
		}
		re, err := fr.Append(nil)
		if err != nil {
			t.Fatalf("re-encoding a decoded frame: %v", err)
		}
		if canonical(b) && !bytes.Equal(re, b) {
			t.Fatalf("re-encoding differs:\n got % x\nwant % x", re, b)
		}
		fr2, err := Decode(re)
		if err != nil || !sameContent(fr, fr2) {
			t.Fatalf("re-decoding: %v\n%s\n%s", err, fr2, fr)
		}
	})
}

// sameContent compares two frames but for LTM, which a non-canonical LI
// changes.
func sameContent(a, b FPDU) bool {
	if a.Type != b.Type || a.DstID != b.DstID || a.SrcID != b.SrcID || !bytes.Equal(a.Data, b.Data) || len(a.Params) != len(b.Params) {
		return false
	}
	for i := range a.Params {
		if a.Params[i].Code != b.Params[i].Code || !bytes.Equal(a.Params[i].Value, b.Params[i].Value) {
			return false
		}
	}
	return true
}

func FuzzNSDUReader(f *testing.F) {
	for _, wire := range []Framing{FramingPrefixed, FramingRaw} {
		stream, _ := encodeStream(f, samplePush(f, 16)[:7], wire)
		f.Add(stream, uint8(wire))
		f.Add(stream, uint8(FramingAuto))
	}
	f.Add(append(vec(f, "preconnect-prefixed"), vec(f, "connect-prefixed")...), uint8(FramingAuto))
	f.Add(mustHex("00 0f 00 09 c0 03 e2 00 14 01 01 00 06 00 41 e2 00"), uint8(FramingPrefixed))
	f.Add(mustHex("00 0f 00 09 c0 03 e2 00 14 01 01 00 06 00 41 e2 00"), uint8(3+FramingPrefixed)) // max 8
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		// mode packs the framing and, above 2, a small maximum NSDU size.
		framing, maxSize := Framing(mode%3), int(mode/3)*8
		read := func(rd io.Reader) (units [][]byte, detected Framing, err error) {
			r := NewReader(rd, framing)
			if maxSize > 0 {
				r.SetMaxSize(maxSize)
			}
			for {
				u, err := r.ReadNSDU()
				if err != nil {
					return units, r.Framing(), err
				}
				for rest := u; len(rest) > 0; {
					if _, rest, err = CutFPDU(rest); err != nil {
						t.Fatalf("returned NSDU does not split: %v", err)
					}
				}
				units = append(units, bytes.Clone(u))
			}
		}
		a, fa, errA := read(bytes.NewReader(data))
		b, fb, errB := read(iotest.OneByteReader(bytes.NewReader(data)))
		if errA == nil || errB == nil || errA.Error() != errB.Error() || fa != fb || len(a) != len(b) {
			t.Fatalf("chunking changed the outcome: %v/%v %v/%v %d/%d", errA, errB, fa, fb, len(a), len(b))
		}
		for i := range a {
			if !bytes.Equal(a[i], b[i]) {
				t.Fatalf("unit %d differs with one-byte reads", i)
			}
		}
		if errA != io.EOF {
			return
		}
		// A stream read cleanly to its end re-frames to the same bytes.
		var out []byte
		for _, u := range a {
			if fa == FramingPrefixed {
				out = append(out, byte(len(u)>>8), byte(len(u)))
			}
			out = append(out, u...)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("re-framed stream differs")
		}
	})
}

func FuzzDetect(f *testing.F) {
	for _, name := range []string{"connect-minimal", "connect-prefixed", "connect-sync", "cx-connect", "preconnect", "preconnect-prefixed", "aconnect"} {
		f.Add(vec(f, name))
	}
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Detect(b)
		switch {
		case errors.Is(err, ErrNeedMore):
			if d.Need <= len(b) {
				t.Fatalf("need %d with %d bytes", d.Need, len(b))
			}
			if len(b) > 0 {
				if _, err := Detect(b[:len(b)-1]); !errors.Is(err, ErrNeedMore) {
					t.Fatalf("a shorter prefix decided: %v", err)
				}
			}
		case err == nil:
			if d.Need > len(b) || d.Kind == KindUnknown {
				t.Fatalf("bad detection %+v for %d bytes", d, len(b))
			}
			if d2, err := Detect(b[:d.Need]); err != nil || d2 != d {
				t.Fatalf("detection depends on trailing bytes: %+v %v", d2, err)
			}
			off := 0
			if d.Prefixed {
				off = 2
			}
			if d.Kind == KindConnect {
				if err := checkConnect(b[off:d.Need]); err != nil {
					t.Fatalf("detected CONNECT does not check: %v", err)
				}
			} else if _, _, err := ParsePreConnection(b[:d.Need]); err != nil {
				t.Fatalf("detected pre-connection does not parse: %v", err)
			}
		case errors.Is(err, ErrNotPeSIT):
			if _, err := Detect(append(bytes.Clone(b), make([]byte, 64)...)); !errors.Is(err, ErrNotPeSIT) {
				t.Fatalf("more bytes revived a rejected stream: %v", err)
			}
		default:
			t.Fatalf("unexpected error %v", err)
		}
	})
}

func FuzzPreConnection(f *testing.F) {
	f.Add(vec(f, "preconnect"), "BANK_XYZ", "SECRET01", false)
	f.Add(vec(f, "preconnect-prefixed"), "LOOP", "", true)
	f.Add(vec(f, "ack0-prefixed"), "A", "12345678", true)
	f.Fuzz(func(t *testing.T, data []byte, id, pw string, prefixed bool) {
		if gotID, _, err := ParsePreConnection(data); err == nil && (gotID == "" || len(gotID) > 8) {
			t.Fatalf("parsed id %q", gotID)
		}
		if ack, err := ParsePreConnectionAnswer(data); err == nil {
			if !bytes.Equal(AppendPreConnectionAnswer(nil, ack, len(data) == 6), data) {
				t.Fatalf("answer does not round-trip")
			}
		}
		b, err := AppendPreConnection(nil, id, pw, prefixed)
		if err != nil {
			return
		}
		if want := map[bool]int{false: 24, true: 26}[prefixed]; len(b) != want {
			t.Fatalf("%d bytes", len(b))
		}
		gotID, gotPW, err := ParsePreConnection(b)
		wantID := strings.TrimRight(id, " ")
		if wantID == "" {
			if err == nil {
				t.Fatal("blank id accepted")
			}
			return
		}
		if err != nil || gotID != wantID || gotPW != strings.TrimRight(pw, " ") {
			t.Fatalf("round trip: %q %v", gotID, err)
		}
		if d, err := Detect(b); err != nil || d.Kind != KindPreConnection || d.Prefixed != prefixed {
			t.Fatalf("Detect: %+v %v", d, err)
		}
	})
}

func FuzzRewriteConnect(f *testing.F) {
	f.Add(vec(f, "cx-connect"), "BANK_XYZ", "BACKEND", []byte("s3cr    "))
	f.Add(vec(f, "connect-minimal"), "LOOP", "CETOM1", []byte(nil))
	f.Add(vec(f, "connect-sync"), "A", "B", []byte("0123456789abcdef"))
	f.Fuzz(func(t *testing.T, in []byte, requester, server string, password []byte) {
		out, err := RewriteConnect(nil, in, requester, server, password)
		if err != nil {
			return
		}
		if err := checkConnect(out); err != nil {
			t.Fatalf("rewritten CONNECT invalid: %v", err)
		}
		if _, err := ParseConnect(in); err == nil {
			c, err := ParseConnect(out)
			if err != nil {
				t.Fatalf("ParseConnect(out): %v", err)
			}
			if c.RequesterID != strings.TrimRight(requester, " ") || c.ServerID != strings.TrimRight(server, " ") ||
				c.HasPassword != (len(password) > 0) || !bytes.Equal(c.Password, password) {
				t.Fatalf("fields not replaced: %v", c)
			}
		}
		others := func(b []byte) []byte {
			var keep []byte
			it := NewParamIter(b[HeaderLen:])
			for it.Next() {
				if c := it.Param().Code; c < PIRequesterID || c > PIAccessControl {
					keep = append(keep, it.Raw()...)
				}
			}
			return keep
		}
		if !bytes.Equal(others(in), others(out)) || !bytes.Equal(in[2:HeaderLen], out[2:HeaderLen]) {
			t.Fatalf("other parameters changed")
		}
		again, err := RewriteConnect(nil, out, requester, server, password)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("rewrite is not idempotent: %v", err)
		}
	})
}

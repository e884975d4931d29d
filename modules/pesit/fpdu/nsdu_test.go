package fpdu

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// must is for building fixtures that cannot fail unless the encoder is
// broken, which other tests then report precisely.
func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// sampleNSDUs is a requester→server push with concatenated data NSDUs,
// shaped like the Connect:Express traffic of cx-push-1mb.raw.
func sampleNSDUs(tb testing.TB) [][][]byte { return samplePush(tb, 1024) }

// samplePush builds the push with articles of n bytes packed in NSDUs of
// 4n bytes; fuzz seeds use a small n to stay fast.
func samplePush(tb testing.TB, n int) [][][]byte {
	tb.Helper()
	article := bytes.Repeat([]byte{'x'}, n)
	create := must(AppendFPDU(nil, TypeCreate, 5, 0,
		PGI(PGIFileID, PIByte(PIFileType, 0), PIString(PIFileName, "FILE")),
		PIUint(PITransferID, 0x8fcc, 0), PIByte(PIPriority, 0), PIUint(PIMaxEntitySize, 4096, 0),
		PGI(PGILogicalAttrs, PIByte(PIArticleFormat, 0x80), PIUint(PIArticleLength, uint64(n), 2)),
		PGI(PGIPhysicalAttrs, PIByte(PISpaceUnit, 0), PIUint(PIMaxSpace, 1, 0))))
	dtf3 := must(AppendArticles(nil, 5, article, article, article))
	// With n = 1024, 3084 + 1012 bytes fill a 4096-byte NSDU and the 4th
	// article straddles it.
	cut := max(1, 4*n-len(dtf3)-HeaderLen)
	dtfda := must(AppendData(nil, TypeDTFDA, 5, article[:cut]))
	dtffa := must(AppendData(nil, TypeDTFFA, 5, article[cut:]))
	syn := must(AppendFPDU(nil, TypeSyn, 5, 0, PIUint(PISyncNumber, 1, 0)))
	end := must(AppendFPDU(nil, TypeDTFEnd, 5, 0, DiagOK.Param()))
	return [][][]byte{
		{vec(tb, "connect-minimal")},
		{create},
		{must(AppendFPDU(nil, TypeORF, 5, 0))},
		{must(AppendFPDU(nil, TypeWrite, 5, 0))},
		{dtf3, dtfda},
		{dtffa, syn},
		{vec(tb, "dtf-multi-3"), vec(tb, "dtf-hello"), end},
		{must(AppendFPDU(nil, TypeTransEnd, 5, 0, PIUint(PIByteCount, 4096, 0), PIUint(PIArticleCount, 4, 0)))},
		{vec(tb, "release")},
	}
}

func encodeStream(tb testing.TB, nsdus [][][]byte, f Framing) (stream []byte, bounds []int) {
	tb.Helper()
	for _, n := range nsdus {
		stream = must(AppendNSDU(stream, f, n...))
		if f == FramingRaw {
			// Raw framing has no NSDU boundaries: each FPDU is a unit.
			stream = stream[:len(stream)-len(bytes.Join(n, nil))]
			for _, p := range n {
				stream = append(stream, p...)
				bounds = append(bounds, len(stream))
			}
			continue
		}
		bounds = append(bounds, len(stream))
	}
	return stream, bounds
}

var readerWrappers = map[string]func(io.Reader) io.Reader{
	"whole":   func(r io.Reader) io.Reader { return r },
	"onebyte": iotest.OneByteReader,
	"half":    iotest.HalfReader,
	"dataerr": iotest.DataErrReader,
}

func TestReaderStreams(t *testing.T) {
	nsdus := sampleNSDUs(t)
	var flat [][]byte
	for _, n := range nsdus {
		flat = append(flat, n...)
	}
	for _, wire := range []Framing{FramingPrefixed, FramingRaw} {
		stream, _ := encodeStream(t, nsdus, wire)
		for _, mode := range []Framing{wire, FramingAuto} {
			for wname, wrap := range readerWrappers {
				t.Run(wire.String()+"/"+mode.String()+"/"+wname, func(t *testing.T) {
					// FPDU level.
					r := NewReader(wrap(bytes.NewReader(stream)), mode)
					for i, want := range flat {
						got, err := r.Next()
						if err != nil || !bytes.Equal(got, want) {
							t.Fatalf("FPDU %d: %v\n got % x\nwant % x", i, err, head(got), head(want))
						}
					}
					if _, err := r.Next(); err != io.EOF {
						t.Fatalf("end: %v", err)
					}
					if _, err := r.Next(); err != io.EOF {
						t.Fatalf("sticky end: %v", err)
					}
					if r.Framing() != wire {
						t.Errorf("Framing = %v", r.Framing())
					}
					// NSDU level.
					r = NewReader(wrap(bytes.NewReader(stream)), mode)
					var units [][]byte
					if wire == FramingRaw {
						units = flat
					} else {
						for _, n := range nsdus {
							units = append(units, bytes.Join(n, nil))
						}
					}
					for i, want := range units {
						got, err := r.ReadNSDU()
						if err != nil || !bytes.Equal(got, want) {
							t.Fatalf("NSDU %d: %v", i, err)
						}
					}
					if _, err := r.ReadNSDU(); err != io.EOF {
						t.Fatalf("end: %v", err)
					}
				})
			}
		}
	}
}

func head(b []byte) []byte { return b[:min(len(b), 16)] }

func TestReaderMixedNextAndNSDU(t *testing.T) {
	nsdus := sampleNSDUs(t)
	stream, _ := encodeStream(t, nsdus, FramingPrefixed)
	r := NewReader(bytes.NewReader(stream), FramingPrefixed)
	for i := 0; i < 5; i++ { // up to the first FPDU of the concatenated NSDU 4
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
		if i < 4 && r.More() {
			t.Fatalf("More after single-FPDU NSDU %d", i)
		}
	}
	if !r.More() {
		t.Fatal("More = false inside a concatenated NSDU")
	}
	if _, err := r.Peek(1); err == nil {
		t.Fatal("Peek inside an NSDU must fail")
	}
	rest, err := r.ReadNSDU()
	if err != nil || !bytes.Equal(rest, nsdus[4][1]) || r.More() {
		t.Fatalf("remainder: %v % x", err, head(rest))
	}
	next, err := r.ReadNSDU()
	if err != nil || !bytes.Equal(next, bytes.Join(nsdus[5], nil)) {
		t.Fatalf("next NSDU: %v", err)
	}
}

func TestReaderTruncated(t *testing.T) {
	for _, wire := range []Framing{FramingPrefixed, FramingRaw} {
		stream, bounds := encodeStream(t, sampleNSDUs(t), wire)
		isBound := map[int]int{0: 0}
		for i, b := range bounds {
			isBound[b] = i + 1
		}
		for _, mode := range []Framing{wire, FramingAuto} {
			for k := 0; k < len(stream); k++ {
				r := NewReader(bytes.NewReader(stream[:k]), mode)
				units := 0
				var err error
				for err == nil {
					if _, err = r.ReadNSDU(); err == nil {
						units++
					}
				}
				want := io.ErrUnexpectedEOF
				if n, ok := isBound[k]; ok {
					want = io.EOF
					if units != n {
						t.Fatalf("%v/%v cut %d: %d units, want %d", wire, mode, k, units, n)
					}
				}
				if err != want {
					t.Fatalf("%v/%v cut %d: %v, want %v", wire, mode, k, err, want)
				}
			}
		}
	}
}

func TestReaderErrors(t *testing.T) {
	connect := vec(t, "connect-minimal")
	syn := vec(t, "syn-1")
	dtf := vec(t, "dtf-hello")
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	prefix := func(n int) []byte { return []byte{byte(n >> 8), byte(n)} }
	big := must(AppendDTF(nil, 5, make([]byte, 194)))
	tests := []struct {
		name    string
		framing Framing
		in      []byte
		want    error
	}{
		{"prefix zero", FramingPrefixed, mustHex("00 00 00 06 c0 02 05 00"), ErrMalformed},
		{"prefix too short for an FPDU", FramingPrefixed, mustHex("00 03 00 06 c0"), ErrMalformed},
		{"NSDU longer than its FPDUs", FramingPrefixed, cat(prefix(len(syn)+3), syn, []byte{0, 1, 2}), ErrMalformed},
		{"NSDU with a partial header", FramingPrefixed, cat(prefix(len(syn)+6), syn, []byte{0, 9, 0xc0, 3, 5, 0}), ErrMalformed},
		{"LTM beyond NSDU", FramingPrefixed, cat(prefix(len(connect)-1), connect[:len(connect)-1]), ErrMalformed},
		{"concatenated CONNECTs", FramingPrefixed, cat(prefix(2*len(connect)), connect, connect), ErrMalformed},
		{"data then ACK_SYN", FramingPrefixed, cat(prefix(len(dtf)+9), dtf, vec(t, "ack-syn-1")), ErrMalformed},
		{"LTM below 6 in NSDU", FramingPrefixed, cat(prefix(len(syn)+6), syn, mustHex("00 05 c0 03 05 00")), ErrMalformed},
		{"unknown type prefixed", FramingPrefixed, mustHex("00 06 00 06 c0 07 00 00"), ErrUnknownType},
		{"unknown type raw", FramingRaw, mustHex("00 06 c0 07 00 00"), ErrUnknownType},
		{"raw LTM below 6", FramingRaw, mustHex("00 05 c0 02 05"), ErrMalformed},
		{"raw LTM zero", FramingRaw, mustHex("00 00 c0 02 05 00"), ErrMalformed},
		{"auto garbage", FramingAuto, []byte("GET / HTTP/1.1\r\n\r\n"), ErrMalformed},
		{"prefixed garbage", FramingPrefixed, []byte("GET / HTTP/1.1\r\n\r\n"), ErrUnknownType},
		{"raw garbage", FramingRaw, []byte("GET / HTTP/1.1\r\n\r\n"), ErrUnknownType},
		{"too large prefixed", FramingPrefixed, cat(prefix(len(big)), big), ErrTooLarge},
		{"too large raw", FramingRaw, big, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for wname, wrap := range readerWrappers {
				r := NewReader(wrap(bytes.NewReader(tt.in)), tt.framing)
				if strings.HasPrefix(tt.name, "too large") {
					r.SetMaxSize(100)
				}
				var err error
				for n := 0; err == nil && n < 10; n++ {
					_, err = r.Next()
				}
				if !errors.Is(err, tt.want) {
					t.Fatalf("%s: %v, want %v", wname, err, tt.want)
				}
				if _, err2 := r.Next(); err2 != err {
					t.Fatalf("error not sticky: %v then %v", err, err2)
				}
			}
		})
	}
	// Errors from the underlying reader come through.
	boom := errors.New("boom")
	r := NewReader(io.MultiReader(bytes.NewReader(connect[:10]), iotest.ErrReader(boom)), FramingRaw)
	if _, err := r.Next(); !errors.Is(err, boom) {
		t.Errorf("underlying error: %v", err)
	}
	r = NewReader(zeroReader{}, FramingRaw)
	if _, err := r.Next(); !errors.Is(err, io.ErrNoProgress) {
		t.Errorf("zero reads: %v", err)
	}
}

type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

func TestReaderMaxSizes(t *testing.T) {
	// Maximum-size units, many of them, to exercise buffer compaction.
	huge := must(AppendDTF(nil, 5, bytes.Repeat([]byte{0xA5}, MaxFPDULen-HeaderLen)))
	small := vec(t, "syn-1")
	var nsdus [][][]byte
	for i := 0; i < 7; i++ {
		nsdus = append(nsdus, [][]byte{huge}, [][]byte{small, small})
	}
	for _, wire := range []Framing{FramingPrefixed, FramingRaw} {
		stream, _ := encodeStream(t, nsdus, wire)
		for _, chunk := range []int{1000, 65537, 1 << 20} {
			r := NewReader(&chunkReader{b: stream, n: chunk}, FramingAuto)
			count := 0
			for {
				f, err := r.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("%v chunk %d: %v", wire, chunk, err)
				}
				if want := map[bool][]byte{true: huge, false: small}[len(f) > 100]; !bytes.Equal(f, want) {
					t.Fatalf("%v chunk %d: FPDU %d differs", wire, chunk, count)
				}
				count++
			}
			if count != 21 {
				t.Fatalf("%v chunk %d: %d FPDUs", wire, chunk, count)
			}
		}
	}
}

type chunkReader struct {
	b []byte
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.n)], c.b)
	c.b = c.b[n:]
	return n, nil
}

func TestReaderBuffered(t *testing.T) {
	stream, _ := encodeStream(t, sampleNSDUs(t), FramingPrefixed)
	src := &chunkReader{b: stream, n: 100}
	r := NewReader(src, FramingAuto)
	first, err := r.ReadNSDU()
	if err != nil {
		t.Fatal(err)
	}
	// What a proxy would forward: the buffered bytes, then the rest.
	rest := append(bytes.Clone(r.Buffered()), src.b...)
	if !bytes.Equal(rest, stream[2+len(first):]) {
		t.Fatalf("Buffered + remaining != rest of stream (%d vs %d bytes)", len(rest), len(stream)-2-len(first))
	}
	if len(r.Buffered()) == 0 {
		t.Fatal("expected read-ahead")
	}
}

func TestReaderPreConnection(t *testing.T) {
	for _, wire := range []Framing{FramingPrefixed, FramingRaw} {
		pre := must(AppendPreConnection(nil, "BANK_XYZ", "SECRET01", wire == FramingPrefixed))
		conn := must(AppendNSDU(nil, wire, vec(t, "connect-minimal")))
		rel := must(AppendNSDU(nil, wire, vec(t, "release")))
		r := NewReader(iotest.OneByteReader(bytes.NewReader(bytes.Join([][]byte{pre, conn, rel}, nil))), FramingAuto)
		d, err := r.Detect()
		if err != nil || d.Kind != KindPreConnection || d.Prefixed != (wire == FramingPrefixed) || d.Need != len(pre) {
			t.Fatalf("%v: Detect = %+v, %v", wire, d, err)
		}
		if r.Framing() != FramingAuto {
			t.Fatal("a pre-connection must not fix the framing")
		}
		b, err := r.Peek(d.Need)
		if err != nil {
			t.Fatal(err)
		}
		if id, pw, err := ParsePreConnection(b); err != nil || id != "BANK_XYZ" || pw != "SECRET01" {
			t.Fatalf("pre-connection %q: %v", id, err)
		}
		if err := r.Discard(d.Need); err != nil {
			t.Fatal(err)
		}
		d, err = r.Detect()
		if err != nil || d.Kind != KindConnect || r.Framing() != wire {
			t.Fatalf("%v: second Detect = %+v, %v, framing %v", wire, d, err, r.Framing())
		}
		f, err := r.Next()
		if err != nil || !bytes.Equal(f, vec(t, "connect-minimal")) {
			t.Fatalf("CONNECT: %v", err)
		}
		if f, err = r.Next(); err != nil || !bytes.Equal(f, vec(t, "release")) {
			t.Fatalf("RELEASE: %v", err)
		}
		if _, err := r.Peek(1); err != io.EOF {
			t.Fatalf("Peek at end: %v", err)
		}
	}
	r := NewReader(bytes.NewReader([]byte("GET / HTTP/1.0\r\n")), FramingAuto)
	if _, err := r.Detect(); !errors.Is(err, ErrNotPeSIT) {
		t.Fatalf("Detect on HTTP: %v", err)
	}
	if _, err := r.Peek(readBufSize + 1); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Peek too large: %v", err)
	}
}

func TestAppendNSDUErrors(t *testing.T) {
	connect := vec(t, "connect-minimal")
	syn := vec(t, "syn-1")
	big := must(AppendDTF(nil, 5, make([]byte, 40000)))
	tests := []struct {
		name  string
		f     Framing
		fpdus [][]byte
		want  error
	}{
		{"auto", FramingAuto, [][]byte{connect}, ErrMalformed},
		{"none", FramingPrefixed, nil, ErrMalformed},
		{"not concatenable", FramingPrefixed, [][]byte{syn, connect}, ErrMalformed},
		{"LTM mismatch", FramingRaw, [][]byte{connect[:20]}, ErrMalformed},
		{"bad header", FramingRaw, [][]byte{{0, 6, 0xc0, 7, 0, 0}}, ErrUnknownType},
		{"too large", FramingPrefixed, [][]byte{big, big}, ErrTooLarge},
	}
	for _, tt := range tests {
		out, err := AppendNSDU([]byte("k"), tt.f, tt.fpdus...)
		if !errors.Is(err, tt.want) || string(out) != "k" {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	// Concatenation is fine in raw framing too and yields the bare bytes.
	out, err := AppendNSDU(nil, FramingRaw, syn, vec(t, "dtf-hello"))
	if err != nil || !bytes.Equal(out, append(bytes.Clone(syn), vec(t, "dtf-hello")...)) {
		t.Errorf("raw concatenation: %v", err)
	}
	if out, _ := AppendNSDU(nil, FramingPrefixed, big); len(out) != len(big)+2 {
		t.Errorf("prefixed big: %d", len(out))
	}
}

func TestFramingText(t *testing.T) {
	for _, f := range []Framing{FramingAuto, FramingPrefixed, FramingRaw} {
		b, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		var back Framing = 42
		if err := json.Unmarshal(b, &back); err != nil || back != f {
			t.Errorf("%v: %s -> %v %v", f, b, back, err)
		}
	}
	var f Framing = FramingRaw
	if err := f.UnmarshalText(nil); err != nil || f != FramingAuto {
		t.Errorf("empty: %v %v", f, err)
	}
	if err := f.UnmarshalText([]byte("tls")); !errors.Is(err, ErrMalformed) {
		t.Errorf("unknown: %v", err)
	}
	if _, err := Framing(7).MarshalText(); err == nil || Framing(7).String() != "Framing(7)" {
		t.Errorf("invalid framing: %v %s", err, Framing(7))
	}
}

// TestReaderSizeGrows: a Reader made with NewReaderSize holds a few KiB
// until a unit needs more or Grow is called, and reads the same stream.
func TestReaderSizeGrows(t *testing.T) {
	conn, err := Connect{SrcID: 1, RequesterID: "P", ServerID: "S", Version: VersionE}.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	big, _ := AppendDTF(nil, 1, bytes.Repeat([]byte{7}, 60000))
	var stream []byte
	for _, fp := range [][]byte{conn, big} {
		stream, _ = AppendNSDU(stream, FramingPrefixed, fp)
	}
	r := NewReaderSize(bytes.NewReader(stream), FramingAuto, 0)
	if _, err := r.Detect(); err != nil {
		t.Fatal(err)
	}
	if len(r.buf) >= readBufSize || len(r.buf) < MaxConnectLen {
		t.Fatalf("first buffer of %d bytes", len(r.buf))
	}
	if b, err := r.Next(); err != nil || !bytes.Equal(b, conn) {
		t.Fatalf("CONNECT: %v", err)
	}
	if b, err := r.Next(); err != nil || !bytes.Equal(b, big) {
		t.Fatalf("60000-byte DTF: %v", err)
	}
	if len(r.buf) != readBufSize {
		t.Fatalf("buffer of %d bytes after a large unit", len(r.buf))
	}
}

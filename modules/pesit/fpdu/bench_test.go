package fpdu

import (
	"bytes"
	"testing"
)

func BenchmarkParseHeader(b *testing.B) {
	fr := vec(b, "cx-connect")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseHeader(fr); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParams(b *testing.B) {
	create := sampleNSDUs(b)[1][0]
	b.ReportAllocs()
	b.SetBytes(int64(len(create)))
	for b.Loop() {
		n := 0
		it := NewParamIter(create[HeaderLen:])
		for it.Next() {
			if p := it.Param(); p.IsGroup() {
				ch := p.Children()
				for ch.Next() {
					n++
				}
			}
			n++
		}
		if it.Err() != nil || n != 12 {
			b.Fatalf("%d params, %v", n, it.Err())
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	sel := vec(b, "pw-ack-select")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(sel); err != nil {
			b.Fatal(err)
		}
	}
}

// loopReader replays a buffer forever without allocating.
type loopReader struct {
	b   []byte
	off int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.b[l.off:])
	l.off = (l.off + n) % len(l.b)
	return n, nil
}

// BenchmarkReaderDTF reads 4 KiB NSDUs each holding one DTF, the way a
// proxy sees a bulk transfer after PI 25 = 4096 was negotiated.
func BenchmarkReaderDTF(b *testing.B) {
	for _, wire := range []Framing{FramingPrefixed, FramingRaw} {
		b.Run(wire.String(), func(b *testing.B) {
			dtf := must(AppendDTF(nil, 5, bytes.Repeat([]byte{0x5A}, 4096-HeaderLen)))
			nsdu := must(AppendNSDU(nil, wire, dtf))
			r := NewReader(&loopReader{b: bytes.Repeat(nsdu, 64)}, wire)
			if _, err := r.Next(); err != nil { // warm up the buffer
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(nsdu)))
			for b.Loop() {
				f, err := r.Next()
				if err != nil || len(f) != 4096 {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReaderConcatenated reads C:X-style 4096-byte NSDUs holding a
// 3-article DTF and a DTFDA, FPDU by FPDU.
func BenchmarkReaderConcatenated(b *testing.B) {
	nsdus := sampleNSDUs(b)
	nsdu := must(AppendNSDU(nil, FramingPrefixed, nsdus[4]...))
	r := NewReader(&loopReader{b: bytes.Repeat(nsdu, 64)}, FramingPrefixed)
	b.ReportAllocs()
	b.SetBytes(int64(len(nsdu)))
	for b.Loop() {
		for range 2 {
			if _, err := r.Next(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkDetectConnect(b *testing.B) {
	c := vec(b, "connect-prefixed")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Detect(c); err != nil {
			b.Fatal(err)
		}
	}
}

package pesit

import (
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/mholt/caddy-l4/layer4"
	"go.uber.org/zap"

	"github.com/bankedge/bankedge/modules/ca/registry"
	"github.com/bankedge/bankedge/modules/pesit/fpdu"
)

// loopConn is a partner connection that replays one NSDU forever on Read
// and discards what is written, so that the data path can be measured
// without sockets.
type loopConn struct {
	unit []byte
	off  int
	net.Conn
}

func (c *loopConn) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m := copy(p[n:], c.unit[c.off:])
		n += m
		c.off = (c.off + m) % len(c.unit)
	}
	return n, nil
}
func (c *loopConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *loopConn) SetReadDeadline(time.Time) error  { return nil }
func (c *loopConn) SetWriteDeadline(time.Time) error { return nil }
func (c *loopConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (c *loopConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2} }

// dataSession is a session past its CONNECT, in the middle of a transfer in
// the given direction, whose partner sends (or receives) DTF NSDUs of 16
// articles of 4 KiB, as the peer package packs them.
func dataSession(tb testing.TB, upload bool) (*session, []byte) {
	articles := make([][]byte, 15)
	for i := range articles {
		articles[i] = make([]byte, 4096)
	}
	fp, err := fpdu.AppendArticles(nil, 5, articles...)
	if err != nil {
		tb.Fatal(err)
	}
	unit, err := fpdu.AppendNSDU(nil, fpdu.FramingPrefixed, fp)
	if err != nil {
		tb.Fatal(err)
	}
	h := &Handler{ConnectTimeout: caddy.Duration(time.Minute), IdleTimeout: caddy.Duration(time.Minute), MaxFPDUSize: 65535,
		logger: zap.NewNop(), audit: zap.NewNop()}
	client := &loopConn{unit: unit}
	s := newSession(h, layer4.WrapConnection(client, nil, zap.NewNop()))
	s.accepted, s.clientPrefixed, s.upPrefixed = true, true, true
	s.partner = registry.Partner{PartnerID: "BENCH", AccessType: "both"}
	s.xfer = &transfer{write: upload}
	s.down.init(s)
	return s, unit
}

// moveUpload reads n bytes of the partner's stream the way caddy-l4's proxy
// does: into an 8 KiB buffer.
func moveUpload(tb testing.TB, s *session, n int, buf []byte) {
	for moved := 0; moved < n; {
		m, err := s.Read(buf)
		if err != nil {
			tb.Fatal(err)
		}
		moved += m
	}
}

// chunkOf returns about 32 KiB of whole NSDUs, what the proxy writes at a
// time, so that the stream stays aligned.
func chunkOf(unit []byte) []byte {
	stream := make([]byte, 0, 32<<10+len(unit))
	for len(stream) < 32<<10 {
		stream = append(stream, unit...)
	}
	return stream
}

// moveDownload writes n bytes of the upstream's stream to the partner.
func moveDownload(tb testing.TB, s *session, stream []byte, n int) {
	for moved := 0; moved < n; moved += len(stream) {
		if _, err := s.Write(stream); err != nil {
			tb.Fatal(err)
		}
	}
}

// TestDataPathAllocsDoNotGrow checks that memory per connection is
// constant: moving 64 MiB allocates no more than moving 4 MiB.
func TestDataPathAllocsDoNotGrow(t *testing.T) {
	mallocs := func(f func()) uint64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		return after.Mallocs - before.Mallocs
	}
	for _, upload := range []bool{true, false} {
		s, unit := dataSession(t, upload)
		buf, chunk := make([]byte, 8<<10), chunkOf(unit)
		move := func(n int) func() {
			if upload {
				return func() { moveUpload(t, s, n, buf) }
			}
			return func() { moveDownload(t, s, chunk, n) }
		}
		move(1 << 20)() // warm up pools and buffers
		small, large := mallocs(move(4<<20)), mallocs(move(64<<20))
		if large > small+16 {
			t.Errorf("upload=%v: 64 MiB took %d allocations, 4 MiB %d: the data path allocates per FPDU", upload, large, small)
		}
		s.mu.Lock()
		seen := s.xfer.seenBytes
		s.mu.Unlock()
		if seen == 0 {
			t.Errorf("upload=%v: no data counted", upload)
		}
	}
}

// BenchmarkDataPath measures the gateway's own cost per byte, without
// sockets, in both directions.
func BenchmarkDataPath(b *testing.B) {
	for _, dir := range []string{"upload", "download"} {
		b.Run(dir, func(b *testing.B) {
			s, unit := dataSession(b, dir == "upload")
			buf, chunk := make([]byte, 8<<10), chunkOf(unit)
			const n = 16 << 20
			b.SetBytes(n)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if dir == "upload" {
					moveUpload(b, s, n, buf)
				} else {
					moveDownload(b, s, chunk, n)
				}
			}
		})
	}
}

var _ io.Reader = (*loopConn)(nil)

package peer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bankedge/bankedge/modules/pesit/fpdu"
)

// articles returns the article count of size bytes cut into art-byte
// articles.
func articles(size, art int) uint64 { return uint64((size + art - 1) / art) }

// push sends data as name and checks both sides' view of it.
func push(t *testing.T, ts *testServer, c *Client, name string, data []byte, o TransferOptions) Result {
	t.Helper()
	res, err := c.Send(context.Background(), name, bytes.NewReader(data), int64(len(data)), o)
	if err != nil {
		t.Fatalf("Send %s (%d bytes): %v", name, len(data), err)
	}
	art := o.ArticleSize
	if art == 0 {
		art = DefaultArticleSize
	}
	if c.syncKB > 0 {
		art = min(art, int(c.syncKB)*1024)
	}
	if res.Bytes != uint64(len(data)) || res.Articles != articles(len(data), art) || res.TransferID == 0 {
		t.Fatalf("Send %s: result %+v, want %d bytes in %d articles", name, res, len(data), articles(len(data), art))
	}
	if got := fileSum(t, filepath.Join(ts.Root, name)); got != sum(data) {
		t.Fatalf("stored %s differs from the source", name)
	}
	logs := ts.transferLog(name)
	if len(logs) == 0 {
		t.Fatalf("no server log for %s", name)
	}
	last := logs[len(logs)-1]
	if last["bytes"] != res.Bytes || last["articles"] != res.Articles || last["complete"] != true {
		t.Fatalf("server counted %v bytes / %v articles (complete %v), client %d / %d", last["bytes"], last["articles"], last["complete"], res.Bytes, res.Articles)
	}
	return res
}

// pull fetches name and checks it equals data.
func pull(t *testing.T, c *Client, name string, data []byte) Result {
	t.Helper()
	var buf bytes.Buffer
	res, err := c.Fetch(context.Background(), name, &buf, TransferOptions{})
	if err != nil {
		t.Fatalf("Fetch %s: %v", name, err)
	}
	if sum(buf.Bytes()) != sum(data) {
		t.Fatalf("fetched %s: %d bytes, differs from the %d stored", name, buf.Len(), len(data))
	}
	if res.Bytes != uint64(len(data)) || res.TransferID == 0 {
		t.Fatalf("Fetch %s: result %+v", name, res)
	}
	return res
}

// TestTransferMatrix pushes and pulls files of awkward sizes over TCP and
// mTLS, in both framings, with and without pre-connection, several
// transfers per connection.
func TestTransferMatrix(t *testing.T) {
	sizes := []int{0, 1, 4095, 4096, 4097, 1 << 20}
	for _, transport := range []string{"tcp", "tls"} {
		for _, framing := range []fpdu.Framing{fpdu.FramingPrefixed, fpdu.FramingRaw} {
			for _, pre := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%v/preconnect=%v", transport, framing, pre), func(t *testing.T) {
					t.Parallel()
					var opts []serverOpt
					if transport == "tls" {
						opts = append(opts, withTLS(newPKI(t)))
					}
					ts := startServer(t, nil, opts...)
					c := ts.connect(t, ConnectOptions{Framing: framing, PreConnection: pre, SyncIntervalKB: 256, SyncWindow: 2})
					for i, n := range sizes {
						data := randomData(n, uint64(i+1))
						name := fmt.Sprintf("file-%d.bin", n)
						push(t, ts, c, name, data, TransferOptions{})
						pull(t, c, name, data)
					}
					if err := c.Release(); err != nil {
						t.Fatalf("Release: %v", err)
					}
					ts.wait(t)
					for _, err := range ts.errs {
						if err != nil {
							t.Errorf("server session: %v", err)
						}
					}
					if names := listDir(t, ts.Root); len(names) != len(sizes) {
						t.Errorf("root holds %v, want only the %d files", names, len(sizes))
					}
				})
			}
		}
	}
}

// TestSyncSettings checks sync point counts, windows and their absence.
func TestSyncSettings(t *testing.T) {
	const size = 1 << 20
	data := randomData(size, 42)
	for _, tc := range []struct {
		name      string
		opts      ConnectOptions
		wantSyncs uint32
	}{
		{"none", ConnectOptions{NoSync: true}, 0},
		{"4K-window1", ConnectOptions{SyncIntervalKB: 4, SyncWindow: 1}, size/4096 - 1},
		{"4K-window2", ConnectOptions{SyncIntervalKB: 4, SyncWindow: 2}, size/4096 - 1},
		{"10K-window3", ConnectOptions{SyncIntervalKB: 10, SyncWindow: 3}, size/8192 - 1}, // stride 8 KiB: 2 articles
		{"default", ConnectOptions{}, 0},                                                  // 1 MiB interval, exactly one interval
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, nil)
			c := ts.connect(t, tc.opts)
			res := push(t, ts, c, "f", data, TransferOptions{})
			if res.SyncPoints != tc.wantSyncs || res.LastSync != tc.wantSyncs {
				t.Errorf("push: %d sync points, last %d; want %d", res.SyncPoints, res.LastSync, tc.wantSyncs)
			}
			if res.LastSyncOffset != int64(res.LastSync)*stride(c.syncKB, min(DefaultArticleSize, int(c.syncKB)*1024)) {
				t.Errorf("push: last sync offset %d", res.LastSyncOffset)
			}
			res = pull(t, c, "f", data)
			if res.SyncPoints != tc.wantSyncs {
				t.Errorf("pull: %d sync points, want %d", res.SyncPoints, tc.wantSyncs)
			}
			if names := listDir(t, ts.Root); len(names) != 1 {
				t.Errorf("root holds %v: restart state left behind", names)
			}
		})
	}
}

// TestServerCapsNegotiation checks that the smaller PI 7 and PI 25 win.
func TestServerCapsNegotiation(t *testing.T) {
	ts := startServer(t, &Server{SyncIntervalKB: 8, SyncWindow: 1, MaxEntitySize: 1000})
	c := ts.connect(t, ConnectOptions{SyncIntervalKB: 64, SyncWindow: 3})
	if c.syncKB != 8 || c.window != 1 {
		t.Fatalf("negotiated sync %d KB / window %d, want 8 / 1", c.syncKB, c.window)
	}
	data := randomData(100_000, 3)
	res := push(t, ts, c, "capped", data, TransferOptions{})
	if res.SyncPoints != uint32((len(data)-1)/8192) {
		t.Errorf("%d sync points", res.SyncPoints)
	}
	pull(t, c, "capped", data)
}

// TestSegmentation moves articles larger and smaller than the entity
// size, in both directions.
func TestSegmentation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entity  uint16
		article int
		syncKB  uint16
	}{
		{"article>entity", 1024, 10000, 0},
		{"article>entity-sync", 1000, 3000, 6}, // stride 6000: 2 articles, each segmented
		{"article<entity", 4096, 100, 0},       // 40 articles per DTF
		{"article=entity-6", 4096, 4090, 0},    // mono-article DTF, no segmentation
		{"article=entity-5", 4096, 4091, 0},    // just too big: DTFDA + DTFFA
		{"max", 65535, 65535, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, nil)
			c := ts.connect(t, ConnectOptions{MaxEntitySize: tc.entity, SyncIntervalKB: tc.syncKB, NoSync: tc.syncKB == 0})
			for i, n := range []int{1, tc.article - 1, tc.article, tc.article + 1, 300_001} {
				if n <= 0 {
					continue
				}
				data := randomData(n, uint64(i))
				name := fmt.Sprintf("seg-%d", n)
				push(t, ts, c, name, data, TransferOptions{ArticleSize: tc.article})
				pull(t, c, name, data) // the server sends 4096-byte articles, segmented below 4102
			}
		})
	}
}

// Test50MiB moves 50 MiB once per direction over TCP.
func Test50MiB(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("50 MiB transfer skipped in -short and -race runs")
	}
	ts := startServer(t, nil)
	c := ts.connect(t, ConnectOptions{})
	data := randomData(50<<20, 50)
	res := push(t, ts, c, "big.bin", data, TransferOptions{})
	if res.SyncPoints != 49 {
		t.Errorf("push: %d sync points, want 49", res.SyncPoints)
	}
	if res := pull(t, c, "big.bin", data); res.Articles != 50<<20/DefaultArticleSize {
		t.Errorf("pull: %d articles", res.Articles)
	}
}

// TestWireLayout inspects the bytes a client sends: NSDUs within PI 25,
// multi-article DTFs packed full, SYN at every stride, concatenation only
// of data FPDUs, SYN and DTF.END.
func TestWireLayout(t *testing.T) {
	var mu sync.Mutex
	var wire bytes.Buffer
	ts := startServer(t, &Server{MaxEntitySize: 8192}, withWrap(func(c net.Conn) net.Conn { return tapConn{c, &mu, &wire} }))
	c := ts.connect(t, ConnectOptions{SyncIntervalKB: 16, SyncWindow: 2})
	data := randomData(100_000, 9)
	push(t, ts, c, "layout", data, TransferOptions{ArticleSize: 1000})
	if err := c.Release(); err != nil {
		t.Fatal(err)
	}
	ts.wait(t)

	rd := fpdu.NewReader(bytes.NewReader(wire.Bytes()), fpdu.FramingPrefixed)
	var offset, dtfs, multi, concatenated int
	var syncs []int
	inData := false
	for {
		nsdu, err := rd.ReadNSDU()
		if err != nil {
			break
		}
		if inData && len(nsdu) > 8192 {
			t.Errorf("NSDU of %d bytes above PI 25 = 8192", len(nsdu))
		}
		n := 0
		for rest := nsdu; len(rest) > 0; n++ {
			f, r, err := fpdu.CutFPDU(rest)
			if err != nil {
				t.Fatal(err)
			}
			rest = r
			h, _ := fpdu.ParseHeader(f)
			switch h.Type {
			case fpdu.TypeAckWrite, fpdu.TypeWrite:
				inData = true
			case fpdu.TypeDTF:
				dtfs++
				it := fpdu.NewArticleIter(h, f[6:])
				k := 0
				for it.Next() {
					if len(it.Article()) != 1000 && offset+len(it.Article()) != len(data) {
						t.Errorf("article of %d bytes at %d", len(it.Article()), offset)
					}
					offset += len(it.Article())
					k++
				}
				if k > 1 {
					multi++
				}
			case fpdu.TypeSyn:
				syncs = append(syncs, offset)
			case fpdu.TypeDTFEnd:
				inData = false
			}
			if n > 0 {
				concatenated++
				if !h.Type.Concatenable() {
					t.Errorf("%v concatenated", h.Type)
				}
			}
		}
	}
	if offset != len(data) {
		t.Fatalf("wire carried %d data bytes, want %d", offset, len(data))
	}
	// 16 KiB interval, 1000-byte articles: stride 16000.
	for i, off := range syncs {
		if off != (i+1)*16000 {
			t.Errorf("SYN %d at offset %d, want %d", i+1, off, (i+1)*16000)
		}
	}
	if len(syncs) != (len(data)-1)/16000 {
		t.Errorf("%d SYNs", len(syncs))
	}
	// 8 articles of 1002 bytes fit in 8192 - 6; 16 articles per stride.
	if multi == 0 || dtfs > 2*len(data)/16000+2 {
		t.Errorf("%d DTFs, %d multi-article: not packed", dtfs, multi)
	}
	if concatenated == 0 {
		t.Error("no SYN or DTF.END was concatenated with data")
	}
}

// TestSendUnknownSize measures the source with Seek when size < 0, and
// the client refuses a source shorter than announced.
func TestSendUnknownSize(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.connect(t, ConnectOptions{})
	data := randomData(12345, 1)
	res, err := c.Send(context.Background(), "measured", bytes.NewReader(data), -1, TransferOptions{})
	if err != nil || res.Bytes != uint64(len(data)) {
		t.Fatalf("Send: %+v, %v", res, err)
	}
	_, err = c.Send(context.Background(), "short", bytes.NewReader(data), int64(len(data))+1, TransferOptions{})
	if err == nil {
		t.Fatal("a short source was accepted")
	}
	ts.wait(t)
	if _, err := os.Stat(filepath.Join(ts.Root, "short")); !os.IsNotExist(err) {
		t.Errorf("a short transfer was stored: %v", err)
	}
	if names := listDir(t, ts.Root); len(names) != 1 {
		t.Errorf("root holds %v", names)
	}
}

// TestLabel carries PI 37 and, with NameFromLabel, stores under it.
func TestLabel(t *testing.T) {
	ts := startServer(t, &Server{NameFromLabel: true})
	c := ts.connect(t, ConnectOptions{})
	data := []byte("labelled")
	if _, err := c.Send(context.Background(), "RULE1", bytes.NewReader(data), int64(len(data)), TransferOptions{Label: "real-name.txt"}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(ts.Root, "real-name.txt")); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("stored under the label: %q, %v", b, err)
	}
	_, err := c.Send(context.Background(), "RULE1", bytes.NewReader(data), int64(len(data)), TransferOptions{Label: "../escape"})
	if re := refused(t, err); re.Diag != fpdu.NewDiag(fpdu.ReasonTransferRefused) {
		t.Fatalf("label ../escape: %v", err)
	}
}

// TestStride pins the sync point placement rule restarts depend on.
func TestStride(t *testing.T) {
	for _, tc := range []struct {
		kb   uint16
		art  int
		want int64
	}{
		{0, 4096, 0}, {4, 4096, 4096}, {32, 1024, 32768}, {10, 4096, 8192}, {1, 4096, 1024}, {16, 1000, 16000},
	} {
		if got := stride(tc.kb, tc.art); got != tc.want {
			t.Errorf("stride(%d KB, %d) = %d, want %d", tc.kb, tc.art, got, tc.want)
		}
	}
}

// TestSendWindow plays a receiver that withholds ACK(SYN): the client must
// stop at `window` unacknowledged sync points and resume one interval per
// acknowledgement.
func TestSendWindow(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const window = 2
	data := randomData(10*4096, 6) // 4 KiB interval: SYN 1..9
	result := make(chan error, 1)
	go func() { result <- windowReceiver(ln, window, len(data), false) }()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(conn, clientOpts(ConnectOptions{SyncIntervalKB: 4, SyncWindow: 3}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.window != window {
		t.Fatalf("negotiated window %d", c.window)
	}
	res, err := c.Send(context.Background(), "w", bytes.NewReader(data), int64(len(data)), TransferOptions{})
	if rerr := <-result; rerr != nil {
		t.Fatalf("receiver: %v (client: %v)", rerr, err)
	}
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if res.SyncPoints != 9 || res.LastSync != 9 {
		t.Fatalf("result %+v", res)
	}
}

// TestClientChecksCounts: an ACK(TRANS.END) whose PI 27 disagrees with
// what the client sent fails the transfer, and the client closes the file
// with CRF 3-319 so the server does not keep it.
func TestClientChecksCounts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	data := randomData(10*4096, 6)
	result := make(chan error, 1)
	go func() { result <- windowReceiver(ln, 4, len(data), true) }()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(conn, clientOpts(ConnectOptions{SyncIntervalKB: 4}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Send(context.Background(), "w", bytes.NewReader(data), int64(len(data)), TransferOptions{})
	if rerr := <-result; rerr != nil {
		t.Fatalf("receiver: %v (client: %v)", rerr, err)
	}
	if !errors.Is(err, ErrCountMismatch) {
		t.Fatalf("Send: %v", err)
	}
}

// windowReceiver is a minimal PeSIT server for TestSendWindow; with lie it
// miscounts the bytes in ACK(TRANS.END) and expects CRF 3-319.
func windowReceiver(ln net.Listener, window byte, size int, lie bool) error {
	conn, err := ln.Accept()
	if err != nil {
		return err
	}
	defer conn.Close()
	rd := fpdu.NewReader(conn, fpdu.FramingPrefixed)
	send := func(typ fpdu.Type, dst, src byte, params ...fpdu.Param) error {
		b, err := fpdu.AppendFPDU(nil, typ, dst, src, params...)
		if err == nil {
			b, err = fpdu.AppendNSDU(nil, fpdu.FramingPrefixed, b)
		}
		if err == nil {
			_, err = conn.Write(b)
		}
		return err
	}
	// fpdu.Reader errors are sticky, so read on a goroutine and time out
	// on the channel instead of with deadlines.
	frames := make(chan []byte)
	readErr := make(chan error, 1)
	go func() {
		for {
			b, err := rd.Next()
			if err != nil {
				readErr <- err
				close(frames)
				return
			}
			frames <- append([]byte(nil), b...)
		}
	}()
	errTimeout := errors.New("timeout")
	next := func(d time.Duration) (fpdu.Type, []byte, error) {
		select {
		case b, ok := <-frames:
			if !ok {
				return 0, nil, <-readErr
			}
			return fpdu.MakeType(b[2], b[3]), b, nil
		case <-time.After(d):
			return 0, nil, errTimeout
		}
	}
	ok := fpdu.DiagOK.Param()
	for _, step := range []struct {
		want  fpdu.Type
		reply func() error
	}{
		{fpdu.TypeConnect, func() error {
			return send(fpdu.TypeAConnect, 1, 9, fpdu.PIByte(fpdu.PIVersion, 2), fpdu.PI(fpdu.PISyncPoints, []byte{0, 4, window}))
		}},
		{fpdu.TypeCreate, func() error { return send(fpdu.TypeAckCreate, 1, 0, ok, fpdu.PIUint(fpdu.PIMaxEntitySize, 65535, 2)) }},
		{fpdu.TypeORF, func() error { return send(fpdu.TypeAckORF, 1, 0, ok) }},
		{fpdu.TypeWrite, func() error { return send(fpdu.TypeAckWrite, 1, 0, ok, fpdu.PIUint(fpdu.PIRestartPoint, 0, 1)) }},
	} {
		typ, _, err := next(5 * time.Second)
		if err != nil || typ != step.want {
			return fmt.Errorf("got %v (%v), want %v", typ, err, step.want)
		}
		if err := step.reply(); err != nil {
			return err
		}
	}
	var sent, acked uint32
	got := 0
	for {
		typ, b, err := next(200 * time.Millisecond)
		if err != nil {
			if err != errTimeout {
				return err
			}
			// Stalled: legitimate only with a full window.
			if sent-acked != uint32(window) {
				return fmt.Errorf("sender stalled with %d of %d SYNs unacknowledged", sent-acked, window)
			}
			acked++
			if err := send(fpdu.TypeAckSyn, 1, 0, fpdu.PIUint(fpdu.PISyncNumber, uint64(acked), 1)); err != nil {
				return err
			}
			continue
		}
		switch typ {
		case fpdu.TypeDTF:
			it := fpdu.NewArticleIter(fpdu.Header{Type: typ, SrcID: b[5]}, b[6:])
			for it.Next() {
				got += len(it.Article())
			}
		case fpdu.TypeSyn:
			sent++
			if n, _ := syncNumber(b); n != sent {
				return fmt.Errorf("SYN %d, want %d", n, sent)
			}
			if sent-acked > uint32(window) {
				return fmt.Errorf("SYN %d with only %d acknowledged: window %d exceeded", sent, acked, window)
			}
			if lie { // not testing the window: acknowledge at once
				acked++
				if err := send(fpdu.TypeAckSyn, 1, 0, fpdu.PIUint(fpdu.PISyncNumber, uint64(acked), 1)); err != nil {
					return err
				}
			}
		case fpdu.TypeDTFEnd:
			if got != size {
				return fmt.Errorf("received %d bytes", got)
			}
			for acked < sent { // late acknowledgements are fine
				acked++
				if err := send(fpdu.TypeAckSyn, 1, 0, fpdu.PIUint(fpdu.PISyncNumber, uint64(acked), 1)); err != nil {
					return err
				}
			}
		case fpdu.TypeTransEnd:
			n := uint64(size)
			if lie {
				n--
			}
			if err := send(fpdu.TypeAckTransEnd, 1, 0, ok, fpdu.PIUint(fpdu.PIByteCount, n, 1), fpdu.PIUint(fpdu.PIArticleCount, 10, 1)); err != nil {
				return err
			}
		case fpdu.TypeCRF:
			f, err := fpdu.Decode(b)
			if err != nil {
				return err
			}
			if d, _ := f.Diag(); (d == fpdu.NewDiag(fpdu.ReasonWrongCount)) != lie {
				return fmt.Errorf("CRF with diagnostic %v", d)
			}
			if err := send(fpdu.TypeAckCRF, 1, 0, ok); err != nil {
				return err
			}
		case fpdu.TypeDeselect:
			if sent != 9 || acked != 9 {
				return fmt.Errorf("%d SYNs, %d acknowledged", sent, acked)
			}
			return send(fpdu.TypeAckDeselect, 1, 0, ok)
		default:
			return fmt.Errorf("unexpected %v", typ)
		}
	}
}

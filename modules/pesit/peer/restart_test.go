package peer

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bankedge/bankedge/modules/pesit/fpdu"
)

// TestRestartPush interrupts a push after about half the file, then
// restarts it on a new connection to a new Server instance (a restarted
// process) over the same directory.
func TestRestartPush(t *testing.T) {
	const size = 3<<20 + 777
	data := randomData(size, 77)
	root := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := ConnectOptions{SyncIntervalKB: 64, SyncWindow: 2}

	ts1 := startServer(t, &Server{Root: root})
	conn := &countingConn{Conn: ts1.dial(t), limit: size / 2}
	c, err := NewClient(conn, clientOpts(opts))
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Send(context.Background(), "restart.bin", bytes.NewReader(data), size, TransferOptions{})
	if err == nil {
		t.Fatal("the interrupted push succeeded")
	}
	if !errors.Is(err, net.ErrClosed) {
		t.Logf("interrupted push: %v", err)
	}
	if res.TransferID == 0 || res.LastSync == 0 {
		t.Fatalf("interrupted push result %+v: no transfer id or sync point", res)
	}
	if _, err := c.Send(context.Background(), "x", bytes.NewReader(nil), 0, TransferOptions{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("a broken client accepted a new transfer: %v", err)
	}
	ts1.wait(t)
	if _, err := os.Stat(filepath.Join(root, "restart.bin")); !os.IsNotExist(err) {
		t.Fatalf("a partial file appeared under the final name: %v", err)
	}
	part, state := tempNames("restart.bin", res.TransferID)
	st, ok := loadState(mustRoot(t, root), state)
	if !ok || st.SyncPoint == 0 || st.Offset != int64(st.SyncPoint)*64*1024 || st.Requester != "CLIENT1" ||
		st.Name != "restart.bin" || st.TransferID != res.TransferID || st.SyncKB != 64 || st.Article != 4096 {
		t.Fatalf("restart state %+v (%v)", st, ok)
	}
	if _, err := os.Stat(filepath.Join(root, part)); err != nil {
		t.Fatalf("temporary file: %v", err)
	}

	ts2 := startServer(t, &Server{Root: root})
	c2 := ts2.connect(t, opts)
	res2, err := c2.Send(context.Background(), "restart.bin", bytes.NewReader(data), size,
		TransferOptions{Restart: true, TransferID: res.TransferID})
	if err != nil {
		t.Fatalf("restarted push: %v", err)
	}
	if res2.RestartPoint != st.SyncPoint || res2.RestartOffset != st.Offset || res2.RestartPoint == 0 {
		t.Fatalf("restarted at %d/%d, state said %d/%d", res2.RestartPoint, res2.RestartOffset, st.SyncPoint, st.Offset)
	}
	if res2.Bytes != uint64(size-st.Offset) {
		t.Fatalf("restart sent %d bytes, want %d", res2.Bytes, size-st.Offset)
	}
	if fileSum(t, filepath.Join(root, "restart.bin")) != sum(data) {
		t.Fatal("restarted file differs from the source")
	}
	if names := listDir(t, root); len(names) != 1 {
		t.Fatalf("root holds %v after the restart", names)
	}
	logs := ts2.transferLog("restart.bin")
	if len(logs) != 1 || logs[0]["restart_point"] != st.SyncPoint || logs[0]["bytes"] != res2.Bytes {
		t.Fatalf("server log %v", logs)
	}
}

func mustRoot(t *testing.T, dir string) *os.Root {
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestRestartPushMismatch restarts with another article size: the server
// cannot trust the sync point placement and restarts from the beginning.
func TestRestartPushMismatch(t *testing.T) {
	const size = 1 << 20
	data := randomData(size, 5)
	ts := startServer(t, nil)
	opts := ConnectOptions{SyncIntervalKB: 16, SyncWindow: 1}
	c, err := NewClient(&countingConn{Conn: ts.dial(t), limit: size / 2}, clientOpts(opts))
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Send(context.Background(), "m", bytes.NewReader(data), size, TransferOptions{})
	if err == nil || res.LastSync == 0 {
		t.Fatalf("interrupted push: %+v, %v", res, err)
	}
	c2 := ts.connect(t, opts)
	res2, err := c2.Send(context.Background(), "m", bytes.NewReader(data), size,
		TransferOptions{Restart: true, TransferID: res.TransferID, ArticleSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	if res2.RestartPoint != 0 || res2.Bytes != size {
		t.Fatalf("restart with another article size resumed: %+v", res2)
	}
	if fileSum(t, filepath.Join(ts.Root, "m")) != sum(data) {
		t.Fatal("file differs")
	}
	// A restart flag on a transfer the server never saw starts afresh too.
	res3, err := c2.Send(context.Background(), "n", bytes.NewReader(data[:5000]), 5000, TransferOptions{Restart: true, TransferID: 0xABCDEF})
	if err != nil || res3.RestartPoint != 0 || res3.Bytes != 5000 {
		t.Fatalf("restart of an unknown transfer: %+v, %v", res3, err)
	}
	if names := listDir(t, ts.Root); strings.Join(names, ",") != "m,n" {
		t.Fatalf("root holds %v", names)
	}
}

// TestRestartFetch interrupts a pull and resumes it into the same file.
func TestRestartFetch(t *testing.T) {
	const size = 2<<20 + 123
	data := randomData(size, 8)
	ts := startServer(t, nil)
	if err := os.WriteFile(filepath.Join(ts.Root, "pull.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	opts := ConnectOptions{SyncIntervalKB: 32, SyncWindow: 2}
	dstPath := filepath.Join(t.TempDir(), "pull.bin")
	dst, err := os.Create(dstPath)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()

	c, err := NewClient(&countingConn{Conn: ts.dial(t), limit: size / 2, reads: true}, clientOpts(opts))
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Fetch(context.Background(), "pull.bin", dst, TransferOptions{})
	if err == nil {
		t.Fatal("the interrupted fetch succeeded")
	}
	if res.LastSync == 0 || res.LastSyncOffset != int64(res.LastSync)*32*1024 || res.TransferID == 0 {
		t.Fatalf("interrupted fetch result %+v", res)
	}
	// What the caller holds up to the sync point is good.
	got, _ := os.ReadFile(dstPath)
	if int64(len(got)) < res.LastSyncOffset || !bytes.Equal(got[:res.LastSyncOffset], data[:res.LastSyncOffset]) {
		t.Fatalf("destination holds %d bytes, not the %d confirmed", len(got), res.LastSyncOffset)
	}
	// Dirty the tail beyond the sync point: Fetch must truncate it.
	if _, err := dst.WriteAt([]byte("garbage beyond the sync point"), res.LastSyncOffset); err != nil {
		t.Fatal(err)
	}

	c2 := ts.connect(t, opts)
	res2, err := c2.Fetch(context.Background(), "pull.bin", dst, TransferOptions{
		Restart: true, TransferID: res.TransferID, RestartPoint: res.LastSync, RestartOffset: res.LastSyncOffset,
	})
	if err != nil {
		t.Fatalf("restarted fetch: %v", err)
	}
	if res2.RestartPoint != res.LastSync || res2.RestartPoint == 0 || res2.Bytes != uint64(size-res.LastSyncOffset) || res2.TransferID != res.TransferID {
		t.Fatalf("restarted fetch result %+v", res2)
	}
	if fileSum(t, dstPath) != sum(data) {
		t.Fatal("restarted fetch differs from the source")
	}

	// A wrong expected offset is refused before any data moves, and the
	// connection stays usable.
	_, err = c2.Fetch(context.Background(), "pull.bin", &bytes.Buffer{}, TransferOptions{
		Restart: true, TransferID: res.TransferID, RestartPoint: 2, RestartOffset: 12345,
	})
	if err == nil || !strings.Contains(err.Error(), "cannot resume") {
		t.Fatalf("mismatched restart offset: %v", err)
	}
	pull(t, c2, "pull.bin", data)
	// A restart point beyond the file is refused by the server with 2-214.
	_, err = c2.Fetch(context.Background(), "pull.bin", &bytes.Buffer{}, TransferOptions{Restart: true, TransferID: 5, RestartPoint: 1000})
	if re := refused(t, err); re.FPDU != fpdu.TypeAckRead || re.Diag != fpdu.NewDiag(fpdu.ReasonRestartNegotiation) {
		t.Fatalf("restart beyond the file: %v", err)
	}
	pull(t, c2, "pull.bin", data)
}

// TestCancel stops a transfer through its context.
func TestCancel(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.connect(t, ConnectOptions{SyncIntervalKB: 4, SyncWindow: 1})
	ctx, cancel := context.WithCancel(context.Background())
	src := &slowReader{r: bytes.NewReader(randomData(1<<20, 1)), after: 64 << 10, cancel: cancel}
	_, err := c.Send(ctx, "cancelled", src, 1<<20, TransferOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Send: %v", err)
	}
	if _, err := c.Send(context.Background(), "x", bytes.NewReader(nil), 0, TransferOptions{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("client still usable after cancellation: %v", err)
	}
	ts.wait(t)
	if _, err := os.Stat(filepath.Join(ts.Root, "cancelled")); !os.IsNotExist(err) {
		t.Fatal("a cancelled transfer was stored")
	}
}

// slowReader cancels a context after `after` bytes.
type slowReader struct {
	r      *bytes.Reader
	after  int
	n      int
	cancel func()
}

func (s *slowReader) Read(b []byte) (int, error) {
	if s.n >= s.after {
		s.cancel()
		time.Sleep(20 * time.Millisecond)
	}
	b = b[:min(len(b), 16<<10)]
	n, err := s.r.Read(b)
	s.n += n
	return n, err
}

func (s *slowReader) Seek(off int64, whence int) (int64, error) { return s.r.Seek(off, whence) }

// TestStateFile: the newest valid slot wins, a torn slot falls back to
// the previous sync point, and saving does not allocate.
func TestStateFile(t *testing.T) {
	dir := t.TempDir()
	root := mustRoot(t, dir)
	sf, err := openStateFile(root, "s", false, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.close()
	st := restartState{Requester: "REQ \"x\"\xff", Name: "a file.txt", TransferID: 0xABCDEF, SyncKB: 64, Article: 4096}
	for n := uint32(1); n <= 5; n++ {
		st.SyncPoint, st.Offset = n, int64(n)*65536
		if err := sf.save(&st); err != nil {
			t.Fatal(err)
		}
	}
	got, ok := loadState(root, "s")
	want := st
	if !ok || got != want {
		t.Fatalf("loaded %+v, want %+v", got, want)
	}
	// Tear the newest slot (seq 5, slot 1): the previous point survives.
	f, _ := os.OpenFile(filepath.Join(dir, "s"), os.O_RDWR, 0)
	if _, err := f.WriteAt([]byte("v1 seq=9 sync=9"), stateSlotLen+0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	got, ok = loadState(root, "s")
	if !ok || got.SyncPoint != 4 || got.Offset != 4*65536 || got.Seq != 4 {
		t.Fatalf("after a torn write: %+v, %v", got, ok)
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = sf.save(&st) }); allocs != 0 {
		t.Errorf("save allocates %.1f times", allocs)
	}
	if _, ok := loadState(root, "missing"); ok {
		t.Error("a missing state loaded")
	}
}

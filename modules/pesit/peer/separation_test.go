package peer

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bankedge/bankedge/modules/pesit/fpdu"
)

// interruptedPush pushes data as name to a server of its own on root
// (so that it can wait for the session's end), and breaks the connection
// halfway, leaving the partial file and its restart state; it returns the
// transfer id.
func interruptedPush(t *testing.T, root, requester, name string, data []byte) uint32 {
	t.Helper()
	ts := startServer(t, &Server{Root: root, RequesterDirs: true})
	c, err := NewClient(&countingConn{Conn: ts.dial(t), limit: int64(len(data) / 2)},
		clientOpts(ConnectOptions{RequesterID: requester, SyncIntervalKB: 16, SyncWindow: 1}))
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Send(context.Background(), name, bytes.NewReader(data), int64(len(data)), TransferOptions{})
	if err == nil || res.LastSync == 0 {
		t.Fatalf("interrupted push: %+v, %v", res, err)
	}
	ts.wait(t)
	return res.TransferID
}

// noPartials waits for dir to hold no temporary file of a write: the
// server removes them when it ends a transfer it will not resume.
func noPartials(t *testing.T, dir string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		left := false
		for _, n := range listDir(t, dir) {
			left = left || strings.HasPrefix(n, ".pesit-")
		}
		if !left {
			return
		}
	}
	t.Fatalf("%s still holds partial files: %v", dir, listDir(t, dir))
}

// TestRequesterDirs: with RequesterDirs, requesters neither see, overwrite
// nor resume each other's files.
func TestRequesterDirs(t *testing.T) {
	ts := startServer(t, &Server{RequesterDirs: true})
	data := randomData(256<<10, 3)
	tid := interruptedPush(t, ts.Root, "ALPHA", "R.BIN", data)
	alpha := ts.connect(t, ConnectOptions{RequesterID: "ALPHA"})
	beta := ts.connect(t, ConnectOptions{RequesterID: "BETA"})
	mine, theirs := []byte("alpha's payments\n"), []byte("beta's payments\n")
	if _, err := alpha.Send(context.Background(), "PAY.XML", bytes.NewReader(mine), int64(len(mine)), TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	_, err := beta.Fetch(context.Background(), "PAY.XML", &out, TransferOptions{})
	if re := refused(t, err); re.Diag.Reason != fpdu.ReasonFileNotFound {
		t.Fatalf("beta fetching alpha's file: %v", re)
	}
	if _, err := beta.Send(context.Background(), "PAY.XML", bytes.NewReader(theirs), int64(len(theirs)), TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string][]byte{"ALPHA": mine, "BETA": theirs} {
		if got, err := os.ReadFile(filepath.Join(ts.Root, dir, "PAY.XML")); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s/PAY.XML = %q, %v", dir, got, err)
		}
	}
	out.Reset()
	pull(t, alpha, "PAY.XML", mine)

	// Restart state belongs to one requester: beta restarting alpha's
	// interrupted transfer starts from the beginning, in its own
	// directory; alpha resumes it.
	b2 := ts.connect(t, ConnectOptions{RequesterID: "BETA", SyncIntervalKB: 16, SyncWindow: 1})
	res, err := b2.Send(context.Background(), "R.BIN", bytes.NewReader(data), int64(len(data)), TransferOptions{Restart: true, TransferID: tid})
	if err != nil || res.RestartPoint != 0 {
		t.Fatalf("beta restarting alpha's transfer: %+v, %v", res, err)
	}
	a2 := ts.connect(t, ConnectOptions{RequesterID: "ALPHA", SyncIntervalKB: 16, SyncWindow: 1})
	res, err = a2.Send(context.Background(), "R.BIN", bytes.NewReader(data), int64(len(data)), TransferOptions{Restart: true, TransferID: tid})
	if err != nil || res.RestartPoint == 0 {
		t.Fatalf("alpha resuming its own transfer: %+v, %v", res, err)
	}

	// A requester id that cannot be a directory name is refused.
	for _, id := range []string{".hidden", "a/b", "..", "x\\y"} {
		_, err := NewClient(ts.dial(t), clientOpts(ConnectOptions{RequesterID: id}))
		if re := refused(t, err); re.FPDU != fpdu.TypeRConnect || re.Diag.Reason != fpdu.ReasonBadParameter {
			t.Fatalf("requester %q: %v", id, re)
		}
	}
	if names := strings.Join(listDir(t, ts.Root), ","); names != "ALPHA,BETA" {
		t.Fatalf("root holds %s", names)
	}
}

// TestSizeLimits: MaxFileSize refuses an announced size and stops a
// transfer that goes beyond it; Quota does the same for a requester's
// directory. Nothing partial is left behind.
func TestSizeLimits(t *testing.T) {
	ts := startServer(t, &Server{RequesterDirs: true, MaxFileSize: 100 << 10, Quota: 150 << 10})
	c := ts.connect(t, ConnectOptions{})
	big := randomData(120<<10, 1)
	_, err := c.Send(context.Background(), "BIG", bytes.NewReader(big), int64(len(big)), TransferOptions{})
	if re := refused(t, err); re.FPDU != fpdu.TypeAckCreate || re.Diag.Reason != fpdu.ReasonSpaceExhausted {
		t.Fatalf("announced size over max_file_size: %v", re)
	}
	// A peer that does not announce its size is stopped in flight.
	p := ts.raw(t, fpdu.FramingPrefixed)
	p.connect(2)
	p.startWrite("SILENT", 9)
	dtf, err := fpdu.AppendDTF(nil, p.y, make([]byte, 4000))
	if err != nil {
		t.Fatal(err)
	}
	nsdu, _ := fpdu.AppendNSDU(nil, fpdu.FramingPrefixed, dtf)
	for range 30 {
		if _, err := p.conn.Write(nsdu); err != nil {
			break
		}
	}
	f := p.recv()
	if d, _ := diagOf(&f); f.Type != fpdu.TypeAbort || d.Reason != fpdu.ReasonSpaceExhausted {
		t.Fatalf("in flight over max_file_size: %v %v", f.Type, d)
	}
	noPartials(t, filepath.Join(ts.Root, "RAW"))

	// Quota: 80 KiB fits, another 80 KiB does not and is stopped; then
	// the directory is full for any new CREATE.
	ok := randomData(80<<10, 2)
	if _, err := c.Send(context.Background(), "ONE", bytes.NewReader(ok), int64(len(ok)), TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	c2 := ts.connect(t, ConnectOptions{})
	_, err = c2.Send(context.Background(), "TWO", bytes.NewReader(ok), int64(len(ok)), TransferOptions{})
	if re := refused(t, err); re.FPDU != fpdu.TypeAbort || re.Diag.Reason != fpdu.ReasonDiskQuota {
		t.Fatalf("over the quota: %v", re)
	}
	noPartials(t, filepath.Join(ts.Root, "CLIENT1"))
	fill := randomData(70<<10, 4)
	c3 := ts.connect(t, ConnectOptions{})
	if _, err := c3.Send(context.Background(), "THREE", bytes.NewReader(fill), int64(len(fill)), TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = c3.Send(context.Background(), "FOUR", bytes.NewReader([]byte("x")), 1, TransferOptions{})
	if re := refused(t, err); re.FPDU != fpdu.TypeAckCreate || re.Diag.Reason != fpdu.ReasonDiskQuota {
		t.Fatalf("a full directory: %v", re)
	}
	if names := strings.Join(listDir(t, filepath.Join(ts.Root, "CLIENT1")), ","); names != "ONE,THREE" {
		t.Fatalf("the requester's directory holds %s", names)
	}
}

// TestRemoveStalePartials: partial files of aborted writes go once they
// are older than the age given, unless a write holds them.
func TestRemoveStalePartials(t *testing.T) {
	ts := startServer(t, &Server{RequesterDirs: true})
	interruptedPush(t, ts.Root, "ALPHA", "OLD.BIN", randomData(256<<10, 5))
	dir := filepath.Join(ts.Root, "ALPHA")
	if n := len(listDir(t, dir)); n != 2 {
		t.Fatalf("%d files after an interrupted push, want the partial and its state", n)
	}
	if n, err := ts.RemoveStalePartials(time.Hour); n != 0 || err != nil {
		t.Fatalf("removed %d fresh partial files (%v)", n, err)
	}
	// A write in progress, as old as the aborted one.
	p := ts.raw(t, fpdu.FramingPrefixed)
	p.connect(2)
	p.startWrite("LIVE.BIN", 5)
	dtf, err := fpdu.AppendDTF(nil, p.y, []byte("data"))
	if err != nil {
		t.Fatal(err)
	}
	p.send(dtf)
	old := time.Now().Add(-2 * time.Hour)
	for _, n := range listDir(t, dir) {
		_ = os.Chtimes(filepath.Join(dir, n), old, old)
	}
	liveParts := 0
	for _, n := range listDir(t, filepath.Join(ts.Root, "RAW")) {
		liveParts++
		_ = os.Chtimes(filepath.Join(ts.Root, "RAW", n), old, old)
	}
	if liveParts == 0 {
		t.Fatal("the live write has no partial file")
	}
	n, err := ts.RemoveStalePartials(time.Hour)
	if n != 2 || err != nil {
		t.Fatalf("removed %d (%v), want the aborted transfer's 2 files", n, err)
	}
	if got := len(listDir(t, dir)); got != 0 {
		t.Fatalf("%d files left of the aborted transfer", got)
	}
	if got := len(listDir(t, filepath.Join(ts.Root, "RAW"))); got != liveParts {
		t.Fatal("the partial file of a write in progress was removed")
	}
}

// TestConnectTimeout: a peer that never sends its CONNECT is dropped
// after ConnectTimeout, not after the much longer IdleTimeout; once
// connected, the idle timer applies.
func TestConnectTimeout(t *testing.T) {
	ts := startServer(t, &Server{ConnectTimeout: 200 * time.Millisecond, IdleTimeout: time.Minute})
	p := ts.raw(t, fpdu.FramingPrefixed)
	start := time.Now()
	if err := p.closed(5 * time.Second); err != nil {
		t.Fatalf("a silent peer is still connected: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("dropped after %s", d)
	}
	c := ts.connect(t, ConnectOptions{})
	time.Sleep(400 * time.Millisecond)
	push(t, ts, c, "AFTER", []byte("still connected"), TransferOptions{})
}

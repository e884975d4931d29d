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

func TestWrongServerID(t *testing.T) {
	ts := startServer(t, nil)
	_, err := NewClient(ts.dial(t), clientOpts(ConnectOptions{ServerID: "OTHER"}))
	re := refused(t, err)
	if re.FPDU != fpdu.TypeRConnect || re.Diag != (fpdu.Diag{Type: 3, Reason: 301}) || re.Message == "" {
		t.Fatalf("wrong server id: %v", err)
	}
}

func TestAuthenticate(t *testing.T) {
	var seen fpdu.Connect
	var remote net.Addr
	ts := startServer(t, &Server{Authenticate: func(_ context.Context, c fpdu.Connect, r net.Addr) *fpdu.Diag {
		seen, remote = c, r
		if pw, _ := fpdu.PasswordFromPI5(c.Password); c.RequesterID == "GOOD" && pw == "s3cret" {
			return nil
		}
		d := fpdu.NewDiag(fpdu.ReasonUnauthorized)
		return &d
	}})
	_, err := NewClient(ts.dial(t), clientOpts(ConnectOptions{RequesterID: "GOOD", Password: "wrong"}))
	if re := refused(t, err); re.FPDU != fpdu.TypeRConnect || re.Diag != (fpdu.Diag{Type: 3, Reason: 304}) {
		t.Fatalf("bad password: %v", err)
	}
	if string(seen.Password) != "wrong   " || seen.AccessType != 2 || remote == nil {
		t.Fatalf("Authenticate saw %v (password padded to 8: %q) from %v", seen, []byte(seen.Password), remote)
	}
	c := ts.connect(t, ConnectOptions{RequesterID: "GOOD", Password: "s3cret"})
	if err := c.Release(); err != nil {
		t.Fatal(err)
	}
	// The password never reaches the logs.
	for _, e := range ts.logs.All() {
		for _, f := range e.Context {
			if strings.Contains(f.String, "s3cret") || strings.Contains(f.String, "wrong") {
				t.Fatalf("log %q leaks the password: %v", e.Message, f)
			}
		}
	}
}

func TestUnknownFile(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.connect(t, ConnectOptions{})
	_, err := c.Fetch(context.Background(), "missing", &bytes.Buffer{}, TransferOptions{})
	if re := refused(t, err); re.FPDU != fpdu.TypeAckSelect || re.Diag != (fpdu.Diag{Type: 2, Reason: 205}) {
		t.Fatalf("unknown file: %v", err)
	}
	// The refusal left the connection usable.
	push(t, ts, c, "present", []byte("data"), TransferOptions{})
	pull(t, c, "present", []byte("data"))
}

// TestNames refuses unsafe names and never touches anything outside Root,
// not even through symbolic links inside it.
func TestNames(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{root, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("outside data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, "x"), []byte("parent data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../outside", filepath.Join(root, "dirlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "inside"), []byte("inside data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("inside", filepath.Join(root, "alias")); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, &Server{Root: root})
	c := ts.connect(t, ConnectOptions{})
	data := []byte("attacker data")
	bad := []string{"../x", "/etc/passwd", "a/b", ".hidden", "..", "a\\b", "dirlink/secret", "tab\there", "x..y", strings.Repeat("n", 77), "caf\xe9"}
	for _, name := range bad {
		_, err := c.Send(context.Background(), name, bytes.NewReader(data), int64(len(data)), TransferOptions{})
		if name == strings.Repeat("n", 77) {
			if err == nil || errors.As(err, new(*RefusedError)) {
				t.Fatalf("Send %q: %v (the client refuses names over 76 bytes itself)", name, err)
			}
			continue
		}
		if re := refused(t, err); re.FPDU != fpdu.TypeAckCreate || re.Diag != (fpdu.Diag{Type: 2, Reason: 226}) {
			t.Fatalf("Send %q: %v", name, err)
		}
		_, err = c.Fetch(context.Background(), name, &bytes.Buffer{}, TransferOptions{})
		if re := refused(t, err); re.FPDU != fpdu.TypeAckSelect || re.Diag != (fpdu.Diag{Type: 2, Reason: 226}) {
			t.Fatalf("Fetch %q: %v", name, err)
		}
	}
	// A symbolic link in Root is never followed for reading…
	var buf bytes.Buffer
	_, err := c.Fetch(context.Background(), "link", &buf, TransferOptions{})
	if re := refused(t, err); re.Diag != (fpdu.Diag{Type: 2, Reason: 205}) || buf.Len() != 0 {
		t.Fatalf("Fetch through a symlink: %v, %q", err, buf.Bytes())
	}
	// (not even one that stays inside Root)…
	_, err = c.Fetch(context.Background(), "alias", &buf, TransferOptions{})
	if re := refused(t, err); re.Diag != (fpdu.Diag{Type: 2, Reason: 205}) || buf.Len() != 0 {
		t.Fatalf("Fetch through an inner symlink: %v, %q", err, buf.Bytes())
	}
	// …nor for writing: the received file replaces the link itself.
	push(t, ts, c, "link", data, TransferOptions{})
	if b, _ := os.ReadFile(secret); string(b) != "outside data" {
		t.Fatalf("the file outside Root was written through a symlink: %q", b)
	}
	if fi, err := os.Lstat(filepath.Join(root, "link")); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("link not replaced by a regular file: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(base, "x")); string(b) != "parent data" {
		t.Fatal("the parent directory was written")
	}
	if names := listDir(t, outside); len(names) != 1 {
		t.Fatalf("outside holds %v", names)
	}
	if names := listDir(t, base); strings.Join(names, ",") != "outside,root,x" {
		t.Fatalf("base holds %v", names)
	}
	if names := listDir(t, root); strings.Join(names, ",") != "alias,dirlink,inside,link" {
		t.Fatalf("root holds %v", names)
	}
	if err := c.Release(); err != nil {
		t.Fatal(err)
	}
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"a", "FILE", "report 2024.csv", "a.b.c", "x-y_z~1", strings.Repeat("n", 76)} {
		if err := checkName(ok); err != nil {
			t.Errorf("checkName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", ".x", "a/b", "/a", "a\\b", "a..b", "a\x00b", "a\x7fb", "\xc3\xa9", strings.Repeat("n", 77)} {
		if checkName(bad) == nil {
			t.Errorf("checkName(%q) accepted", bad)
		}
	}
}

func TestAccessType(t *testing.T) {
	ts := startServer(t, nil)
	if err := os.WriteFile(filepath.Join(ts.Root, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := ts.connect(t, ConnectOptions{Access: AccessRead})
	_, err := r.Send(context.Background(), "g", bytes.NewReader([]byte("x")), 1, TransferOptions{})
	if re := refused(t, err); re.Diag != fpdu.NewDiag(fpdu.ReasonTransferRefused) {
		t.Fatalf("Send on a read connection: %v", err)
	}
	pull(t, r, "f", []byte("x"))
	w := ts.connect(t, ConnectOptions{Access: AccessWrite})
	_, err = w.Fetch(context.Background(), "f", &bytes.Buffer{}, TransferOptions{})
	if re := refused(t, err); re.Diag != fpdu.NewDiag(fpdu.ReasonTransferRefused) {
		t.Fatalf("Fetch on a write connection: %v", err)
	}
	push(t, ts, w, "g", []byte("y"), TransferOptions{})
}

// TestGarbageAfterAConnect: the server answers ABORT 3-311 and closes.
func TestGarbageAfterAConnect(t *testing.T) {
	for _, f := range []fpdu.Framing{fpdu.FramingPrefixed, fpdu.FramingRaw} {
		t.Run(f.String(), func(t *testing.T) {
			ts := startServer(t, nil)
			p := ts.raw(t, f)
			p.connect(2)
			if _, err := p.conn.Write([]byte{0x00, 0x08, 0xDE, 0xAD, 0xBE, 0xEF, 0x01, 0x02, 0x03, 0x04}); err != nil {
				t.Fatal(err)
			}
			a := p.expect(fpdu.TypeAbort, fpdu.NewDiag(fpdu.ReasonProtocolError))
			if a.DstID != 7 || a.SrcID != p.y {
				t.Fatalf("ABORT ids %d/%d", a.DstID, a.SrcID)
			}
			if err := p.closed(2 * time.Second); err != nil {
				t.Fatalf("server did not close: %v", err)
			}
			ts.wait(t)
			if !errors.Is(ts.errs[0], ErrProtocol) {
				t.Fatalf("ServeConn returned %v", ts.errs[0])
			}
		})
	}
}

// TestProtocolViolations: FPDUs out of sequence or with wrong ids abort.
func TestProtocolViolations(t *testing.T) {
	for _, tc := range []struct {
		name string
		fpdu func(y byte) []byte
		diag fpdu.Diag
	}{
		{"WRITE without CREATE", func(y byte) []byte { return mustFPDU(t, fpdu.TypeWrite, y, 0) }, fpdu.NewDiag(311)},
		{"wrong ID.DST", func(y byte) []byte { return mustFPDU(t, fpdu.TypeDeselect, y+1, 0, fpdu.DiagOK.Param()) }, fpdu.NewDiag(311)},
		{"DTF outside data", func(y byte) []byte { b, _ := fpdu.AppendDTF(nil, y, []byte("x")); return b }, fpdu.NewDiag(311)},
		{"CREATE without PI 12", func(y byte) []byte {
			return mustFPDU(t, fpdu.TypeCreate, y, 0, fpdu.PIUint(fpdu.PITransferID, 1, 1), fpdu.PIUint(fpdu.PIMaxEntitySize, 4096, 2))
		}, fpdu.NewDiag(318)},
		{"CREATE with PI 13 = 0", func(y byte) []byte {
			return mustFPDU(t, fpdu.TypeCreate, y, 0, fpdu.PGI(fpdu.PGIFileID, fpdu.PIString(fpdu.PIFileName, "f")),
				fpdu.PIUint(fpdu.PITransferID, 0, 1), fpdu.PIUint(fpdu.PIMaxEntitySize, 4096, 2))
		}, fpdu.NewDiag(318)},
		{"unordered parameters", func(y byte) []byte {
			return []byte{0, 14, 0xC0, 0x15, y, 0, 0x63, 1, 'x', 0x02, 3, 0, 0, 0}
		}, fpdu.NewDiag(311)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, nil)
			p := ts.raw(t, fpdu.FramingPrefixed)
			p.connect(2)
			p.send(tc.fpdu(p.y))
			p.expect(fpdu.TypeAbort, tc.diag)
			if err := p.closed(2 * time.Second); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestMalformedConnect: RCONNECT 3-318 before ACONNECT.
func TestMalformedConnect(t *testing.T) {
	ts := startServer(t, nil)
	p := ts.raw(t, fpdu.FramingPrefixed)
	// CONNECT without PI 4.
	p.send(mustFPDU(t, fpdu.TypeConnect, 0, 9, fpdu.PIString(fpdu.PIRequesterID, "A"), fpdu.PIByte(fpdu.PIVersion, 2), fpdu.PIByte(fpdu.PIAccessType, 0)))
	f := p.expect(fpdu.TypeRConnect, fpdu.NewDiag(fpdu.ReasonBadParameter))
	if f.DstID != 9 || f.SrcID != 0 {
		t.Fatalf("RCONNECT ids %d/%d", f.DstID, f.SrcID)
	}
	if err := p.closed(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	// Version D is refused with 3-308.
	p = ts.raw(t, fpdu.FramingRaw)
	b, _ := fpdu.Connect{SrcID: 3, RequesterID: "A", ServerID: testServerID, Version: 1, HasAccessType: true}.Append(nil)
	p.send(b)
	p.expect(fpdu.TypeRConnect, fpdu.NewDiag(fpdu.ReasonVersionUnsupported))
}

// TestSilentClient: a requester that sends nothing is cut after the idle
// timeout, before and after CONNECT.
func TestSilentClient(t *testing.T) {
	ts := startServer(t, &Server{IdleTimeout: 150 * time.Millisecond})
	start := time.Now()
	p := ts.raw(t, fpdu.FramingPrefixed)
	if err := p.closed(3 * time.Second); err != nil {
		t.Fatalf("silent connection not closed: %v", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("closed after %v, before the timeout", d)
	}
	p = ts.raw(t, fpdu.FramingPrefixed)
	p.connect(2)
	p.expect(fpdu.TypeAbort, fpdu.NewDiag(fpdu.ReasonIdleTimeout))
	if err := p.closed(3 * time.Second); err != nil {
		t.Fatal(err)
	}
	// A requester that stops in the middle of a data phase is cut too.
	p = ts.raw(t, fpdu.FramingPrefixed)
	p.connect(2)
	p.startWrite("stalled", 1)
	dtf, _ := fpdu.AppendDTF(nil, p.y, []byte("partial"))
	p.send(dtf)
	p.expect(fpdu.TypeAbort, fpdu.NewDiag(fpdu.ReasonIdleTimeout))
	ts.wait(t)
	if names := listDir(t, ts.Root); len(names) != 0 {
		t.Fatalf("root holds %v", names)
	}
}

// TestCountMismatch: a requester whose TRANS.END disagrees with the data
// gets 3-319 and nothing is stored.
func TestCountMismatch(t *testing.T) {
	ts := startServer(t, nil)
	p := ts.raw(t, fpdu.FramingPrefixed)
	p.connect(0)
	p.startWrite("counted", 0x1234)
	multi, _ := fpdu.AppendArticles(nil, p.y, []byte("abc"), []byte("defg"))
	da, _ := fpdu.AppendData(nil, fpdu.TypeDTFDA, p.y, []byte("seg"))
	fa, _ := fpdu.AppendData(nil, fpdu.TypeDTFFA, p.y, []byte("ment"))
	end := mustFPDU(t, fpdu.TypeDTFEnd, p.y, 0, fpdu.DiagOK.Param())
	p.send(multi, da, fa, end) // concatenated, as C:X does
	p.send(mustFPDU(t, fpdu.TypeTransEnd, p.y, 0, fpdu.PIUint(fpdu.PIByteCount, 14, 1), fpdu.PIUint(fpdu.PIArticleCount, 4, 1)))
	f := p.expect(fpdu.TypeAckTransEnd, fpdu.NewDiag(fpdu.ReasonWrongCount))
	if b, _, _ := getUint(&f, fpdu.PIByteCount); b != 14 {
		t.Fatalf("server counted %d bytes", b)
	}
	if a, _, _ := getUint(&f, fpdu.PIArticleCount); a != 3 {
		t.Fatalf("server counted %d articles, want 3 (a segmented article counts once)", a)
	}
	p.send(mustFPDU(t, fpdu.TypeCRF, p.y, 0, fpdu.DiagOK.Param()))
	p.expect(fpdu.TypeAckCRF, fpdu.DiagOK)
	p.send(mustFPDU(t, fpdu.TypeDeselect, p.y, 0, fpdu.DiagOK.Param()))
	p.expect(fpdu.TypeAckDeselect, fpdu.DiagOK)
	p.send(mustFPDU(t, fpdu.TypeRelease, p.y, 7, fpdu.DiagOK.Param()))
	p.expect(fpdu.TypeRelConf, fpdu.DiagOK)
	ts.wait(t)
	if names := listDir(t, ts.Root); len(names) != 0 {
		t.Fatalf("root holds %v after a count mismatch", names)
	}
}

// TestPreConnectionNAK: a NAK0 answer is a refusal.
func TestPreConnectionNAK(t *testing.T) {
	a, b := net.Pipe()
	go func() {
		buf := make([]byte, 26)
		_, _ = b.Read(buf)
		_, _ = b.Write(fpdu.AppendPreConnectionAnswer(nil, false, true))
		b.Close()
	}()
	_, err := NewClient(a, clientOpts(ConnectOptions{PreConnection: true}))
	if re := refused(t, err); !re.NAK {
		t.Fatalf("NAK0: %v", err)
	}
}

// TestPeerAbort: an ABORT from the server ends a transfer with a
// RefusedError and breaks the client. The server's directory disappears in
// the middle of a push, so it cannot persist the first sync point.
func TestPeerAbort(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.connect(t, ConnectOptions{SyncIntervalKB: 512})
	data := randomData(3<<20, 3)
	src := &hookReader{r: bytes.NewReader(data), at: 256 << 10, hook: func() { os.RemoveAll(ts.Root) }}
	_, err := c.Send(context.Background(), "doomed", src, int64(len(data)), TransferOptions{})
	if re := refused(t, err); re.FPDU != fpdu.TypeAbort || re.Diag != fpdu.NewDiag(fpdu.ReasonIOError) {
		t.Fatalf("ABORT: %v", err)
	}
	if _, err := c.Send(context.Background(), "x", bytes.NewReader(nil), 0, TransferOptions{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("client usable after ABORT: %v", err)
	}
}

// hookReader runs hook once `at` bytes have been read, in small reads.
type hookReader struct {
	r    *bytes.Reader
	at   int
	n    int
	hook func()
}

func (h *hookReader) Read(b []byte) (int, error) {
	if h.n >= h.at && h.hook != nil {
		h.hook()
		h.hook = nil
	}
	n, err := h.r.Read(b[:min(len(b), 64<<10)])
	h.n += n
	return n, err
}

func (h *hookReader) Seek(off int64, whence int) (int64, error) { return h.r.Seek(off, whence) }

// TestIDT: an interruption (IDT) in the middle of a write is acknowledged,
// the file is closed without being stored, and the connection goes on.
func TestIDT(t *testing.T) {
	ts := startServer(t, nil)
	p := ts.raw(t, fpdu.FramingPrefixed)
	p.connect(2)
	p.startWrite("interrupted", 9)
	dtf, _ := fpdu.AppendDTF(nil, p.y, []byte("partial"))
	p.send(dtf)
	p.send(mustFPDU(t, fpdu.TypeIDT, p.y, 0, fpdu.NewDiag(fpdu.ReasonPrematureStop).Param(), fpdu.PIByte(fpdu.PIEndCode, 8)))
	p.expect(fpdu.TypeAckIDT, fpdu.DiagOK)
	p.send(mustFPDU(t, fpdu.TypeCRF, p.y, 0, fpdu.DiagOK.Param()))
	p.expect(fpdu.TypeAckCRF, fpdu.DiagOK)
	p.send(mustFPDU(t, fpdu.TypeDeselect, p.y, 0, fpdu.DiagOK.Param()))
	p.expect(fpdu.TypeAckDeselect, fpdu.DiagOK)
	p.send(mustFPDU(t, fpdu.TypeMsg, p.y, 0, fpdu.PIString(fpdu.PIMessage, "hello")))
	p.expect(fpdu.TypeAckMsg, fpdu.NewDiag(fpdu.ReasonMessageRefused))
	p.send(mustFPDU(t, fpdu.TypeRelease, p.y, 7, fpdu.DiagOK.Param()))
	p.expect(fpdu.TypeRelConf, fpdu.DiagOK)
	ts.wait(t)
	if names := listDir(t, ts.Root); len(names) != 0 {
		t.Fatalf("root holds %v", names)
	}
}

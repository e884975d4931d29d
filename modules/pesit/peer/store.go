package peer

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"
)

// maxNameLen is the Hors-SIT limit on PI 12.
const maxNameLen = 76

// checkName enforces the server's file name rules (see the package
// documentation). The reason goes into PI 99 of the refusal.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty file name")
	case len(name) > maxNameLen:
		return fmt.Errorf("file name of %d bytes, at most %d", len(name), maxNameLen)
	case name[0] == '.':
		return errors.New("file name starts with a dot")
	case strings.Contains(name, ".."):
		return errors.New(`file name contains ".."`)
	case strings.ContainsAny(name, `/\`):
		return errors.New("file name contains a path separator")
	}
	for i := 0; i < len(name); i++ {
		if name[i] < 0x20 || name[i] > 0x7E {
			return fmt.Errorf("file name contains byte %#02x", name[i])
		}
	}
	return nil
}

// tempNames returns the temporary data and restart-state file names of a
// write: hidden (leading dot), so no transfer can name them.
func tempNames(name string, tid uint32) (part, state string) {
	base := fmt.Sprintf(".pesit-%06x-%s", tid, name)
	return base + ".part", base + ".state"
}

// partOf returns the temporary data file a temporary file belongs to, or
// "" if name is not one.
func partOf(name string) string {
	if !strings.HasPrefix(name, ".pesit-") {
		return ""
	}
	if base, ok := strings.CutSuffix(name, ".state"); ok {
		return base + ".part"
	}
	if strings.HasSuffix(name, ".part") {
		return name
	}
	return ""
}

// dirUsage is the size of the regular files in root's top directory,
// partial files included.
func dirUsage(root *os.Root) (int64, error) {
	d, err := root.Open(".")
	if err != nil {
		return 0, err
	}
	defer d.Close()
	entries, err := d.ReadDir(-1)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if fi, err := e.Info(); err == nil {
			total += fi.Size()
		}
	}
	return total, nil
}

// RemoveStalePartials removes the temporary files of writes (".pesit-…
// .part" and ".state") last written more than age ago, in Root and, with
// RequesterDirs, in every requester's directory: transfers aborted and
// never restarted. A write in progress holds its lock and is left alone
// whatever its age. It returns how many files it removed.
func (s *Server) RemoveStalePartials(age time.Duration) (int, error) {
	root, err := os.OpenRoot(s.Root)
	if err != nil {
		return 0, err
	}
	defer root.Close()
	cutoff := time.Now().Add(-age)
	removed, err := s.removeStale(root, "", cutoff)
	if !s.RequesterDirs || err != nil {
		return removed, err
	}
	d, err := root.Open(".")
	if err != nil {
		return removed, err
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	for _, e := range entries {
		if !e.IsDir() || checkName(e.Name()) != nil {
			continue
		}
		sub, serr := root.OpenRoot(e.Name())
		if serr != nil {
			continue
		}
		n, _ := s.removeStale(sub, e.Name(), cutoff)
		sub.Close()
		removed += n
	}
	return removed, err
}

func (s *Server) removeStale(root *os.Root, dir string, cutoff time.Time) (int, error) {
	d, err := root.Open(".")
	if err != nil {
		return 0, err
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	removed := 0
	for _, e := range entries {
		part := partOf(e.Name())
		if part == "" || !e.Type().IsRegular() {
			continue
		}
		// Holding the lock keeps a write from starting on the file while
		// it is judged and removed.
		release, ok := s.locks().tryAcquire(dir + "/" + part)
		if !ok {
			continue
		}
		if fi, err := root.Lstat(e.Name()); err == nil && fi.ModTime().Before(cutoff) && root.Remove(e.Name()) == nil {
			removed++
		}
		release()
	}
	return removed, err
}

// restartState is what a write persists at each sync point.
type restartState struct {
	Seq        uint64 // write sequence: the valid slot with the highest wins
	Requester  string
	Name       string
	TransferID uint32
	SyncKB     uint16
	Article    int
	SyncPoint  uint32
	Offset     int64
}

// The state file holds two slots of stateSlotLen bytes, written
// alternately in place: a torn write spoils only the slot being written,
// and the other still holds the previous sync point. A slot is one text
// line
//
//	v1 seq=N sync=N offset=N sync_kb=N article=N tid=HEX req=HEX name=HEX crc=HEX8
//
// where crc is the CRC-32 (IEEE) of everything before " crc=", followed
// by NUL padding. Requester and name are hex-encoded because PI 3 may hold
// any byte.
const stateSlotLen = 512

// stateFile records the sync points of one write without allocating: one
// pwrite per sync point, no rename.
type stateFile struct {
	f   *os.File
	seq uint64
	buf [stateSlotLen]byte
}

// openStateFile creates (truncating) or, to resume, opens the state file.
func openStateFile(root *os.Root, name string, resume bool, seq uint64) (*stateFile, error) {
	flag := os.O_RDWR
	if !resume {
		flag |= os.O_CREATE
	}
	f, err := openNoFollow(root, name, flag)
	if err != nil {
		return nil, err
	}
	return &stateFile{f: f, seq: seq}, nil
}

// save writes st (its Seq is assigned here) into the older slot.
func (sf *stateFile) save(st *restartState) error {
	sf.seq++
	st.Seq = sf.seq
	b := sf.buf[:0]
	b = append(b, "v1 seq="...)
	b = strconv.AppendUint(b, st.Seq, 10)
	b = append(b, " sync="...)
	b = strconv.AppendUint(b, uint64(st.SyncPoint), 10)
	b = append(b, " offset="...)
	b = strconv.AppendInt(b, st.Offset, 10)
	b = append(b, " sync_kb="...)
	b = strconv.AppendUint(b, uint64(st.SyncKB), 10)
	b = append(b, " article="...)
	b = strconv.AppendInt(b, int64(st.Article), 10)
	b = append(b, " tid="...)
	b = strconv.AppendUint(b, uint64(st.TransferID), 16)
	b = append(b, " req="...)
	b = hex.AppendEncode(b, []byte(st.Requester)) // PI 3 ≤ 24, name ≤ 76: fits the slot
	b = append(b, " name="...)
	b = hex.AppendEncode(b, []byte(st.Name))
	crc := crc32.ChecksumIEEE(b)
	b = append(b, " crc="...)
	b = append(b, hexDigits(crc)...)
	b = append(b, '\n')
	full := sf.buf[:stateSlotLen]
	clear(full[len(b):])
	_, err := sf.f.WriteAt(full, int64(st.Seq%2)*stateSlotLen)
	return err
}

func hexDigits(v uint32) []byte {
	const digits = "0123456789abcdef"
	var d [8]byte
	for i := 7; i >= 0; i-- {
		d[i] = digits[v&0xF]
		v >>= 4
	}
	return d[:]
}

func (sf *stateFile) close() error { return sf.f.Close() }

// loadState reads a state file and returns its newest valid slot; ok is
// false when there is none (a restart then starts from the beginning).
func loadState(root *os.Root, name string) (st restartState, ok bool) {
	f, err := openNoFollow(root, name, os.O_RDONLY)
	if err != nil {
		return st, false
	}
	defer f.Close()
	var buf [2 * stateSlotLen]byte
	n, _ := io.ReadFull(f, buf[:])
	for i := 0; i+stateSlotLen <= n; i += stateSlotLen {
		if s, good := parseSlot(buf[i : i+stateSlotLen]); good && (!ok || s.Seq > st.Seq) {
			st, ok = s, true
		}
	}
	return st, ok
}

// parseSlot decodes and verifies one slot.
func parseSlot(b []byte) (st restartState, ok bool) {
	end := bytes.IndexByte(b, '\n')
	if end < 0 {
		return st, false
	}
	line := string(b[:end])
	body, crcHex, found := strings.Cut(line, " crc=")
	if !found || !strings.HasPrefix(body, "v1 ") {
		return st, false
	}
	if c, err := strconv.ParseUint(crcHex, 16, 32); err != nil || uint32(c) != crc32.ChecksumIEEE([]byte(body)) {
		return st, false
	}
	for _, kv := range strings.Fields(body)[1:] {
		k, v, _ := strings.Cut(kv, "=")
		var err error
		var x uint64
		switch k {
		case "seq":
			st.Seq, err = strconv.ParseUint(v, 10, 64)
		case "sync":
			x, err = strconv.ParseUint(v, 10, 32)
			st.SyncPoint = uint32(x)
		case "offset":
			st.Offset, err = strconv.ParseInt(v, 10, 64)
		case "sync_kb":
			x, err = strconv.ParseUint(v, 10, 16)
			st.SyncKB = uint16(x)
		case "article":
			x, err = strconv.ParseUint(v, 10, 16)
			st.Article = int(x)
		case "tid":
			x, err = strconv.ParseUint(v, 16, 24)
			st.TransferID = uint32(x)
		case "req", "name":
			var d []byte
			if d, err = hex.DecodeString(v); k == "req" {
				st.Requester = string(d)
			} else {
				st.Name = string(d)
			}
		default:
			err = fmt.Errorf("unknown field %q", k)
		}
		if err != nil {
			return restartState{}, false
		}
	}
	return st, st.Seq > 0 && st.Offset >= 0
}

// openRegular opens name in root read-only, refusing anything but a
// regular file; see openNoFollow.
func openRegular(root *os.Root, name string) (*os.File, fs.FileInfo, error) {
	f, err := openNoFollow(root, name, os.O_RDONLY)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// errNotRegular refuses symbolic links and special files.
var errNotRegular = errors.New("not a regular file")

// openNoFollow opens name in root without following a symbolic link in
// its last component. os.Root keeps every access inside the root but
// follows symbolic links that stay inside it, even with O_NOFOLLOW, so:
// with O_CREATE any existing entry (a link included) is removed first and
// the file is created with O_EXCL, which never follows links; otherwise
// the entry must be a regular file (Lstat) and the opened file must be
// that same file (os.SameFile), which defeats a swap in between.
func openNoFollow(root *os.Root, name string, flag int) (*os.File, error) {
	if flag&os.O_CREATE != 0 {
		if err := root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return root.OpenFile(name, flag|os.O_EXCL, 0o640)
	}
	lfi, err := root.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !lfi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w", name, errNotRegular)
	}
	f, err := root.OpenFile(name, flag, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !os.SameFile(lfi, fi) {
		err = fmt.Errorf("%s changed while being opened: %w", name, errNotRegular)
	}
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

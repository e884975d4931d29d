package peer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"
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

// restartState is persisted at every sync point of a write.
type restartState struct {
	V          int    `json:"v"`
	Requester  string `json:"requester"`
	Name       string `json:"name"`
	TransferID uint32 `json:"transfer_id"`
	SyncKB     uint16 `json:"sync_kb"`
	Article    int    `json:"article"`
	SyncPoint  uint32 `json:"sync_point"`
	Offset     int64  `json:"offset"`
}

// saveState replaces the state file atomically (write, then rename).
func saveState(root *os.Root, name string, st *restartState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := name + ".tmp"
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = root.Remove(tmp)
		return err
	}
	return root.Rename(tmp, name)
}

// loadState reads a state file; ok is false when there is none or it is
// unreadable (a restart then starts from the beginning).
func loadState(root *os.Root, name string) (st restartState, ok bool) {
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return st, false
	}
	defer f.Close()
	b := make([]byte, 4096)
	n, _ := f.Read(b)
	if json.Unmarshal(b[:n], &st) != nil || st.V != 1 {
		return restartState{}, false
	}
	return st, true
}

// openRegular opens name in root read-only without following a symbolic
// link and requires a regular file.
func openRegular(root *os.Root, name string) (*os.File, fs.FileInfo, error) {
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", name)
	}
	if err != nil {
		_ = f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

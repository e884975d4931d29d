package psd2

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"
)

// replayJournal is the append-only file behind a local replay store. Each
// claim appends one record before the request goes on; on start the
// records that have not expired are read back and the file is rewritten
// with only those. Writes go to the page cache without fsync: the journal
// survives restarts and process crashes, not the loss of the machine.
//
// Format: the 8-byte magic, then records of
//
//	uint16 length of the organisation id | organisation id | 16-byte request id | int64 expiry (Unix ns)
//
// all big-endian. A record cut short by a crash ends the journal.
type replayJournal struct {
	path   string
	f      *os.File
	lock   *os.File
	size   int64 // bytes of whole records written
	record []byte
	logger *zap.Logger
}

var journalMagic = []byte("BEPSD2R1")

// maxJournalOrgID bounds an organisation id in the journal; real ones are
// about 20 bytes.
const maxJournalOrgID = 1024

// journalEntry is a record read back from the journal.
type journalEntry struct {
	org     string
	id      uuid.UUID
	expires int64
}

// openReplayJournal locks and reads path, keeps the entries that expire
// after now, and rewrites the file with only those.
func openReplayJournal(path string, now time.Time, logger *zap.Logger) (*replayJournal, []journalEntry, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, nil, fmt.Errorf("replay journal: %w", err)
	}
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("replay journal: %w", err)
	}
	if err := lockFile(lock); err != nil {
		lock.Close()
		return nil, nil, fmt.Errorf("replay journal %s is in use by another process (gateways that share traffic need a shared replay_store): %w", path, err)
	}
	j := &replayJournal{path: path, lock: lock, logger: logger}
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		j.close()
		return nil, nil, fmt.Errorf("reading the replay journal: %w", err)
	}
	entries, rest := parseJournal(data, now.UnixNano())
	if rest > 0 {
		logger.Warn("the replay journal ends with an incomplete or unreadable record, which was dropped",
			zap.String("journal", path), zap.Int("bytes", rest))
	}
	err = j.rewrite(func(f func(string, replayEntry)) {
		for _, e := range entries {
			f(e.org, replayEntry{id: e.id, expires: e.expires})
		}
	})
	if err != nil {
		j.close()
		return nil, nil, err
	}
	return j, entries, nil
}

// parseJournal returns the records of data that expire after now, and how
// many trailing bytes did not form a record.
func parseJournal(data []byte, now int64) (entries []journalEntry, rest int) {
	if len(data) == 0 {
		return nil, 0
	}
	if !bytes.HasPrefix(data, journalMagic) {
		return nil, len(data)
	}
	b := data[len(journalMagic):]
	for len(b) > 0 {
		if len(b) < 2 {
			break
		}
		n := int(binary.BigEndian.Uint16(b))
		if n == 0 || n > maxJournalOrgID || len(b) < 2+n+16+8 {
			break
		}
		var e journalEntry
		e.org = string(b[2 : 2+n])
		copy(e.id[:], b[2+n:])
		e.expires = int64(binary.BigEndian.Uint64(b[2+n+16:]))
		b = b[2+n+16+8:]
		if e.expires > now {
			entries = append(entries, e)
		}
	}
	return entries, len(b)
}

// appendRecord encodes one record onto dst.
func appendRecord(dst []byte, org string, e replayEntry) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(org)))
	dst = append(dst, org...)
	dst = append(dst, e.id[:]...)
	return binary.BigEndian.AppendUint64(dst, uint64(e.expires))
}

// append writes one record. After a failed write the file is cut back to
// its last whole record, so that a torn record cannot hide the ones
// written after it.
func (j *replayJournal) append(org string, e replayEntry) error {
	if len(org) == 0 || len(org) > maxJournalOrgID {
		return fmt.Errorf("organisation id of %d bytes cannot be journalled", len(org))
	}
	j.record = appendRecord(j.record[:0], org, e)
	n, err := j.f.Write(j.record)
	if err != nil {
		if n > 0 {
			if terr := j.f.Truncate(j.size); terr != nil {
				j.logger.Error("cutting a torn record off the replay journal", zap.String("journal", j.path), zap.Error(terr))
			}
		}
		return fmt.Errorf("writing the replay journal: %w", err)
	}
	j.size += int64(n)
	return nil
}

// wantsCompaction reports whether the journal has grown well beyond its
// live entries.
func (j *replayJournal) wantsCompaction(live int) bool {
	const approxRecord = 2 + 20 + 16 + 8
	return j.size > 1<<20 && j.size > 2*int64(live)*approxRecord
}

// rewrite replaces the journal with the entries that each calls back with,
// through a temporary file renamed over it, and reopens it for appending.
func (j *replayJournal) rewrite(each func(f func(org string, e replayEntry))) error {
	tmp, err := os.CreateTemp(filepath.Dir(j.path), filepath.Base(j.path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("rewriting the replay journal: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	buf := append(make([]byte, 0, 64<<10), journalMagic...)
	var werr error
	each(func(org string, e replayEntry) {
		if werr != nil || len(org) == 0 || len(org) > maxJournalOrgID {
			return
		}
		buf = appendRecord(buf, org, e)
		if len(buf) >= 60<<10 {
			_, werr = tmp.Write(buf)
			buf = buf[:0]
		}
	})
	size := int64(0)
	if werr == nil {
		_, werr = tmp.Write(buf)
	}
	if werr == nil {
		werr = tmp.Sync()
	}
	if st, err := tmp.Stat(); werr == nil && err == nil {
		size = st.Size()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), j.path)
	}
	if werr != nil {
		return fmt.Errorf("rewriting the replay journal: %w", werr)
	}
	f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("reopening the replay journal: %w", err)
	}
	if j.f != nil {
		j.f.Close()
	}
	j.f, j.size = f, size
	return nil
}

func (j *replayJournal) close() error {
	var err error
	if j.f != nil {
		err = j.f.Close()
	}
	if j.lock != nil {
		// Closing the file releases the lock.
		j.lock.Close()
	}
	return err
}

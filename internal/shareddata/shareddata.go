// Package shareddata finds the project's shared reference folder for tests.
//
// The folder (../shared next to the module root) holds the seeds, the
// reference notes and recordings that are read in place and never committed.
// It is absent on a bare checkout, so every helper here skips the calling
// test instead of failing it.
package shareddata

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// Path returns the path of elem under ../shared, skipping tb when the
// module root cannot be found or the path does not exist.
func Path(tb testing.TB, elem ...string) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Skip("module root not found")
		}
		dir = parent
	}
	p := filepath.Join(append([]string{dir, "..", "shared"}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		tb.Skipf("shared test data not available: %v", err)
	}
	return p
}

// ReadFile reads a file under ../shared, skipping tb when it is absent.
func ReadFile(tb testing.TB, elem ...string) []byte {
	tb.Helper()
	b, err := os.ReadFile(Path(tb, elem...))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// PeSITRecord is one FPDU of a recorded PeSIT session.
type PeSITRecord struct {
	// Sent is true for FPDUs the recording side sent, false for those it
	// received.
	Sent bool
	// FPDU is the whole FPDU, header included.
	FPDU []byte
}

// PeSITRecording reads testdata/pesit-traces/name, a sequence of
// [direction 1B][length 2B big-endian][FPDU] records.
func PeSITRecording(tb testing.TB, name string) []PeSITRecord {
	tb.Helper()
	b := ReadFile(tb, "testdata", "pesit-traces", name)
	var recs []PeSITRecord
	for off := 0; off < len(b); {
		if len(b)-off < 3 {
			tb.Fatalf("%s: stray %d bytes at %d", name, len(b)-off, off)
		}
		n := int(binary.BigEndian.Uint16(b[off+1:]))
		if b[off] > 1 || off+3+n > len(b) {
			tb.Fatalf("%s: bad record at %d", name, off)
		}
		recs = append(recs, PeSITRecord{Sent: b[off] == 1, FPDU: b[off+3 : off+3+n]})
		off += 3 + n
	}
	return recs
}

package fpdu

import (
	"encoding/binary"
	"errors"
	"testing"
)

func TestSyncRoundTrip(t *testing.T) {
	for _, n := range []uint32{1, 255, 256, 65535, 65536, MaxSyncNumber} {
		b := AppendSync(nil, TypeSyn, 5, n)
		if len(b) != SyncLen(n) || int(binary.BigEndian.Uint16(b)) != len(b) {
			t.Fatalf("n=%d: % x is %d bytes, SyncLen says %d", n, b, len(b), SyncLen(n))
		}
		// The codec's general decoder must agree with the fast path.
		f, err := Decode(b)
		if err != nil || f.Type != TypeSyn {
			t.Fatalf("n=%d: Decode: %v %v", n, f.Type, err)
		}
		if got, err := ParseSyncNumber(b); err != nil || got != n {
			t.Fatalf("n=%d: ParseSyncNumber = %d, %v", n, got, err)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = AppendSync(make([]byte, 0, 16), TypeAckSyn, 1, 7) }); n > 1 {
		t.Errorf("AppendSync allocates %v times", n)
	}
}

func TestParseSyncNumberRefuses(t *testing.T) {
	zero := AppendSync(nil, TypeSyn, 5, 1)
	zero[len(zero)-1] = 0
	tooBig := AppendSync(nil, TypeSyn, 5, MaxSyncNumber+1)
	twice := append(AppendSync(nil, TypeSyn, 5, 1), PISyncNumber, 1, 2)
	binary.BigEndian.PutUint16(twice, uint16(len(twice)))
	other := []byte{0, 9, 0xC0, 0x31, 5, 0, PIFileName, 1, 'A'}
	bare := []byte{0, 6, 0xC0, 0x31, 5, 0}
	for name, b := range map[string][]byte{"zero": zero, "too big": tooBig, "twice": twice, "other PI": other, "no PI 20": bare, "short": {0, 6}} {
		if _, err := ParseSyncNumber(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

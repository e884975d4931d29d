package fpdu

import (
	"encoding/binary"
	"fmt"
)

// MaxSyncNumber is the largest sync point number (PI 20) PeSIT allows.
const MaxSyncNumber = 999999

// AppendSync appends a SYN or ACK(SYN) whose only parameter is PI 20 = n,
// in the fewest bytes and without allocating: these go out once per sync
// interval on the data path, where PIUint's allocation would show.
func AppendSync(dst []byte, t Type, dstID byte, n uint32) []byte {
	var v [4]byte
	binary.BigEndian.PutUint32(v[:], n)
	i := 0
	for i < 3 && v[i] == 0 {
		i++
	}
	l := 4 - i
	total := HeaderLen + 2 + l
	dst = append(dst, byte(total>>8), byte(total), t.Phase(), t.Code(), dstID, 0, PISyncNumber, byte(l))
	return append(dst, v[i:]...)
}

// SyncLen is the length of the FPDU AppendSync builds for n.
func SyncLen(n uint32) int {
	switch {
	case n < 1<<8:
		return 9
	case n < 1<<16:
		return 10
	case n < 1<<24:
		return 11
	}
	return 12
}

// ParseSyncNumber reads PI 20 from a whole SYN or ACK(SYN) FPDU, which must
// carry it alone, between 1 and MaxSyncNumber, without allocating.
func ParseSyncNumber(fp []byte) (uint32, error) {
	if len(fp) < HeaderLen {
		return 0, fmt.Errorf("%w: sync FPDU of %d bytes", ErrMalformed, len(fp))
	}
	it := NewParamIter(fp[HeaderLen:])
	var n uint64
	found := false
	for it.Next() {
		p := it.Param()
		if p.Code != PISyncNumber || found {
			return 0, fmt.Errorf("%w: unexpected PI %d in a sync FPDU", ErrMalformed, p.Code)
		}
		v, err := p.Uint()
		if err != nil || v == 0 || v > MaxSyncNumber {
			return 0, fmt.Errorf("%w: bad sync point number", ErrMalformed)
		}
		n, found = v, true
	}
	if it.Err() != nil || !found {
		return 0, fmt.Errorf("%w: sync FPDU without PI 20", ErrMalformed)
	}
	return uint32(n), nil
}

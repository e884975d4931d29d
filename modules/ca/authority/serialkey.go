package authority

import "math/big"

// maxKeySerialBytes bounds the serials appendSerialString writes without
// SerialString's allocations: RFC 5280 serials are at most 20 bytes.
const maxKeySerialBytes = 32

// appendSerialString appends SerialString(n) to dst, without allocating
// for positive serials of up to maxKeySerialBytes bytes: IsRevoked runs on
// every TLS handshake and every PSD2 request.
func appendSerialString(dst []byte, n *big.Int) []byte {
	if n == nil || n.Sign() <= 0 || n.BitLen() > 8*maxKeySerialBytes {
		return append(dst, SerialString(n)...)
	}
	var b [maxKeySerialBytes]byte
	// The minimal big-endian bytes in upper-case hex are SerialString's
	// even number of digits: a leading zero only when the top nibble is.
	raw := n.FillBytes(b[:(n.BitLen()+7)/8])
	const digits = "0123456789ABCDEF"
	for _, c := range raw {
		dst = append(dst, digits[c>>4], digits[c&0x0f])
	}
	return dst
}

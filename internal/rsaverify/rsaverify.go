// Package rsaverify verifies RSASSA-PKCS1-v1_5 signatures faster than
// crypto/rsa for the key sizes QSEAL certificates use.
//
// crypto/rsa computes sᵉ mod n with constant-time code that has assembly
// only for 1024-, 1536- and 2048-bit moduli, and it rebuilds the Montgomery
// constants of the modulus on every call. A public-key operation has nothing
// secret in it, so this package uses variable-time Montgomery arithmetic on
// 64-bit limbs instead (an ADX/BMI2 kernel on amd64, plain Go elsewhere),
// with a dedicated squaring, and computes the constants once per key in
// [New].
//
// The check itself is the one of crypto/rsa and RFC 8017 section 8.2.2: the
// signature must be exactly as long as the modulus and smaller than it, and
// sᵉ mod n must equal, byte for byte, the encoding 0x00 0x01 FF…FF 0x00
// DigestInfo(hash, digest) built from the expected digest. The decrypted
// block is never parsed.
//
// Keys below 2048 bits are refused. Keys above 4096 bits, and 2048-bit keys
// where no assembly kernel runs, are verified by crypto/rsa behind the same
// API, because there this package would not be faster.
package rsaverify

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
)

// Bounds of the keys New takes and of the keys it verifies itself.
const (
	// MinBits is the smallest modulus New accepts.
	MinBits = 2048
	// MaxOwnBits is the largest modulus verified by this package's own
	// arithmetic; larger keys go to crypto/rsa.
	MaxOwnBits = 4096

	maxLimbs = MaxOwnBits / 64
	maxBytes = MaxOwnBits / 8
)

// ErrVerification is returned for a signature that does not verify. It is
// crypto/rsa's error, so errors.Is works the same with both.
var ErrVerification = rsa.ErrVerification

// ErrHash is returned for a hash other than SHA-256, SHA-384 or SHA-512, or
// a digest whose length does not match the hash.
var ErrHash = errors.New("rsaverify: unsupported hash or digest length")

// ErrKey is returned by New for a key crypto/rsa would refuse (no modulus,
// an even modulus, an exponent below 3, even, or above 2³¹−1) or one below
// MinBits.
var ErrKey = errors.New("rsaverify: unsupported RSA public key")

// digestInfoPrefixes are the DER DigestInfo headers of RFC 8017 section
// 9.2, note 1, for the hashes QSEAL signatures use.
var digestInfoPrefixes = map[crypto.Hash][]byte{
	crypto.SHA256: {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20},
	crypto.SHA384: {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30},
	crypto.SHA512: {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40},
}

// Verifier verifies PKCS #1 v1.5 signatures made with one RSA key. It holds
// the key's Montgomery constants, so build it once per key (for example
// with the certificate that carries it) and reuse it: VerifyPKCS1v15 does
// not allocate. A Verifier is immutable and safe for concurrent use.
type Verifier struct {
	pub  *rsa.PublicKey
	size int // modulus length in bytes
	// own is false when crypto/rsa verifies this key (see the package
	// documentation); the fields below are then unset.
	own bool
	mod modulus
	// nBytes is the big-endian modulus, for the s < n check.
	nBytes []byte
}

// New checks pub as crypto/rsa does, refuses it below MinBits, and
// precomputes what VerifyPKCS1v15 needs. The Verifier keeps pub, which must
// not be modified afterwards.
func New(pub *rsa.PublicKey) (*Verifier, error) {
	if pub == nil || pub.N == nil {
		return nil, fmt.Errorf("%w: no modulus", ErrKey)
	}
	bits := pub.N.BitLen()
	switch {
	case pub.N.Sign() <= 0 || pub.N.Bit(0) == 0:
		return nil, fmt.Errorf("%w: modulus is not a positive odd number", ErrKey)
	case bits < MinBits:
		return nil, fmt.Errorf("%w: %d-bit modulus, at least %d bits are required", ErrKey, bits, MinBits)
	case pub.E < 3 || pub.E&1 == 0 || pub.E > 1<<31-1:
		return nil, fmt.Errorf("%w: public exponent %d (want odd, from 3 to 2³¹−1)", ErrKey, pub.E)
	}
	v := &Verifier{pub: pub, size: (bits + 7) / 8}
	if bits > MaxOwnBits || (!fastKernel && bits <= 2048) {
		return v, nil
	}
	v.own = true
	v.mod = newModulus(pub.N, uint32(pub.E))
	v.nBytes = pub.N.FillBytes(make([]byte, v.size))
	return v, nil
}

// PublicKey returns the key the Verifier was built from.
func (v *Verifier) PublicKey() *rsa.PublicKey { return v.pub }

// Size returns the modulus length in bytes, which is also the length of a
// signature.
func (v *Verifier) Size() int { return v.size }

// VerifyPKCS1v15 checks an RSASSA-PKCS1-v1_5 signature sig of the digest
// hashed, computed with hash (SHA-256, SHA-384 or SHA-512). It returns nil
// for a valid signature, ErrVerification for an invalid one, and ErrHash
// for an unsupported hash or a digest of the wrong length. For the hashes it
// supports and the keys New takes, it accepts exactly the signatures that
// crypto/rsa.VerifyPKCS1v15 accepts.
func (v *Verifier) VerifyPKCS1v15(hash crypto.Hash, hashed, sig []byte) error {
	prefix, ok := digestInfoPrefixes[hash]
	if !ok || len(hashed) != hash.Size() {
		return ErrHash
	}
	if !v.own {
		if err := rsa.VerifyPKCS1v15(v.pub, hash, hashed, sig); err != nil {
			return ErrVerification
		}
		return nil
	}
	// RFC 8017 8.2.2 step 1 and RSAVP1 step 1: the signature is exactly k
	// bytes and, as an integer, smaller than the modulus.
	if len(sig) != v.size || bytes.Compare(sig, v.nBytes) >= 0 {
		return ErrVerification
	}
	k := len(v.mod.n)
	var sBuf, mBuf [maxLimbs]uint64
	s, m := sBuf[:k], mBuf[:k]
	limbsFromBytes(s, sig)
	v.mod.exp(m, s)

	var gotBuf, wantBuf [maxBytes]byte
	got, want := gotBuf[:v.size], wantBuf[:v.size]
	if !bytesFromLimbs(got, m) {
		// sᵉ mod n < n always fits; this is a broken invariant, not a
		// bad signature, but it must not verify either.
		return ErrVerification
	}
	encodeEM(want, prefix, hashed)
	if !bytes.Equal(got, want) {
		return ErrVerification
	}
	return nil
}

// VerifyPKCS1v15 is New followed by Verifier.VerifyPKCS1v15, for one-off
// checks; it allocates the key's constants on every call.
func VerifyPKCS1v15(pub *rsa.PublicKey, hash crypto.Hash, hashed, sig []byte) error {
	v, err := New(pub)
	if err != nil {
		return err
	}
	return v.VerifyPKCS1v15(hash, hashed, sig)
}

// encodeEM writes EMSA-PKCS1-v1_5(T) of RFC 8017 section 9.2 into em,
// whose length is the modulus length: 0x00 0x01, 0xFF padding, 0x00, then
// the DigestInfo prefix and the digest. em is at least 256 bytes, so the
// padding is always longer than the 8 bytes the RFC requires.
func encodeEM(em, prefix, hashed []byte) {
	t := len(prefix) + len(hashed)
	em[0], em[1] = 0x00, 0x01
	ps := em[2 : len(em)-t-1]
	for i := range ps {
		ps[i] = 0xff
	}
	em[len(em)-t-1] = 0x00
	copy(em[len(em)-t:], prefix)
	copy(em[len(em)-len(hashed):], hashed)
}

// limbsFromBytes sets z to the big-endian integer b, which must fit.
func limbsFromBytes(z []uint64, b []byte) {
	clear(z)
	i := 0
	for ; len(b) >= 8; i++ {
		z[i] = binary.BigEndian.Uint64(b[len(b)-8:])
		b = b[:len(b)-8]
	}
	for _, c := range b {
		z[i] = z[i]<<8 | uint64(c)
	}
}

// bytesFromLimbs writes x big-endian into b, zero-padded on the left, and
// reports whether it fits.
func bytesFromLimbs(b []byte, x []uint64) bool {
	clear(b)
	for _, w := range x {
		for j := 0; j < 8; j++ {
			if len(b) == 0 {
				if w != 0 {
					return false
				}
				break
			}
			b[len(b)-1] = byte(w)
			b = b[:len(b)-1]
			w >>= 8
		}
	}
	return true
}

// bigLimbs returns x as little-endian 64-bit limbs, k of them.
func bigLimbs(x *big.Int, k int) []uint64 {
	b := x.FillBytes(make([]byte, 8*k))
	z := make([]uint64, k)
	limbsFromBytes(z, b)
	return z
}

package rsaverify

import (
	"math/big"
	"math/bits"
)

// modulus is an odd modulus n of k 64-bit limbs with its Montgomery
// constants for R = 2^(64k), and the public exponent.
type modulus struct {
	n     []uint64 // little-endian limbs
	rr    []uint64 // R² mod n, to enter the Montgomery domain
	m0inv uint64   // −n⁻¹ mod 2⁶⁴
	e     uint32   // odd, ≥ 3
}

func newModulus(n *big.Int, e uint32) modulus {
	k := (n.BitLen() + 63) / 64
	rr := new(big.Int).Lsh(big.NewInt(1), uint(128*k))
	rr.Mod(rr, n)
	m := modulus{n: bigLimbs(n, k), rr: bigLimbs(rr, k), e: e}
	// Newton's iteration for n₀⁻¹ mod 2⁶⁴: an odd n₀ is its own inverse
	// mod 8, and every step doubles the number of correct low bits.
	inv := m.n[0]
	for range 5 {
		inv *= 2 - m.n[0]*inv
	}
	m.m0inv = -inv
	return m
}

// exp sets out = sᵉ mod n, for s < n. out may alias nothing else.
//
// The base enters the Montgomery domain once (sR mod n) and the exponent is
// scanned from the top bit; since e is odd, the last step multiplies
// x = s^(e−1)·R by the plain s, which also leaves the Montgomery domain:
// x·s·R⁻¹ = sᵉ. That is 17 operations for e = 65537, 16 of them squarings.
func (m *modulus) exp(out, s []uint64) {
	k := len(m.n)
	var tBuf [2 * maxLimbs]uint64
	var xBuf, sRBuf [maxLimbs]uint64
	t, x, sR := tBuf[:2*k], xBuf[:k], sRBuf[:k]

	m.mul(sR, s, m.rr, t)
	copy(x, sR)
	top := bits.Len32(m.e) - 1
	for i := top - 1; i >= 1; i-- {
		m.sqr(x, x, t)
		if m.e>>uint(i)&1 == 1 {
			m.mul(x, x, sR, t)
		}
	}
	m.sqr(x, x, t)
	m.mul(out, x, s, t)
}

// mul sets z = a·b·R⁻¹ mod n, for a, b < n, by word-by-word Montgomery
// multiplication (Gueron, "Efficient Software Implementations of Modular
// Exponentiation", algorithm 4). t is scratch of 2k limbs; z may alias a
// or b.
func (m *modulus) mul(z, a, b, t []uint64) {
	k := len(m.n)
	clear(t)
	var c uint64
	for i := 0; i < k; i++ {
		// t[i:] is the running sum, shifted down one limb per step: t[i] is
		// zero after the step and is never read again.
		c1 := addMulVVW(t[i:i+k], a, b[i])
		y := t[i] * m.m0inv
		c2 := addMulVVW(t[i:i+k], m.n, y)
		t[i+k], c = bits.Add64(c1, c2, c)
	}
	m.finish(z, t[k:], c)
}

// sqr sets z = a²·R⁻¹ mod n, for a < n: the square first, with each cross
// product computed once, then a separate Montgomery reduction. That is
// 1.5k² limb products instead of 2k². t is scratch of 2k limbs; z may
// alias a.
func (m *modulus) sqr(z, a, t []uint64) {
	k := len(m.n)
	clear(t)
	sqrCross(t, a)
	// Double them; the top bit is free because a² < 2^(128k).
	var carry uint64
	for i := range t {
		w := t[i]
		t[i] = w<<1 | carry
		carry = w >> 63
	}
	// Add the squares aᵢ² on the diagonal.
	var c uint64
	for i := 0; i < k; i++ {
		hi, lo := bits.Mul64(a[i], a[i])
		t[2*i], c = bits.Add64(t[2*i], lo, c)
		t[2*i+1], c = bits.Add64(t[2*i+1], hi, c)
	}
	c = redc(t, m.n, m.m0inv)
	m.finish(z, t[k:], c)
}

// finish sets z = (c·R + t) mod n for a Montgomery result below 2n: one
// conditional subtraction. Variable time is fine, nothing here is secret.
func (m *modulus) finish(z, t []uint64, c uint64) {
	if c == 0 && less(t, m.n) {
		copy(z, t)
		return
	}
	var b uint64
	for i := range z {
		z[i], b = bits.Sub64(t[i], m.n[i], b)
	}
}

// less reports whether x < y; both have the same length.
func less(x, y []uint64) bool {
	for i := len(x) - 1; i >= 0; i-- {
		if x[i] != y[i] {
			return x[i] < y[i]
		}
	}
	return false
}

// sqrCrossGeneric adds the cross products aᵢ·aⱼ, i < j, of a square to
// the 2k-limb t, which is zero on entry: row i lands at limb 2i+1 and its
// carry limb at i+k.
func sqrCrossGeneric(t, a []uint64) {
	k := len(a)
	for i := 0; i < k-1; i++ {
		t[i+k] = addMulVVWGeneric(t[2*i+1:i+k], a[i+1:], a[i])
	}
}

// redcGeneric is the Montgomery reduction of the 2k-limb t: it adds
// yᵢ·n·2^(64i) so that the low k limbs become zero, the carry out of limb
// i+k going into limb i+k+1 on the next step, and returns the final carry
// bit: (c, t[k:]) is t·R⁻¹ mod n, below 2n.
func redcGeneric(t, n []uint64, m0inv uint64) (c uint64) {
	k := len(n)
	for i := 0; i < k; i++ {
		y := t[i] * m0inv
		c1 := addMulVVWGeneric(t[i:i+k], n, y)
		t[i+k], c = bits.Add64(t[i+k], c1, c)
	}
	return c
}

// addMulVVWGeneric sets z += x·y and returns the carry limb; len(x) ≥ len(z).
func addMulVVWGeneric(z, x []uint64, y uint64) (carry uint64) {
	x = x[:len(z)]
	for i := range z {
		hi, lo := bits.Mul64(x[i], y)
		lo, c := bits.Add64(lo, z[i], 0)
		hi += c
		lo, c = bits.Add64(lo, carry, 0)
		hi += c
		carry = hi
		z[i] = lo
	}
	return carry
}

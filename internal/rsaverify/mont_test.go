package rsaverify

import (
	"crypto/rand"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"slices"
	"testing"
)

// TestAddMulVVW compares the kernel in use with the generic one and with
// math/big, for every length up to 70 limbs, on random limbs and on the
// all-ones limbs that carry the most.
func TestAddMulVVW(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(1, 2))
	for n := 1; n <= 70; n++ {
		for _, fill := range []string{"random", "ones"} {
			z, x := make([]uint64, n), make([]uint64, n)
			y := rng.Uint64()
			for i := range z {
				if fill == "ones" {
					z[i], x[i], y = ^uint64(0), ^uint64(0), ^uint64(0)
				} else {
					z[i], x[i] = rng.Uint64(), rng.Uint64()
				}
			}
			want := new(big.Int).Mul(limbsBig(x), new(big.Int).SetUint64(y))
			want.Add(want, limbsBig(z))

			zg := slices.Clone(z)
			cg := addMulVVWGeneric(zg, x, y)
			zk := slices.Clone(z)
			ck := addMulVVW(zk, x, y)
			if got := limbsBig(append(zg, cg)); got.Cmp(want) != 0 {
				t.Fatalf("generic, n=%d %s: got %x, want %x", n, fill, got, want)
			}
			if !slices.Equal(zk, zg) || ck != cg {
				t.Fatalf("kernel (fast=%v) differs from generic, n=%d %s", fastKernel, n, fill)
			}
		}
	}
}

// TestRowLoops compares the square's cross products and the Montgomery
// reduction of the kernel in use with the generic loops, for every size
// from 1 to 70 limbs, on random limbs and on all-ones limbs.
func TestRowLoops(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(5, 6))
	for k := 1; k <= 70; k++ {
		for _, fill := range []string{"random", "ones"} {
			a, n := make([]uint64, k), make([]uint64, k)
			tIn := make([]uint64, 2*k)
			for i := range a {
				a[i], n[i] = rng.Uint64(), rng.Uint64()
				if fill == "ones" {
					a[i], n[i] = ^uint64(0), ^uint64(0)
				}
			}
			n[0] |= 1
			for i := range tIn {
				tIn[i] = rng.Uint64()
				if fill == "ones" {
					tIn[i] = ^uint64(0)
				}
			}
			m0inv := newModulus(limbsBig(n), 3).m0inv

			tg, tk := make([]uint64, 2*k), make([]uint64, 2*k)
			sqrCrossGeneric(tg, a)
			sqrCross(tk, a)
			if !slices.Equal(tg, tk) {
				t.Fatalf("sqrCross (fast=%v), k=%d %s: differs from the generic loop", fastKernel, k, fill)
			}
			tg, tk = slices.Clone(tIn), slices.Clone(tIn)
			cg := redcGeneric(tg, n, m0inv)
			ck := redc(tk, n, m0inv)
			if !slices.Equal(tg, tk) || cg != ck {
				t.Fatalf("redc (fast=%v), k=%d %s: differs from the generic loop", fastKernel, k, fill)
			}
			// The generic loop itself: (c, t[k:]) ≡ t·R⁻¹ (mod n), low half zero.
			r := new(big.Int).Lsh(big.NewInt(1), uint(64*k))
			want := new(big.Int).Mul(limbsBig(tIn), new(big.Int).ModInverse(r, limbsBig(n)))
			want.Mod(want, limbsBig(n))
			got := limbsBig(append(slices.Clone(tg[k:]), cg))
			if got.Mod(got, limbsBig(n)).Cmp(want) != 0 || !slices.Equal(tg[:k], make([]uint64, k)) {
				t.Fatalf("redcGeneric, k=%d %s: wrong reduction", k, fill)
			}
		}
	}
}

// TestExp compares sᵉ mod n with math/big for random odd moduli of 2048
// to 4096 bits (full and partial top limbs, limb counts on and off the
// 8-limb blocks), random exponents, and the edge bases 0, 1, 2 and n−1,
// with both kernels.
func TestExp(t *testing.T) {
	for _, fast := range []bool{true, false} {
		t.Run(fmt.Sprintf("fast=%v", fast), func(t *testing.T) {
			withKernel(t, fast && fastKernel)
			rng := mrand.New(mrand.NewPCG(3, 4))
			for _, bitLen := range []int{2048, 2049, 2111, 2112, 2560, 3000, 3071, 3072, 3584, 4095, 4096} {
				n := randomOdd(t, bitLen)
				k := (bitLen + 63) / 64
				for _, e := range []uint32{3, 5, 17, 65537, 1<<31 - 1, uint32(rng.Int32()) | 1 | 2} {
					m := newModulus(n, e)
					nMinus1 := new(big.Int).Sub(n, big.NewInt(1))
					bases := []*big.Int{big.NewInt(0), big.NewInt(1), big.NewInt(2), nMinus1}
					for range 3 {
						s, err := rand.Int(rand.Reader, n)
						if err != nil {
							t.Fatal(err)
						}
						bases = append(bases, s)
					}
					for _, s := range bases {
						want := new(big.Int).Exp(s, big.NewInt(int64(e)), n)
						out := make([]uint64, k)
						m.exp(out, bigLimbs(s, k))
						if got := limbsBig(out); got.Cmp(want) != 0 {
							t.Fatalf("%d bits, e=%d: s^e mod n = %x, want %x", bitLen, e, got, want)
						}
					}
				}
			}
		})
	}
}

// TestMontgomeryEdges drives mul and sqr with operands at n−1 against a
// modulus with all-ones limbs, where every carry path is taken.
func TestMontgomeryEdges(t *testing.T) {
	for _, bitLen := range []int{2048, 3072, 4096} {
		n := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), uint(bitLen)), big.NewInt(1)) // 2^b − 1, odd
		k := bitLen / 64
		m := newModulus(n, 65537)
		a := new(big.Int).Sub(n, big.NewInt(1))
		rInv := new(big.Int).ModInverse(new(big.Int).Lsh(big.NewInt(1), uint(64*k)), n)
		want := new(big.Int).Mul(a, a)
		want.Mul(want, rInv).Mod(want, n)
		t2 := make([]uint64, 2*k)
		got := make([]uint64, k)
		m.sqr(got, bigLimbs(a, k), t2)
		if limbsBig(got).Cmp(want) != 0 {
			t.Fatalf("%d bits: sqr(n−1) wrong", bitLen)
		}
		m.mul(got, bigLimbs(a, k), bigLimbs(a, k), t2)
		if limbsBig(got).Cmp(want) != 0 {
			t.Fatalf("%d bits: mul(n−1, n−1) wrong", bitLen)
		}
	}
}

func randomOdd(t *testing.T, bitLen int) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), uint(bitLen)))
	if err != nil {
		t.Fatal(err)
	}
	n.SetBit(n, bitLen-1, 1)
	return n.SetBit(n, 0, 1)
}

func limbsBig(x []uint64) *big.Int {
	z := new(big.Int)
	for i := len(x) - 1; i >= 0; i-- {
		z.Lsh(z, 64).Or(z, new(big.Int).SetUint64(x[i]))
	}
	return z
}

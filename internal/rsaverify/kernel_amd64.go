//go:build amd64 && !purego

package rsaverify

import "golang.org/x/sys/cpu"

// fastKernel reports whether addMulVVW runs the assembly kernel. Tests
// turn it off to run the generic kernel on the same machine.
var fastKernel = cpu.X86.HasADX && cpu.X86.HasBMI2

// addMulVVW sets z += x·y and returns the carry limb; len(x) ≥ len(z) > 0.
func addMulVVW(z, x []uint64, y uint64) uint64 {
	if fastKernel {
		_ = x[len(z)-1]
		return addMulVVWADX(&z[0], &x[0], len(z), y)
	}
	return addMulVVWGeneric(z, x, y)
}

// addMulVVWADX is addMulVVW over n limbs, with MULX and the two carry
// chains of ADCX and ADOX; it needs ADX and BMI2.
//
//go:noescape
func addMulVVWADX(z, x *uint64, n int, y uint64) (carry uint64)

// sqrCross adds the cross products of a square to t (see sqrCrossGeneric).
func sqrCross(t, a []uint64) {
	if fastKernel {
		_ = t[2*len(a)-1]
		sqrCrossADX(&t[0], &a[0], len(a))
		return
	}
	sqrCrossGeneric(t, a)
}

// redc reduces t by n (see redcGeneric).
func redc(t, n []uint64, m0inv uint64) uint64 {
	if fastKernel {
		_ = t[2*len(n)-1]
		return redcADX(&t[0], &n[0], len(n), m0inv)
	}
	return redcGeneric(t, n, m0inv)
}

// sqrCrossADX and redcADX run sqrCrossGeneric and redcGeneric with the
// loop of addMulVVWADX inside, without a call per row.
//
//go:noescape
func sqrCrossADX(t, a *uint64, k int)

//go:noescape
func redcADX(t, n *uint64, k int, m0inv uint64) (c uint64)

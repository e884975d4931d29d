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

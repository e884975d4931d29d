//go:build !amd64 || purego

package rsaverify

// fastKernel is false: there is no assembly kernel for this platform.
var fastKernel = false

// addMulVVW sets z += x·y and returns the carry limb; len(x) ≥ len(z).
func addMulVVW(z, x []uint64, y uint64) uint64 { return addMulVVWGeneric(z, x, y) }

func sqrCross(t, a []uint64) { sqrCrossGeneric(t, a) }

func redc(t, n []uint64, m0inv uint64) uint64 { return redcGeneric(t, n, m0inv) }

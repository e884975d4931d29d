//go:build !linux

package rsaverify

// threadCPUTime is not measured here.
func threadCPUTime() int64 { return -1 }

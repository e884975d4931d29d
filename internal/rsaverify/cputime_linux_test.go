package rsaverify

import (
	"syscall"
	"unsafe"
)

// threadCPUTime returns the CPU time of the calling OS thread in
// nanoseconds (CLOCK_THREAD_CPUTIME_ID).
func threadCPUTime() int64 {
	const clockThreadCPUTimeID = 3
	var ts syscall.Timespec
	if _, _, errno := syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return -1
	}
	return ts.Nano()
}

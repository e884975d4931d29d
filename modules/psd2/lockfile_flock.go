//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package psd2

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive lock on f without waiting; closing f, or the
// end of the process, releases it.
func lockFile(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}

//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package psd2

import "os"

// lockFile does nothing where flock is missing: one process per journal is
// then the operator's to ensure.
func lockFile(*os.File) error { return nil }

//go:build !unix

package main

import "os"

// lockDir does not lock on systems without flock: two sandboxes on one
// directory are refused by the port check instead, as they use the same
// ports unless told otherwise.
func lockDir(dir string) (*os.File, error) { return nil, nil }

// dirLocked cannot tell on systems without flock.
func dirLocked(dir string) (bool, int) { return false, 0 }

//go:build unix

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockDir takes dir/sandbox.lock with flock, so that one sandbox at a time
// uses a directory, and writes the process id into it. The lock lasts as
// long as the process (the kernel drops it on exit, even on a crash); the
// returned file must stay open until then.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "sandbox.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("the sandbox directory %s is in use by another bankedge sandbox%s (lock file %s): stop that one, or start this one with another --dir",
				dir, lockHolder(path), path)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// lockHolder names the process that wrote the lock file, as " (pid N)".
func lockHolder(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return ""
	}
	return fmt.Sprintf(", process %d", pid)
}

// dirLocked reports whether a process holds dir/sandbox.lock, and its pid
// when the lock file names it.
func dirLocked(dir string) (bool, int) {
	path := filepath.Join(dir, "sandbox.lock")
	f, err := os.Open(path)
	if err != nil {
		return false, 0
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err == nil {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return false, 0
	}
	b, _ := os.ReadFile(path)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return true, pid
}

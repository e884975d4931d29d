package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/bankedge/bankedge/internal/procnet"
)

// portHolder names the process listening on a TCP port, as
// "process 1234 (bankedge)", from /proc; it returns "" when it cannot tell
// (another user's process, or no /proc).
func portHolder(port string) string {
	want, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return ""
	}
	listeners, _ := procnet.Listening()
	inodes := map[string]bool{}
	for _, l := range listeners {
		if uint64(l.Port) == want {
			inodes[l.Socket] = true
		}
	}
	if len(inodes) == 0 {
		return ""
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/fd")
	for _, fdDir := range procs {
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if target, err := os.Readlink(filepath.Join(fdDir, fd.Name())); err == nil && inodes[target] {
				pid := filepath.Base(filepath.Dir(fdDir))
				comm, _ := os.ReadFile(filepath.Join("/proc", pid, "comm"))
				if name := strings.TrimSpace(string(comm)); name != "" {
					return fmt.Sprintf("process %s (%s)", pid, name)
				}
				return "process " + pid
			}
		}
	}
	return ""
}

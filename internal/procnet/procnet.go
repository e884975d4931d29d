// Package procnet reads the TCP sockets listening on this machine from
// Linux's /proc, to say which process holds a port or whether one process
// holds it twice.
package procnet

import (
	"bufio"
	"errors"
	"os"
	"strconv"
	"strings"
)

// Listener is a TCP socket in the LISTEN state.
type Listener struct {
	// Port is the local port.
	Port int
	// Socket is the socket's name as a process's file descriptor links
	// to it in /proc/PID/fd: "socket:[INODE]".
	Socket string
}

// Listening returns the TCP sockets (IPv4 and IPv6) listening in the
// network namespace of this process, and an error where /proc cannot be
// read.
func Listening() ([]Listener, error) {
	var out []Listener
	read := 0
	for _, table := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			continue
		}
		read++
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fields := strings.Fields(sc.Text())
			const listen = "0A"
			if len(fields) < 10 || fields[3] != listen {
				continue
			}
			_, hexPort, found := strings.Cut(fields[1], ":")
			port, err := strconv.ParseUint(hexPort, 16, 16)
			if !found || err != nil {
				continue
			}
			out = append(out, Listener{Port: int(port), Socket: "socket:[" + fields[9] + "]"})
		}
		f.Close()
	}
	if read == 0 {
		return nil, errors.New("reading the listening sockets: no /proc/self/net/tcp")
	}
	return out, nil
}

//go:build !linux

package main

// portHolder cannot tell which process holds a port on this system.
func portHolder(port string) string { return "" }

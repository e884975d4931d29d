//go:build !race

package psd2

// raceEnabled: under the race detector sync.Pool drops a quarter of what
// is put back, so allocation counts say nothing there.
const raceEnabled = false

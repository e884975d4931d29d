//go:build race

package peer

// raceEnabled lets slow tests step aside under the race detector.
const raceEnabled = true

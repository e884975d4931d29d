//go:build race

package main

// raceEnabled is set when the tests run under the race detector, which
// makes bcrypt at Caddy's cost take seconds.
const raceEnabled = true

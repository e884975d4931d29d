//go:build tools

// Package bench pins the load generator the benchmark scripts build:
// `go build -o bin/vegeta github.com/tsenart/vegeta/v12` from this directory.
package bench

import _ "github.com/tsenart/vegeta/v12"

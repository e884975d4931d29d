package caddyfileargs

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// dispenser returns a dispenser positioned on the subdirective of input.
func dispenser(input string) *caddyfile.Dispenser {
	d := caddyfile.NewTestDispenser(input)
	d.Next()
	return d
}

func TestArgs(t *testing.T) {
	for _, tc := range []struct {
		input   string
		read    func(*caddyfile.Dispenser) (any, error)
		want    any
		wantErr string
	}{
		{"opt v", readOne, "v", ""},
		{"opt", readOne, "", "wrong argument count"},
		{"opt a b", readOne, "a", "wrong argument count"},
		{"opt 42", readInt, 42, ""},
		{"opt -1", readInt, 0, "not a non-negative integer"},
		{"opt x", readInt, 0, "not a non-negative integer"},
		{"opt", readBool, true, ""},
		{"opt off", readBool, false, ""},
		{"opt yes", readBool, true, ""},
		{"opt maybe", readBool, true, "not on or off"},
		{"opt on off", readBool, true, "wrong argument count"},
		{"opt 1d", readDuration, caddy.Duration(24 * time.Hour), ""},
		{"opt 90s", readDuration, caddy.Duration(90 * time.Second), ""},
		{"opt 0s", readDuration, caddy.Duration(0), "not a positive duration"},
		{"opt soon", readDuration, caddy.Duration(0), "not a positive duration"},
		{"opt a b", readAppend, "seed a b", ""},
		{"opt", readAppend, "seed", "wrong argument count"},
	} {
		got, err := tc.read(dispenser(tc.input))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: error %v, want one containing %q", tc.input, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: got %v, %v; want %v", tc.input, got, err, tc.want)
		}
	}
}

func readOne(d *caddyfile.Dispenser) (any, error) {
	var s string
	err := One(d, &s)
	return s, err
}

func readInt(d *caddyfile.Dispenser) (any, error) {
	var n int
	err := Int(d, &n)
	return n, err
}

func readBool(d *caddyfile.Dispenser) (any, error) {
	var b bool
	err := Bool(d, &b)
	return b, err
}

// readAppend appends to a list that already holds "seed", so that the
// test shows that a repeated subdirective adds to it.
func readAppend(d *caddyfile.Dispenser) (any, error) {
	list := []string{"seed"}
	err := Append(d, &list)
	return strings.Join(list, " "), err
}

func readDuration(d *caddyfile.Dispenser) (any, error) {
	var v caddy.Duration
	err := Duration(d, &v)
	return v, err
}

// Package caddyfileargs reads the single-argument subdirectives that the
// bankedge Caddyfile unmarshalers share, with one wording for their errors.
package caddyfileargs

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// One reads exactly one argument into dst.
func One(d *caddyfile.Dispenser, dst *string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// Append reads one or more arguments and appends them to dst, so that a
// repeated subdirective adds to the list.
func Append(d *caddyfile.Dispenser, dst *[]string) error {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return d.ArgErr()
	}
	*dst = append(*dst, args...)
	return nil
}

// Int reads one non-negative integer argument into dst.
func Int(d *caddyfile.Dispenser, dst *int) error {
	var s string
	if err := One(d, &s); err != nil {
		return err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return d.Errf("%q is not a non-negative integer", s)
	}
	*dst = n
	return nil
}

// Bool reads an optional on/off argument into dst; the bare subdirective
// means on, as with Caddy's own flags.
func Bool(d *caddyfile.Dispenser, dst *bool) error {
	*dst = true
	if !d.NextArg() {
		return nil
	}
	switch d.Val() {
	case "on", "true", "yes":
	case "off", "false", "no":
		*dst = false
	default:
		return d.Errf("%q is not on or off", d.Val())
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// Duration reads one positive duration argument (Caddy syntax, so "1d"
// works) into dst.
func Duration(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	var s string
	if err := One(d, &s); err != nil {
		return err
	}
	v, err := ParseDuration(d, s)
	if err != nil {
		return err
	}
	*dst = v
	return nil
}

// ParseDuration parses s as a positive duration, reporting errors at the
// dispenser's position.
func ParseDuration(d *caddyfile.Dispenser, s string) (caddy.Duration, error) {
	dur, err := caddy.ParseDuration(s)
	if err != nil || dur <= 0 {
		return 0, d.Errf("%q is not a positive duration", s)
	}
	return caddy.Duration(dur), nil
}

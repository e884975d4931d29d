package ca

import (
	"encoding/json"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/bankedge/bankedge/internal/caddyfileargs"
	"github.com/bankedge/bankedge/modules/ca/registry"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("bankedge", parseGlobalOption)
}

// parseGlobalOption parses the bankedge global option:
//
//	bankedge {
//		ca {
//			key_passphrase <passphrase>
//			key_type ecdsa-p256|ecdsa-p384|rsa-3072|rsa-4096
//			common_name <name>
//			organization <name>
//			lifetime <duration>
//			max_validity_days <days>
//			crl_url <url>
//			crl_validity <duration>
//			manual_initialize
//		}
//		partners {
//			partner <id> {
//				password <password>
//				enabled on|off
//				allowed_ips <cidr…>
//				certificate_binding <sha256 fingerprint | CN>
//				access_type read|write|both
//				max_connections <n>
//				allowed_files <name or glob…>
//				description <text>
//				pesit_legacy_password
//			}
//		}
//		password_policy {
//			min_length <n>
//			require_upper|require_lower|require_digit|require_symbol on|off
//			history <n>
//			max_age <duration>
//		}
//	}
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	app := new(App)
	// A second bankedge block adds to the first.
	if prev, ok := existing.(httpcaddyfile.App); ok {
		if err := json.Unmarshal(prev.Value, app); err != nil {
			return nil, err
		}
	}
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "bankedge", Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile sets up the app from the global option's block.
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // option name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "ca":
			if a.CA == nil {
				a.CA = new(CAConfig)
			}
			if err := a.CA.unmarshal(d); err != nil {
				return err
			}
		case "partners":
			if a.Partners == nil {
				a.Partners = new(PartnersConfig)
			}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				if d.Val() != "partner" {
					return d.Errf("unrecognized partners option %q (want partner <id> { … })", d.Val())
				}
				in, err := unmarshalPartner(d)
				if err != nil {
					return err
				}
				a.Partners.Declare = append(a.Partners.Declare, in)
			}
		case "password_policy":
			if a.PasswordPolicy == nil {
				a.PasswordPolicy = new(PasswordPolicy)
			}
			if err := a.PasswordPolicy.unmarshal(d); err != nil {
				return err
			}
		default:
			return d.Errf("unrecognized bankedge option %q", d.Val())
		}
	}
	return nil
}

func (c *CAConfig) unmarshal(d *caddyfile.Dispenser) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "key_passphrase":
			err = caddyfileargs.One(d, &c.KeyPassphrase)
		case "key_type":
			err = caddyfileargs.One(d, &c.KeyType)
		case "common_name":
			err = caddyfileargs.One(d, &c.CommonName)
		case "organization":
			err = caddyfileargs.One(d, &c.Organization)
		case "lifetime":
			err = caddyfileargs.Duration(d, &c.Lifetime)
		case "max_validity_days":
			err = caddyfileargs.Int(d, &c.MaxValidityDays)
		case "crl_url":
			err = caddyfileargs.One(d, &c.CRLURL)
		case "crl_validity":
			err = caddyfileargs.Duration(d, &c.CRLValidity)
		case "manual_initialize":
			c.ManualInitialize = true
			if d.NextArg() {
				return d.ArgErr()
			}
		default:
			return d.Errf("unrecognized ca option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func unmarshalPartner(d *caddyfile.Dispenser) (registry.Input, error) {
	var in registry.Input
	var id string
	if err := caddyfileargs.One(d, &id); err != nil {
		return in, err
	}
	in.PartnerID = &id
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "password":
			var pw string
			err = caddyfileargs.One(d, &pw)
			in.Password = &pw
		case "enabled":
			var b bool
			err = caddyfileargs.Bool(d, &b)
			in.Enabled = &b
		case "allowed_ips":
			ips := d.RemainingArgs()
			in.AllowedIPs = &ips
		case "certificate_binding":
			var s string
			err = caddyfileargs.One(d, &s)
			in.CertificateBinding = &s
		case "access_type":
			var s string
			err = caddyfileargs.One(d, &s)
			in.AccessType = &s
		case "max_connections":
			var n int
			err = caddyfileargs.Int(d, &n)
			in.MaxConnections = &n
		case "allowed_files":
			files := d.RemainingArgs()
			in.AllowedFiles = &files
		case "description":
			var s string
			err = caddyfileargs.One(d, &s)
			in.Description = &s
		case "pesit_legacy_password":
			b := true
			in.PesitLegacyPassword = &b
			if d.NextArg() {
				err = d.ArgErr()
			}
		default:
			err = d.Errf("unrecognized partner option %q", d.Val())
		}
		if err != nil {
			return in, err
		}
	}
	return in, nil
}

func (p *PasswordPolicy) unmarshal(d *caddyfile.Dispenser) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch name := d.Val(); name {
		case "min_length", "history":
			var n int
			err = caddyfileargs.Int(d, &n)
			if name == "min_length" {
				p.MinLength = &n
			} else {
				p.History = &n
			}
		case "require_upper", "require_lower", "require_digit", "require_symbol":
			var b bool
			err = caddyfileargs.Bool(d, &b)
			switch name {
			case "require_upper":
				p.RequireUpper = &b
			case "require_lower":
				p.RequireLower = &b
			case "require_digit":
				p.RequireDigit = &b
			default:
				p.RequireSymbol = &b
			}
		case "max_age":
			var dur caddy.Duration
			var s string
			if err = caddyfileargs.One(d, &s); err == nil {
				if s == "0" || s == "off" {
					p.MaxAge = &dur
				} else {
					var v caddy.Duration
					v, err = caddyfileargs.ParseDuration(d, s)
					p.MaxAge = &v
				}
			}
		default:
			return d.Errf("unrecognized password_policy option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

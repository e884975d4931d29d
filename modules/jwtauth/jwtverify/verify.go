// Package jwtverify checks JWT bearer tokens (RFC 7519, RFC 6750) against a
// JSON Web Key Set: signature with an allow-listed asymmetric algorithm and
// a key of the set, issuer, audience, expiry and not-before with a bounded
// clock skew, and reads the subject and the roles. It has no Caddy
// dependency; modules/jwtauth puts it behind Caddy's authentication
// handler.
package jwtverify

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// DefaultAlgorithms are the signature algorithms accepted unless
// configured otherwise: asymmetric only. "none" and the HMAC algorithms
// can never be allowed: with a public key set, HMAC would mean verifying
// with a key everybody has.
var DefaultAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

// MaxLeeway bounds the configurable clock skew.
const MaxLeeway = 5 * time.Minute

// DefaultLeeway is the clock skew allowed unless configured otherwise.
const DefaultLeeway = 30 * time.Second

// MaxTokenSize bounds a token; real access tokens are a few kilobytes.
const MaxTokenSize = 16 << 10

// ParseAlgorithm returns the allowed algorithm called name.
func ParseAlgorithm(name string) (jose.SignatureAlgorithm, error) {
	for _, a := range DefaultAlgorithms {
		if string(a) == name {
			return a, nil
		}
	}
	return "", fmt.Errorf("signature algorithm %q is not allowed (allowed: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA)", name)
}

// Verifier checks tokens.
type Verifier struct {
	// Keys is the key set. Required.
	Keys *KeySet
	// Issuer is the expected "iss". Required.
	Issuer string
	// Audiences: the token's "aud" must contain one of them. Required.
	Audiences []string
	// Algorithms allowed; default DefaultAlgorithms. Others are refused.
	Algorithms []jose.SignatureAlgorithm
	// Leeway is the clock skew allowed on exp, nbf and iat; default
	// DefaultLeeway, at most MaxLeeway.
	Leeway time.Duration
	// RolesClaim names the claim holding the roles, a JSON array of strings
	// or a space-separated string; dots reach into objects
	// ("realm_access.roles"). Default "roles".
	RolesClaim string
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Identity is what a valid token says.
type Identity struct {
	// Subject is the token's "sub".
	Subject string
	// Roles are the values of the roles claim, empty when it is absent.
	Roles []string
	// HasRoles tells whether the token has the roles claim (even an
	// empty one): a token without it leaves the roles to the
	// configuration, as a basic_auth user's are.
	HasRoles bool
	// Expiry is the token's "exp".
	Expiry time.Time
}

// Error is a refused token. Its text is safe to show to the client: it
// never contains the token.
type Error struct {
	// Missing is true when there was no token at all (RFC 6750 §3.1: the
	// challenge then carries no error code).
	Missing bool
	// Description says why, for the client's developers.
	Description string
}

func (e *Error) Error() string { return e.Description }

func refuse(format string, args ...any) *Error {
	return &Error{Description: fmt.Sprintf(format, args...)}
}

// Check validates the configuration.
func (v *Verifier) Check() error {
	switch {
	case v.Keys == nil || v.Keys.Fetch == nil:
		return errors.New("no key set")
	case v.Issuer == "":
		return errors.New("issuer is required")
	case len(v.Audiences) == 0 || slices.Contains(v.Audiences, ""):
		return errors.New("audience is required")
	case v.Leeway < 0 || v.Leeway > MaxLeeway:
		return fmt.Errorf("clock skew must be between 0 and %s", MaxLeeway)
	}
	for _, a := range v.Algorithms {
		if _, err := ParseAlgorithm(string(a)); err != nil {
			return err
		}
	}
	return nil
}

// claims are the registered claims Verify reads; go-jose's jwt.Claims
// accepts "aud" as a string or an array.
type claims struct {
	jwt.Claims
}

// Verify checks a compact JWS token and returns its identity. A refusal is
// an *Error; any other error is a failure to get the keys.
func (v *Verifier) Verify(ctx context.Context, token string) (Identity, error) {
	if len(token) > MaxTokenSize {
		return Identity{}, refuse("the token is larger than %d bytes", MaxTokenSize)
	}
	algs := v.Algorithms
	if len(algs) == 0 {
		algs = DefaultAlgorithms
	}
	tok, err := jwt.ParseSigned(token, algs)
	if err != nil {
		if strings.Contains(err.Error(), "unexpected signature algorithm") {
			return Identity{}, refuse("the token's signature algorithm is not allowed")
		}
		return Identity{}, refuse("the token is not a signed JWT in compact form")
	}
	if len(tok.Headers) != 1 {
		return Identity{}, refuse("the token must have exactly one signature")
	}
	h := tok.Headers[0]
	alg := jose.SignatureAlgorithm(h.Algorithm)
	if !slices.Contains(algs, alg) {
		return Identity{}, refuse("the token's signature algorithm is not allowed")
	}
	if typ, ok := h.ExtraHeaders[jose.HeaderType].(string); ok {
		switch strings.ToLower(typ) {
		case "jwt", "at+jwt", "application/at+jwt", "application/jwt":
		default:
			return Identity{}, refuse("the token type %q is not a JWT", clip(typ))
		}
	}
	keys, err := v.Keys.Keys(ctx, h.KeyID)
	switch {
	case errors.Is(err, ErrUnknownKey):
		return Identity{}, refuse("the token's key id is not in the key set")
	case err != nil:
		return Identity{}, err
	}
	if h.KeyID == "" && len(keys) > maxKeysWithoutKid {
		// Without a key id every key of the set that fits the algorithm
		// is tried (each is the identity provider's); a set that large
		// would make each such token cost that many verifications.
		return Identity{}, refuse("the token has no key id (kid), and the key set has more than %d keys", maxKeysWithoutKid)
	}
	var c claims
	var all map[string]any
	verified := false
	for _, k := range keys {
		if !keyFits(k, alg) {
			continue
		}
		if err := tok.Claims(k.Key, &c, &all); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return Identity{}, refuse("the token's signature does not verify")
	}

	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	leeway := v.Leeway
	if leeway == 0 {
		leeway = DefaultLeeway
	}
	if c.Expiry == nil {
		return Identity{}, refuse("the token has no expiry (exp)")
	}
	err = c.ValidateWithLeeway(jwt.Expected{Issuer: v.Issuer, AnyAudience: v.Audiences, Time: now}, leeway)
	switch {
	case errors.Is(err, jwt.ErrInvalidIssuer):
		return Identity{}, refuse("the token's issuer is not accepted")
	case errors.Is(err, jwt.ErrInvalidAudience):
		return Identity{}, refuse("the token's audience is not accepted")
	case errors.Is(err, jwt.ErrExpired):
		return Identity{}, refuse("the token has expired")
	case errors.Is(err, jwt.ErrNotValidYet):
		return Identity{}, refuse("the token is not valid yet")
	case errors.Is(err, jwt.ErrIssuedInTheFuture):
		return Identity{}, refuse("the token was issued in the future")
	case err != nil:
		return Identity{}, refuse("the token's claims are not valid")
	}
	if strings.TrimSpace(c.Subject) == "" || len(c.Subject) > 256 {
		return Identity{}, refuse("the token has no subject (sub)")
	}
	roles, err := Roles(all, v.RolesClaim)
	if err != nil {
		return Identity{}, refuse("%v", err)
	}
	_, hasRoles := lookupClaim(all, v.RolesClaim)
	return Identity{Subject: c.Subject, Roles: roles, HasRoles: hasRoles, Expiry: c.Expiry.Time()}, nil
}

// keyFits reports whether key k may verify alg: the key's own "alg", when
// set, must match, and its type must be the algorithm's.
func keyFits(k jose.JSONWebKey, alg jose.SignatureAlgorithm) bool {
	if k.Algorithm != "" && k.Algorithm != string(alg) {
		return false
	}
	switch key := k.Key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(string(alg), "RS") || strings.HasPrefix(string(alg), "PS")
	case *ecdsa.PublicKey:
		switch alg {
		case jose.ES256:
			return key.Curve == elliptic.P256()
		case jose.ES384:
			return key.Curve == elliptic.P384()
		case jose.ES512:
			return key.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == jose.EdDSA
	}
	return false
}

// maxKeysWithoutKid bounds the keys tried for a token without a key id.
const maxKeysWithoutKid = 8

// maxRoles bounds the roles read from one token.
const maxRoles = 64

// Roles reads the roles claim from a token's claims: a JSON array of
// strings or a space-separated string, reached through objects by a dotted
// name. An absent claim is no roles; a claim of another shape is an error.
func Roles(claims map[string]any, name string) ([]string, error) {
	if name == "" {
		name = "roles"
	}
	v, _ := lookupClaim(claims, name)
	var out []string
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string:
		out = strings.Fields(v)
	case []any:
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("the %s claim must be an array of strings", clip(name))
			}
			out = append(out, strings.Fields(s)...)
		}
	default:
		return nil, fmt.Errorf("the %s claim must be an array of strings or a space-separated string", clip(name))
	}
	if len(out) > maxRoles {
		return nil, fmt.Errorf("the %s claim has more than %d roles", clip(name), maxRoles)
	}
	return out, nil
}

// lookupClaim returns the claim at the dotted name (default "roles") and
// whether the token has it with a value other than null.
func lookupClaim(claims map[string]any, name string) (any, bool) {
	if name == "" {
		name = "roles"
	}
	var v any = claims
	for _, part := range strings.Split(name, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[part]; !ok {
			return nil, false
		}
	}
	return v, v != nil
}

// clip keeps a value taken from a token short and printable in a message.
func clip(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

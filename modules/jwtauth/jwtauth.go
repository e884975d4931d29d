// Package jwtauth is a JWT bearer token provider for Caddy's authentication
// handler (http.authentication.providers.jwt), with the jwt_auth Caddyfile
// directive. It is an alternative to basic_auth in front of bankedge_api:
// the token's "sub" becomes {http.auth.user.id} and its roles claim
// {http.auth.user.roles}.
package jwtauth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
	"github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"

	"github.com/bankedge/bankedge/modules/jwtauth/jwtverify"
)

func init() {
	caddy.RegisterModule(&JWTAuth{})
}

// JWTAuth authenticates requests that carry `Authorization: Bearer <JWT>`.
// The token must be signed (RS*, PS*, ES* or EdDSA; never "none" nor HMAC)
// by a key of the configured JSON Web Key Set, name the configured issuer
// and one of the audiences, have an expiry, be within its validity (with a
// bounded clock skew) and have a subject.
//
// On success {http.auth.user.id} is the token's "sub" and, when the token
// has the roles claim, {http.auth.user.roles} its roles, space-separated.
// bankedge_api applies a token's roles claim, even an empty one, rather
// than granting all roles; a token without the claim is treated as a
// basic_auth user is (all roles when bankedge_api has no roles block).
//
// Every refusal is a 401 with an RFC 6750 `WWW-Authenticate: Bearer`
// challenge whose error_description, also in {http.auth.jwt.error}, says
// why; as with basic_auth the body is the site's error handling's:
// bankedge_api answers its JSON error with that reason, a site without
// error handling an empty body.
type JWTAuth struct {
	// JWKS is where the JSON Web Key Set is: a file path, or an https URL
	// (http only to a loopback address). It is cached and refreshed.
	JWKS string `json:"jwks"`

	// Issuer is the required "iss" claim.
	Issuer string `json:"issuer"`

	// Audience lists the accepted "aud" values; the token must name one.
	Audience []string `json:"audience"`

	// RolesClaim names the claim with the user's roles, a JSON array of
	// strings or a space-separated string; dots reach into objects (e.g.
	// "realm_access.roles" for Keycloak). Default: "roles".
	RolesClaim string `json:"roles_claim,omitempty"`

	// Algorithms allowed for signatures. Default: RS256, RS384, RS512,
	// PS256, PS384, PS512, ES256, ES384, ES512, EdDSA. HMAC and "none"
	// cannot be allowed.
	Algorithms []string `json:"algorithms,omitempty"`

	// ClockSkew is the leeway on exp, nbf and iat. Default: 30s; at most 5m.
	ClockSkew caddy.Duration `json:"clock_skew,omitempty"`

	// RefreshInterval is how old the cached keys may get before they are
	// fetched again (in the background). Default: 5m.
	RefreshInterval caddy.Duration `json:"refresh_interval,omitempty"`

	// MinRefetchInterval is the least time between two fetches, including
	// those caused by tokens with an unknown key id (key rotation).
	// Default: 30s.
	MinRefetchInterval caddy.Duration `json:"min_refetch_interval,omitempty"`

	// FetchTimeout bounds one fetch of a JWKS URL. Default: 10s.
	FetchTimeout caddy.Duration `json:"fetch_timeout,omitempty"`

	// JWKSCA is a PEM file of the CA certificates trusted for an https
	// JWKS URL, instead of the system roots (an internal identity
	// provider).
	JWKSCA string `json:"jwks_ca,omitempty"`

	// Realm is the realm of the WWW-Authenticate challenge. Default:
	// "bankedge".
	Realm string `json:"realm,omitempty"`

	verifier *jwtverify.Verifier
	logger   *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (*JWTAuth) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.authentication.providers.jwt",
		New: func() caddy.Module { return new(JWTAuth) },
	}
}

// Provision sets up the key set and the verifier.
func (j *JWTAuth) Provision(ctx caddy.Context) error {
	j.logger = ctx.Logger()
	repl := caddy.NewReplacer()
	src := repl.ReplaceKnown(j.JWKS, "")
	if src == "" {
		return errors.New("jwt: jwks is required")
	}
	ks := &jwtverify.KeySet{
		RefreshInterval:    time.Duration(j.RefreshInterval),
		MinRefetchInterval: time.Duration(j.MinRefetchInterval),
		FetchTimeout:       time.Duration(j.FetchTimeout),
		OnError: func(err error) {
			j.logger.Warn("fetching the JWKS failed; the previous keys stay in use", zap.String("jwks", redactURL(src)), zap.Error(err))
		},
	}
	if jwtverify.IsURL(src) {
		client := &http.Client{Timeout: fetchTimeout(j.FetchTimeout)}
		if j.JWKSCA != "" {
			pool, err := loadPool(j.JWKSCA)
			if err != nil {
				return err
			}
			client.Transport = &http.Transport{
				TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
				Proxy:               http.ProxyFromEnvironment,
				TLSHandshakeTimeout: 10 * time.Second,
			}
		}
		f, err := jwtverify.HTTPFetcher(src, client)
		if err != nil {
			return fmt.Errorf("jwt: %w", err)
		}
		ks.Fetch = f
	} else {
		ks.Fetch = jwtverify.FileFetcher(src)
	}
	var algs []jose.SignatureAlgorithm
	for _, a := range j.Algorithms {
		alg, err := jwtverify.ParseAlgorithm(a)
		if err != nil {
			return fmt.Errorf("jwt: %w", err)
		}
		algs = append(algs, alg)
	}
	var auds []string
	for _, a := range j.Audience {
		auds = append(auds, repl.ReplaceKnown(a, ""))
	}
	j.verifier = &jwtverify.Verifier{
		Keys:       ks,
		Issuer:     repl.ReplaceKnown(j.Issuer, ""),
		Audiences:  auds,
		Algorithms: algs,
		Leeway:     time.Duration(j.ClockSkew),
		RolesClaim: j.RolesClaim,
	}
	if j.Realm == "" {
		j.Realm = "bankedge"
	}
	return nil
}

func fetchTimeout(d caddy.Duration) time.Duration {
	if d <= 0 {
		return 10 * time.Second
	}
	return time.Duration(d)
}

func loadPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("jwt: jwks_ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("jwt: jwks_ca %s holds no PEM certificate", file)
	}
	return pool, nil
}

// redactURL keeps credentials or tokens that might sit in a JWKS URL out
// of logs.
func redactURL(s string) string {
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}
	if i := strings.Index(s, "@"); i >= 0 && strings.Contains(s[:i], "://") {
		s = s[:strings.Index(s, "://")+3] + "…" + s[i:]
	}
	return s
}

// Validate checks the configuration.
func (j *JWTAuth) Validate() error {
	if err := j.verifier.Check(); err != nil {
		return fmt.Errorf("jwt: %w", err)
	}
	if j.RefreshInterval < 0 || j.MinRefetchInterval < 0 || j.FetchTimeout < 0 {
		return errors.New("jwt: intervals and timeouts must not be negative")
	}
	return nil
}

// Authenticate checks the bearer token of r.
func (j *JWTAuth) Authenticate(w http.ResponseWriter, r *http.Request) (caddyauth.User, bool, error) {
	token, err := bearerToken(r)
	if err == nil {
		var id jwtverify.Identity
		id, err = j.verifier.Verify(r.Context(), token)
		if err == nil {
			user := caddyauth.User{ID: id.Subject}
			if id.HasRoles {
				user.Metadata = map[string]string{"roles": strings.Join(id.Roles, " ")}
			}
			return user, true, nil
		}
	}
	var refusal *jwtverify.Error
	if !errors.As(err, &refusal) {
		// The keys could not be had: not the client's fault, but the
		// client still gets a 401 it can read, and the operator a log line.
		j.logger.Error("cannot verify bearer tokens", zap.Error(err))
		refusal = &jwtverify.Error{Description: "the token cannot be verified now"}
	} else {
		j.logger.Debug("bearer token refused", zap.String("reason", refusal.Description), zap.String("remote_ip", r.RemoteAddr))
	}
	j.challenge(w, r, refusal)
	return caddyauth.User{}, false, nil
}

// bearerToken returns the token of the request's one Authorization header.
func bearerToken(r *http.Request) (string, error) {
	hs := r.Header.Values("Authorization")
	if len(hs) == 0 {
		return "", &jwtverify.Error{Missing: true, Description: "a bearer token is required"}
	}
	if len(hs) > 1 {
		return "", &jwtverify.Error{Description: "more than one Authorization header"}
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(hs[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", &jwtverify.Error{Missing: true, Description: "a bearer token is required"}
	}
	token = strings.TrimSpace(token)
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", &jwtverify.Error{Description: "the Authorization header does not hold one bearer token"}
	}
	return token, nil
}

// ErrorPlaceholder holds the reason a bearer token was refused, for
// handle_errors and for bankedge_api's JSON answer.
const ErrorPlaceholder = "http.auth.jwt.error"

// challenge sets the 401's RFC 6750 challenge and the refusal's reason in
// {http.auth.jwt.error}. Like basic_auth it writes no body: Caddy's
// authentication handler answers 401 through the site's error handling, so
// that bankedge_api (or handle_errors) writes the one body of the answer.
func (j *JWTAuth) challenge(w http.ResponseWriter, r *http.Request, e *jwtverify.Error) {
	c := "Bearer realm=" + strconv.Quote(j.Realm)
	if !e.Missing {
		c += `, error="invalid_token", error_description=` + strconv.QuoteToASCII(e.Description)
	}
	h := w.Header()
	h.Set("WWW-Authenticate", c)
	h.Set("Cache-Control", "no-store")
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set(ErrorPlaceholder, e.Description)
	}
}

// Interface guards.
var (
	_ caddy.Provisioner       = (*JWTAuth)(nil)
	_ caddy.Validator         = (*JWTAuth)(nil)
	_ caddyauth.Authenticator = (*JWTAuth)(nil)
)

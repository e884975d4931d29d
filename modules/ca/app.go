// Package ca is the bankedge app: the private CA and the partner registry
// that the other bankedge modules use. It stores everything in Caddy's
// configured storage, so gateways that share a storage module are one CA and
// one registry. Around it: the admin REST API (http.handlers.bankedge_api),
// the CA as a trust pool (tls.ca_pool.source.bankedge), as a certificate
// issuer for the gateway's own server certificates (tls.issuance.bankedge)
// and as a revocation check for client certificates
// (tls.client_auth.verifier.bankedge).
package ca

import (
	"context"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/bankedge/bankedge/internal/auditlog"
	"github.com/bankedge/bankedge/internal/metrics"
	"github.com/bankedge/bankedge/internal/runmode"
	"github.com/bankedge/bankedge/modules/ca/authority"
	"github.com/bankedge/bankedge/modules/ca/registry"
	"github.com/bankedge/bankedge/modules/cluster"
)

func init() {
	caddy.RegisterModule(&App{})
}

// With runmode.ValidateOnly (`bankedge validate`) the app writes nothing
// to storage: an existing CA is opened (so a wrong passphrase is still
// reported), a missing one is made in memory for this process only,
// declared partners are checked but not stored, and the CRL is not
// repaired.

// App is the bankedge app: a private CA and a partner registry.
//
// The minimal configuration is the empty global option `bankedge { }` with
// the environment variable BANKEDGE_CA_PASSWORD set: the CA is created on
// first start (ECDSA P-256) and its key is encrypted at rest with that
// passphrase.
type App struct {
	// CA configures the certificate authority.
	CA *CAConfig `json:"ca,omitempty"`

	// Partners configures the partner registry.
	Partners *PartnersConfig `json:"partners,omitempty"`

	// PasswordPolicy applies to partner passwords. Defaults: at least 12
	// characters with upper case, lower case, digit and symbol; no reuse
	// of the last 5; expiry after 90 days.
	PasswordPolicy *PasswordPolicy `json:"password_policy,omitempty"`

	mu        sync.RWMutex
	authority *authority.Authority
	caConfig  authority.Config
	registry  *registry.Registry
	logger    *zap.Logger
	audit     *zap.Logger
	gauges    *gaugeRefresher

	// cluster is the shared state of the storage (see cluster.go), ctx the
	// configuration's context, and storage the configuration's storage as
	// the CA and the registry use it.
	cluster *cluster.State
	ctx     caddy.Context
	storage certmagic.Storage
	// blocklist is the PSD2 blocklist (blocklist.go).
	blocklist *blocklist
}

// CAConfig configures the certificate authority.
type CAConfig struct {
	// KeyPassphrase encrypts the CA private key at rest. Placeholders are
	// replaced; default "{env.BANKEDGE_CA_PASSWORD}". Startup fails when
	// it is empty.
	KeyPassphrase string `json:"key_passphrase,omitempty"`

	// KeyType of a new CA: ecdsa-p256 (default), ecdsa-p384, rsa-3072 or
	// rsa-4096. An existing CA keeps its key.
	KeyType string `json:"key_type,omitempty"`

	// CommonName and Organization of a new CA certificate. Defaults:
	// "bankedge Private CA", "bankedge".
	CommonName   string `json:"common_name,omitempty"`
	Organization string `json:"organization,omitempty"`

	// Lifetime of a new CA certificate. Default: 10 years.
	Lifetime caddy.Duration `json:"lifetime,omitempty"`

	// MaxValidityDays bounds the validity of issued certificates.
	// Default: 825.
	MaxValidityDays int `json:"max_validity_days,omitempty"`

	// CRLURL, when set, goes into every issued certificate as its CRL
	// distribution point; serve GET /api/v1/certificates/ca/crl there.
	CRLURL string `json:"crl_url,omitempty"`

	// CRLValidity is the time between a CRL's thisUpdate and nextUpdate.
	// Default: 7 days; a new CRL is made on every revocation and once half
	// of it has passed.
	CRLValidity caddy.Duration `json:"crl_validity,omitempty"`

	// ManualInitialize leaves storage without a CA until
	// POST /api/v1/certificates/ca/initialize creates one. By default the CA
	// is created on first start, which trust pools and issuers need.
	ManualInitialize bool `json:"manual_initialize,omitempty"`
}

// PartnersConfig configures the partner registry.
type PartnersConfig struct {
	// Declare lists partners to create on start when storage has no partner
	// of that id. Existing partners are never changed: after the first
	// start the REST API is the source of truth. Placeholders in passwords
	// are replaced, e.g. "{env.PARTNER_BANK_XYZ_PASSWORD}".
	Declare []registry.Input `json:"declare,omitempty"`
}

// PasswordPolicy configures the rules for partner passwords.
type PasswordPolicy struct {
	// MinLength is the minimum number of characters. Default: 12.
	MinLength *int `json:"min_length,omitempty"`
	// RequireUpper, RequireLower, RequireDigit and RequireSymbol demand a
	// character of each class. Default: all true.
	RequireUpper  *bool `json:"require_upper,omitempty"`
	RequireLower  *bool `json:"require_lower,omitempty"`
	RequireDigit  *bool `json:"require_digit,omitempty"`
	RequireSymbol *bool `json:"require_symbol,omitempty"`
	// History is how many previous passwords may not be reused. Default: 5.
	History *int `json:"history,omitempty"`
	// MaxAge is how long a password stays valid; after it, authentication
	// fails with a "password expired" reason in the audit log. Default:
	// 90 days; 0 disables expiry.
	MaxAge *caddy.Duration `json:"max_age,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "bankedge",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision opens (or creates) the CA in storage and the partner registry.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	a.audit = auditlog.Logger(ctx, "bankedge.audit")
	if err := metrics.Register(ctx); err != nil {
		return err
	}
	a.gauges = newGaugeRefresher(a)
	if a.CA == nil {
		a.CA = new(CAConfig)
	}
	if err := a.joinCluster(ctx); err != nil {
		return err
	}
	// Checked here, not in Validate: declared partners use it just below,
	// and a negative history would panic when a password is set.
	pol := a.PasswordPolicy.policy()
	if err := pol.Validate(); err != nil {
		return fmt.Errorf("bankedge password_policy: %w", err)
	}
	a.registry = &registry.Registry{Storage: a.storage, Policy: pol}
	// Declared partners are checked before anything is written, so that a
	// bad password in the environment fails the start with nothing (no
	// CA) created on disk.
	declared, err := a.declaredPartners(ctx)
	if err != nil {
		return err
	}

	cfg, err := a.CA.authorityConfig(ctx)
	if err != nil {
		return err
	}
	cfg.Storage = a.storage
	cfg.ReadOnly = runmode.ValidateOnly
	cfg.OnIssue = a.auditIssuance
	cfg.OnRevoke = a.onRevoke
	cfg.Logger = a.logger
	a.caConfig = cfg
	auth, created, err := authority.Open(ctx, cfg, !a.CA.ManualInitialize)
	switch {
	case errors.Is(err, authority.ErrNoCA):
		a.logger.Warn("no CA in storage yet; POST /api/v1/certificates/ca/initialize creates it")
	case err != nil:
		return fmt.Errorf("opening the bankedge CA: %w", err)
	case runmode.ValidateOnly:
		a.authority = auth
		if created {
			a.logger.Info("no CA in storage: checking the configuration with a throwaway CA, nothing is written")
		}
	default:
		a.authority = auth
		if created {
			a.logger.Info("created the bankedge CA", zap.String("subject", auth.Certificate().Subject.String()),
				zap.String("serial", authority.SerialString(auth.Certificate().SerialNumber)))
			a.audit.Info("ca.initialize", zap.String("user", "bankedge app (start)"), zap.String("outcome", "created"))
		}
		// A revocation whose CRL was not published (a storage failure, a
		// crash) is published now rather than at the next read.
		if _, err := auth.CRL(ctx); err != nil {
			a.logger.Error("the CRL could not be brought up to date; it is retried on every read", zap.Error(err))
		}
	}

	if err := a.provisionBlocklist(ctx); err != nil {
		return err
	}
	if runmode.ValidateOnly {
		return nil
	}
	for _, in := range declared {
		created, err := a.registry.Ensure(ctx, in)
		if err != nil {
			return fmt.Errorf("declaring partner %q: %w", *in.PartnerID, err)
		}
		if created {
			a.audit.Info("partner.create", zap.String("user", "bankedge app (declared)"), zap.String("partner", *in.PartnerID), zap.String("outcome", "created"))
		}
	}
	return a.subscribe()
}

// declaredPartners returns the partners of the configuration with their
// placeholders replaced, each checked against the registry's rules
// without being stored.
func (a *App) declaredPartners(ctx caddy.Context) ([]registry.Input, error) {
	if a.Partners == nil {
		return nil, nil
	}
	repl := caddy.NewReplacer()
	var out []registry.Input
	for _, in := range a.Partners.Declare {
		if in.Password != nil {
			pw := repl.ReplaceKnown(*in.Password, "")
			in.Password = &pw
		}
		id := ""
		if in.PartnerID != nil {
			id = *in.PartnerID
		}
		if err := a.registry.CheckEnsure(ctx, in); err != nil {
			return nil, fmt.Errorf("declaring partner %q: %w", id, err)
		}
		out = append(out, in)
	}
	return out, nil
}

// authorityConfig turns the JSON config into the authority's.
func (c *CAConfig) authorityConfig(ctx caddy.Context) (authority.Config, error) {
	repl := caddy.NewReplacer()
	pass := c.KeyPassphrase
	if pass == "" {
		pass = "{env.BANKEDGE_CA_PASSWORD}"
	}
	pass = repl.ReplaceKnown(pass, "")
	if pass == "" {
		return authority.Config{}, errors.New("bankedge CA: the key passphrase is empty; set the BANKEDGE_CA_PASSWORD environment variable or ca { key_passphrase … }")
	}
	kt, err := authority.ParseKeyType(c.KeyType)
	if err != nil {
		return authority.Config{}, err
	}
	cfg := authority.Config{
		Storage:     ctx.Storage(),
		Passphrase:  []byte(pass),
		KeyType:     kt,
		Lifetime:    time.Duration(c.Lifetime),
		CRLURL:      c.CRLURL,
		CRLValidity: time.Duration(c.CRLValidity),
	}
	if c.CommonName != "" || c.Organization != "" {
		cfg.Subject = pkix.Name{CommonName: c.CommonName}
		if c.Organization != "" {
			cfg.Subject.Organization = []string{c.Organization}
		}
	}
	if c.MaxValidityDays > 0 {
		cfg.MaxValidity = time.Duration(c.MaxValidityDays) * 24 * time.Hour
	}
	return cfg, nil
}

func (p *PasswordPolicy) policy() registry.Policy {
	pol := registry.DefaultPolicy()
	if p == nil {
		return pol
	}
	if p.MinLength != nil {
		pol.MinLength = *p.MinLength
	}
	for _, b := range []struct {
		src *bool
		dst *bool
	}{{p.RequireUpper, &pol.RequireUpper}, {p.RequireLower, &pol.RequireLower}, {p.RequireDigit, &pol.RequireDigit}, {p.RequireSymbol, &pol.RequireSymbol}} {
		if b.src != nil {
			*b.dst = *b.src
		}
	}
	if p.History != nil {
		pol.History = *p.History
	}
	if p.MaxAge != nil {
		pol.MaxAge = time.Duration(*p.MaxAge)
	}
	return pol
}

// Validate checks the configuration.
func (a *App) Validate() error {
	if a.CA != nil && a.CA.MaxValidityDays < 0 {
		return errors.New("max_validity_days must be positive")
	}
	return nil
}

// Start implements caddy.App: it starts keeping the CA's metrics current.
// CRLs are renewed when asked for.
func (a *App) Start() error {
	a.gauges.start()
	return nil
}

// Stop implements caddy.App.
func (a *App) Stop() error {
	a.gauges.close()
	return nil
}

// ErrNotInitialized is returned while the CA waits for manual
// initialisation.
var ErrNotInitialized = errors.New("the bankedge CA is not initialized yet")

// Authority returns the CA.
func (a *App) Authority() (*authority.Authority, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.authority == nil {
		return nil, ErrNotInitialized
	}
	return a.authority, nil
}

// Initialize creates the CA if storage has none; it returns
// authority.ErrCAExists (and the CA) when it exists.
func (a *App) Initialize(ctx context.Context) (*authority.Authority, error) {
	if runmode.ValidateOnly {
		return nil, authority.ErrReadOnly
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	auth, err := authority.Initialize(ctx, a.caConfig)
	if auth != nil {
		a.authority = auth
	}
	if err == nil {
		a.notify(topicCA, "")
	}
	return auth, err
}

// Registry returns the partner registry.
func (a *App) Registry() *registry.Registry { return a.registry }

// appFrom loads the bankedge app for a guest module.
func appFrom(ctx caddy.Context) (*App, error) {
	v, err := ctx.App("bankedge")
	if err != nil {
		return nil, fmt.Errorf("loading the bankedge app: %w", err)
	}
	return v.(*App), nil
}

// Interface guards.
var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)
	_ caddy.Validator   = (*App)(nil)
)

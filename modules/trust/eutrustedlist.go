// Package trust holds the bankedge trust sources as Caddy modules: the EU
// trusted lists as a trust pool (tls.ca_pool.source.eu_trusted_list), and
// the revocation policy block that the PSD2 handlers embed. The pure logic
// lives in its subpackages: tsl (trusted lists and XML signatures),
// revocation (OCSP and CRL) and fetch (bounded downloads).
package trust

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddytls"

	"github.com/bankedge/bankedge/internal/caddyfileargs"
	"github.com/bankedge/bankedge/internal/metrics"
	"github.com/bankedge/bankedge/modules/trust/fetch"
	"github.com/bankedge/bankedge/modules/trust/tsl"
)

func init() {
	caddy.RegisterModule(&EUTrustedList{})
}

// Defaults of EUTrustedList.
const (
	DefaultRefresh      = 6 * time.Hour
	DefaultFetchTimeout = 30 * time.Second
	DefaultMaxListSize  = 32 << 20
)

// EUTrustedList is a trust pool made from the EU List of Trusted Lists: the
// certificates of the qualified CAs (service type CA/QC, status granted)
// listed for website authentication (QWACs) or for electronic seals
// (QSealCs) by the member states' trusted lists.
//
// The LOTL's signature is verified against lotl_signers, and each national
// list's against the certificates of its own pointer in the LOTL. A list
// that fails, or is past its NextUpdate plus 24 hours, is not used and the
// last good copy of it stays in force; last good copies are kept in Caddy's
// storage, so a restart without network still has a pool. Lists are fetched
// once per URL for the whole process and refreshed in the background.
//
// Caddy's TLS code reads CertPool once per config load; the PSD2 handlers
// can follow refreshes through CurrentCertPool.
type EUTrustedList struct {
	// LOTLURL is where the LOTL is fetched: an https or http URL, a
	// file:// URL or a file path (for a mirrored LOTL when air-gapped).
	// Default: https://ec.europa.eu/tools/lotl/eu-lotl.xml.
	LOTLURL string `json:"lotl_url,omitempty"`
	// LOTLSigners is a PEM file with the certificates allowed to sign the
	// LOTL, as published in the Official Journal of the EU. Required: the
	// signer is never taken from the list itself.
	LOTLSigners string `json:"lotl_signers,omitempty"`
	// Service is what the CAs must be qualified for: "web"
	// (ForWebSiteAuthentication, QWACs; the default) or "eseal" (ForeSeals,
	// QSealCs).
	Service string `json:"service,omitempty"`
	// Mirror is a directory holding the national lists as <territory>.xml
	// (EL.xml, CY.xml, …), read instead of the addresses in the LOTL, for
	// gateways without Internet access; their signatures are checked all
	// the same.
	Mirror string `json:"mirror,omitempty"`
	// Territories limits the pool to these member states' lists (e.g. "GR",
	// which the lists spell "EL", "CY"); empty means all.
	Territories []string `json:"territories,omitempty"`
	// Refresh is the longest time between two refreshes (default 6h); a
	// list's NextUpdate, or a failure, brings the next one sooner.
	Refresh caddy.Duration `json:"refresh,omitempty"`
	// FetchTimeout bounds each download (default 30s).
	FetchTimeout caddy.Duration `json:"fetch_timeout,omitempty"`
	// MaxListSize bounds each list in bytes (default 32 MiB).
	MaxListSize int64 `json:"max_list_size,omitempty"`

	usage   tsl.Usage
	key     string
	source  *source
	initial *view
}

// CaddyModule returns the Caddy module information.
func (*EUTrustedList) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "tls.ca_pool.source.eu_trusted_list",
		New: func() caddy.Module { return new(EUTrustedList) },
	}
}

// Provision loads the signers, joins (or starts) the shared source for this
// configuration and waits for its first lists.
func (p *EUTrustedList) Provision(ctx caddy.Context) error {
	if err := metrics.Register(ctx); err != nil {
		return err
	}
	p.usage = tsl.Usage(p.Service)
	if p.usage == "" {
		p.usage = tsl.UsageWeb
	}
	if _, err := p.usage.URI(); err != nil {
		return fmt.Errorf("eu_trusted_list: %w", err)
	}
	if p.LOTLSigners == "" {
		return fmt.Errorf("eu_trusted_list: lotl_signers is required: the PEM certificates allowed to sign the LOTL, from the Official Journal")
	}
	signers, err := readCertificates(p.LOTLSigners)
	if err != nil {
		return fmt.Errorf("eu_trusted_list: lotl_signers: %w", err)
	}
	lotlURL := p.LOTLURL
	if lotlURL == "" {
		lotlURL = tsl.DefaultLOTLURL
	}
	refresh := time.Duration(p.Refresh)
	if refresh <= 0 {
		refresh = DefaultRefresh
	}
	timeout := time.Duration(p.FetchTimeout)
	if timeout <= 0 {
		timeout = DefaultFetchTimeout
	}
	maxSize := p.MaxListSize
	if maxSize <= 0 {
		maxSize = DefaultMaxListSize
	}
	territories := append([]string(nil), p.Territories...)
	sort.Strings(territories)
	p.key = sourceKey(lotlURL, p.Mirror, signers, territories, refresh)

	store := &storageRef{}
	val, _, err := sources.LoadOrNew(p.key, func() (caddy.Destructor, error) {
		client := &fetch.Client{HTTP: fetch.NewHTTPClient(timeout), MaxBytes: maxSize, AllowFiles: true, UserAgent: "bankedge-trustlist"}
		return newSource(&tsl.Resolver{
			LOTLURL:     lotlURL,
			Signers:     signers,
			Territories: territories,
			Mirror:      p.Mirror,
			Fetcher:     fetcher{cache: documents, client: client, maxAge: refresh},
			Store:       store,
		}, store, refresh), nil
	})
	if err != nil {
		return err
	}
	p.source = val.(*source)
	st := ctx.Storage()
	p.source.store.p.Store(&st)
	p.source.logger.Store(ctx.Logger())

	// The first resolve of a source may wait on the network; it is bounded
	// by the fetch timeout per list.
	if err := p.source.ensure(ctx); err != nil {
		return fmt.Errorf("eu_trusted_list: %w (a first start needs the network or a last good copy in storage)", err)
	}
	p.initial = p.source.current(p.usage)
	return nil
}

// Cleanup drops this pool's reference to the shared source.
func (p *EUTrustedList) Cleanup() error {
	if p.key == "" {
		return nil
	}
	_, err := sources.Delete(p.key)
	return err
}

// CertPool implements caddytls.CA: the pool when the config was loaded.
func (p *EUTrustedList) CertPool() *x509.CertPool {
	if p.initial == nil {
		return x509.NewCertPool()
	}
	return p.initial.pool
}

// Certificates implements caddytls.CertificateProvider, for combined pools.
func (p *EUTrustedList) Certificates() []*x509.Certificate {
	if p.initial == nil {
		return nil
	}
	return p.initial.certs
}

// CurrentCertPool returns the pool in force now, which follows the
// background refreshes. The pointer changes only when the set of trusted
// certificates does, so a caller may key its caches on it.
func (p *EUTrustedList) CurrentCertPool() *x509.CertPool {
	if p.source == nil {
		return p.CertPool()
	}
	if v := p.source.current(p.usage); v != nil {
		return v.pool
	}
	return p.CertPool()
}

// CurrentTrustedCAs returns the qualified CAs in force now, with their
// territory, provider and service names.
func (p *EUTrustedList) CurrentTrustedCAs() []tsl.TrustedCA {
	if p.source == nil {
		return nil
	}
	if v := p.source.current(p.usage); v != nil {
		return v.cas
	}
	return nil
}

// UnmarshalCaddyfile parses
//
//	trust_pool eu_trusted_list {
//		lotl_url      <url or path>
//		lotl_signers  <pem file>
//		mirror        <directory>
//		service       web|eseal
//		territories   <code...>
//		refresh       <duration>
//		fetch_timeout <duration>
//		max_list_size <bytes>
//	}
func (p *EUTrustedList) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the module name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "lotl_url":
			err = caddyfileargs.One(d, &p.LOTLURL)
		case "lotl_signers":
			err = caddyfileargs.One(d, &p.LOTLSigners)
		case "mirror":
			err = caddyfileargs.One(d, &p.Mirror)
		case "service":
			if err = caddyfileargs.One(d, &p.Service); err == nil {
				if _, uerr := tsl.Usage(p.Service).URI(); uerr != nil {
					err = d.Errf("service must be web or eseal, got %q", p.Service)
				}
			}
		case "territories":
			err = caddyfileargs.Append(d, &p.Territories)
		case "refresh":
			err = caddyfileargs.Duration(d, &p.Refresh)
		case "fetch_timeout":
			err = caddyfileargs.Duration(d, &p.FetchTimeout)
		case "max_list_size":
			var n int
			if err = caddyfileargs.Int(d, &n); err == nil {
				p.MaxListSize = int64(n)
			}
		default:
			err = d.Errf("unknown eu_trusted_list option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// readCertificates reads every CERTIFICATE block of a PEM file.
func readCertificates(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	certs, err := tsl.ParseCertificatesPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return certs, nil
}

// sourceKey identifies a LOTL configuration.
func sourceKey(url, mirror string, signers []*x509.Certificate, territories []string, refresh time.Duration) string {
	var fps []string
	for _, c := range signers {
		s := sha256.Sum256(c.Raw)
		fps = append(fps, hex.EncodeToString(s[:]))
	}
	sort.Strings(fps)
	return strings.Join([]string{url, mirror, strings.Join(fps, ","), strings.ToUpper(strings.Join(territories, ",")), refresh.String()}, "|")
}

// LivePool is a trust pool whose content follows the real world while a
// config runs. Handlers that verify certificates themselves (psd2_qwac,
// psd2_qseal) use CurrentCertPool on each verification instead of the
// CertPool read at provisioning; the pointer changes only when the trusted
// set does, so it can key their caches.
type LivePool interface {
	CurrentCertPool() *x509.CertPool
}

// Interface guards.
var (
	_ LivePool                     = (*EUTrustedList)(nil)
	_ caddy.Provisioner            = (*EUTrustedList)(nil)
	_ caddy.CleanerUpper           = (*EUTrustedList)(nil)
	_ caddytls.CA                  = (*EUTrustedList)(nil)
	_ caddytls.CertificateProvider = (*EUTrustedList)(nil)
	_ caddyfile.Unmarshaler        = (*EUTrustedList)(nil)
)

package ca

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/bankedge/bankedge/internal/runmode"
	"github.com/bankedge/bankedge/modules/cluster"
)

// The PSD2 blocklist: the bank's own decisions to refuse a TPP (by
// organisation identifier) or a certificate (by SHA-256 fingerprint),
// whatever its QTSP says. The PSD2 handlers find it through this app
// (psd2.Blocklist) and refuse a match with 401 CERTIFICATE_BLOCKED.
//
// It lives in Caddy storage, one JSON document, next to a small version
// object that every change bumps. Gateways sharing the storage follow a
// change within a second: the one that made it publishes the version on the
// cluster topic (in process, and to the others through Redis when the
// storage is Redis), and every gateway reads the version object every
// blocklistPollShared (Redis storage: pub/sub carries changes, polling is a
// safety net) or blocklistPoll (any other storage).
const (
	blocklistKey     = "bankedge/psd2/blocklist.json"
	blocklistVersion = "bankedge/psd2/blocklist.version"
	blocklistLock    = "bankedge/psd2/blocklist"
	blocklistTopic   = "psd2.blocklist"
)

// Poll periods of the version object.
var (
	blocklistPoll       = 500 * time.Millisecond
	blocklistPollShared = 30 * time.Second
)

// Bounds of a blocklist entry.
const (
	maxBlockOrgID  = 128
	maxBlockReason = 500
)

// BlockEntry is one entry of the blocklist: an organisation or a
// certificate, never both.
type BlockEntry struct {
	// OrgID is the organizationIdentifier of a blocked TPP, in upper case
	// (e.g. PSDGR-BOG-123456).
	OrgID string `json:"orgId,omitempty"`
	// CertSHA256 is the SHA-256 fingerprint of a blocked certificate's
	// DER (QWAC or QSEAL), 64 lower-case hex digits.
	CertSHA256 string `json:"certSha256,omitempty"`
	// Reason is the administrator's note; it is never sent to the TPP.
	Reason string `json:"reason,omitempty"`
	// BlockedAt is when the entry was made.
	BlockedAt time.Time `json:"blockedAt"`
	// BlockedBy is the administrator who made it.
	BlockedBy string `json:"blockedBy,omitempty"`
}

// key is what the entry blocks, as the DELETE path names it.
func (e BlockEntry) key() string {
	if e.CertSHA256 != "" {
		return e.CertSHA256
	}
	return e.OrgID
}

// blocklistDoc is the stored document.
type blocklistDoc struct {
	Version int64        `json:"version"`
	Entries []BlockEntry `json:"entries"`
}

// blockSnapshot is a blocklist in force: immutable, swapped whole, so that
// a lookup is an atomic load and a map read.
type blockSnapshot struct {
	version int64
	entries []BlockEntry
	orgs    map[string]struct{}
	certs   map[[32]byte]struct{}
}

func newBlockSnapshot(doc blocklistDoc) *blockSnapshot {
	s := &blockSnapshot{version: doc.Version, entries: doc.Entries, orgs: map[string]struct{}{}, certs: map[[32]byte]struct{}{}}
	for _, e := range doc.Entries {
		if e.OrgID != "" {
			s.orgs[e.OrgID] = struct{}{}
		}
		if sum, ok := parseFingerprint(e.CertSHA256); ok {
			s.certs[sum] = struct{}{}
		}
	}
	return s
}

// Errors of blocklist changes, answered 409 and 404 by the API.
var (
	errBlockExists   = errors.New("already on the blocklist")
	errBlockNotFound = errors.New("not on the blocklist")
)

// blocklist is the app's view of the stored blocklist.
type blocklist struct {
	storage certmagic.Storage
	state   *cluster.State
	logger  *zap.Logger
	current atomic.Pointer[blockSnapshot]
	// wake asks the sync loop to read the version now.
	wake chan struct{}
	// failing is set while reads of the storage fail, so that an outage
	// logs one line when it starts and one when it ends.
	failing atomic.Bool
	// reloadMu makes reloads one at a time.
	reloadMu sync.Mutex
}

// provisionBlocklist loads the blocklist and, unless the configuration is
// only being validated, follows its changes until ctx (the configuration)
// ends.
func (a *App) provisionBlocklist(ctx caddy.Context) error {
	b := &blocklist{storage: a.storage, logger: a.logger.Named("blocklist"), wake: make(chan struct{}, 1)}
	doc, err := b.read(ctx)
	if err != nil {
		return fmt.Errorf("reading the PSD2 blocklist from storage: %w", err)
	}
	b.current.Store(newBlockSnapshot(doc))
	a.blocklist = b
	if runmode.ValidateOnly {
		return nil
	}
	state := a.cluster
	b.state = state
	if _, err := state.Subscribe(blocklistTopic, func(ev cluster.Event) {
		if v, err := strconv.ParseInt(ev.Payload, 10, 64); ev.Resync || err != nil || v != b.snapshot().version {
			b.poke()
		}
	}); err != nil {
		return err
	}
	every := blocklistPoll
	if state.Shared() {
		every = blocklistPollShared
	}
	go b.follow(ctx, every)
	return nil
}

func (b *blocklist) snapshot() *blockSnapshot { return b.current.Load() }

func (b *blocklist) poke() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// follow reloads the blocklist when its version changes, until ctx ends.
func (b *blocklist) follow(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-b.wake:
		}
		b.sync(ctx)
	}
}

// sync reads the version object and, when it differs from the list in
// force, the list. A failing storage keeps the list in force.
func (b *blocklist) sync(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := b.reloadIfChanged(rctx)
	switch {
	case err != nil && ctx.Err() == nil:
		if !b.failing.Swap(true) {
			// A warning: the outage itself is the cluster's one error line.
			b.logger.Warn("the PSD2 blocklist cannot be read from storage; the list in force stays", zap.Error(err))
		}
	case err == nil && b.failing.Swap(false):
		b.logger.Info("the PSD2 blocklist is read from storage again", zap.Int64("version", b.snapshot().version))
	}
}

func (b *blocklist) reloadIfChanged(ctx context.Context) error {
	raw, err := b.storage.Load(ctx, blocklistVersion)
	if errors.Is(err, fs.ErrNotExist) {
		raw, err = []byte("0"), nil
	}
	if err != nil {
		return err
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
	if err != nil {
		return fmt.Errorf("blocklist version object: %w", err)
	}
	if v == b.snapshot().version {
		return nil
	}
	b.reloadMu.Lock()
	defer b.reloadMu.Unlock()
	doc, err := b.read(ctx)
	if err != nil {
		return err
	}
	if doc.Version != b.snapshot().version {
		b.current.Store(newBlockSnapshot(doc))
		b.logger.Info("PSD2 blocklist changed", zap.Int64("version", doc.Version), zap.Int("entries", len(doc.Entries)))
	}
	return nil
}

// read loads the stored document; none stored is an empty list.
func (b *blocklist) read(ctx context.Context) (blocklistDoc, error) {
	var doc blocklistDoc
	raw, err := b.storage.Load(ctx, blocklistKey)
	if errors.Is(err, fs.ErrNotExist) {
		return doc, nil
	}
	if err != nil {
		return doc, err
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return doc, fmt.Errorf("%s: %w", blocklistKey, err)
	}
	return doc, nil
}

// change applies edit to the stored list under the storage lock, stores
// it with the next version, puts it in force here and tells the other
// gateways.
func (b *blocklist) change(ctx context.Context, edit func(doc *blocklistDoc) error) error {
	if runmode.ValidateOnly {
		return errors.New("the blocklist is read-only while the configuration is validated")
	}
	if err := b.storage.Lock(ctx, blocklistLock); err != nil {
		return fmt.Errorf("taking the blocklist lock: %w", err)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = b.storage.Unlock(uctx, blocklistLock)
	}()
	doc, err := b.read(ctx)
	if err != nil {
		return err
	}
	if err := edit(&doc); err != nil {
		return err
	}
	doc.Version++
	raw, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	// The list first: a gateway that sees the new version must find the
	// list at least as new.
	if err := b.storage.Store(ctx, blocklistKey, raw); err != nil {
		return fmt.Errorf("storing the blocklist: %w", err)
	}
	if err := b.storage.Store(ctx, blocklistVersion, []byte(strconv.FormatInt(doc.Version, 10))); err != nil {
		return fmt.Errorf("storing the blocklist version: %w", err)
	}
	b.reloadMu.Lock()
	b.current.Store(newBlockSnapshot(doc))
	b.reloadMu.Unlock()
	if b.state != nil {
		if err := b.state.Publish(ctx, blocklistTopic, strconv.FormatInt(doc.Version, 10)); err != nil {
			// The others still poll the version object.
			b.logger.Warn("the blocklist change could not be announced to the other gateways; they find it when they poll", zap.Error(err))
		}
	}
	return nil
}

// add puts e on the list; errBlockExists when what it blocks is already.
func (b *blocklist) add(ctx context.Context, e BlockEntry) error {
	return b.change(ctx, func(doc *blocklistDoc) error {
		if slices.ContainsFunc(doc.Entries, func(x BlockEntry) bool { return x.key() == e.key() }) {
			return errBlockExists
		}
		doc.Entries = append(doc.Entries, e)
		return nil
	})
}

// remove takes the entry for key (an organisation or a fingerprint, in
// canonical form) off the list; errBlockNotFound when there is none.
func (b *blocklist) remove(ctx context.Context, key string) (BlockEntry, error) {
	var removed BlockEntry
	err := b.change(ctx, func(doc *blocklistDoc) error {
		i := slices.IndexFunc(doc.Entries, func(x BlockEntry) bool { return x.key() == key })
		if i < 0 {
			return errBlockNotFound
		}
		removed = doc.Entries[i]
		doc.Entries = slices.Delete(doc.Entries, i, i+1)
		return nil
	})
	return removed, err
}

// OrganizationBlocked reports whether the bank blocked the TPP with this
// organizationIdentifier (psd2.Blocklist); case does not matter.
func (a *App) OrganizationBlocked(orgID string) bool {
	if a.blocklist == nil {
		return false
	}
	s := a.blocklist.snapshot()
	if len(s.orgs) == 0 {
		return false
	}
	// ToUpper returns an upper-case identifier as is, without allocating.
	_, ok := s.orgs[strings.ToUpper(orgID)]
	return ok
}

// CertificateBlocked reports whether the bank blocked the certificate whose
// DER hashes to sum (psd2.Blocklist).
func (a *App) CertificateBlocked(sum [32]byte) bool {
	if a.blocklist == nil {
		return false
	}
	_, ok := a.blocklist.snapshot().certs[sum]
	return ok
}

// canonicalOrgID checks an organisation identifier and returns it in upper
// case: letters, digits, '-', '.', '_' and ':', as organizationIdentifier
// values (PSDGR-BOG-123456, VATGR-999999999, LEIXG-…) are written.
func canonicalOrgID(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > maxBlockOrgID {
		return "", fmt.Errorf("orgId must have 1 to %d characters", maxBlockOrgID)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == ':') {
			return "", errors.New("orgId may hold letters, digits, '-', '.', '_' and ':' only")
		}
	}
	return strings.ToUpper(s), nil
}

// canonicalFingerprint checks a SHA-256 fingerprint, in hex with or
// without colons (as openssl prints it), and returns it in lower-case hex.
func canonicalFingerprint(s string) (string, bool) {
	s = strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), ":", ""))
	if _, ok := parseFingerprint(s); !ok {
		return "", false
	}
	return s, true
}

func parseFingerprint(s string) ([32]byte, bool) {
	var sum [32]byte
	if len(s) != 64 {
		return sum, false
	}
	if _, err := hex.Decode(sum[:], []byte(s)); err != nil {
		return sum, false
	}
	return sum, true
}

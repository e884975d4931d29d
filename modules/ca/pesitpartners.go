package ca

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"sync"

	"github.com/bankedge/bankedge/modules/ca/authority"
	"github.com/bankedge/bankedge/modules/ca/registry"
)

// AuthenticatePartner checks a connecting PeSIT partner against the
// registry (see registry.Registry.Authenticate). The PeSIT gateway
// (layer4.handlers.pesit) depends on this method, not on the App.
func (a *App) AuthenticatePartner(ctx context.Context, req registry.AuthRequest) (registry.Partner, error) {
	return a.registry.Authenticate(ctx, req)
}

// CertificatePartner reports whether cert is a certificate this CA issued,
// and if so the partner id and purpose its inventory record carries. A
// certificate counts as issued only if it is byte for byte the one in the
// inventory, so a forgery that copies the CA's name and a real serial
// (possible under client_auth mode require, which verifies nothing) is
// not. Answers are cached: a record's partner and purpose never change.
func (a *App) CertificatePartner(ctx context.Context, cert *x509.Certificate) (partnerID, purpose string, issued bool, err error) {
	auth, err := a.Authority()
	if errors.Is(err, ErrNotInitialized) || cert == nil {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, err
	}
	if !bytes.Equal(cert.RawIssuer, auth.Certificate().RawSubject) {
		return "", "", false, nil
	}
	key := certOwnerKey{ca: sha256.Sum256(auth.Certificate().Raw), cert: sha256.Sum256(cert.Raw)}
	if o, ok := certOwners.get(key); ok {
		return o.partnerID, o.purpose, o.issued, nil
	}
	rec, err := auth.Lookup(ctx, cert.SerialNumber)
	var o certOwner
	switch {
	case errors.Is(err, authority.ErrNotFound):
	case err != nil:
		return "", "", false, err
	case bytes.Equal(rec.DER, cert.Raw):
		o = certOwner{partnerID: rec.PartnerID, purpose: string(rec.Purpose), issued: true}
	}
	certOwners.add(key, o)
	return o.partnerID, o.purpose, o.issued, nil
}

// certOwners caches CertificatePartner for every configuration of the
// process; it is bounded and evicts in insertion order.
var certOwners = &certOwnerCache{entries: map[certOwnerKey]certOwner{}, size: 1024}

type certOwnerKey struct{ ca, cert [32]byte }

type certOwner struct {
	partnerID, purpose string
	issued             bool
}

type certOwnerCache struct {
	mu      sync.Mutex
	entries map[certOwnerKey]certOwner
	order   []certOwnerKey
	size    int
}

func (c *certOwnerCache) get(k certOwnerKey) (certOwner, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	o, ok := c.entries[k]
	return o, ok
}

func (c *certOwnerCache) add(k certOwnerKey, o certOwner) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; ok {
		return
	}
	if len(c.order) >= c.size {
		delete(c.entries, c.order[0])
		c.order = c.order[1:]
	}
	c.entries[k] = o
	c.order = append(c.order, k)
}

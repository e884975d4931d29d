package authority

import (
	"context"
	"math/big"
)

// PublishedCRL describes the CRL in storage as it is, without making a new
// one: for monitoring, which must not change what it watches.
func (a *Authority) PublishedCRL(ctx context.Context) (CRLInfo, error) {
	c, err := a.loadCRL(ctx)
	if err != nil {
		return CRLInfo{}, err
	}
	return CRLInfo{Number: big.NewInt(c.Number), ThisUpdate: c.ThisUpdate, NextUpdate: c.NextUpdate, Entries: c.Entries}, nil
}

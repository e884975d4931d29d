package authority

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
)

// Generate makes a key of keyType for the holder and issues its certificate
// in one step, for partners who receive a complete keystore.
func (a *Authority) Generate(ctx context.Context, keyType KeyType, req Request) (crypto.Signer, *x509.Certificate, error) {
	key, err := NewKey(keyType)
	if err != nil {
		return nil, nil, fmt.Errorf("generating key: %w", err)
	}
	req.PublicKey = key.Public()
	cert, err := a.Issue(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	return key, cert, nil
}

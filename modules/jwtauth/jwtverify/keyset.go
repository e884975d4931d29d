package jwtverify

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// MaxJWKSSize bounds a JWKS document. Identity providers publish a few
// keys, a few kilobytes.
const MaxJWKSSize = 1 << 20

// maxKeys bounds the number of keys kept from one document.
const maxKeys = 100

// ParseJWKS reads a JSON Web Key Set and keeps the keys that can verify a
// signature: RSA (2048 bits or more), EC P-256/384/521 and Ed25519 public
// keys whose "use", when present, is "sig". Keys of other types, and
// symmetric ("oct") keys in particular, are skipped: a shared secret does
// not belong in a published key set, and accepting one would let anyone
// who can read the set forge HMAC tokens. A private key makes the whole set
// an error, because whoever published it has leaked it.
func ParseJWKS(b []byte) ([]jose.JSONWebKey, error) {
	if len(b) > MaxJWKSSize {
		return nil, fmt.Errorf("JWKS is larger than %d bytes", MaxJWKSSize)
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("JWKS is not a JSON object with a keys array: %w", err)
	}
	var keys []jose.JSONWebKey
	for i, raw := range doc.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			// go-jose refuses key types it does not know; other keys of
			// the set are still usable.
			continue
		}
		if !k.IsPublic() {
			if _, sym := k.Key.([]byte); !sym {
				return nil, fmt.Errorf("JWKS key %d (kid %q) contains private key material", i, k.KeyID)
			}
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if !usableKey(k.Key) {
			continue
		}
		keys = append(keys, k)
		if len(keys) == maxKeys {
			break
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("JWKS has no usable signature verification key")
	}
	return keys, nil
}

func usableKey(k any) bool {
	switch k := k.(type) {
	case *rsa.PublicKey:
		return k.N.BitLen() >= 2048
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return true
		}
	case ed25519.PublicKey:
		return len(k) == ed25519.PublicKeySize
	}
	return false
}

// Fetcher returns the current JWKS document.
type Fetcher func(ctx context.Context) ([]byte, error)

// FileFetcher reads the JWKS from a file on every refresh.
func FileFetcher(path string) Fetcher {
	return func(context.Context) ([]byte, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return readBounded(f)
	}
}

// HTTPFetcher fetches the JWKS from rawURL with client, bounded by
// MaxJWKSSize and by the client's timeout. Only https is allowed, except
// http to a loopback address (an identity provider's sidecar); redirects
// are held to the same rule.
func HTTPFetcher(rawURL string, client *http.Client) (Fetcher, error) {
	if err := checkFetchURL(rawURL); err != nil {
		return nil, err
	}
	c := *client
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 3 {
			return errors.New("too many redirects")
		}
		return checkFetchURL(req.URL.String())
	}
	return func(ctx context.Context) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/jwk-set+json, application/json")
		resp, err := c.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("JWKS endpoint answered %s", resp.Status)
		}
		return readBounded(resp.Body)
	}, nil
}

// IsURL reports whether a jwks setting names a URL rather than a file.
func IsURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

func checkFetchURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("JWKS URL: %w", err)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() || host == "localhost" {
			return nil
		}
		return fmt.Errorf("JWKS URL %s: only https, or http to a loopback address, is allowed", u.Redacted())
	}
	return fmt.Errorf("JWKS URL %s: scheme must be https", u.Redacted())
}

func readBounded(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxJWKSSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxJWKSSize {
		return nil, fmt.Errorf("JWKS is larger than %d bytes", MaxJWKSSize)
	}
	return b, nil
}

// KeySet caches the keys of a JWKS and refreshes them: in the background
// once they are older than RefreshInterval (requests meanwhile use the
// keys they have), and at once when a token names a key id the set does
// not have (key rotation), at most once per MinRefetchInterval so that
// tokens with made-up key ids cannot hammer the identity provider. When a
// refresh fails the previous keys stay in use.
type KeySet struct {
	// Fetch returns the JWKS document. Required.
	Fetch Fetcher
	// RefreshInterval is the age after which keys are refreshed. Default:
	// 5 minutes.
	RefreshInterval time.Duration
	// MinRefetchInterval is the least time between two fetches. Default:
	// 30 seconds.
	MinRefetchInterval time.Duration
	// FetchTimeout bounds one fetch. Default: 10 seconds.
	FetchTimeout time.Duration
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// OnError, if set, is told of failed fetches.
	OnError func(error)

	mu          sync.Mutex
	keys        []jose.JSONWebKey
	fetchedAt   time.Time
	attemptedAt time.Time
	lastErr     error
	inflight    chan struct{}
}

func (ks *KeySet) now() time.Time {
	if ks.Now != nil {
		return ks.Now()
	}
	return time.Now()
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// ErrUnknownKey means that no key of the set has the token's key id, even
// after a refresh.
var ErrUnknownKey = errors.New("unknown key id")

// Keys returns the keys whose id is kid (all keys when kid is empty),
// refreshing the set as described on KeySet.
func (ks *KeySet) Keys(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	keys, err := ks.current(ctx)
	if err != nil {
		return nil, err
	}
	if found := withID(keys, kid); len(found) > 0 {
		return found, nil
	}
	// Perhaps the provider rotated its keys.
	ks.mu.Lock()
	recent := ks.now().Sub(ks.attemptedAt) < orDefault(ks.MinRefetchInterval, 30*time.Second)
	ks.mu.Unlock()
	if !recent {
		if err := ks.refresh(ctx); err == nil {
			ks.mu.Lock()
			keys = ks.keys
			ks.mu.Unlock()
		}
	}
	if found := withID(keys, kid); len(found) > 0 {
		return found, nil
	}
	return nil, ErrUnknownKey
}

func withID(keys []jose.JSONWebKey, kid string) []jose.JSONWebKey {
	if kid == "" {
		return keys
	}
	var out []jose.JSONWebKey
	for _, k := range keys {
		if k.KeyID == kid {
			out = append(out, k)
		}
	}
	return out
}

// current returns the cached keys, fetching them when there are none and
// starting a background refresh when they are old.
func (ks *KeySet) current(ctx context.Context) ([]jose.JSONWebKey, error) {
	ks.mu.Lock()
	keys, age := ks.keys, ks.now().Sub(ks.fetchedAt)
	recent := ks.now().Sub(ks.attemptedAt) < orDefault(ks.MinRefetchInterval, 30*time.Second)
	lastErr := ks.lastErr
	ks.mu.Unlock()
	if keys == nil {
		if recent && lastErr != nil {
			return nil, fmt.Errorf("no JWKS keys: %w", lastErr)
		}
		if err := ks.refresh(ctx); err != nil {
			return nil, fmt.Errorf("no JWKS keys: %w", err)
		}
		ks.mu.Lock()
		defer ks.mu.Unlock()
		return ks.keys, nil
	}
	if age >= orDefault(ks.RefreshInterval, 5*time.Minute) && !recent {
		go func() { _ = ks.refresh(context.WithoutCancel(ctx)) }()
	}
	return keys, nil
}

// refresh fetches the set once, joining a fetch already in flight.
func (ks *KeySet) refresh(ctx context.Context) error {
	ks.mu.Lock()
	if ch := ks.inflight; ch != nil {
		ks.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		ks.mu.Lock()
		defer ks.mu.Unlock()
		return ks.lastErr
	}
	ch := make(chan struct{})
	ks.inflight = ch
	ks.attemptedAt = ks.now()
	ks.mu.Unlock()

	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), orDefault(ks.FetchTimeout, 10*time.Second))
	b, err := ks.Fetch(fctx)
	cancel()
	var keys []jose.JSONWebKey
	if err == nil {
		keys, err = ParseJWKS(b)
	}

	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.inflight = nil
	close(ch)
	ks.lastErr = err
	if err != nil {
		if ks.OnError != nil {
			ks.OnError(err)
		}
		return err
	}
	ks.keys, ks.fetchedAt = keys, ks.now()
	return nil
}

package pesit_test

import (
	"context"
	"time"

	"github.com/bankedge/bankedge/modules/ca"
	"github.com/bankedge/bankedge/modules/pesit"
)

// sharedApp declares SharedState's methods with interface literals, as
// the bankedge app (which must not import this package) would: the
// interface guard below fails to compile if they stop matching.
type sharedApp struct{}

func (sharedApp) PartnerConnectionLimiter() interface {
	Acquire(ctx context.Context, partnerID string, limit int) (release func(), ok bool, err error)
} {
	return nil
}

func (sharedApp) PartnerAuthFailures() interface {
	Throttled(ctx context.Context, keys []string, limit int, window time.Duration) (bool, error)
	Fail(ctx context.Context, keys []string, window time.Duration) error
} {
	return nil
}

// Interface guards: the bankedge app is what the gateway needs and
// provides the shared state (on Redis storage), and a provider of shared
// state from another package matches SharedState.
var (
	_ pesit.Partners    = (*ca.App)(nil)
	_ pesit.SharedState = (*ca.App)(nil)
	_ pesit.SharedState = sharedApp{}
)

package trust

import (
	"context"
	"time"
)

// SetDocumentReuse changes how long a fetched list is reused, and forgets
// the lists fetched so far.
func SetDocumentReuse(d time.Duration) {
	documents.mu.Lock()
	defer documents.mu.Unlock()
	documents.reuseFor = d
	documents.docs = nil
}

// RefreshNow runs the pool's source's refresh at once.
func (p *EUTrustedList) RefreshNow(ctx context.Context) error {
	p.source.resolveMu.Lock()
	defer p.source.resolveMu.Unlock()
	return p.source.resolveLocked(ctx)
}

// NextRefresh is the wait before the source's next refresh.
func (p *EUTrustedList) NextRefresh(now time.Time) time.Duration { return p.source.nextRefresh(now) }

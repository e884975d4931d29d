package cluster

import (
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// health turns failures of Redis into one error line per burst and one
// info line at the recovery, however many operations fail in between.
//
// Its state is an epoch: even while Redis answers, odd during a burst of
// failures. An operation notes the epoch when it starts, and only an
// operation that started in the current epoch may end it: a failure that
// started while Redis answered starts a burst, a success that started
// during the burst ends it. Stragglers (an operation that started before a
// recovery and times out after it) change nothing, so the log does not
// flap.
type health struct {
	log   *zap.Logger
	epoch atomic.Uint64

	mu       sync.Mutex
	since    time.Time
	failures int
}

// begin is called when an operation starts.
func (h *health) begin() uint64 { return h.epoch.Load() }

// succeeded records the success of an operation that started at epoch e.
func (h *health) succeeded(e uint64) {
	if e%2 == 0 || !h.epoch.CompareAndSwap(e, e+1) {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.log.Info("shared state on Redis available again",
		zap.Duration("unavailable_for", time.Since(h.since)), zap.Int("failed_operations", h.failures))
}

// failed records the failure of an operation that started at epoch e.
func (h *health) failed(op string, e uint64, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e%2 == 1 || !h.epoch.CompareAndSwap(e, e+1) {
		h.failures++
		return
	}
	h.since = time.Now()
	h.failures = 1
	h.log.Error("shared state on Redis unavailable: refusing what needs it until Redis answers again",
		zap.String("operation", op), zap.Error(err))
}

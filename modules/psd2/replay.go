package psd2

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/bankedge/bankedge/modules/cluster"
)

// replayStoreRetryAfter is the Retry-After of a request refused because the
// replay store could not answer.
const replayStoreRetryAfter = 5 * time.Second

func parseRequestID(v string) (uuid.UUID, *rejection) {
	if v == "" {
		return uuid.UUID{}, rejectPath(FormatError, headerRequestID, "X-Request-ID header is missing")
	}
	id, err := uuid.Parse(v)
	if err != nil || len(v) != 36 {
		return uuid.UUID{}, rejectPath(FormatError, headerRequestID, "X-Request-ID is not a UUID")
	}
	return id, nil
}

// claim records the request id for the replay window, last, once the
// request passed every other check, so that a refused request does not
// burn its id.
func (h *QSEAL) claim(r *http.Request, tpp *TPP, id uuid.UUID) *rejection {
	fresh, err := h.replay.Claim(r.Context(), tpp.OrgID, id, time.Duration(h.ReplayWindow))
	switch {
	case err == nil && fresh:
		return nil
	case err == nil:
		return rejectPath(FormatError, headerRequestID, "X-Request-ID already used")
	}
	return h.claimFailed(tpp, err)
}

// claimFailed answers a claim that the store could not make. It is apart
// from claim because errors.As moves its target to the heap: an accepted
// request does not pay for it.
func (h *QSEAL) claimFailed(tpp *TPP, err error) *rejection {
	var quota *ReplayQuotaError
	if errors.As(err, &quota) {
		return &rejection{Status: AccessExceeded.status(), Code: AccessExceeded, Path: headerRequestID, RetryAfter: quota.RetryAfter,
			Text: fmt.Sprintf("this TPP has sent %d requests within the replay window of %s, the most the gateway remembers; retry later",
				quota.Quota, time.Duration(h.ReplayWindow))}
	}
	if errors.Is(err, cluster.ErrUnavailable) {
		// The shared state logs one line per outage, not per request.
		h.logger.Debug("replay store unavailable", zap.String("org_id", tpp.OrgID), zap.Error(err))
	} else {
		h.logger.Error("replay store unavailable", zap.String("org_id", tpp.OrgID), zap.Error(err))
	}
	return &rejection{Status: ServiceUnavailable.status(), Code: ServiceUnavailable, RetryAfter: replayStoreRetryAfter,
		Text: "the request cannot be checked for replay right now; retry later with the same X-Request-ID"}
}

// checkDate refuses a Date too far from the gateway's clock: ahead by more
// than max_clock_skew, or older than maxDateAge.
func (h *QSEAL) checkDate(r *http.Request) *rejection {
	v := header(r, headerDate)
	if v == "" {
		return nil
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return rejectPath(FormatError, headerDate, "Date is not an HTTP date")
	}
	age := h.now().Sub(t)
	switch skew := time.Duration(h.MaxClockSkew); {
	case -age > skew:
		return rejectPath(TimestampInvalid, headerDate, fmt.Sprintf("Date is %s ahead of the server clock (max %s)",
			(-age).Round(time.Second), skew))
	case age > h.maxDateAge():
		return rejectPath(TimestampInvalid, headerDate, fmt.Sprintf("Date is %s behind the server clock (max %s)",
			age.Round(time.Second), h.maxDateAge()))
	}
	return nil
}

// maxDateAge is how old a Date may be: max_clock_skew, and no more than the
// replay window less max_clock_skew. A request first accepted with a Date
// up to max_clock_skew ahead cannot then come back once its X-Request-ID
// has left the window: its Date is older than the window less the skew.
func (h *QSEAL) maxDateAge() time.Duration {
	skew, window := time.Duration(h.MaxClockSkew), time.Duration(h.ReplayWindow)
	return min(skew, window-skew)
}

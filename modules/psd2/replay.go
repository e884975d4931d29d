package psd2

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"
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
	var quota *ReplayQuotaError
	switch {
	case errors.As(err, &quota):
		return &rejection{Status: AccessExceeded.status(), Code: AccessExceeded, Path: headerRequestID, RetryAfter: quota.RetryAfter,
			Text: fmt.Sprintf("this TPP has sent %d requests within the replay window of %s, the most the gateway remembers; retry later",
				quota.Quota, time.Duration(h.ReplayWindow))}
	case err != nil:
		h.logger.Error("replay store unavailable", zap.String("org_id", tpp.OrgID), zap.Error(err))
		return &rejection{Status: ServiceUnavailable.status(), Code: ServiceUnavailable, RetryAfter: replayStoreRetryAfter,
			Text: "the request cannot be checked for replay right now; retry later with the same X-Request-ID"}
	case !fresh:
		return rejectPath(FormatError, headerRequestID, "X-Request-ID already used")
	}
	return nil
}

// checkDate refuses a Date too far from the gateway's clock. Since the
// replay window is at least twice max_clock_skew (Validate), a request whose
// Date is signed cannot be replayed once its id has left the window: it is
// refused by its Date instead.
func (h *QSEAL) checkDate(r *http.Request) *rejection {
	v := header(r, headerDate)
	if v == "" {
		return nil
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return rejectPath(FormatError, headerDate, "Date is not an HTTP date")
	}
	skew := h.now().Sub(t)
	if skew < 0 {
		skew = -skew
	}
	if skew > time.Duration(h.MaxClockSkew) {
		return rejectPath(TimestampInvalid, headerDate, fmt.Sprintf("Date is %s away from the server clock (max %s)",
			skew.Round(time.Second), time.Duration(h.MaxClockSkew)))
	}
	return nil
}

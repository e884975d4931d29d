package fpdu

import "fmt"

// Diag is a PeSIT diagnostic, carried in PI 2 as [type][reason u16 BE].
// The reason is the full three-digit code: 3-304 is 03 01 30.
type Diag struct {
	Type   byte   // DiagType*: the action the sender expects
	Reason uint16 // Reason*: 2xx file level, 3xx connection level
}

// DiagOK is the success diagnostic, 00 00 00.
var DiagOK = Diag{}

// Diagnostic types: what the receiver of a failure should do next.
const (
	DiagTypeNone      byte = 0 // success
	DiagTypeResync    byte = 1 // resynchronise
	DiagTypeRestart   byte = 2 // restart the transfer
	DiagTypeReconnect byte = 3 // reconnect
)

// File-level reason codes (reference §2.8).
const (
	ReasonInsufficientAttrs  uint16 = 200 // insufficient file characteristics
	ReasonSystemResources    uint16 = 201 // system resources insufficient
	ReasonUserResources      uint16 = 202 // user resources insufficient
	ReasonNonPriority        uint16 = 203 // non-priority transfer
	ReasonFileExists         uint16 = 204 // file already exists
	ReasonFileNotFound       uint16 = 205 // file not found
	ReasonDiskQuota          uint16 = 206 // disk quota exceeded
	ReasonFileBusy           uint16 = 207 // file busy
	ReasonFileTooOld         uint16 = 208 // file too old
	ReasonMessageRefused     uint16 = 209 // message type refused
	ReasonPresentation       uint16 = 210 // presentation negotiation failed
	ReasonCannotOpen         uint16 = 211 // cannot open file
	ReasonCannotClose        uint16 = 212 // cannot close file
	ReasonIOError            uint16 = 213 // I/O error
	ReasonRestartNegotiation uint16 = 214 // restart-point negotiation failed
	ReasonSystemError        uint16 = 215 // system error
	ReasonPrematureStop      uint16 = 216 // voluntary premature stop
	ReasonTooManySyn         uint16 = 217 // too many unacknowledged sync points
	ReasonResyncImpossible   uint16 = 218 // resynchronisation impossible
	ReasonSpaceExhausted     uint16 = 219 // file space exhausted
	ReasonArticleTooLong     uint16 = 220 // article too long
	ReasonEndTimer           uint16 = 221 // end-of-transfer timer expired
	ReasonTooMuchData        uint16 = 222 // too much data without sync point
	ReasonAbnormalEnd        uint16 = 223 // abnormal end of transfer
	ReasonFileTooBig         uint16 = 224 // file bigger than announced
	ReasonAppCongested       uint16 = 225 // application congested
	ReasonTransferRefused    uint16 = 226 // transfer refused
	ReasonOtherFile          uint16 = 299 // other file-level error
)

// Connection-level reason codes (RCONNECT, ABORT, RELEASE; reference §2.8).
const (
	ReasonLocalCongestion    uint16 = 300 // local congestion
	ReasonUnknownID          uint16 = 301 // requested identification unknown
	ReasonNotAttached        uint16 = 302 // not attached to SSAP
	ReasonRemoteCongestion   uint16 = 303 // remote congestion / too many connections
	ReasonUnauthorized       uint16 = 304 // requester not authorised
	ReasonSelectNegotiation  uint16 = 305 // SELECT negotiation failed
	ReasonResynNegotiation   uint16 = 306 // RESYN negotiation failed
	ReasonSyncNegotiation    uint16 = 307 // sync point negotiation failed
	ReasonVersionUnsupported uint16 = 308 // version not supported
	ReasonTooManyConnections uint16 = 309 // too many connections for this partner
	ReasonNetworkIncident    uint16 = 310 // network incident
	ReasonProtocolError      uint16 = 311 // remote PeSIT protocol error
	ReasonServiceClosed      uint16 = 312 // service closed by user
	ReasonIdleTimeout        uint16 = 313 // idle timer (Td) expired
	ReasonUnusedConnection   uint16 = 314 // unused connection cut
	ReasonNegotiationFailure uint16 = 315 // negotiation failure
	ReasonAdminCut           uint16 = 316 // cut by administrator
	ReasonTimerExpired       uint16 = 317 // timer expired
	ReasonBadParameter       uint16 = 318 // mandatory PI absent or illegal PI content
	ReasonWrongCount         uint16 = 319 // wrong byte or article count
	ReasonTooManyResyncs     uint16 = 320 // too many resynchronisations
	ReasonCallBackup         uint16 = 321 // call the backup number
	ReasonCallLater          uint16 = 322 // call back later
	ReasonOtherConnection    uint16 = 399 // other connection-level error
)

var reasonTexts = map[uint16]string{
	0:                        "success",
	ReasonInsufficientAttrs:  "insufficient file characteristics",
	ReasonSystemResources:    "system resources insufficient",
	ReasonUserResources:      "user resources insufficient",
	ReasonNonPriority:        "non-priority transfer",
	ReasonFileExists:         "file already exists",
	ReasonFileNotFound:       "file not found",
	ReasonDiskQuota:          "disk quota exceeded",
	ReasonFileBusy:           "file busy",
	ReasonFileTooOld:         "file too old",
	ReasonMessageRefused:     "message type refused",
	ReasonPresentation:       "presentation negotiation failed",
	ReasonCannotOpen:         "cannot open file",
	ReasonCannotClose:        "cannot close file",
	ReasonIOError:            "I/O error",
	ReasonRestartNegotiation: "restart-point negotiation failed",
	ReasonSystemError:        "system error",
	ReasonPrematureStop:      "voluntary premature stop",
	ReasonTooManySyn:         "too many unacknowledged sync points",
	ReasonResyncImpossible:   "resynchronisation impossible",
	ReasonSpaceExhausted:     "file space exhausted",
	ReasonArticleTooLong:     "article too long",
	ReasonEndTimer:           "end-of-transfer timer expired",
	ReasonTooMuchData:        "too much data without sync point",
	ReasonAbnormalEnd:        "abnormal end of transfer",
	ReasonFileTooBig:         "file bigger than announced",
	ReasonAppCongested:       "application congested",
	ReasonTransferRefused:    "transfer refused",
	ReasonOtherFile:          "other file-level error",
	ReasonLocalCongestion:    "local congestion",
	ReasonUnknownID:          "requested identification unknown",
	ReasonNotAttached:        "not attached to SSAP",
	ReasonRemoteCongestion:   "remote congestion",
	ReasonUnauthorized:       "requester not authorised",
	ReasonSelectNegotiation:  "SELECT negotiation failed",
	ReasonResynNegotiation:   "RESYN negotiation failed",
	ReasonSyncNegotiation:    "sync point negotiation failed",
	ReasonVersionUnsupported: "version not supported",
	ReasonTooManyConnections: "too many connections",
	ReasonNetworkIncident:    "network incident",
	ReasonProtocolError:      "remote PeSIT protocol error",
	ReasonServiceClosed:      "service closed by user",
	ReasonIdleTimeout:        "idle timer expired",
	ReasonUnusedConnection:   "unused connection cut",
	ReasonNegotiationFailure: "negotiation failure",
	ReasonAdminCut:           "cut by administrator",
	ReasonTimerExpired:       "timer expired",
	ReasonBadParameter:       "mandatory PI absent or illegal PI content",
	ReasonWrongCount:         "wrong byte or article count",
	ReasonTooManyResyncs:     "too many resynchronisations",
	ReasonCallBackup:         "call the backup number",
	ReasonCallLater:          "call back later",
	ReasonOtherConnection:    "other connection-level error",
}

// NewDiag returns the diagnostic for reason with the type PeSIT pairs with
// it: 3 for connection-level codes (3xx), 2 for file-level codes (2xx), 1
// for transmission errors (1-100).
func NewDiag(reason uint16) Diag {
	switch {
	case reason == 0:
		return DiagOK
	case reason <= 100:
		return Diag{DiagTypeResync, reason}
	case reason >= 300:
		return Diag{DiagTypeReconnect, reason}
	default:
		return Diag{DiagTypeRestart, reason}
	}
}

// ParseDiag decodes a 3-byte PI 2 value.
func ParseDiag(b []byte) (Diag, error) {
	if len(b) != 3 {
		return Diag{}, fmt.Errorf("decoding diagnostic: %d bytes, want 3: %w", len(b), ErrMalformed)
	}
	return Diag{Type: b[0], Reason: uint16(b[1])<<8 | uint16(b[2])}, nil
}

// OK reports whether d is the success diagnostic.
func (d Diag) OK() bool { return d == DiagOK }

// Bytes returns the 3-byte PI 2 value.
func (d Diag) Bytes() [3]byte { return [3]byte{d.Type, byte(d.Reason >> 8), byte(d.Reason)} }

// Param returns d as a PI 2 unit.
func (d Diag) Param() Param {
	b := d.Bytes()
	return Param{Code: PIDiagnostic, Value: b[:]}
}

// String returns the usual "type-reason" notation, e.g. "3-304".
func (d Diag) String() string { return fmt.Sprintf("%d-%03d", d.Type, d.Reason) }

// Text returns a short English explanation of the reason code, e.g.
// "requester not authorised".
func (d Diag) Text() string {
	if t, ok := reasonTexts[d.Reason]; ok {
		return t
	}
	if d.Reason >= 1 && d.Reason <= 100 {
		return "transmission error"
	}
	return fmt.Sprintf("unknown reason %d", d.Reason)
}

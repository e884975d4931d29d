package pesit

import (
	"time"

	"go.uber.org/zap"

	"github.com/bankedge/bankedge/modules/pesit/fpdu"
)

// transfer is the file transfer in progress in a session.
type transfer struct {
	write                         bool // CREATE: the partner sends; SELECT: it receives
	file, label                   string
	id                            uint64
	restart                       bool
	started                       time.Time
	seenBytes, seenArticles       uint64 // DTF data the gateway saw go by
	claimedBytes, claimedArticles uint64 // the requester's TRANS.END
	hasClaim                      bool
	// The server's answers that decide the outcome, nil until seen.
	transEnd, crf *fpdu.Diag
}

func (x *transfer) direction() string {
	if x.write {
		return "upload"
	}
	return "download"
}

// auditTransfer logs the start of a transfer (or its refusal).
func (s *session) auditTransfer(x *transfer, outcome string, diag fpdu.Diag, why string) {
	event := "pesit.select"
	if x.write {
		event = "pesit.create"
	}
	fields := []zap.Field{
		zap.String("partner", s.partner.PartnerID), zap.String("remote_ip", s.remote),
		zap.String("file", x.file), zap.Uint64("transfer_id", x.id), zap.String("direction", x.direction()),
		zap.Bool("restart", x.restart), zap.String("outcome", outcome), zap.String("diagnostic", diag.String()),
	}
	if x.label != "" {
		fields = append(fields, zap.String("label", x.label))
	}
	if why != "" {
		fields = append(fields, zap.String("reason", why))
	}
	s.h.audit.Info(event, fields...)
}

// auditTransEnd logs the end of a transfer's data phase, with the counts of
// the requester's TRANS.END and the server's ACK cross-checked against the
// data the gateway saw.
func (s *session) auditTransEnd(x *transfer, diag fpdu.Diag, serverBytes, serverArticles uint64) {
	s.mu.Lock()
	seenB, seenA := x.seenBytes, x.seenArticles
	claimB, claimA, hasClaim := x.claimedBytes, x.claimedArticles, x.hasClaim
	s.mu.Unlock()
	consistent := seenB == serverBytes && (!hasClaim || seenB == claimB) &&
		(serverArticles == 0 || seenA == serverArticles) && (!hasClaim || claimA == 0 || seenA == claimA)
	fields := []zap.Field{
		zap.String("partner", s.partner.PartnerID), zap.String("file", x.file), zap.Uint64("transfer_id", x.id),
		zap.String("direction", x.direction()),
		zap.Uint64("bytes", seenB), zap.Uint64("articles", seenA),
		zap.Uint64("requester_bytes", claimB), zap.Uint64("requester_articles", claimA),
		zap.Uint64("server_bytes", serverBytes), zap.Uint64("server_articles", serverArticles),
		zap.Bool("counts_match", consistent), zap.String("diagnostic", diag.String()),
		zap.Duration("duration", time.Since(x.started)),
	}
	if !consistent {
		s.h.audit.Warn("pesit.trans_end", fields...)
		return
	}
	s.h.audit.Info("pesit.trans_end", fields...)
}

// Transfer outcomes, in pesit.transfer_end.
const (
	// outcomeCompleted: the server acknowledged TRANS.END (and CRF, when
	// it came) without error.
	outcomeCompleted = "completed"
	// outcomeFailed: the server answered TRANS.END or CRF with an error.
	outcomeFailed = "failed"
	// outcomeAborted: an ABORT (by the partner, the upstream or the
	// gateway) ended the session first.
	outcomeAborted = "aborted"
	// outcomeInterrupted: the connection closed without RELEASE or ABORT
	// first.
	outcomeInterrupted = "interrupted"
	// outcomeIncomplete: deselected or released without TRANS.END.
	outcomeIncomplete = "incomplete"
)

// endTransfer logs the outcome of the transfer in progress, if any, once:
// every transfer the gateway let through ends with one pesit.transfer_end
// line, whatever ended it. how is the outcome when the server's answers
// do not decide it (they do once TRANS.END was acknowledged).
func (s *session) endTransfer(how string, diag fpdu.Diag, why string) {
	s.mu.Lock()
	x := s.xfer
	s.xfer = nil
	var seenB, seenA uint64
	if x != nil {
		seenB, seenA = x.seenBytes, x.seenArticles
	}
	s.mu.Unlock()
	if x == nil {
		return
	}
	outcome := how
	switch {
	case x.transEnd != nil && !x.transEnd.OK():
		outcome, diag = outcomeFailed, *x.transEnd
	case x.crf != nil && !x.crf.OK():
		outcome, diag = outcomeFailed, *x.crf
	case x.transEnd != nil:
		outcome, diag = outcomeCompleted, fpdu.DiagOK
	}
	fields := []zap.Field{
		zap.String("partner", s.partner.PartnerID), zap.String("remote_ip", s.remote),
		zap.String("file", x.file), zap.Uint64("transfer_id", x.id), zap.String("direction", x.direction()),
		zap.String("outcome", outcome), zap.Uint64("bytes", seenB), zap.Uint64("articles", seenA),
		zap.String("diagnostic", diag.String()), zap.Duration("duration", time.Since(x.started)),
	}
	if why != "" && outcome != outcomeCompleted {
		fields = append(fields, zap.String("reason", why))
	}
	if outcome == outcomeCompleted {
		s.h.audit.Info("pesit.transfer_end", fields...)
		return
	}
	s.h.audit.Warn("pesit.transfer_end", fields...)
}

// endWith logs the end of a session once, after the outcome of the
// transfer it interrupts.
func (s *session) endWith(event string, fields ...zap.Field) {
	s.mu.Lock()
	done := s.ended
	s.ended = true
	s.mu.Unlock()
	if !done {
		s.h.audit.Info(event, append(s.sessionFields(), fields...)...)
	}
}

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

// endWith logs the end of a session once.
func (s *session) endWith(event string, fields ...zap.Field) {
	s.mu.Lock()
	done := s.ended
	s.ended = true
	s.mu.Unlock()
	if !done {
		s.h.audit.Info(event, append(s.sessionFields(), fields...)...)
	}
}

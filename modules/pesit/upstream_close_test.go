package pesit

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/bankedge/bankedge/modules/ca/registry"
	"github.com/bankedge/bankedge/modules/pesit/fpdu"
)

// openSession is a session past CONNECT: accepted by the gateway and
// answered by the upstream, in prefixed framing.
func openSession(t *testing.T) (*session, *scriptConn, func() []string) {
	s, c, logs := scriptSession(t, &Handler{ServerID: "BANKEDGE"}, nil)
	s.clientPrefixed, s.accepted = true, true
	s.partner = registry.Partner{PartnerID: "P", AccessType: registry.AccessBoth}
	s.answered.Store(true)
	events := func() []string {
		var out []string
		for _, e := range logs.All() {
			out = append(out, e.Message)
		}
		return out
	}
	return s, c, events
}

// TestUpstreamGoneMidSession: an upstream that closes an open session
// leaves the partner an ABORT 3-310, not a bare TCP close.
func TestUpstreamGoneMidSession(t *testing.T) {
	s, c, events := openSession(t)
	_ = s.CloseWrite()
	f := answer(t, c)
	d, _ := f.Diag()
	if f.Type != fpdu.TypeAbort || d.Reason != fpdu.ReasonNetworkIncident {
		t.Fatalf("partner got %v %v, want ABORT 3-310", f.Type, d)
	}
	if ev := events(); len(ev) != 1 || ev[0] != "pesit.abort" {
		t.Fatalf("audit %v, want one pesit.abort", ev)
	}
	_ = s.CloseWrite() // the proxy calls it once; a second must not repeat the ABORT
	if n := len(events()); n != 1 {
		t.Fatalf("%d audit lines after a second CloseWrite", n)
	}
}

// TestUpstreamCloseAfterOrderlyEnd: after RELEASE/RELCONF, or when the
// partner left first, the upstream's close is normal and says nothing.
func TestUpstreamCloseAfterOrderlyEnd(t *testing.T) {
	s, c, events := openSession(t)
	s.endWith("pesit.release")
	_ = s.CloseWrite()
	if c.out.Len() != 0 || len(events()) != 1 {
		t.Fatalf("after RELCONF: partner got % x, audit %v", c.out.Bytes(), events())
	}

	s, c, events = openSession(t)
	_ = s.readError(io.EOF)
	_ = s.CloseWrite()
	if c.out.Len() != 0 || len(events()) != 0 {
		t.Fatalf("partner gone: partner got % x, audit %v", c.out.Bytes(), events())
	}
}

// TestUpstreamGoneDuringPreConnection: when the upstream closes before
// answering the gateway's own pre-connection, the partner gets one
// RCONNECT 3-310 and Read stops at once instead of after connect_timeout.
func TestUpstreamGoneDuringPreConnection(t *testing.T) {
	s, c, logs := scriptSession(t, &Handler{ServerID: "BANKEDGE"}, nil)
	s.clientPrefixed, s.accepted = true, true
	s.preAck = make(chan error, 1)
	s.connect = []byte("CONNECT waiting for ACK0")
	_ = s.CloseWrite()
	start := time.Now()
	if _, err := s.Read(make([]byte, 64)); !errors.Is(err, errSessionEnded) {
		t.Fatalf("Read: %v, want the session ended", err)
	}
	if waited := time.Since(start); waited > time.Second {
		t.Fatalf("Read waited %v for an upstream that is gone", waited)
	}
	f := answer(t, c)
	d, _ := f.Diag()
	if f.Type != fpdu.TypeRConnect || d.Reason != fpdu.ReasonNetworkIncident {
		t.Fatalf("partner got %v %v, want RCONNECT 3-310", f.Type, d)
	}
	if n := len(logs.All()); n != 1 {
		t.Fatalf("%d audit lines, want one refusal", n)
	}
}

package auditlog

import (
	"fmt"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func TestFeedKeepsTheLatest(t *testing.T) {
	f := &Feed{}
	l := zap.New(&feedCore{feed: f}).With(zap.String("user", "alice"))
	for i := range feedSize + 5 {
		l.Info("partner.update", zap.String("partner", fmt.Sprint("P", i)), zap.Int("n", i))
	}
	l.Debug("debug lines are not audit lines")
	got := f.Latest(3, nil)
	if len(got) != 3 || got[0].Str("partner") != fmt.Sprint("P", feedSize+4) || got[2].Str("partner") != fmt.Sprint("P", feedSize+2) {
		t.Fatalf("latest: %+v", got)
	}
	if got[0].Str("user") != "alice" || got[0].Action != "partner.update" {
		t.Fatalf("fields of With lost: %+v", got[0])
	}
	odd := f.Latest(feedSize, func(e Entry) bool { return e.Fields["n"].(int64)%2 == 1 })
	if len(odd) != feedSize/2 {
		t.Fatalf("%d filtered lines, want %d (the ring holds %d)", len(odd), feedSize/2, feedSize)
	}
	if (&feedCore{}).Enabled(zapcore.DebugLevel) {
		t.Fatal("debug enabled")
	}
}

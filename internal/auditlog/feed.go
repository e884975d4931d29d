package auditlog

import (
	"slices"
	"sync"
	"time"

	"go.uber.org/zap/zapcore"
)

// Entry is one audit line as the admin console shows it.
type Entry struct {
	// Time of the line.
	Time time.Time
	// Action is the line's message: "ca.revoke", "partner.create", …
	Action string
	// Fields are the line's fields ("user", "partner", "outcome", …).
	Fields map[string]any
}

// Str returns the field key as a string, "" when absent.
func (e Entry) Str(key string) string {
	if s, ok := e.Fields[key].(string); ok {
		return s
	}
	return ""
}

// feedSize is how many lines the feed keeps.
const feedSize = 2000

// Feed keeps the latest audit lines of this process in memory, for the
// admin console. The audit log proper (Caddy's log outputs, a SIEM) is the
// record; the feed only shows what happened lately on this instance.
type Feed struct {
	mu    sync.Mutex
	lines []Entry
	next  int
	full  bool
}

// Recent is the feed that every bankedge.audit logger writes to.
var Recent = &Feed{}

func (f *Feed) add(e Entry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lines == nil {
		f.lines = make([]Entry, feedSize)
	}
	f.lines[f.next] = e
	f.next = (f.next + 1) % feedSize
	if f.next == 0 {
		f.full = true
	}
}

// Latest returns up to n lines for which keep returns true (all when keep
// is nil), newest first.
func (f *Feed) Latest(n int, keep func(Entry) bool) []Entry {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Entry
	count := f.next
	if f.full {
		count = feedSize
	}
	for i := 1; i <= count && len(out) < n; i++ {
		e := f.lines[(f.next-i+feedSize)%feedSize]
		if keep == nil || keep(e) {
			out = append(out, e)
		}
	}
	return out
}

// feedCore is a zapcore.Core that copies entries into a Feed.
type feedCore struct {
	feed   *Feed
	fields []zapcore.Field
}

func (c *feedCore) Enabled(l zapcore.Level) bool { return l >= zapcore.InfoLevel }

func (c *feedCore) With(fields []zapcore.Field) zapcore.Core {
	return &feedCore{feed: c.feed, fields: append(slices.Clip(c.fields), fields...)}
}

func (c *feedCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *feedCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range slices.Concat(c.fields, fields) {
		f.AddTo(enc)
	}
	c.feed.add(Entry{Time: e.Time, Action: e.Message, Fields: enc.Fields})
	return nil
}

func (c *feedCore) Sync() error { return nil }

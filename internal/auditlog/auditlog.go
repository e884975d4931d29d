// Package auditlog gives bankedge modules loggers with fixed names, such as
// bankedge.audit, that Caddy's log configuration can route on their own:
//
//	log audit {
//		output file /var/log/bankedge/audit.log
//		include bankedge.audit
//	}
//
// Every line carries a "time" field in RFC 3339 (ISO 8601), UTC, with
// milliseconds, whatever the log's encoder does with its own timestamp
// (Caddy's json encoder writes Unix seconds as a float by default).
package auditlog

import (
	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// TimeLayout is the layout of the "time" field: RFC 3339 with milliseconds,
// in UTC.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// name stands in for a module: Caddy names a module's logger after its ID
// and routes it through every configured log whose include/exclude lists
// match, which is what an audit trail needs.
type name string

func (n name) CaddyModule() caddy.ModuleInfo { return caddy.ModuleInfo{ID: caddy.ModuleID(n)} }

// Logger returns the logger called loggerName in ctx's logging config.
// The lines of bankedge.audit are also kept in Recent, for the admin
// console.
func Logger(ctx caddy.Context, loggerName string) *zap.Logger {
	l := ctx.Logger(name(loggerName))
	if loggerName == "bankedge.audit" {
		l = l.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
			return zapcore.NewTee(c, &feedCore{feed: Recent})
		}))
	}
	return WithTime(l)
}

// WithTime returns l with the "time" field added to every line.
func WithTime(l *zap.Logger) *zap.Logger {
	return l.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return timeCore{c} }))
}

// timeCore adds the entry's time as the first field of each line.
type timeCore struct{ zapcore.Core }

func (c timeCore) With(fields []zapcore.Field) zapcore.Core { return timeCore{c.Core.With(fields)} }

func (c timeCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c timeCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	return c.Core.Write(e, append([]zapcore.Field{zap.String("time", e.Time.UTC().Format(TimeLayout))}, fields...))
}

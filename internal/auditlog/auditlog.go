// Package auditlog gives bankedge modules loggers with fixed names, such as
// bankedge.audit, that Caddy's log configuration can route on their own:
//
//	log audit {
//		output file /var/log/bankedge/audit.log
//		include bankedge.audit
//	}
package auditlog

import (
	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

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
	return l
}

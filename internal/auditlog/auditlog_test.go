package auditlog

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Issue 8, point 8: audit lines carried only a float Unix timestamp.
func TestTimeField(t *testing.T) {
	var buf bytes.Buffer
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()) // "ts" as float seconds
	l := WithTime(zap.New(zapcore.NewCore(enc, zapcore.AddSync(&buf), zapcore.InfoLevel))).With(zap.String("user", "admin"))
	l.Info("ca.revoke", zap.String("outcome", "revoked"))
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	s, _ := line["time"].(string)
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || len(s) != len("2006-01-02T15:04:05.000Z") || s[len(s)-1] != 'Z' {
		t.Fatalf("time field %q (%v); want RFC 3339 UTC with milliseconds", s, err)
	}
	if d := time.Since(ts); d < 0 || d > time.Minute || line["user"] != "admin" || line["outcome"] != "revoked" {
		t.Fatalf("line %v", line)
	}
}

package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestProgressTerminal: on a terminal one line is redrawn in place, at most every
// progressRedraw, and ended with the total and the time; a retry starts it again.
func TestProgressTerminal(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(0, 0)
	p := &progressLine{w: &buf, tty: true, verb: "pushing", what: "module sha256:0123456789ab", total: 4 << 20,
		start: now, now: func() time.Time { return now }}
	p.report(0)
	for i := int64(1); i <= 8; i++ {
		now = now.Add(30 * time.Millisecond)
		p.report(i << 19)
	}
	out := buf.String()
	if n := strings.Count(out, "\r\033[K"); n != 3 { // at 0, at 120ms, and the end
		t.Errorf("%d redraws, want 3:\n%q", n, out)
	}
	if !strings.HasSuffix(out, "\r\033[Kpushing module sha256:0123456789ab: 4MiB / 4MiB (100%) in 240ms\n") || strings.Count(out, "\n") != 1 {
		t.Errorf("end of the line:\n%q", out)
	}
	buf.Reset()
	p.report(4 << 20) // a late call after the end prints nothing
	p.report(0)       // a retry starts again
	if got := buf.String(); got != "\r\033[Kpushing module sha256:0123456789ab: 0B / 4MiB (0%)" {
		t.Errorf("after the end and a retry: %q", got)
	}
}

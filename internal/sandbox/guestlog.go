package sandbox

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
)

// Guest output is bounded per request: a guest that writes 100 MB to stdout costs the
// node a counter increment, not 100 MB of logs.
const (
	maxLogBytesPerRequest = 64 << 10
	maxLogLine            = 4 << 10
)

// guestLog is an instance's stdout or stderr. During a request it appends to the
// request's buffer (st is set by the goroutine that owns the instance). Outside one,
// during _initialize, it collects into its own buffer with the same bound, which
// endInit logs: a guest that floods its output while starting costs no more than one
// that floods it during a request.
type guestLog struct {
	f      *Function
	stream string
	st     *callState

	mu      sync.Mutex // guards init and started, for writes outside a request
	init    logBuffer
	started bool // endInit ran; later writes outside a request are logged at once
}

func (g *guestLog) Write(p []byte) (int, error) {
	if st := g.st; st != nil {
		st.logs.add(g.f, g.stream, p)
		return len(p), nil
	}
	g.mu.Lock()
	g.init.add(g.f, g.stream, p)
	if g.started {
		g.init.flush(context.Background(), g.f, "")
	}
	g.mu.Unlock()
	return len(p), nil
}

// endInit logs what the guest wrote while starting and reports whether that output
// says an allocation failed.
func (g *guestLog) endInit() (oom bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	oom = g.init.reportsOOM()
	g.init.flush(context.Background(), g.f, "")
	g.started = true
	return oom
}

type logLine struct {
	stream string
	text   []byte
}

// logBuffer collects one request's guest output as lines.
type logBuffer struct {
	lines   []logLine
	partial [2][]byte // per stream, an unterminated line
	size    int
	dropped int
}

func streamIndex(stream string) int {
	if stream == "stderr" {
		return 1
	}
	return 0
}

func (b *logBuffer) add(f *Function, stream string, p []byte) {
	room := maxLogBytesPerRequest - b.size
	if room <= 0 {
		b.dropped += len(p)
		return
	}
	if len(p) > room {
		b.dropped += len(p) - room
		p = p[:room]
	}
	b.size += len(p)
	si := streamIndex(stream)
	// p is a view of guest memory: appending to a nil partial copies it.
	for len(p) > 0 {
		end := bytes.IndexByte(p, '\n')
		if end < 0 {
			end = len(p)
		}
		if room := maxLogLine - len(b.partial[si]); end > room {
			// A line longer than maxLogLine is logged in maxLogLine pieces.
			b.lines = append(b.lines, logLine{stream, append(b.partial[si], p[:room]...)})
			b.partial[si] = nil
			p = p[room:]
			continue
		}
		if end == len(p) {
			b.partial[si] = append(b.partial[si], p...)
			return
		}
		b.lines = append(b.lines, logLine{stream, append(b.partial[si], p[:end]...)})
		b.partial[si] = nil
		p = p[end+1:]
	}
}

// oomMarkers are what language runtimes print when an allocation fails: Go's runtime
// ("fatal error: out of memory", "runtime: out of memory: cannot allocate ...") and
// Rust's std ("memory allocation of N bytes failed").
var oomMarkers = [][]byte{[]byte("out of memory"), []byte("memory allocation of ")}

// reportsOOM reports whether the collected stderr output mentions a failed allocation.
func (b *logBuffer) reportsOOM() bool {
	has := func(text []byte) bool {
		for _, m := range oomMarkers {
			if bytes.Contains(text, m) {
				return true
			}
		}
		return false
	}
	for _, l := range b.lines {
		if l.stream == "stderr" && has(l.text) {
			return true
		}
	}
	return has(b.partial[streamIndex("stderr")])
}

// flush writes the collected lines as structured log records and resets the buffer.
// A request whose guest wrote nothing (nearly all) costs a comparison: add counts
// every byte it keeps in size, and drops bytes only once size is at its bound, so a
// buffer with size 0 holds no line, no partial line and nothing dropped. (Small
// enough to be inlined at the call, unlike flushLines.)
func (b *logBuffer) flush(ctx context.Context, f *Function, requestID string) {
	if b.size != 0 {
		b.flushLines(ctx, f, requestID)
	}
}

func (b *logBuffer) flushLines(ctx context.Context, f *Function, requestID string) {
	for si, p := range b.partial {
		if len(p) > 0 {
			stream := "stdout"
			if si == 1 {
				stream = "stderr"
			}
			b.lines = append(b.lines, logLine{stream, p})
			b.partial[si] = nil
		}
	}
	for _, l := range b.lines {
		f.logger.LogAttrs(ctx, slog.LevelInfo, string(l.text),
			slog.String("source", "guest"), slog.String("stream", l.stream), slog.String("request_id", requestID))
	}
	if b.dropped > 0 {
		f.metrics.LogDropped(b.dropped)
		f.logger.LogAttrs(ctx, slog.LevelWarn, "guest output truncated",
			slog.String("source", "guest"), slog.String("request_id", requestID), slog.Int("dropped_bytes", b.dropped))
	}
	b.lines = b.lines[:0]
	b.size = 0
	b.dropped = 0
}

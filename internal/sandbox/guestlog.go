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
// request's buffer (st is set by the goroutine that owns the instance); outside one,
// during _initialize, it logs directly with the same bound.
type guestLog struct {
	f      *Function
	stream string
	st     *callState

	mu   sync.Mutex // guards init, for writes outside a request
	init logBuffer
}

func (g *guestLog) Write(p []byte) (int, error) {
	if st := g.st; st != nil {
		st.logs.add(g.f, g.stream, p)
		return len(p), nil
	}
	g.mu.Lock()
	g.init.add(g.f, g.stream, p)
	g.init.flush(context.Background(), g.f, "")
	g.mu.Unlock()
	return len(p), nil
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
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			b.partial[si] = append(b.partial[si], p...)
			if len(b.partial[si]) >= maxLogLine {
				b.lines = append(b.lines, logLine{stream, b.partial[si]})
				b.partial[si] = nil
			}
			return
		}
		line := append(b.partial[si], p[:i]...)
		b.partial[si] = nil
		b.lines = append(b.lines, logLine{stream, line})
		p = p[i+1:]
	}
}

// flush writes the collected lines as structured log records and resets the buffer.
func (b *logBuffer) flush(ctx context.Context, f *Function, requestID string) {
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

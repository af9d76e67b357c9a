package telemetry

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// BufferedWriter batches log writes: one write system call per request line would cost
// more than the request itself. Lines are flushed when 32 KiB are buffered, every
// interval, and on Close; a crash loses at most one interval of logs.
type BufferedWriter struct {
	mu   sync.Mutex // guards w
	w    *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

// NewBufferedWriter starts a writer that flushes to w at least every interval.
func NewBufferedWriter(w io.Writer, interval time.Duration) *BufferedWriter {
	b := &BufferedWriter{w: bufio.NewWriterSize(w, 32<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				b.Flush()
			case <-b.stop:
				return
			}
		}
	}()
	return b
}

// Write buffers p; slog handlers write one whole record per call. Writes are
// serialised: a line is never interleaved with another.
func (b *BufferedWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	n, err := b.w.Write(p)
	b.mu.Unlock()
	return n, err
}

func (*BufferedWriter) writesAtomically() {}

// Flush writes out what is buffered.
func (b *BufferedWriter) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.Flush()
}

// Close stops the flusher and flushes.
func (b *BufferedWriter) Close() error {
	select {
	case <-b.stop:
	default:
		close(b.stop)
	}
	<-b.done
	return b.Flush()
}

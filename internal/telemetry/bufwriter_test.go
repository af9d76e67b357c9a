package telemetry

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
)

func TestBufferedWriterFlushes(t *testing.T) {
	var out fermiontest.SyncBuffer
	w := NewBufferedWriter(&out, 10*time.Millisecond)
	w.Write([]byte("one\n"))
	deadline := time.Now().Add(5 * time.Second)
	for out.String() != "one\n" {
		if time.Now().After(deadline) {
			t.Fatal("line not flushed by the ticker")
		}
		time.Sleep(5 * time.Millisecond)
	}
	w.Write([]byte("two\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "one\ntwo\n" {
		t.Fatalf("after Close got %q", got)
	}
	w.Close() // idempotent
}

func TestBufferedWriterConcurrentLinesStayWhole(t *testing.T) {
	var out fermiontest.SyncBuffer
	w := NewBufferedWriter(&out, time.Hour)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 500; j++ {
				w.Write([]byte("0123456789abcdef\n"))
			}
		}()
	}
	wg.Wait()
	w.Close()
	for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		if line != "0123456789abcdef" {
			t.Fatalf("torn line %q", line)
		}
	}
}

// A logger over a BufferedWriter takes only the writer's lock; lines must stay whole.
func TestLoggerOverBufferedWriterLinesStayWhole(t *testing.T) {
	var out fermiontest.SyncBuffer
	w := NewBufferedWriter(&out, time.Hour)
	logger, err := NewLogger(w, "info")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 300; j++ {
				if j%2 == 0 {
					logger.Info("line", "i", i, "j", j)
				} else {
					LogRequest(context.Background(), logger, &RequestLine{ID: "id", Method: "GET", Path: "/p", Status: 200})
				}
			}
		}()
	}
	wg.Wait()
	w.Close()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 8*300 {
		t.Fatalf("%d lines, want %d", len(lines), 8*300)
	}
	for _, line := range lines {
		if !json.Valid([]byte(line)) {
			t.Fatalf("torn line %q", line)
		}
	}
}

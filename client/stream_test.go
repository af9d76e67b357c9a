package client

import (
	"strings"
	"testing"

	v1 "fermion.dev/fermion/api/v1"
)

// FuzzReadEvents: no stream a server sends makes the reader panic or hand fn an event
// from more than one line.
func FuzzReadEvents(f *testing.F) {
	f.Add("{\"seq\":1,\"type\":\"started\",\"message\":\"m\"}\n\n{\"seq\":2}\n")
	f.Add("\n\n\n")
	f.Add("{\"seq\":1}")
	f.Add("{\"seq\":\"x\"}\n")
	f.Add(strings.Repeat("x", 70000) + "\n")
	f.Fuzz(func(t *testing.T, s string) {
		n := 0
		readEvents(strings.NewReader(s), func(v1.Event) error { n++; return nil })
		if lines := strings.Count(s, "\n") + 1; n > lines {
			t.Fatalf("%d events from %d lines", n, lines)
		}
	})
}

package sandbox

import (
	"bytes"
	"testing"
)

// FuzzLogBuffer writes arbitrary output in arbitrary pieces: lines never exceed
// maxLogLine, nothing is lost below the per-request cap, and what is over it is counted.
func FuzzLogBuffer(f *testing.F) {
	f.Add([]byte("hello\nworld\n"), []byte{3, 1, 200})
	f.Add(bytes.Repeat([]byte("x"), 9000), []byte{0})
	f.Add(bytes.Repeat([]byte("ab\n"), 30000), []byte{7, 255})
	f.Add([]byte("\n"), []byte{})
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, out []byte, cuts []byte) {
		var b logBuffer
		rest, i := out, 0
		for len(rest) > 0 {
			n := len(rest)
			if len(cuts) > 0 {
				n = min(n, int(cuts[i%len(cuts)])*64+1)
				i++
			}
			piece := append([]byte(nil), rest[:n]...)
			b.add(nil, "stdout", piece)
			for j := range piece { // the guest reuses its memory
				piece[j] = '#'
			}
			rest = rest[n:]
		}
		kept := min(len(out), maxLogBytesPerRequest)
		if b.dropped != len(out)-kept {
			t.Fatalf("dropped %d, want %d", b.dropped, len(out)-kept)
		}
		var got []byte
		for _, l := range b.lines {
			if len(l.text) > maxLogLine {
				t.Fatalf("line of %d bytes", len(l.text))
			}
			if l.stream != "stdout" {
				t.Fatalf("stream %q", l.stream)
			}
			got = append(got, l.text...)
		}
		if len(b.partial[0]) > maxLogLine || len(b.partial[1]) != 0 {
			t.Fatalf("partials %d %d", len(b.partial[0]), len(b.partial[1]))
		}
		// flush skips a buffer whose size is 0: it must then hold nothing to log.
		empty := len(b.lines) == 0 && len(b.partial[0]) == 0 && len(b.partial[1]) == 0 && b.dropped == 0
		if (b.size == 0) != empty {
			t.Fatalf("size %d with %d lines, partials %d %d, dropped %d", b.size, len(b.lines),
				len(b.partial[0]), len(b.partial[1]), b.dropped)
		}
		got = append(got, b.partial[0]...)
		if want := bytes.ReplaceAll(out[:kept], []byte("\n"), nil); !bytes.Equal(got, want) {
			t.Fatalf("logged %q, want %q", got, want)
		}
	})
}

package fleet

import (
	"bytes"
	"testing"
)

// TestDetailBuf checks that put, each and dropThrough keep entries in order, merge on
// an equal start (keeping the later end), and survive odd gaps and lengths.
func TestDetailBuf(t *testing.T) {
	const ws = int64(1_000_000_000_000)
	type ent struct {
		start, end int64
		b          string
	}
	for _, tt := range []struct {
		name  string
		puts  []ent
		floor int64
		want  []ent // after the puts
		kept  []ent // after dropThrough(floor)
		last  int64
	}{
		{"regular", []ent{{ws, ws + 10, "a"}, {ws + 10, ws + 20, "b"}, {ws + 20, ws + 30, "c"}}, ws + 10,
			[]ent{{ws, ws + 10, "a"}, {ws + 10, ws + 20, "b"}, {ws + 20, ws + 30, "c"}}, []ent{{ws + 20, ws + 30, "c"}}, ws + 20},
		{"out of order and merged", []ent{{ws + 20, ws + 30, "c"}, {ws, ws + 10, "a"}, {ws, ws + 12, "A"}}, ws - 1,
			[]ent{{ws, ws + 12, "aA"}, {ws + 20, ws + 30, "c"}}, []ent{{ws, ws + 12, "aA"}, {ws + 20, ws + 30, "c"}}, 0},
		{"gaps, odd lengths, overlap", []ent{{ws + 5, ws + 7, "x"}, {ws + 6, ws + 1_000_000, ""}, {ws + 900, ws + 901, "yz"}}, ws + 900,
			[]ent{{ws + 5, ws + 7, "x"}, {ws + 6, ws + 1_000_000, ""}, {ws + 900, ws + 901, "yz"}}, nil, ws + 901},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var d detailBuf
			for _, p := range tt.puts {
				d = d.put(ws, p.start, p.end, func(old []byte) []byte { return append(append([]byte{}, old...), p.b...) })
			}
			check := func(d detailBuf, want []ent) {
				t.Helper()
				es := d.entries(ws)
				if len(es) != len(want) || d.len(ws) != len(want) {
					t.Fatalf("%d entries, want %d", len(es), len(want))
				}
				for i, e := range es {
					if e.start != want[i].start || e.end != want[i].end || !bytes.Equal(e.b, []byte(want[i].b)) {
						t.Fatalf("entry %d = (%d, %d, %q), want %+v", i, e.start-ws, e.end-ws, e.b, want[i])
					}
				}
			}
			check(d, tt.want)
			kept, last := d.dropThrough(ws, tt.floor)
			check(kept, tt.kept)
			if last != tt.last {
				t.Fatalf("last dropped end %d, want %d", last, tt.last)
			}
		})
	}
}

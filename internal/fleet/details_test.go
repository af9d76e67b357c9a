package fleet

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"sort"
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

// TestDetailBufAgreesWithAList puts random intervals (mostly in order, some out of
// order, some merges changing the end) and checks the buffer against a plain sorted
// list after every put.
func TestDetailBufAgreesWithAList(t *testing.T) {
	const ws = int64(7_000_000_000_000)
	type ent struct {
		start, end int64
		b          []byte
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 200 {
		var d detailBuf
		var ref []ent
		next := ws
		for p := range 40 {
			var start int64
			switch r := rng.IntN(10); {
			case r < 6 || len(ref) == 0: // the next interval
				start = next
				next += 10
			case r < 8: // an earlier one again (a merge) or a gap filled
				start = ws + int64(rng.IntN(int(next-ws)+1))
			default: // before everything
				start = ws - int64(rng.IntN(50))
			}
			end := start + 1 + int64(rng.IntN(20))
			payload := bytes.Repeat([]byte{byte(p)}, rng.IntN(200))
			d = d.put(ws, start, end, func(old []byte) []byte { return append(append([]byte{}, old...), payload...) })
			i := sort.Search(len(ref), func(i int) bool { return ref[i].start >= start })
			if i < len(ref) && ref[i].start == start {
				ref[i].end = max(ref[i].end, end)
				ref[i].b = append(ref[i].b, payload...)
			} else {
				ref = slices.Insert(ref, i, ent{start, end, append([]byte{}, payload...)})
			}
			es := d.entries(ws)
			if len(es) != len(ref) {
				t.Fatalf("round %d put %d: %d entries, want %d", round, p, len(es), len(ref))
			}
			for k, e := range es {
				if e.start != ref[k].start || e.end != ref[k].end || !bytes.Equal(e.b, ref[k].b) {
					t.Fatalf("round %d put %d: entry %d = (%d, %d, %d bytes), want (%d, %d, %d bytes)",
						round, p, k, e.start-ws, e.end-ws, len(e.b), ref[k].start-ws, ref[k].end-ws, len(ref[k].b))
				}
			}
		}
	}
}

package fleet

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"fermion.dev/fermion/internal/sli"
)

// TestSketchForms pins that every form of the store's sketch encoding round-trips
// bucket by bucket, and which form each kind of sketch takes.
func TestSketchForms(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	interval := &sli.Sketch{} // a 10-s interval: few requests a bucket
	for range 100 {
		interval.Add(time.Duration(300e3 * (1 + rng.ExpFloat64())))
	}
	interval.Add(20 * time.Millisecond) // a cold start far from the rest
	hour := &sli.Sketch{}               // a group hour: a smooth histogram of many
	for range 200_000 {
		hour.Add(time.Duration(300e3 * (1 + rng.ExpFloat64())))
	}
	huge := &sli.Sketch{} // counts past the bit form's bound
	huge.AddN(time.Millisecond, maxBitCount)
	huge.AddN(2*time.Millisecond, 3)
	edges := &sli.Sketch{}
	edges.AddN(0, 5)
	edges.Add(sli.MinTrackable)
	edges.Add(sli.MaxTrackable)
	one := &sli.Sketch{}
	one.Add(time.Millisecond)
	for _, tt := range []struct {
		name  string
		sk    *sli.Sketch
		delta bool // the form chosen codes counts as differences
		pairs bool
	}{
		{"empty", &sli.Sketch{}, false, false},
		{"zero bucket only", func() *sli.Sketch { s := &sli.Sketch{}; s.AddN(0, 9); return s }(), false, false},
		{"one bucket", one, false, false},
		{"interval", interval, false, false},
		{"hour", hour, true, false},
		{"range ends", edges, false, false},
		{"huge counts", huge, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := appendSketch(nil, tt.sk)
			got := &sli.Sketch{}
			mergeSketch(got, b)
			if !got.Equal(tt.sk) {
				t.Fatalf("round trip: got n=%d p99=%v, want n=%d p99=%v", got.Count(), got.Quantile(.99), tt.sk.Count(), tt.sk.Quantile(.99))
			}
			var h [4]uint64
			rest := uvarints(b, h[:])
			if h[3] == 0 {
				if len(rest) != 0 {
					t.Fatalf("%d bytes after a header with no buckets", len(rest))
				}
				return
			}
			form := rest[0]
			if pairs := form == formPairs; pairs != tt.pairs {
				t.Errorf("form %#x: pairs %v, want %v", form, pairs, tt.pairs)
			}
			if delta := form != formPairs && form&formDelta != 0; delta != tt.delta {
				t.Errorf("form %#x: delta %v, want %v", form, delta, tt.delta)
			}
			if std := len(tt.sk.AppendBinary(nil)); !tt.pairs && len(b) > std+1 {
				t.Errorf("%d bytes, more than AppendBinary's %d and the form byte", len(b), std)
			}
		})
	}
}

// TestSketchBytesPerInterval pins the sizes that keep the detail tier in budget: a
// hello-like 10-s interval (100 requests, an instance start) stored in at most 72
// bytes, its sketch in at most 48, headers included (bench/RESULTS.md, "Fleet SLI
// store at steady state").
func TestSketchBytesPerInterval(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	var sketches, stored int
	for range 32 {
		s := sli.Summary{Seq: sli.SeqFor(t0, iv), Latency: &sli.Sketch{}, MemoryMaxBytes: 2 << 20,
			CPUTime: 30 * time.Millisecond, InstanceStarts: map[string]uint64{"scale": 1}}
		for range 100 {
			d := time.Duration(300e3 * math.Exp(0.4*rng.NormFloat64()))
			if rng.IntN(100) == 0 {
				d += 20 * time.Millisecond
				s.ColdStarts++
			}
			s.Latency.Add(d)
			s.Status[1]++
		}
		sketches += len(appendSketch(nil, s.Latency))
		stored += len(pack(&s).b)
	}
	if avg := sketches / 32; avg > 48 {
		t.Errorf("%d bytes per interval sketch, want ≤ 48", avg)
	}
	if avg := stored / 32; avg > 72 {
		t.Errorf("%d bytes per stored interval, want ≤ 72", avg)
	}
}

// FuzzSketchRoundTrip builds sketches from arbitrary (bucket, count) pairs and checks
// that the store's form gives them back exactly, and that decoding arbitrary bytes as
// that form never panics.
func FuzzSketchRoundTrip(f *testing.F) {
	f.Add([]byte{0, 1, 1, 1, 2, 200, 255, 255, 3})
	f.Add([]byte{9, 0, 0, 0, 0, 0, 0, 1, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		sk := &sli.Sketch{}
		for len(data) >= 3 {
			// A duration across the trackable range and a count up to 2⁵⁰.
			d := time.Duration(1) << (data[0] % 41)
			d += time.Duration(data[1]) * d / 256
			n := uint64(data[2])
			if data[2]&0x80 != 0 {
				n <<= data[0] % 43
			}
			sk.AddN(d, max(n, 1))
			data = data[3:]
		}
		got := &sli.Sketch{}
		mergeSketch(got, appendSketch(nil, sk))
		if !got.Equal(sk) {
			t.Fatalf("round trip: got n=%d, want n=%d", got.Count(), sk.Count())
		}
		junk := binary.AppendUvarint(nil, 1)
		junk = append(junk, data...)
		mergeSketch(&sli.Sketch{}, junk)
	})
}

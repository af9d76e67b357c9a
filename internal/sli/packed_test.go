package sli

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestMergeBinaryEqualsMerge: merging an encoded sketch equals merging the sketch.
func TestMergeBinaryEqualsMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 10, 1000} {
		a, b := &Sketch{}, &Sketch{}
		for range n {
			a.Add(time.Duration(rng.ExpFloat64() * 1e6))
			b.Add(time.Duration(rng.ExpFloat64() * 3e6))
		}
		b.Add(0)
		want := a.Clone()
		want.Merge(b)
		got := a.Clone()
		if err := got.MergeBinary(b.AppendBinary(nil)); err != nil {
			t.Fatal(err)
		}
		if !got.Equal(want) || got.Count() != want.Count() {
			t.Fatalf("n=%d: MergeBinary differs from Merge", n)
		}
		enc := b.AppendBinary(nil)
		if err := got.MergeBinary(enc[:len(enc)-1]); err == nil || !got.Equal(want) {
			t.Fatalf("n=%d: a truncated sketch merged (%v) or changed the sketch", n, err)
		}
	}
}

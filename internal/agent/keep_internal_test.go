package agent

import (
	"maps"
	"slices"
	"strings"
	"testing"

	v1 "fermion.dev/fermion/api/v1"
)

func TestKeepPins(t *testing.T) {
	d := func(c string) string { return "sha256:" + strings.Repeat(c, 64) }
	want := map[string]v1.Assignment{
		"hello": {Deployment: "hello", Version: v1.Version{Digest: d("a")}, Keep: []string{d("b"), d("c"), d("d")}},
		"web":   {Deployment: "web", Version: v1.Version{Digest: d("e")}},
		"bad":   {Deployment: "bad", Version: v1.Version{Digest: d("f")}, Keep: []string{"sha256:xyz", "../../etc", d("A")}},
	}
	for _, tc := range []struct {
		name string
		keep int
		pins []string
	}{
		{"only what runs", 1, []string{d("a"), d("e"), d("f")}},
		{"the previous revision too", 2, []string{d("a"), d("b"), d("e"), d("f")}},
		{"three revisions", 3, []string{d("a"), d("b"), d("c"), d("e"), d("f")}},
		{"more than are kept", 10, []string{d("a"), d("b"), d("c"), d("d"), d("e"), d("f")}},
		{"zero is only what runs", 0, []string{d("a"), d("e"), d("f")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := slices.Sorted(maps.Keys(keepPins(want, tc.keep)))
			if !slices.Equal(got, tc.pins) {
				t.Errorf("keep %d pins %v, want %v", tc.keep, got, tc.pins)
			}
		})
	}
}

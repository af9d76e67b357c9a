package v1

import "testing"

func TestCount(t *testing.T) {
	for _, tt := range []struct {
		n    int
		noun string
		want string
	}{
		{0, "deployment", "0 deployments"},
		{1, "deployment", "1 deployment"},
		{2, "deployment", "2 deployments"},
		{1, "policy", "1 policy"},
		{3, "policy", "3 policies"},
		{2, "key", "2 keys"},
		{2, "batch", "2 batches"},
		{2, "bus", "2 buses"},
		{2, "box", "2 boxes"},
		{2, "mesh", "2 meshes"},
		{-1, "node", "-1 nodes"},
		{5, "", "5 "},
	} {
		if got := Count(tt.n, tt.noun); got != tt.want {
			t.Errorf("Count(%d, %q) = %q, want %q", tt.n, tt.noun, got, tt.want)
		}
	}
	if got := Count(int64(1), "byte"); got != "1 byte" {
		t.Errorf("Count(int64(1), byte) = %q", got)
	}
	if got := Count(uint64(10), "object"); got != "10 objects" {
		t.Errorf("Count(uint64(10), object) = %q", got)
	}
}

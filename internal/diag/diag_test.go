package diag

import "testing"

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"name", "name", 0},
		{"nmae", "name", 1},
		{"nam", "name", 1},
		{"limit", "limits", 1},
		{"memry", "memory", 1},
		{"abc", "xyz", 3},
	}
	for _, tt := range tests {
		t.Run(tt.a+"-"+tt.b, func(t *testing.T) {
			if got := EditDistance(tt.a, tt.b); got != tt.want {
				t.Errorf("EditDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

func TestClosest(t *testing.T) {
	known := []string{"name", "version", "labels"}
	for _, tc := range []struct{ in, want string }{
		{"nmae", "name"}, {"Versoin", "version"}, {"colour", ""},
	} {
		if got := Closest(tc.in, known); got != tc.want {
			t.Errorf("Closest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestProblemString(t *testing.T) {
	for _, tc := range []struct {
		p    Problem
		want string
	}{
		{Problem{File: "f.toml", Line: 3, Col: 1, Field: "app.nmae", Msg: "unknown field"}, "f.toml:3:1: app.nmae: unknown field"},
		{Problem{File: "f.toml", Field: "app.name", Msg: "required"}, "f.toml: app.name: required"},
		{Problem{Msg: "bare"}, "bare"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestSortPutsUnpositionedLast(t *testing.T) {
	ps := []Problem{{Msg: "missing"}, {Line: 9, Msg: "b"}, {Line: 2, Col: 5, Msg: "a2"}, {Line: 2, Col: 1, Msg: "a1"}}
	Sort(ps)
	got := ""
	for _, p := range ps {
		got += p.Msg + " "
	}
	if got != "a1 a2 b missing " {
		t.Fatalf("order %q", got)
	}
}

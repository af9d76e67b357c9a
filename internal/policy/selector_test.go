package policy

import (
	"strings"
	"testing"
)

func TestSelector(t *testing.T) {
	eu := map[string]string{"region": "eu-west", "zone": "a", "tier": "edge"}
	us := map[string]string{"region": "us-east", "zone": "b"}
	cases := []struct {
		name, src string
		eu, us    bool
	}{
		{"equality", `region == "eu-west"`, true, false},
		{"and", `region == "eu-west" && zone == "a"`, true, false},
		{"in list", `zone in ["a", "b"]`, true, true},
		{"missing label does not match", `tier == "edge"`, true, false},
		{"negation of missing label does not match", `tier != "edge"`, false, false},
		{"string functions", `region.startsWith("us-")`, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := CompileSelector(c.src)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Match(eu); got != c.eu {
				t.Errorf("eu: got %v want %v", got, c.eu)
			}
			if got := s.Match(us); got != c.us {
				t.Errorf("us: got %v want %v", got, c.us)
			}
		})
	}
	for _, bad := range []struct{ src, want string }{
		{`region ==`, "Syntax error"},
		{`region`, "want a bool"},
		{`region == 1`, "no matching overload"},
		{strings.Repeat("a", 5000), "longer than"},
	} {
		if _, err := CompileSelector(bad.src); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: got %v, want an error containing %q", bad.src, err, bad.want)
		}
	}
}

func FuzzSelector(f *testing.F) {
	f.Add(`region == "eu-west" && zone in ["a"]`)
	f.Add(`x.startsWith("y") || !(z == "")`)
	f.Fuzz(func(t *testing.T, src string) {
		s, err := CompileSelector(src)
		if err != nil {
			return
		}
		s.Match(map[string]string{"region": "eu-west", "x": "y", "z": ""})
	})
}

package policy

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
)

func placementPolicy(exprs ...string) string {
	var b strings.Builder
	b.WriteString("apiVersion: fermion.dev/v1\nkind: Policy\nmetadata: {name: p}\nspec:\n  target: placement\n  constraints:\n")
	for i, e := range exprs {
		fmt.Fprintf(&b, "    - name: c%d\n      expression: %q\n", i, e)
	}
	return b.String()
}

func TestReadsOfNode(t *testing.T) {
	tests := []struct {
		expr   string
		labels []string // nil with ok false: not memoizable
		caps   [3]bool
		ok     bool
	}{
		{`node.labels.region == "eu"`, []string{"region"}, [3]bool{}, true},
		{`node.labels["region"] == "eu"`, []string{"region"}, [3]bool{}, true},
		{`node.labels.?region.orValue("") == "eu"`, []string{"region"}, [3]bool{}, true},
		{`node.labels[?"zone"].hasValue()`, []string{"zone"}, [3]bool{}, true},
		{`has(node.labels.tier) && "gpu" in node.labels`, []string{"tier", "gpu"}, [3]bool{}, true},
		{`node.capacity.memory > 1 && node.capacity.instances > 2 && has(node.capacity.milli_cpu)`, nil, [3]bool{true, true, true}, true},
		{`app.labels.?x.orValue("") == node.labels.?x.orValue("")`, []string{"x"}, [3]bool{}, true},
		{`[1, 2].exists(i, node.capacity.instances == i)`, nil, [3]bool{false, false, true}, true},
		{`true`, nil, [3]bool{}, true},
		{`node.name.startsWith("edge-")`, nil, [3]bool{}, false},
		{`size(node.labels) > 2`, nil, [3]bool{}, false},
		{`node.labels.exists(k, k == "a")`, nil, [3]bool{}, false},
		{`node.labels[app.name] == "x"`, nil, [3]bool{}, false},
		{`app.name in node.labels`, nil, [3]bool{}, false},
		{`has(node.labels)`, nil, [3]bool{}, false},
		{`[node].size() == 1`, nil, [3]bool{}, false},
		{`[node.labels].size() == 1`, nil, [3]bool{}, false},
		{`node.labels.a == "" && node.labels.b == "" && node.labels.c == "" && node.labels.d == "" && node.labels.e == ""`, nil, [3]bool{}, false},
		{`cel.bind(node, 1, node == 1)`, nil, [3]bool{}, false},
		{`[1].all(node, node > 0)`, nil, [3]bool{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			s, err := NewSet(Options{}, mustParse(t, placementPolicy(tt.expr)))
			if err != nil {
				t.Fatal(err)
			}
			r := s.all[0].constraints[0].reads
			if (r != nil) != tt.ok {
				t.Fatalf("memoizable = %v, want %v (%+v)", r != nil, tt.ok, r)
			}
			if r != nil && (!slices.Equal(r.labels, tt.labels) || r.caps != tt.caps) {
				t.Errorf("reads %v %v, want %v %v", r.labels, r.caps, tt.labels, tt.caps)
			}
		})
	}
}

// A remembered result is always the one evaluating the expression gives.
func TestMemoMatchesEvaluation(t *testing.T) {
	exprs := []string{
		`node.labels.?region.orValue("") in ["eu-west", "eu-central"]`,
		`node.labels.region == "eu-west"`, // errors when absent
		`has(node.labels.gpu) == ("gpu" in app.labels)`,
		`node.capacity.memory >= 2 * 1024 && node.labels.?tier.orValue("edge") == "edge"`,
		`node.capacity.instances > 2 ? node.labels.?zone.orValue("") != "b" : false`,
	}
	s, err := NewSet(Options{}, mustParse(t, placementPolicy(exprs...)))
	if err != nil {
		t.Fatal(err)
	}
	for i := range exprs {
		if s.all[0].constraints[i].reads == nil {
			t.Fatalf("%s is not memoizable", exprs[i])
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(vs ...string) string { return vs[rng.IntN(len(vs))] }
	for _, app := range []AppInput{{}, {Labels: map[string]string{"gpu": "yes"}}} {
		cs, _ := s.Placement(app)
		var nodes []NodeInput
		for i := range 500 {
			n := NodeInput{Name: fmt.Sprint("n", i), Labels: map[string]string{}, Capacity: Capacity{Memory: int64(rng.IntN(4)) * 1024, Instances: int64(rng.IntN(5))}}
			for _, k := range []string{"region", "tier", "zone", "gpu"} {
				if v := pick("", "eu-west", "eu-central", "edge", "b"); v != "" {
					n.Labels[k] = v
				}
			}
			nodes = append(nodes, n)
		}
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range nodes {
					for _, c := range cs {
						k := c.(*celConstraint)
						want := k.match(&nodes[j])
						if ok, reason := c.Match(&nodes[j]); ok != want.ok || reason != want.reason {
							t.Errorf("%s on %v: memo %v %q, evaluation %v %q", k.c.prog.text, nodes[j].Labels, ok, reason, want.ok, want.reason)
							return
						}
					}
				}
			}()
		}
		wg.Wait()
	}
}

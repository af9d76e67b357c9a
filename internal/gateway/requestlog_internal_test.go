package gateway

import "testing"

// TestLineWeightsKeptAcrossTables: a new routing table keeps the request log's weights
// of the keys it still serves (a canary's weight step, a redeploy of other routes), so
// the requests skipped before it are still carried by a later line; a key it no longer
// serves is let go.
func TestLineWeightsKeptAcrossTables(t *testing.T) {
	a, b := &fakeTarget{name: "a"}, &fakeTarget{name: "b"}
	g := New(Config{Telemetry: true})
	if err := g.SetRoutes([]Route{{Prefix: "/a", Target: a}, {Prefix: "/b", Target: b}}); err != nil {
		t.Fatal(err)
	}
	first := g.table.Load()
	wa, wb := first.routes[0].tel.lines, first.routes[1].tel.lines
	if wa == nil || wb == nil || wa == wb {
		t.Fatalf("weights %p and %p: want one per key", wa, wb)
	}
	if err := g.SetRoutes([]Route{{Prefix: "/a", Target: a}, {Host: "x.example.com", Prefix: "/a", Target: a}}); err != nil {
		t.Fatal(err)
	}
	second := g.table.Load()
	if second.routes[0].tel.lines != wa && second.routes[1].tel.lines != wa {
		t.Fatal("the key /a got new weights in the new table: its skipped requests are lost")
	}
	if len(g.weights) != 2 {
		t.Fatalf("gateway keeps %d keys' weights, want the new table's 2", len(g.weights))
	}
	for k := range g.weights {
		if k.Route == "/b" {
			t.Fatal("the weights of a key no table serves are kept")
		}
	}

	t.Run("telemetry off", func(t *testing.T) {
		g := New(Config{Telemetry: false})
		if err := g.SetRoutes([]Route{{Prefix: "/a", Target: a}}); err != nil {
			t.Fatal(err)
		}
		if g.table.Load().routes[0].tel.lines != nil || g.weights != nil {
			t.Fatal("weights made with telemetry off")
		}
	})
}

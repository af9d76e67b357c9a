package controlplane_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/artifact"
)

// TestAdmissionClaimsWhatItChecked deploys more deployments with the same routes than
// there are nodes to serve them, back to back and at once: exactly as many as there
// are nodes are admitted, every one of them is placed, and the others are refused as
// unplaceable with nothing written.
func TestAdmissionClaimsWhatItChecked(t *testing.T) {
	for _, tc := range []struct {
		name       string
		concurrent bool
	}{
		{"back to back, before the first is placed", false},
		{"at once", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet(t, map[string]map[string]string{"edge-1": {"zone": "a"}, "edge-2": {"zone": "b"}})
			ctx := context.Background()
			image := f.p.PushExample(t, "hello", "1.0.0", artifact.Meta{})
			const n = 6
			errs := make([]error, n)
			deploy := func(i int) {
				_, _, errs[i] = f.c.PutDeployment(ctx, fmt.Sprintf("hello-%d", i), v1.DeploymentSpec{Image: image, Nodes: 1}, client.CreateOnly())
			}
			if tc.concurrent {
				var wg sync.WaitGroup
				for i := range n {
					wg.Go(func() { deploy(i) })
				}
				wg.Wait()
			} else {
				for i := range n {
					deploy(i)
				}
			}
			var admitted []string
			for i, err := range errs {
				name := fmt.Sprintf("hello-%d", i)
				switch {
				case err == nil:
					admitted = append(admitted, name)
				case client.IsCode(err, v1.CodeUnplaceable):
					if _, err := f.c.GetDeployment(ctx, name); !client.IsCode(err, v1.CodeNotFound) {
						t.Errorf("refused %s was written: %v", name, err)
					}
				default:
					t.Errorf("%s: %v", name, err)
				}
			}
			t.Logf("admitted %d of %d: %v", len(admitted), n, admitted)
			if len(admitted) != 2 {
				t.Fatalf("admitted %v; two nodes serve two deployments of these routes", admitted)
			}
			var nodes []string
			for _, name := range admitted {
				nodes = append(nodes, placed(f.waitConverged(t, name, 15*time.Second))...)
			}
			slices.Sort(nodes)
			if !slices.Equal(nodes, []string{"edge-1", "edge-2"}) {
				t.Fatalf("admitted deployments placed on %v", nodes)
			}
		})
	}
}

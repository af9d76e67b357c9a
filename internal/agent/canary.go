package agent

import (
	"context"
	"fmt"
	"slices"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/gateway"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/telemetry"
)

// A deployment's canary runs beside its stable version under the same name: loaded and
// prewarmed before it takes any weight, its share of every route's requests set by
// swapping the gateway's routing table (atomic for all routes), removed by draining it
// as a replaced version drains, and promoted by making its already warm function the
// stable one, so a promotion starts no instance.

type canary struct {
	fn     *sandbox.Function
	weight int    // basis points, 0–gateway.MaxWeight
	sticky string // "", header:NAME or cookie:NAME
}

// split is dep's gateway split, nil without a canary.
func (dep *deployed) split() *gateway.Split {
	if dep.canary == nil {
		return nil
	}
	return &gateway.Split{Target: dep.canary.fn, Weight: dep.canary.weight, Sticky: dep.canary.sticky}
}

// WeightFromPercent converts an assignment's canary weight to basis points.
func WeightFromPercent(p int) int { return p * gateway.MaxWeight / 100 }

func checkWeight(name string, weight int, sticky string) error {
	if weight < 0 || weight > gateway.MaxWeight {
		return fmt.Errorf("canary of %s: weight %d is out of range: give 0 to %d basis points", name, weight, gateway.MaxWeight)
	}
	if sticky != "" {
		if _, _, err := v1.ParseSticky(sticky); err != nil {
			return fmt.Errorf("canary of %s: %w", name, err)
		}
	}
	return nil
}

// DeployCanary loads m's version as the canary of the deployment under name, prewarms
// it, and only then gives it weight (basis points) of every route's requests, sticky
// by a header or cookie when sticky is set. The canary must be a version of the same
// app with the same routes as the stable version. A canary already there is replaced
// (and drains); a failure leaves the deployment as it was.
func (d *DataPlane) DeployCanary(ctx context.Context, name string, m *manifest.Manifest, wasm []byte, weight int, sticky string) (*sandbox.Function, error) {
	if err := checkWeight(name, weight, sticky); err != nil {
		return nil, err
	}
	d.mu.Lock()
	dep := d.functions[name]
	d.mu.Unlock()
	if dep == nil {
		return nil, fmt.Errorf("canary of %s: no stable version deployed under that name; deploy one first", name)
	}
	if err := sameShape(name, dep, m); err != nil {
		return nil, err
	}
	spec := sandbox.SpecFromManifest(m, wasm)
	spec.Labels = d.cfg.Labels
	d.slis.name(name, m.App.Name, m.App.Version)
	fn, err := d.Engine.Load(ctx, spec) // prewarms min_warm instances before any weight
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, loadFailed(d.Metrics, moduleLoadReason(err), err) // warmup.go
	}
	d.mu.Lock()
	cur := d.functions[name]
	if cur != dep { // replaced or removed while the canary loaded
		d.mu.Unlock()
		fn.Close(ctx)
		return nil, fmt.Errorf("canary of %s: the stable version changed while the canary loaded; retry", name)
	}
	old := cur.canary
	next := *cur
	next.canary = &canary{fn: fn, weight: weight, sticky: sticky}
	err = d.swapLocked(name, &next)
	d.mu.Unlock()
	if err != nil {
		fn.Close(ctx)
		return nil, loadFailed(d.Metrics, telemetry.LoadRoutes, err)
	}
	if old != nil {
		d.retireLater(ctx, old.fn)
	}
	return fn, nil
}

// sameShape checks that m can be dep's canary.
func sameShape(name string, dep *deployed, m *manifest.Manifest) error {
	if m.App.Name != dep.fn.Name() {
		return fmt.Errorf("canary of %s: app %q is not the stable version's app %q; a canary must be a version of the same app", name, m.App.Name, dep.fn.Name())
	}
	key := func(rs []manifest.Route) []string {
		out := make([]string, len(rs))
		for i, r := range rs {
			out[i] = r.Host + r.Path
		}
		slices.Sort(out)
		return out
	}
	if a, b := key(m.Routes), key(dep.routes); !slices.Equal(a, b) {
		return fmt.Errorf("canary of %s: its routes %v differ from the stable version's %v; a weight split needs the same routes on both", name, a, b)
	}
	return nil
}

// SetCanaryWeight changes the canary's weight (basis points) and stickiness on every
// route of the deployment at once. Requests in flight finish where they were sent.
func (d *DataPlane) SetCanaryWeight(name string, weight int, sticky string) error {
	if err := checkWeight(name, weight, sticky); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	cur := d.functions[name]
	if cur == nil || cur.canary == nil {
		return fmt.Errorf("set canary weight of %s: no canary deployed", name)
	}
	if cur.canary.weight == weight && cur.canary.sticky == sticky {
		return nil
	}
	next := *cur
	c := *cur.canary
	c.weight, c.sticky = weight, sticky
	next.canary = &c
	return d.swapLocked(name, &next)
}

// Canary returns the canary deployed under name and its weight in basis points (nil
// without one).
func (d *DataPlane) Canary(name string) (fn *sandbox.Function, weight int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if dep := d.functions[name]; dep != nil && dep.canary != nil {
		return dep.canary.fn, dep.canary.weight
	}
	return nil, 0
}

// Stable returns the stable version deployed under name (nil without one).
func (d *DataPlane) Stable(name string) *sandbox.Function {
	d.mu.Lock()
	defer d.mu.Unlock()
	if dep := d.functions[name]; dep != nil {
		return dep.fn
	}
	return nil
}

// RemoveCanary stops sending requests to the canary at once and returns drain, which
// waits (at most the drain timeout) for the requests already sent to it and closes it.
// drain is nil when there is no canary.
func (d *DataPlane) RemoveCanary(name string) (drain func(context.Context) error, err error) {
	d.mu.Lock()
	cur := d.functions[name]
	if cur == nil || cur.canary == nil {
		d.mu.Unlock()
		return nil, nil
	}
	old := cur.canary
	next := *cur
	next.canary = nil
	err = d.swapLocked(name, &next)
	d.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("remove canary of %s: %w", name, err)
	}
	return func(ctx context.Context) error { return d.retire(ctx, old.fn) }, nil
}

// PromoteCanary makes the canary the stable version: its function, already warm, takes
// every request at once (no instance starts), and drain retires the former stable
// version once its requests have finished.
func (d *DataPlane) PromoteCanary(name string) (drain func(context.Context) error, err error) {
	d.mu.Lock()
	cur := d.functions[name]
	if cur == nil || cur.canary == nil {
		d.mu.Unlock()
		return nil, fmt.Errorf("promote canary of %s: no canary deployed", name)
	}
	old := cur.fn
	next := &deployed{fn: cur.canary.fn, routes: cur.routes}
	err = d.swapLocked(name, next)
	d.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("promote canary of %s: %w", name, err)
	}
	return func(ctx context.Context) error { return d.retire(ctx, old) }, nil
}

// swapLocked makes next the deployment under name and routes it; on failure it puts
// back what was there.
func (d *DataPlane) swapLocked(name string, next *deployed) error {
	prev := d.functions[name]
	d.functions[name] = next
	if err := d.applyRoutesLocked(); err != nil {
		d.functions[name] = prev
		d.applyRoutesLocked()
		return err
	}
	return nil
}

// retireLater retires fn in the background once the gateway's requests to it finish.
func (d *DataPlane) retireLater(ctx context.Context, fn *sandbox.Function) {
	go d.retire(context.WithoutCancel(ctx), fn)
}

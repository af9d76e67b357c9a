package agent

import (
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/sandbox"
)

// The per-instance timeline, the agent's side: the sandbox records each Function's
// instances (sandbox/timeline.go); the node answers the control plane's
// v1.InstancesRequest on v1.SubjectInstances(node) with them, per deployment. Hooks:
// the subscription made with the assignments' in connect (controlplane.go).

// Timelines returns the instance timelines of deployment (every deployment when it is
// empty): for each, its stable version's then its canary's, each live instances
// first, then the discarded ones most recent first; and how many discarded instances
// the record no longer holds.
func (d *DataPlane) Timelines(deployment string) ([]v1.InstanceTimeline, int) {
	type fnOf struct {
		name string
		fn   *sandbox.Function
	}
	var fns []fnOf
	d.mu.Lock()
	for name, dep := range d.functions {
		if deployment != "" && name != deployment {
			continue
		}
		fns = append(fns, fnOf{name, dep.fn})
		if dep.canary != nil {
			fns = append(fns, fnOf{name, dep.canary.fn})
		}
	}
	d.mu.Unlock()
	sort.SliceStable(fns, func(i, j int) bool { return fns[i].name < fns[j].name })
	var out []v1.InstanceTimeline
	dropped := 0
	for _, f := range fns {
		tls, n := f.fn.Timelines()
		for i := range tls {
			tls[i].Deployment = f.name
		}
		out = append(out, tls...)
		dropped += n
	}
	d.mu.Lock()
	names := make([]string, 0, len(d.retired))
	for name := range d.retired {
		if deployment == "" || name == deployment {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		for _, r := range slices.Backward(d.retired[name]) { // the last replaced first
			out = append(out, r.timelines...)
			dropped += r.dropped
		}
	}
	d.mu.Unlock()
	return out, dropped
}

// keepRetired is how many replaced versions' timelines a deployment keeps: enough to
// see what the last rollouts' instances did, bounded like one version's record each.
const keepRetired = 2

// retiredVersion is a replaced version's timelines as they were when it closed.
type retiredVersion struct {
	timelines []v1.InstanceTimeline
	dropped   int
}

// keepTimelines keeps the timelines of fn, closed after name moved to another version,
// with the last keepRetired replaced versions of name.
func (d *DataPlane) keepTimelines(name string, fn *sandbox.Function) {
	tls, dropped := fn.Timelines()
	if len(tls) == 0 && dropped == 0 {
		return
	}
	for i := range tls {
		tls[i].Deployment = name
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.functions[name]; !ok {
		return // removed while it drained
	}
	if d.retired == nil {
		d.retired = map[string][]retiredVersion{}
	}
	rs := append(d.retired[name], retiredVersion{tls, dropped})
	if len(rs) > keepRetired {
		rs = slices.Delete(rs, 0, len(rs)-keepRetired)
	}
	d.retired[name] = rs
}

// forgetTimelines drops the replaced versions' timelines of a deployment the node no
// longer runs.
func (d *DataPlane) forgetTimelines(name string) {
	d.mu.Lock()
	delete(d.retired, name)
	d.mu.Unlock()
}

// instancesReply answers req within max bytes of JSON (v1.InstancesReply.MarshalWithin).
func (d *DataPlane) instancesReply(node string, req v1.InstancesRequest, now time.Time, max int) []byte {
	tls, dropped := d.Timelines(req.Deployment)
	for i := range tls {
		tls[i].Node = node
	}
	return v1.InstancesReply{Node: node, Time: now, Instances: tls, Dropped: dropped}.MarshalWithin(max)
}

// answerInstances serves one v1.InstancesRequest.
func (n *Node) answerInstances(m *nats.Msg) {
	if m.Reply == "" {
		return
	}
	var req v1.InstancesRequest
	max := 1 << 20 // NATS's default max_payload
	if c := n.sliConn.Load(); c != nil && c.MaxPayload() > 0 {
		max = int(c.MaxPayload())
	}
	if err := json.Unmarshal(m.Data, &req); err != nil {
		b, _ := json.Marshal(v1.InstancesReply{Node: n.cfg.Name, Time: time.Now(), Instances: []v1.InstanceTimeline{},
			Error: &v1.Error{Code: v1.CodeBadRequest, Message: "instances request: " + strings.TrimSpace(err.Error())}})
		m.Respond(b)
		return
	}
	m.Respond(n.cfg.DataPlane.instancesReply(n.cfg.Name, req, time.Now(), max))
}

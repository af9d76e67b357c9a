package cptest

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	v1 "fermion.dev/fermion/api/v1"
)

// SimHistory is how far back a simulated agent's instance record reaches: each version
// it runs has a history of this length ending when the agent was first told to run it,
// as if the node had served it for that long. Every time in a simulated timeline lies
// in [since−SimHistory, since], never after the reply.
const SimHistory = 10 * time.Minute

// versionKey names one version of a deployment on a node.
func versionKey(deployment, digest string) string { return deployment + "@" + digest }

// noteVersionsLocked records when each version in the current set was first seen and
// forgets versions no longer assigned, so the map stays as small as the set.
func (a *SimAgent) noteVersionsLocked(now time.Time) {
	keep := make(map[string]time.Time, len(a.set.Assignments))
	for _, as := range a.set.Assignments {
		for _, v := range assignedVersions(as) {
			k := versionKey(as.Deployment, v.Digest)
			if t, ok := a.since[k]; ok {
				keep[k] = t
			} else {
				keep[k] = now
			}
		}
	}
	a.since = keep
}

// assignedVersions is the stable version and, during a canary, the canary's.
func assignedVersions(as v1.Assignment) []v1.Version {
	if as.Canary != nil {
		return []v1.Version{as.Version, as.Canary.Version}
	}
	return []v1.Version{as.Version}
}

// Instances answers an instance timeline request as the agent would: the simulated
// timelines of every version it runs (of req.Deployment only, when set), ordered by
// deployment, version and instance id. It is what the agent replies on
// v1.SubjectInstances.
func (a *SimAgent) Instances(req v1.InstancesRequest, now time.Time) v1.InstancesReply {
	a.mu.Lock()
	defer a.mu.Unlock()
	reply := v1.InstancesReply{Node: a.Name, Time: now, Instances: []v1.InstanceTimeline{}}
	for _, as := range a.set.Assignments {
		if req.Deployment != "" && as.Deployment != req.Deployment {
			continue
		}
		for _, v := range assignedVersions(as) {
			since, ok := a.since[versionKey(as.Deployment, v.Digest)]
			if !ok {
				since = now
			}
			reply.Instances = append(reply.Instances, SimInstances(a.Name, as.Deployment, v, v.Digest != as.Version.Digest, since)...)
		}
	}
	return reply
}

// answerInstances replies to a request on v1.SubjectInstances; a body that is not an
// InstancesRequest gets an invalid_argument error, as from a real agent.
func (a *SimAgent) answerInstances(m *nats.Msg) {
	var req v1.InstancesRequest
	var reply v1.InstancesReply
	if err := json.Unmarshal(m.Data, &req); err != nil {
		reply = v1.InstancesReply{Node: a.Name, Time: time.Now(), Instances: []v1.InstanceTimeline{},
			Error: &v1.Error{Code: v1.CodeBadRequest, Message: fmt.Sprintf("instances request from the control plane: %v; send a JSON InstancesRequest", err)}}
	} else {
		reply = a.Instances(req, time.Now())
	}
	if b, ok := fitReply(reply, a.nc.MaxPayload()); ok {
		m.Respond(b)
	}
}

// fitReply encodes reply within max bytes (the NATS payload limit) as a real agent
// bounds its answer (v1.InstancesReply.MarshalWithin), and says whether it fits: not
// even an empty list does when max is tiny.
func fitReply(reply v1.InstancesReply, max int64) ([]byte, bool) {
	b := reply.MarshalWithin(int(max))
	return b, int64(len(b)) <= max
}

// simDiscards are the ways a simulated scaled-out instance ends, chosen per version.
var simDiscards = []struct{ reason, detail string }{
	{"trap", "wasm error: unreachable"},
	{"timeout", "request exceeded its 5s deadline"},
	{"idle", ""},
}

// SimInstances is the simulated timeline of one version on one node, a pure function
// of its arguments (console tests feed it to the page without a fleet). From a hash of
// node, deployment and version it draws counts and which way instances end:
//
//	#1 prewarmed ("canary" for a canary version), idle, serving since the start; 0–2
//	   failed requests
//	#2 scaled out at 2 min, busy
//	#3 scaled out at 3 min, discarded at 6 min: "trap" or "timeout" (after a failed
//	   request) or "idle"
//	#4 (one version in four) a replacement whose warmup failed: discarded "warmup"
//	   before it served
//	last: the replacement made at 6 min, idle
//
// Times are offsets from since−SimHistory; instance ids number creation order.
func SimInstances(node, deployment string, v v1.Version, canary bool, since time.Time) []v1.InstanceTimeline {
	h := fnv.New32a()
	h.Write([]byte(node + "\x00" + deployment + "\x00" + v.Version + "\x00" + v.Digest))
	x := uint64(h.Sum32())
	base := since.Add(-SimHistory)
	at := func(d time.Duration) time.Time { return base.Add(d) }
	start, initMs := "initialize", 8+float64(x%30)+0.25
	if x&1 == 1 {
		start, initMs = "snapshot", 1.5+float64(x%40)/10
	}
	initDur := time.Duration(initMs * float64(time.Millisecond))
	mem := (2 + x%6) << 20
	var out []v1.InstanceTimeline
	add := func(created time.Time, reason string) *v1.InstanceTimeline {
		out = append(out, v1.InstanceTimeline{Node: node, Deployment: deployment, Version: v.Version, ID: uint64(len(out) + 1),
			State: "idle", Created: created, Start: start, Reason: reason, InitMillis: initMs, MemoryBytes: mem,
			Events: []v1.InstanceEvent{{Time: created, Kind: "created", Detail: reason},
				{Time: created.Add(initDur), Kind: "initialized", Detail: start}}})
		return &out[len(out)-1]
	}
	serve := func(in *v1.InstanceTimeline, first, last time.Time, requests uint64) {
		in.Requests, in.LastRequest = requests, last
		in.Events = append(in.Events, v1.InstanceEvent{Time: first, Kind: "first_request"})
	}
	fail := func(in *v1.InstanceTimeline, t time.Time, detail string) {
		in.Errors++
		in.Events = append(in.Events, v1.InstanceEvent{Time: t, Kind: "request_failed", Detail: detail})
	}
	discard := func(in *v1.InstanceTimeline, t time.Time, reason, detail string) {
		in.State, in.Discarded, in.DiscardReason, in.DiscardDetail = "discarded", t, reason, detail
		ev := v1.InstanceEvent{Time: t, Kind: "discarded", Detail: reason}
		if detail != "" {
			ev.Detail += ": " + detail
		}
		in.Events = append(in.Events, ev)
	}

	reason := "prewarm"
	if canary {
		reason = "canary"
	}
	first := add(at(0), reason)
	serve(first, at(30*time.Second), at(SimHistory-10*time.Second), 200+x%800)
	for i := range x % 3 {
		fail(first, at(time.Duration(60+30*i)*time.Second), "status 503")
	}

	busy := add(at(2*time.Minute), "scale")
	serve(busy, at(2*time.Minute+time.Second), at(SimHistory-time.Second), 50+x%300)
	busy.State = "busy"

	d := simDiscards[x%uint64(len(simDiscards))]
	gone := add(at(3*time.Minute), "scale")
	if d.reason == "idle" {
		serve(gone, at(3*time.Minute+2*time.Second), at(4*time.Minute), 20+x%50)
	} else {
		serve(gone, at(3*time.Minute+2*time.Second), at(6*time.Minute), 20+x%50)
		fail(gone, at(6*time.Minute), d.detail)
	}
	discard(gone, at(6*time.Minute), d.reason, d.detail)

	if x%4 == 0 {
		warm := add(at(6*time.Minute), "replacement")
		warm.Events = warm.Events[:1] // it never became ready
		discard(warm, at(6*time.Minute).Add(initDur), "warmup", "warmup hook answered 500")
		warm.MemoryBytes = 1 << 20
	}
	repl := add(at(6*time.Minute+time.Second), "replacement")
	serve(repl, at(6*time.Minute+2*time.Second), at(SimHistory-5*time.Second), 10+x%40)

	for i := range out {
		slices.SortStableFunc(out[i].Events, func(a, b v1.InstanceEvent) int { return a.Time.Compare(b.Time) })
	}
	return out
}

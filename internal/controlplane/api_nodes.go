package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/controlplane/state"
)

// The /v1/nodes handlers: read, drain, uncordon and remove.

func (s *api) nodeView(name string) (v1.Node, bool) {
	n, rev, ok := s.st.Nodes.Get(name)
	if !ok {
		return n, false
	}
	n.Revision = rev
	if l, _, ok := s.st.Leases.Get(name); ok {
		n.LeaseRenewed = l.Renewed
		n.LeaseAge = time.Since(l.Renewed).Seconds()
		n.Telemetry = l.Telemetry
	}
	s.st.Assignments.EachOfNode(name, func(_ string, a *v1.Assignment, _ uint64) {
		n.Assignments = append(n.Assignments, a.Deployment)
		n.Allocated.MemoryBytes += a.Reserved.MemoryBytes
		n.Allocated.MilliCPU += a.Reserved.MilliCPU
		n.Allocated.Instances += a.Reserved.Instances
	})
	slices.Sort(n.Assignments)
	return n, true
}

func (s *api) apiListNodes(_ http.ResponseWriter, _ *http.Request, _ cred) (any, int, *v1.Error) {
	names := s.st.Nodes.Keys()
	out := v1.NodeList{Nodes: []v1.Node{}}
	for _, name := range names {
		if n, ok := s.nodeView(name); ok {
			out.Nodes = append(out.Nodes, n)
		}
	}
	return out, http.StatusOK, nil
}

func (s *api) apiGetNode(_ http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
	n, ok := s.nodeView(r.PathValue("name"))
	if !ok {
		return nil, 0, &v1.Error{Code: v1.CodeNotFound, Message: "no node " + r.PathValue("name")}
	}
	return n, http.StatusOK, nil
}

// apiRemoveNode forgets a lost or drained node: record, lease, credentials, statuses.
// Its assignments go with the scheduler's next pass.
func (s *api) apiRemoveNode(_ http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
	ctx := r.Context()
	name := r.PathValue("name")
	n, rev, ok := s.st.Nodes.Get(name)
	if !ok {
		return nil, 0, &v1.Error{Code: v1.CodeNotFound, Message: "no node " + name}
	}
	if n.State != v1.NodeLost && n.State != v1.NodeDrained {
		return nil, 0, &v1.Error{Code: v1.CodeConflict, Message: fmt.Sprintf("node %s is %s: drain it first (fermion node drain %s), or stop its agent and wait until it is lost", name, n.State, name)}
	}
	if err := s.st.Nodes.DeleteAt(ctx, name, rev); err != nil {
		if state.IsCASConflict(err) {
			return nil, 0, &v1.Error{Code: v1.CodeConflict, Message: fmt.Sprintf("node %s changed meanwhile; read it again", name)}
		}
		return nil, 0, unavailable("delete node record", err)
	}
	var errs []error
	for _, err := range []error{s.st.Leases.Delete(ctx, name), s.st.Creds.Delete(ctx, "node."+name)} {
		if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			errs = append(errs, err)
		}
	}
	prefix := name + "."
	var stale []string
	s.st.Statuses.Each(func(key string, _ *v1.InstanceStatus, _ uint64) {
		if strings.HasPrefix(key, prefix) {
			stale = append(stale, key)
		}
	})
	for _, key := range stale {
		if err := s.st.Statuses.Delete(ctx, key); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, 0, unavailable("delete the credentials and statuses of node "+name, err)
	}
	s.event(ctx, v1.Event{Type: v1.EventNodeRemoved, Node: name, Message: fmt.Sprintf("node %s removed (it was %s)", name, n.State)})
	return nil, http.StatusNoContent, nil
}

func (s *api) apiDrain(_ http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
	return s.setSchedulable(r.Context(), r.PathValue("name"), false)
}

func (s *api) apiUncordon(_ http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
	return s.setSchedulable(r.Context(), r.PathValue("name"), true)
}

// setSchedulable drains (false) or uncordons (true) a node.
func (s *api) setSchedulable(ctx context.Context, name string, on bool) (any, int, *v1.Error) {
	changed := false
	_, rev, err := s.st.Nodes.Update(ctx, name, func(cur *v1.Node) (*v1.Node, error) {
		if cur == nil {
			return nil, errNotFound
		}
		n := *cur
		changed = n.Schedulable != on
		if !changed {
			return nil, nil
		}
		n.Schedulable, n.StateChanged = on, time.Now().UTC()
		if n.State != v1.NodeLost {
			n.State = v1.NodeReady
			if !on {
				n.State = v1.NodeDraining
			}
		}
		clearComputed(&n)
		return &n, nil
	})
	if errors.Is(err, errNotFound) {
		return nil, 0, &v1.Error{Code: v1.CodeNotFound, Message: "no node " + name}
	}
	if err != nil {
		return nil, 0, unavailable("store node", err)
	}
	if changed {
		s.st.Nodes.WaitRev(ctx, rev)
		if on {
			s.event(ctx, v1.Event{Type: v1.EventUncordoned, Node: name, Message: fmt.Sprintf("node %s is schedulable again", name)})
		} else {
			s.event(ctx, v1.Event{Type: v1.EventDrainStarted, Node: name, Message: fmt.Sprintf("draining node %s: its work moves to other nodes first", name)})
		}
	}
	n, _ := s.nodeView(name)
	return n, http.StatusOK, nil
}

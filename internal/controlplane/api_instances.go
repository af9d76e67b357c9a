package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/controlplane/state"
)

// The per-instance timelines (the console's Debug view): nodes keep them, and this
// replica asks for them on demand over NATS request/reply (v1.SubjectInstances), one
// node or every node a deployment is placed on, in parallel. Nothing is stored. Hooks:
// the route group in Server.routeGroups; the node users' NATS permission to reply
// (natsAuth in server.go).

// instancesTimeout bounds each node's answer: a node that does not answer in time is
// listed as unreachable, and the rest of the answer is still served.
const instancesTimeout = 2 * time.Second

// Bounds of one answer over many nodes (a daemon on thousands): at most instancesFanout
// nodes asked at once, each reply up to NATS's max payload, so replies in flight stay
// within tens of MiB; no node is asked once instancesBudget has passed (it is listed as
// unreachable, saying to ask it alone); and at most instancesMax timelines are listed,
// the rest counted in Dropped.
const (
	instancesFanout = 64
	instancesBudget = 10 * time.Second
	instancesMax    = 10_000
)

// instancesAPI serves GET /v1/nodes/{name}/instances and
// GET /v1/deployments/{name}/instances.
type instancesAPI struct {
	st     *state.Store
	placer *placer
	nc     *nats.Conn
}

func (a *instancesAPI) routes(route routeFunc) {
	route("GET /v1/nodes/{name}/instances", v1.RoleViewer, a.apiNodeInstances)
	route("GET /v1/deployments/{name}/instances", v1.RoleViewer, a.apiDeploymentInstances)
}

func (a *instancesAPI) apiNodeInstances(_ http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
	node := r.PathValue("name")
	if _, _, ok := a.st.Nodes.Get(node); !ok {
		return nil, 0, &v1.Error{Code: v1.CodeNotFound, Message: "no node " + node + "; see fermion nodes"}
	}
	dep := r.URL.Query().Get("deployment")
	if dep != "" {
		if err := v1.ValidName("deployment", dep); err != nil {
			return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Message: "query parameter deployment: " + err.Error()}
		}
	}
	return a.ask(r.Context(), []string{node}, dep), http.StatusOK, nil
}

func (a *instancesAPI) apiDeploymentInstances(_ http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
	name := r.PathValue("name")
	if _, _, ok := a.st.Deployments.Get(name); !ok {
		return nil, 0, &v1.Error{Code: v1.CodeNotFound, Message: "no deployment " + name + "; see fermion status"}
	}
	return a.ask(r.Context(), a.nodesOf(name), name), http.StatusOK, nil
}

// nodesOf lists the nodes a deployment is assigned to or still reports on (a node it
// moved away from may hold its instances while they drain), sorted.
func (a *instancesAPI) nodesOf(name string) []string {
	set := map[string]bool{}
	for node := range a.placer.current(name) {
		set[node] = true
	}
	suffix := "." + name
	a.st.Statuses.Each(func(key string, _ *v1.InstanceStatus, _ uint64) {
		if node, ok := strings.CutSuffix(key, suffix); ok && !strings.Contains(node, ".") {
			set[node] = true
		}
	})
	nodes := make([]string, 0, len(set))
	for n := range set {
		nodes = append(nodes, n)
	}
	slices.Sort(nodes)
	return nodes
}

// ask asks nodes for deployment's timelines in parallel, each within instancesTimeout,
// within the bounds above.
func (a *instancesAPI) ask(ctx context.Context, nodes []string, deployment string) v1.InstancesList {
	out := v1.InstancesList{Instances: []v1.InstanceTimeline{}}
	req, _ := json.Marshal(v1.InstancesRequest{Deployment: deployment})
	budget, cancel := context.WithTimeout(ctx, instancesBudget)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	slots := make(chan struct{}, instancesFanout)
	for _, node := range nodes {
		select {
		case slots <- struct{}{}:
		case <-budget.Done():
		}
		if budget.Err() != nil {
			mu.Lock()
			out.Unreachable = append(out.Unreachable, v1.NodeError{Node: node,
				Error: fmt.Sprintf("not asked: the answer's %s budget ran out; ask this node alone (fermion instances --node)", instancesBudget)})
			mu.Unlock()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			reply, err := a.askNode(budget, node, req)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				out.Unreachable = append(out.Unreachable, v1.NodeError{Node: node, Error: err.Error()})
				return
			}
			keep := min(len(reply.Instances), instancesMax-len(out.Instances))
			out.Instances = append(out.Instances, reply.Instances[:keep]...)
			out.Dropped += reply.Dropped + len(reply.Instances) - keep
		}()
	}
	wg.Wait()
	slices.SortStableFunc(out.Instances, func(x, y v1.InstanceTimeline) int {
		return strings.Compare(x.Node, y.Node) // each node's own order kept
	})
	slices.SortFunc(out.Unreachable, func(x, y v1.NodeError) int { return strings.Compare(x.Node, y.Node) })
	return out
}

// askNode asks one node, and says in words a user can act on why it did not answer.
func (a *instancesAPI) askNode(ctx context.Context, node string, req []byte) (*v1.InstancesReply, error) {
	ctx, cancel := context.WithTimeout(ctx, instancesTimeout)
	defer cancel()
	m, err := a.nc.RequestWithContext(ctx, v1.SubjectInstances(node), req)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, errors.New("no agent answers for this node: it is offline, not connected to the control plane, or runs an agent too old to serve instance timelines")
	case errors.Is(err, context.DeadlineExceeded):
		return nil, fmt.Errorf("the agent did not answer within %s", instancesTimeout)
	case err != nil:
		return nil, fmt.Errorf("ask the agent: %w", err)
	}
	var reply v1.InstancesReply
	if err := json.Unmarshal(m.Data, &reply); err != nil {
		return nil, fmt.Errorf("the agent's answer does not decode: %w", err)
	}
	if reply.Error != nil {
		return nil, fmt.Errorf("the agent refused: %s", reply.Error.Message)
	}
	if reply.Node != node {
		return nil, fmt.Errorf("the answer names node %q, not this one", reply.Node)
	}
	for i := range reply.Instances {
		reply.Instances[i].Node = node // a node speaks for itself only
	}
	return &reply, nil
}

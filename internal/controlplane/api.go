package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/scheduler"
)

// maxBody bounds an API request body.
const maxBody = 1 << 20

type apiHandler func(w http.ResponseWriter, r *http.Request, caller cred) (any, int, *v1.Error)

// newAPI builds the /v1 routes: each names the least role it needs.
func (s *Server) newAPI() http.Handler {
	mux := http.NewServeMux()
	route := func(pattern, role string, h apiHandler) {
		name := pattern
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) { s.serveAPI(w, r, name, role, h) })
	}
	mux.HandleFunc("GET /v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(v1.OpenAPI)
	})
	route("GET /v1/info", v1.RoleViewer, s.apiInfo)
	route("POST /v1/tokens", v1.RoleAdmin, s.apiCreateToken)
	route("GET /v1/tokens", v1.RoleAdmin, s.apiListTokens)
	route("DELETE /v1/tokens/{id}", v1.RoleAdmin, s.apiRevokeToken)
	route("GET /v1/deployments", v1.RoleViewer, s.apiListDeployments)
	route("GET /v1/deployments/{name}", v1.RoleViewer, s.apiGetDeployment)
	route("PUT /v1/deployments/{name}", v1.RoleDeployer, s.apiPutDeployment)
	route("DELETE /v1/deployments/{name}", v1.RoleDeployer, s.apiDeleteDeployment)
	route("GET /v1/deployments/{name}/status", v1.RoleViewer, s.apiDeploymentStatus)
	route("GET /v1/nodes", v1.RoleViewer, s.apiListNodes)
	route("GET /v1/nodes/{name}", v1.RoleViewer, s.apiGetNode)
	route("DELETE /v1/nodes/{name}", v1.RoleDeployer, s.apiRemoveNode)
	route("POST /v1/nodes/{name}/drain", v1.RoleDeployer, s.apiDrain)
	route("POST /v1/nodes/{name}/uncordon", v1.RoleDeployer, s.apiUncordon)
	route("GET /v1/events", v1.RoleViewer, s.apiEvents)
	route("GET /v1/policies", v1.RoleViewer, s.apiListPolicies)
	route("GET /v1/policies/violations", v1.RoleViewer, s.apiPolicyViolations)
	route("GET /v1/policies/{name}", v1.RoleViewer, s.apiGetPolicy)
	route("PUT /v1/policies/{name}", v1.RoleAdmin, s.apiPutPolicy)
	route("DELETE /v1/policies/{name}", v1.RoleAdmin, s.apiDeletePolicy)
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, http.StatusNotFound, &v1.Error{Code: v1.CodeNotFound, Message: fmt.Sprintf("no route %s %s; see /v1/openapi.json", r.Method, r.URL.Path)})
	})
	return mux
}

func statusFor(code string) int {
	switch code {
	case v1.CodeBadRequest:
		return http.StatusBadRequest
	case v1.CodeUnauthorized:
		return http.StatusUnauthorized
	case v1.CodeForbidden:
		return http.StatusForbidden
	case v1.CodeNotFound:
		return http.StatusNotFound
	case v1.CodeConflict, v1.CodeUnplaceable:
		return http.StatusConflict
	case v1.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case v1.CodePolicyDenied, v1.CodeArtifact:
		return http.StatusUnprocessableEntity
	case v1.CodeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func writeError(w http.ResponseWriter, r *http.Request, status int, e *v1.Error) {
	e.RequestID = w.Header().Get("X-Request-Id")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v1.ErrorBody{Error: e})
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, route, role string, h apiHandler) {
	start := time.Now()
	rid := r.Header.Get("X-Request-Id")
	if rid == "" || len(rid) > 128 {
		rid = randomHex(8)
	}
	w.Header().Set("X-Request-Id", rid)
	status := http.StatusOK
	defer func() {
		s.metrics.apiRequests.WithLabelValues(route, strconv.Itoa(status)).Inc()
		s.metrics.apiSeconds.WithLabelValues(route).Observe(time.Since(start).Seconds())
	}()
	fail := func(e *v1.Error) {
		status = statusFor(e.Code)
		writeError(w, r, status, e)
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="fermion"`)
		fail(&v1.Error{Code: v1.CodeUnauthorized, Message: "send a token: Authorization: Bearer <token> (fermion token create, or the admin token in the server's data directory)"})
		return
	}
	caller, ok := s.verifyToken(strings.TrimSpace(tok))
	if !ok {
		fail(&v1.Error{Code: v1.CodeUnauthorized, Message: "the token is unknown, revoked or expired"})
		return
	}
	if roleRank(caller.Role) < roleRank(role) {
		fail(&v1.Error{Code: v1.CodeForbidden, Message: fmt.Sprintf("a %s token may not do this; it needs the %s role", caller.Role, role)})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	out, code, e := h(w, r, caller)
	if e != nil {
		if e.Code == v1.CodeInternal || e.Code == v1.CodeUnavailable {
			s.logger.Error("api", "route", route, "request_id", rid, "err", e.Message)
		}
		fail(e)
		return
	}
	if out == nil {
		if code == 0 {
			return // the handler wrote the response (a stream)
		}
		status = code
		w.WriteHeader(code)
		return
	}
	status = code
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(out)
}

// decodeBody decodes a JSON body strictly: unknown fields and trailing data are errors.
func decodeBody(r *http.Request, v any) *v1.Error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return &v1.Error{Code: v1.CodeTooLarge, Message: fmt.Sprintf("the body exceeds %d bytes", maxBody)}
		case errors.Is(err, io.EOF):
			return &v1.Error{Code: v1.CodeBadRequest, Message: "the body is empty; send a JSON object"}
		}
		msg := err.Error()
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return &v1.Error{Code: v1.CodeBadRequest, Field: ute.Field, Message: fmt.Sprintf("want a %s, got a JSON %s", ute.Type, ute.Value)}
		}
		if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
			return &v1.Error{Code: v1.CodeBadRequest, Field: strings.Trim(f, `"`), Message: "unknown field " + f + "; see /v1/openapi.json"}
		}
		return &v1.Error{Code: v1.CodeBadRequest, Message: "the body is not valid JSON: " + msg}
	}
	if dec.More() {
		return &v1.Error{Code: v1.CodeBadRequest, Message: "trailing data after the JSON object"}
	}
	return nil
}

func unavailable(op string, err error) *v1.Error {
	return &v1.Error{Code: v1.CodeUnavailable, Message: op + ": " + err.Error()}
}

func (s *Server) apiInfo(_ http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
	info := v1.Info{Version: s.cfg.Version, Server: s.cfg.Name, Leader: s.leaderNow(r.Context()), Registry: s.cfg.RegistryHost,
		LeaseRenewSeconds: s.cfg.LeaseRenew.Seconds(), LeaseLostSeconds: s.cfg.LeaseLost.Seconds()}
	if u := s.NATSURL(); u != "" {
		info.NATS = strings.Split(u, ",")
	}
	return info, http.StatusOK, nil
}

func (s *Server) apiCreateToken(_ http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
	var req v1.TokenRequest
	if e := decodeBody(r, &req); e != nil {
		return nil, 0, e
	}
	if !slices.Contains(v1.Roles, req.Role) {
		return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Field: "role", Message: fmt.Sprintf("%q: want one of %s", req.Role, strings.Join(v1.Roles, ", "))}
	}
	if len(req.Description) > 256 {
		return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Field: "description", Message: "at most 256 bytes"}
	}
	var ttl time.Duration
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 {
			return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Field: "ttl", Message: fmt.Sprintf("%q: want a positive duration such as 24h", req.TTL)}
		}
		ttl = d
	}
	t, err := s.createToken(r.Context(), req.Role, req.Description, ttl)
	if err != nil {
		return nil, 0, unavailable("create token", err)
	}
	return t, http.StatusCreated, nil
}

func (s *Server) apiListTokens(_ http.ResponseWriter, _ *http.Request, _ cred) (any, int, *v1.Error) {
	out := v1.TokenList{Tokens: []v1.Token{}}
	s.creds.each(func(_ string, c *cred, _ uint64) {
		if c.Kind == "token" {
			out.Tokens = append(out.Tokens, c.token())
		}
	})
	slices.SortFunc(out.Tokens, func(a, b v1.Token) int { return a.Created.Compare(b.Created) })
	return out, http.StatusOK, nil
}

func (s *Server) apiRevokeToken(_ http.ResponseWriter, r *http.Request, caller cred) (any, int, *v1.Error) {
	id := r.PathValue("id")
	if _, _, ok := s.creds.get("token." + id); !ok {
		return nil, 0, &v1.Error{Code: v1.CodeNotFound, Message: "no token " + id}
	}
	if id == caller.ID {
		return nil, 0, &v1.Error{Code: v1.CodeConflict, Message: "a token cannot revoke itself; use another admin token"}
	}
	if err := s.st.tokens.Delete(r.Context(), "token."+id); err != nil {
		return nil, 0, unavailable("revoke token", err)
	}
	return nil, http.StatusNoContent, nil
}

func (s *Server) apiListDeployments(_ http.ResponseWriter, _ *http.Request, _ cred) (any, int, *v1.Error) {
	out := v1.DeploymentList{Deployments: []v1.Deployment{}}
	s.deployments.each(func(_ string, d *v1.Deployment, rev uint64) {
		c := *d
		c.Revision = rev
		out.Deployments = append(out.Deployments, c)
	})
	for i := range out.Deployments {
		out.Deployments[i].Placement, _, _ = s.placements.get(out.Deployments[i].Name)
	}
	slices.SortFunc(out.Deployments, func(a, b v1.Deployment) int { return strings.Compare(a.Name, b.Name) })
	return out, http.StatusOK, nil
}

func (s *Server) getDeployment(name string) (v1.Deployment, *v1.Error) {
	d, rev, ok := s.deployments.get(name)
	if !ok {
		return d, &v1.Error{Code: v1.CodeNotFound, Message: "no deployment " + name}
	}
	d.Revision = rev
	d.Placement, _, _ = s.placements.get(name)
	return d, nil
}

func (s *Server) apiGetDeployment(w http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
	d, e := s.getDeployment(r.PathValue("name"))
	if e != nil {
		return nil, 0, e
	}
	w.Header().Set("ETag", strconv.Quote(strconv.FormatUint(d.Revision, 10)))
	return d, http.StatusOK, nil
}

// precondition is what a PUT's If-Match / If-None-Match ask for.
type precondition struct {
	createOnly bool
	revision   uint64 // 0: any
}

func parsePrecondition(r *http.Request) (precondition, *v1.Error) {
	var p precondition
	if v := r.Header.Get("If-None-Match"); v != "" {
		if v != "*" {
			return p, &v1.Error{Code: v1.CodeBadRequest, Field: "If-None-Match", Message: `only "*" (create only) is supported`}
		}
		p.createOnly = true
	}
	if v := r.Header.Get("If-Match"); v != "" {
		n, err := strconv.ParseUint(strings.Trim(strings.TrimPrefix(v, "W/"), `"`), 10, 64)
		if err != nil || n == 0 {
			return p, &v1.Error{Code: v1.CodeBadRequest, Field: "If-Match", Message: fmt.Sprintf("%q: want the revision (ETag) read from GET", v)}
		}
		p.revision = n
	}
	if p.createOnly && p.revision != 0 {
		return p, &v1.Error{Code: v1.CodeBadRequest, Message: "give If-Match or If-None-Match, not both"}
	}
	return p, nil
}

func (s *Server) apiPutDeployment(w http.ResponseWriter, r *http.Request, caller cred) (any, int, *v1.Error) {
	ctx := r.Context()
	name := r.PathValue("name")
	if err := v1.ValidName("deployment", name); err != nil {
		return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Field: "name", Message: err.Error()}
	}
	pre, e := parsePrecondition(r)
	if e != nil {
		return nil, 0, e
	}
	var spec v1.DeploymentSpec
	if e := decodeBody(r, &spec); e != nil {
		return nil, 0, e
	}
	if e := spec.Validate(); e != nil {
		return nil, 0, e
	}
	if spec.Selector != "" {
		if _, err := compileSelector(spec.Selector); err != nil {
			return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Field: "spec.selector", Message: err.Error()}
		}
	}
	img, e := s.resolveImage(ctx, spec.Image)
	if e != nil {
		return nil, 0, e
	}
	ver := img.ver
	// Admission: a policy in mode deny refuses it and nothing is written; warn and
	// audit only record (and warnings go back to the caller).
	warnings, e := s.admit(ctx, name, img, caller)
	setWarningHeader(w, warnings)
	if e != nil {
		return nil, 0, e
	}
	// Place it now, on the fleet as it is: a deployment that fits nowhere is refused
	// with the reasons and nothing is written.
	cur := s.current(name)
	var keep []string
	var curReserved v1.Resources
	for node, a := range cur {
		keep = append(keep, node)
		curReserved = a.Reserved
	}
	slices.Sort(keep)
	req, err := placementRequest(name, &spec, ver, keep, curReserved)
	req.Constraints = append(req.Constraints, s.routeConstraint(name, ver.Routes))
	if err != nil {
		return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Field: "spec.selector", Message: err.Error()}
	}
	nodes := s.schedNodes()
	withPlacementPolicies(&req, s.policySet(), appInput(name, ver), nodes)
	_, err = scheduler.Place(nodes, req)
	var pe *scheduler.PlacementError
	placeWarnings := s.stagePlacement(ctx, name, ver, nodes, errors.As(err, &pe), caller)
	setWarningHeader(w, placeWarnings)
	warnings = append(warnings, placeWarnings...)
	if err != nil {
		if pe != nil {
			return nil, 0, &v1.Error{Code: v1.CodeUnplaceable, Message: pe.Error()}
		}
		return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Message: err.Error()}
	}
	now := time.Now().UTC()
	created := false
	d, rev, err := update(ctx, s.st.deployments, name, func(cur *v1.Deployment, rev uint64) (*v1.Deployment, error) {
		switch {
		case pre.createOnly && cur != nil:
			return nil, fmt.Errorf("%w: deployment %s already exists (revision %d)", errConflict, name, rev)
		case pre.revision != 0 && (cur == nil || rev != pre.revision):
			return nil, fmt.Errorf("%w: deployment %s is at revision %d, not %d: someone else changed it; read it again and retry", errConflict, name, rev, pre.revision)
		case cur != nil && cur.Deleting:
			return nil, fmt.Errorf("%w: deployment %s is being deleted; wait until it is gone", errConflict, name)
		}
		created = cur == nil
		next := v1.Deployment{Name: name, Spec: spec, Version: ver, Generation: 1, Created: now, Updated: now}
		if cur != nil {
			next = *cur
			next.Revision, next.Placement = 0, v1.Placement{}
			if specEqual(&cur.Spec, &spec) && cur.Version.Digest == ver.Digest {
				return nil, nil // nothing changed
			}
			next.Spec, next.Version, next.Updated = spec, ver, now
			next.Generation++
		}
		return &next, nil
	})
	if errors.Is(err, errConflict) {
		return nil, 0, &v1.Error{Code: v1.CodeConflict, Message: strings.TrimPrefix(err.Error(), errConflict.Error()+": ")}
	}
	if err != nil {
		return nil, 0, unavailable("write deployment", err)
	}
	if d == nil { // unchanged
		cd, e := s.getDeployment(name)
		if e != nil {
			return nil, 0, e
		}
		cd.Warnings = warnings
		w.Header().Set("ETag", strconv.Quote(strconv.FormatUint(cd.Revision, 10)))
		return cd, http.StatusOK, nil
	}
	s.deployments.waitRev(ctx, rev)
	d.Revision, d.Warnings = rev, warnings
	s.event(ctx, v1.Event{Type: v1.EventDeployed, Deployment: name,
		Message: fmt.Sprintf("generation %d: %s %s (%s) on %s", d.Generation, ver.App, ver.Version, shortDigest(ver.Digest), describeSpec(&spec))})
	w.Header().Set("ETag", strconv.Quote(strconv.FormatUint(rev, 10)))
	if created {
		return d, http.StatusCreated, nil
	}
	return d, http.StatusOK, nil
}

func specEqual(a, b *v1.DeploymentSpec) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func describeSpec(s *v1.DeploymentSpec) string {
	var b strings.Builder
	if s.Daemon {
		b.WriteString("every matching node")
	} else {
		fmt.Fprintf(&b, "%d node(s)", s.Nodes)
	}
	if s.Selector != "" {
		fmt.Fprintf(&b, " where %s", s.Selector)
	}
	if s.Spread != "" {
		fmt.Fprintf(&b, ", spread across %s", s.Spread)
	}
	return b.String()
}

func (s *Server) apiDeleteDeployment(_ http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
	name := r.PathValue("name")
	d, _, err := update(r.Context(), s.st.deployments, name, func(cur *v1.Deployment, _ uint64) (*v1.Deployment, error) {
		if cur == nil {
			return nil, errNotFound
		}
		if cur.Deleting {
			return nil, nil
		}
		next := *cur
		next.Deleting, next.Updated, next.Revision, next.Placement = true, time.Now().UTC(), 0, v1.Placement{}
		return &next, nil
	})
	if errors.Is(err, errNotFound) {
		return nil, 0, &v1.Error{Code: v1.CodeNotFound, Message: "no deployment " + name}
	}
	if err != nil {
		return nil, 0, unavailable("delete deployment", err)
	}
	if d != nil {
		s.event(r.Context(), v1.Event{Type: v1.EventDeleted, Deployment: name, Message: fmt.Sprintf("deployment %s is being deleted: nodes drain it", name)})
	} else {
		cd, e := s.getDeployment(name)
		if e != nil {
			return nil, 0, e
		}
		d = &cd
	}
	return d, http.StatusAccepted, nil
}

var errNotFound = errors.New("not found")

func (s *Server) apiDeploymentStatus(_ http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
	d, e := s.getDeployment(r.PathValue("name"))
	if e != nil {
		return nil, 0, e
	}
	return s.deploymentStatus(&d), http.StatusOK, nil
}

func (s *Server) deploymentStatus(d *v1.Deployment) v1.DeploymentStatus {
	out := v1.DeploymentStatus{Deployment: *d, Nodes: []v1.NodeStatus{}}
	rows := map[string]*v1.NodeStatus{}
	row := func(node string) *v1.NodeStatus {
		if r, ok := rows[node]; ok {
			return r
		}
		r := &v1.NodeStatus{Node: node}
		if n, _, ok := s.nodes.get(node); ok {
			r.NodeState = n.State
		}
		rows[node] = r
		return r
	}
	for node, a := range s.current(d.Name) {
		v := a.Version
		row(node).Desired = &v
	}
	suffix := "." + d.Name
	s.statuses.each(func(key string, st *v1.InstanceStatus, _ uint64) {
		if node, ok := strings.CutSuffix(key, suffix); ok && !strings.Contains(node, ".") {
			c := *st
			row(node).Actual = &c
		}
	})
	converged := d.Placement.ObservedGeneration == d.Generation && d.Placement.Message == "" && !d.Deleting
	for _, r := range rows {
		if r.Desired != nil {
			out.Desired++
			if r.NodeState != v1.NodeReady && r.NodeState != v1.NodeDraining {
				converged = false
			}
			if r.Actual != nil && r.Actual.State == v1.InstanceReady && r.Actual.Digest == d.Version.Digest && r.Desired.Digest == d.Version.Digest {
				out.Ready++
			} else {
				converged = false
			}
		} else if r.Actual != nil && r.NodeState != v1.NodeLost {
			converged = false // still running where it should not
		}
		out.Nodes = append(out.Nodes, *r)
	}
	out.Converged = converged && out.Desired == len(d.Placement.Nodes)
	slices.SortFunc(out.Nodes, func(a, b v1.NodeStatus) int { return strings.Compare(a.Node, b.Node) })
	return out
}

func (s *Server) nodeView(name string) (v1.Node, bool) {
	n, rev, ok := s.nodes.get(name)
	if !ok {
		return n, false
	}
	n.Revision = rev
	if l, _, ok := s.leases.get(name); ok {
		n.LeaseRenewed = l.Renewed
		n.LeaseAge = time.Since(l.Renewed).Seconds()
	}
	s.assignments.eachOfNode(name, func(_ string, a *v1.Assignment, _ uint64) {
		n.Assignments = append(n.Assignments, a.Deployment)
		n.Allocated.MemoryBytes += a.Reserved.MemoryBytes
		n.Allocated.MilliCPU += a.Reserved.MilliCPU
		n.Allocated.Instances += a.Reserved.Instances
	})
	slices.Sort(n.Assignments)
	return n, true
}

func (s *Server) apiListNodes(_ http.ResponseWriter, _ *http.Request, _ cred) (any, int, *v1.Error) {
	var names []string
	s.nodes.each(func(name string, _ *v1.Node, _ uint64) { names = append(names, name) })
	slices.Sort(names)
	out := v1.NodeList{Nodes: []v1.Node{}}
	for _, name := range names {
		if n, ok := s.nodeView(name); ok {
			out.Nodes = append(out.Nodes, n)
		}
	}
	return out, http.StatusOK, nil
}

func (s *Server) apiGetNode(_ http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
	n, ok := s.nodeView(r.PathValue("name"))
	if !ok {
		return nil, 0, &v1.Error{Code: v1.CodeNotFound, Message: "no node " + r.PathValue("name")}
	}
	return n, http.StatusOK, nil
}

// apiRemoveNode forgets a lost or drained node: record, lease, credentials, statuses.
// Its assignments go with the scheduler's next pass.
func (s *Server) apiRemoveNode(_ http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
	ctx := r.Context()
	name := r.PathValue("name")
	n, rev, ok := s.nodes.get(name)
	if !ok {
		return nil, 0, &v1.Error{Code: v1.CodeNotFound, Message: "no node " + name}
	}
	if n.State != v1.NodeLost && n.State != v1.NodeDrained {
		return nil, 0, &v1.Error{Code: v1.CodeConflict, Message: fmt.Sprintf("node %s is %s: drain it first (fermion node drain %s), or stop its agent and wait until it is lost", name, n.State, name)}
	}
	if err := s.st.nodes.Delete(ctx, name, jetstream.LastRevision(rev)); err != nil {
		if isCASConflict(err) {
			return nil, 0, &v1.Error{Code: v1.CodeConflict, Message: fmt.Sprintf("node %s changed meanwhile; read it again", name)}
		}
		return nil, 0, unavailable("remove node", err)
	}
	var errs []error
	for _, del := range []struct {
		kv  jetstream.KeyValue
		key string
	}{{s.st.leases, name}, {s.st.tokens, "node." + name}} {
		if err := del.kv.Delete(ctx, del.key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			errs = append(errs, err)
		}
	}
	prefix := name + "."
	var stale []string
	s.statuses.each(func(key string, _ *v1.InstanceStatus, _ uint64) {
		if strings.HasPrefix(key, prefix) {
			stale = append(stale, key)
		}
	})
	for _, key := range stale {
		if err := s.st.status.Delete(ctx, key); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, 0, unavailable("remove node "+name, err)
	}
	s.event(ctx, v1.Event{Type: v1.EventNodeRemoved, Node: name, Message: fmt.Sprintf("node %s removed (it was %s)", name, n.State)})
	return nil, http.StatusNoContent, nil
}

func (s *Server) apiDrain(_ http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
	return s.setSchedulable(r.Context(), r.PathValue("name"), false)
}

func (s *Server) apiUncordon(_ http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
	return s.setSchedulable(r.Context(), r.PathValue("name"), true)
}

// setSchedulable drains (false) or uncordons (true) a node.
func (s *Server) setSchedulable(ctx context.Context, name string, on bool) (any, int, *v1.Error) {
	changed := false
	_, rev, err := update(ctx, s.st.nodes, name, func(cur *v1.Node, _ uint64) (*v1.Node, error) {
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
		return nil, 0, unavailable("update node", err)
	}
	if changed {
		s.nodes.waitRev(ctx, rev)
		if on {
			s.event(ctx, v1.Event{Type: v1.EventUncordoned, Node: name, Message: fmt.Sprintf("node %s is schedulable again", name)})
		} else {
			s.event(ctx, v1.Event{Type: v1.EventDrainStarted, Node: name, Message: fmt.Sprintf("draining node %s: its work moves to other nodes first", name)})
		}
	}
	n, _ := s.nodeView(name)
	return n, http.StatusOK, nil
}

func parseEventFilter(r *http.Request) (eventFilter, *v1.Error) {
	q := r.URL.Query()
	f := eventFilter{Deployment: q.Get("deployment"), Node: q.Get("node"), Type: q.Get("type"), Limit: 100}
	bad := func(field, format string, args ...any) (eventFilter, *v1.Error) {
		return f, &v1.Error{Code: v1.CodeBadRequest, Field: field, Message: fmt.Sprintf(format, args...)}
	}
	if f.Type != "" && v1.ValidName("type", strings.ReplaceAll(f.Type, "_", "-")) != nil {
		return bad("type", "%q is not an event type", f.Type)
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			return bad("limit", "%q: want 1 to 10000", v)
		}
		f.Limit = n
	}
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return bad("after", "%q: want an event sequence number", v)
		}
		f.After = n
	}
	if v := q.Get("since"); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			f.Since = time.Now().Add(-d)
		} else if t, err := time.Parse(time.RFC3339, v); err == nil {
			f.Since = t
		} else {
			return bad("since", "%q: want a duration (1h) or an RFC 3339 time", v)
		}
	}
	return f, nil
}

func (s *Server) apiEvents(w http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
	f, e := parseEventFilter(r)
	if e != nil {
		return nil, 0, e
	}
	follow := r.URL.Query().Get("follow")
	if follow != "true" && follow != "1" {
		evs, err := s.events(r.Context(), f)
		if err != nil {
			return nil, 0, unavailable("read events", err)
		}
		return v1.EventList{Events: evs}, http.StatusOK, nil
	}
	// Follow: the history the filter selects, then new events as they come.
	evs, err := s.events(r.Context(), f)
	if err != nil {
		return nil, 0, unavailable("read events", err)
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	after := f.After
	for _, ev := range evs {
		enc.Encode(ev)
		after = ev.Seq
	}
	if after == 0 {
		if info, err := s.st.events.Info(r.Context()); err == nil {
			after = info.State.LastSeq
		}
	}
	rc.Flush()
	f.After, f.Since = after, time.Time{}
	s.followEvents(r.Context(), f, func(ev v1.Event) error {
		if err := enc.Encode(ev); err != nil {
			return err
		}
		return rc.Flush()
	}, func() error {
		if _, err := w.Write([]byte("\n")); err != nil {
			return err
		}
		return rc.Flush()
	})
	return nil, 0, nil
}

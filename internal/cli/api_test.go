package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/cli"
	"fermion.dev/fermion/internal/fermiontest"
)

const apiToken = "api-token"

var (
	t0     = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	digest = "sha256:" + strings.Repeat("ab", 32)
)

// fakeAPI implements just enough of the control plane's API to exercise the verbs.
type fakeAPI struct {
	srv *httptest.Server

	mu          sync.Mutex
	info        v1.Info
	deployments map[string]*v1.Deployment
	rev         uint64
	puts        []put
	requests    []string // METHOD path?query
	// statuses are the successive replies of GET …/status (the last repeats); empty:
	// converged at once.
	statuses []v1.DeploymentStatus
	// beforePut runs before a PUT is judged (with mu held): a concurrent writer.
	beforePut func(f *fakeAPI)
	putErr    *v1.Error
	nodes     map[string]*v1.Node
	// nodeReads are the successive replies of GET /v1/nodes/{name} after a drain.
	nodeReads []v1.Node
	tokens    []v1.Token
	tokenReqs []v1.TokenRequest
	events    []v1.Event
	// live feeds a follow stream after the history.
	live chan string
	// fail makes every request fail with this status and body.
	failStatus int
	failBody   string
}

type put struct {
	name                 string
	spec                 v1.DeploymentSpec
	ifMatch, ifNoneMatch string
}

func newFakeAPI(t *testing.T) *fakeAPI {
	t.Helper()
	f := &fakeAPI{
		info:        v1.Info{Version: "test", Server: "s1", Leader: "s1", NATS: []string{"nats://127.0.0.1:4222"}},
		deployments: map[string]*v1.Deployment{},
		nodes:       map[string]*v1.Node{},
		live:        make(chan string, 16),
	}
	mux := http.NewServeMux()
	h := func(pattern string, fn func(w http.ResponseWriter, r *http.Request) (any, int, *v1.Error)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			f.requests = append(f.requests, r.Method+" "+r.URL.RequestURI())
			failStatus, failBody := f.failStatus, f.failBody
			f.mu.Unlock()
			if failStatus != 0 {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(failStatus)
				w.Write([]byte(failBody))
				return
			}
			if r.Header.Get("Authorization") != "Bearer "+apiToken {
				writeAPIError(w, &v1.Error{Code: v1.CodeUnauthorized, Message: "the token is unknown, revoked or expired"})
				return
			}
			out, status, e := fn(w, r)
			if e != nil {
				writeAPIError(w, e)
				return
			}
			if out == nil {
				if status != 0 { // 0: the handler wrote a stream
					w.WriteHeader(status)
				}
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(out)
		})
	}
	notFound := func(what string) *v1.Error { return &v1.Error{Code: v1.CodeNotFound, Message: "no " + what} }
	h("GET /v1/info", func(w http.ResponseWriter, r *http.Request) (any, int, *v1.Error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.info, 200, nil
	})
	h("POST /v1/tokens", func(w http.ResponseWriter, r *http.Request) (any, int, *v1.Error) {
		var req v1.TokenRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Message: err.Error()}
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.tokenReqs = append(f.tokenReqs, req)
		tok := v1.Token{ID: fmt.Sprintf("tok%d", len(f.tokens)+1), Role: req.Role, Description: req.Description, Created: t0, Secret: "secret-" + req.Role}
		if req.TTL != "" {
			d, _ := time.ParseDuration(req.TTL)
			exp := t0.Add(d)
			tok.Expires = &exp
		}
		f.tokens = append(f.tokens, tok)
		return tok, 201, nil
	})
	h("GET /v1/tokens", func(w http.ResponseWriter, r *http.Request) (any, int, *v1.Error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		l := v1.TokenList{Tokens: []v1.Token{}}
		for _, t := range f.tokens {
			t.Secret = ""
			l.Tokens = append(l.Tokens, t)
		}
		return l, 200, nil
	})
	h("DELETE /v1/tokens/{id}", func(w http.ResponseWriter, r *http.Request) (any, int, *v1.Error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		for i, t := range f.tokens {
			if t.ID == r.PathValue("id") {
				f.tokens = append(f.tokens[:i], f.tokens[i+1:]...)
				return nil, 204, nil
			}
		}
		return nil, 0, notFound("token " + r.PathValue("id"))
	})
	h("GET /v1/deployments", func(w http.ResponseWriter, r *http.Request) (any, int, *v1.Error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		l := v1.DeploymentList{Deployments: []v1.Deployment{}}
		for _, name := range sortedKeys(f.deployments) {
			l.Deployments = append(l.Deployments, *f.deployments[name])
		}
		return l, 200, nil
	})
	h("GET /v1/deployments/{name}", func(w http.ResponseWriter, r *http.Request) (any, int, *v1.Error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		d, ok := f.deployments[r.PathValue("name")]
		if !ok {
			return nil, 0, notFound("deployment " + r.PathValue("name"))
		}
		w.Header().Set("ETag", strconv.Quote(strconv.FormatUint(d.Revision, 10)))
		return d, 200, nil
	})
	h("PUT /v1/deployments/{name}", func(w http.ResponseWriter, r *http.Request) (any, int, *v1.Error) {
		var spec v1.DeploymentSpec
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&spec); err != nil {
			return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Message: err.Error()}
		}
		name := r.PathValue("name")
		f.mu.Lock()
		defer f.mu.Unlock()
		f.puts = append(f.puts, put{name: name, spec: spec, ifMatch: r.Header.Get("If-Match"), ifNoneMatch: r.Header.Get("If-None-Match")})
		if f.beforePut != nil {
			f.beforePut(f)
		}
		if f.putErr != nil {
			return nil, 0, f.putErr
		}
		cur, exists := f.deployments[name]
		if r.Header.Get("If-None-Match") == "*" && exists {
			return nil, 0, &v1.Error{Code: v1.CodeConflict, Message: "deployment " + name + " already exists"}
		}
		if m := r.Header.Get("If-Match"); m != "" && (!exists || m != strconv.Quote(strconv.FormatUint(cur.Revision, 10))) {
			return nil, 0, &v1.Error{Code: v1.CodeConflict, Message: fmt.Sprintf("deployment %s is at revision %d, not %s", name, cur.Revision, m)}
		}
		f.rev++
		d := &v1.Deployment{Name: name, Spec: spec, Generation: 1, Created: t0, Updated: t0, Revision: f.rev,
			Version: v1.Version{App: "hello", Version: "1.2.0", Repository: "reg.example/hello", Digest: digest}}
		status := 201
		if exists {
			d.Generation, d.Created, status = cur.Generation+1, cur.Created, 200
		}
		d.Placement = v1.Placement{ObservedGeneration: d.Generation, Nodes: []string{"edge-1"}}
		f.deployments[name] = d
		w.Header().Set("ETag", strconv.Quote(strconv.FormatUint(d.Revision, 10)))
		return d, status, nil
	})
	h("GET /v1/deployments/{name}/status", func(w http.ResponseWriter, r *http.Request) (any, int, *v1.Error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		d, ok := f.deployments[r.PathValue("name")]
		if !ok {
			return nil, 0, notFound("deployment " + r.PathValue("name"))
		}
		if len(f.statuses) == 0 {
			return v1.DeploymentStatus{Deployment: *d, Desired: 1, Ready: 1, Converged: true, Nodes: []v1.NodeStatus{{Node: "edge-1", NodeState: "ready", Desired: &d.Version,
				Actual: &v1.InstanceStatus{Deployment: d.Name, Node: "edge-1", Generation: d.Generation, Digest: d.Version.Digest, Version: d.Version.Version, State: "ready", Instances: 1, Updated: t0}}}}, 200, nil
		}
		st := f.statuses[0]
		if len(f.statuses) > 1 {
			f.statuses = f.statuses[1:]
		}
		st.Deployment = *d
		return st, 200, nil
	})
	h("GET /v1/nodes", func(w http.ResponseWriter, r *http.Request) (any, int, *v1.Error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		l := v1.NodeList{Nodes: []v1.Node{}}
		for _, name := range sortedKeys(f.nodes) {
			l.Nodes = append(l.Nodes, *f.nodes[name])
		}
		return l, 200, nil
	})
	h("GET /v1/nodes/{name}", func(w http.ResponseWriter, r *http.Request) (any, int, *v1.Error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		n, ok := f.nodes[r.PathValue("name")]
		if !ok {
			return nil, 0, notFound("node " + r.PathValue("name"))
		}
		if len(f.nodeReads) > 0 {
			*n = f.nodeReads[0]
			if len(f.nodeReads) > 1 {
				f.nodeReads = f.nodeReads[1:]
			}
		}
		return n, 200, nil
	})
	nodeOp := func(schedulable bool, state string) func(w http.ResponseWriter, r *http.Request) (any, int, *v1.Error) {
		return func(w http.ResponseWriter, r *http.Request) (any, int, *v1.Error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			n, ok := f.nodes[r.PathValue("name")]
			if !ok {
				return nil, 0, notFound("node " + r.PathValue("name"))
			}
			n.Schedulable, n.State = schedulable, state
			return n, 200, nil
		}
	}
	h("POST /v1/nodes/{name}/drain", nodeOp(false, v1.NodeDraining))
	h("POST /v1/nodes/{name}/uncordon", nodeOp(true, v1.NodeReady))
	h("GET /v1/events", func(w http.ResponseWriter, r *http.Request) (any, int, *v1.Error) {
		f.mu.Lock()
		evs := append([]v1.Event{}, f.events...)
		f.mu.Unlock()
		if r.URL.Query().Get("follow") != "true" {
			return v1.EventList{Events: evs}, 200, nil
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(200)
		enc := json.NewEncoder(w)
		for _, e := range evs {
			enc.Encode(e)
			w.Write([]byte("\n")) // a keep-alive between events
		}
		w.(http.Flusher).Flush()
		for {
			select {
			case l := <-f.live:
				w.Write([]byte(l))
				w.(http.Flusher).Flush()
			case <-r.Context().Done():
				return nil, 0, nil
			}
		}
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func writeAPIError(w http.ResponseWriter, e *v1.Error) {
	status := map[string]int{v1.CodeBadRequest: 400, v1.CodeUnauthorized: 401, v1.CodeForbidden: 403, v1.CodeNotFound: 404, v1.CodeConflict: 409,
		v1.CodeUnplaceable: 409, v1.CodePolicyDenied: 422, v1.CodeArtifact: 422, v1.CodeUnavailable: 503}[e.Code]
	if status == 0 {
		status = 500
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v1.ErrorBody{Error: e})
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

func (f *fakeAPI) lastPut(t *testing.T) put {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.puts) == 0 {
		t.Fatal("no PUT")
	}
	return f.puts[len(f.puts)-1]
}

func (f *fakeAPI) sawRequest(t *testing.T, want string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.requests {
		if r == want {
			return
		}
	}
	t.Fatalf("no request %q among %q", want, f.requests)
}

// apiEnv isolates a test from the user's environment and context file.
func apiEnv(t *testing.T) {
	t.Helper()
	t.Setenv("FERMION_HOME", t.TempDir())
	t.Setenv("FERMION_SERVER", "")
	t.Setenv("FERMION_TOKEN", "")
	t.Setenv("FERMION_REGISTRY_TOKEN", "")
}

// runAPI runs a verb against the fake API.
func (f *fakeAPI) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return run(t, append(args, "--server", f.srv.URL, "--token", apiToken)...)
}

func (f *fakeAPI) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := f.run(t, args...)
	if code != 0 {
		t.Fatalf("fermion %s exited %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout
}

func contains(t *testing.T, what, s string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Fatalf("%s lacks %q:\n%s", what, w, s)
		}
	}
}

func TestTokenVerbs(t *testing.T) {
	apiEnv(t)
	f := newFakeAPI(t)

	out := f.mustRun(t, "token", "create", "--role", "node", "--ttl", "1h", "--description", "edge site")
	contains(t, "token create", out, "token    secret-node\n", "id       tok1\n", "role     node\n", "expires  2025-03-01T13:00:00Z\n",
		"join a node with:\n  fermion agent --server nats://127.0.0.1:4222 --token secret-node\n")
	if got := f.tokenReqs[0]; got != (v1.TokenRequest{Role: "node", TTL: "1h", Description: "edge site"}) {
		t.Fatalf("token request %+v", got)
	}

	out = f.mustRun(t, "token", "create", "--role", "viewer", "-o", "json")
	var tok v1.Token
	if err := json.Unmarshal([]byte(out), &tok); err != nil || tok.Secret != "secret-viewer" || tok.Expires != nil {
		t.Fatalf("token create -o json: %v %+v\n%s", err, tok, out)
	}
	if strings.Contains(out, "fermion agent") {
		t.Fatalf("a viewer token came with a join hint:\n%s", out)
	}

	out = f.mustRun(t, "token", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !regexp.MustCompile(`^ID\s+ROLE\s+CREATED\s+EXPIRES\s+DESCRIPTION$`).MatchString(lines[0]) ||
		!regexp.MustCompile(`^tok1\s+node\s+2025-03-01T12:00:00Z\s+2025-03-01T13:00:00Z\s+edge site$`).MatchString(lines[1]) ||
		!regexp.MustCompile(`^tok2\s+viewer\s+2025-03-01T12:00:00Z\s+never\s+-$`).MatchString(lines[2]) {
		t.Fatalf("token list:\n%s", out)
	}
	if strings.Contains(out, "secret") {
		t.Fatalf("token list shows a secret:\n%s", out)
	}

	if out := f.mustRun(t, "token", "revoke", "tok1"); out != "revoked token tok1\n" {
		t.Fatalf("token revoke printed %q", out)
	}
	code, _, stderr := f.run(t, "token", "revoke", "tok1")
	if code != 1 || !strings.Contains(stderr, "revoke token tok1: no token tok1 (not_found)") {
		t.Fatalf("revoking a revoked token exited %d: %s", code, stderr)
	}

	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{name: "no role", args: []string{"token", "create"}, want: "--role is required"},
		{name: "bad role", args: []string{"token", "create", "--role", "root"}, want: `--role "root": want one of admin, deployer, viewer, node`},
		{name: "bad ttl", args: []string{"token", "create", "--role", "admin", "--ttl", "tomorrow"}, want: `--ttl "tomorrow"`},
		{name: "bad output", args: []string{"token", "list", "-o", "xml"}, want: `--output "xml": want table, json or yaml`},
		{name: "revoke without id", args: []string{"token", "revoke"}, want: "accepts 1 arg(s)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := f.run(t, tt.args...)
			if code != 2 || !strings.Contains(stderr, tt.want) || stdout != "" {
				t.Fatalf("exited %d, stderr %q, want 2 and %q", code, stderr, tt.want)
			}
		})
	}
}

// progressing returns status replies that take edge-1 from pulling to ready.
func progressing(d *v1.Version) []v1.DeploymentStatus {
	inst := func(state, lastErr string) *v1.InstanceStatus {
		return &v1.InstanceStatus{Deployment: "hello", Node: "edge-1", Digest: d.Digest, Version: d.Version, State: state, LastError: lastErr, Updated: t0}
	}
	return []v1.DeploymentStatus{
		{Desired: 1, Nodes: []v1.NodeStatus{{Node: "edge-1", NodeState: "ready", Desired: d}}},
		{Desired: 1, Nodes: []v1.NodeStatus{{Node: "edge-1", NodeState: "ready", Desired: d, Actual: inst("pulling", "")}}},
		{Desired: 1, Nodes: []v1.NodeStatus{{Node: "edge-1", NodeState: "ready", Desired: d, Actual: inst("pulling", "")}}},
		{Desired: 1, Ready: 1, Converged: true, Nodes: []v1.NodeStatus{{Node: "edge-1", NodeState: "ready", Desired: d, Actual: inst("ready", "")}}},
	}
}

var helloVersion = v1.Version{App: "hello", Version: "1.2.0", Repository: "reg.example/hello", Digest: digest}

func TestDeployImage(t *testing.T) {
	apiEnv(t)
	f := newFakeAPI(t)
	f.statuses = progressing(&helloVersion)

	out := f.mustRun(t, "deploy", "reg.example/acme/hello:1.2.0", "--nodes", "2", "--spread", "zone", "--selector", `region == "eu-west"`,
		"--strategy", "spread", "--prefer", "tier=edge:10", "--prefer", "cost=high:-5", "--prefer", "ssd=yes")
	p := f.lastPut(t)
	want := v1.DeploymentSpec{Image: "reg.example/acme/hello:1.2.0", Nodes: 2, Spread: "zone", Selector: `region == "eu-west"`, Strategy: "spread",
		Preferences: []v1.Preference{{Label: "tier", Value: "edge", Weight: 10}, {Label: "cost", Value: "high", Weight: -5}, {Label: "ssd", Value: "yes", Weight: 1}}}
	if p.name != "hello" || !jsonEqual(p.spec, want) {
		t.Fatalf("PUT %s %+v, want hello %+v", p.name, p.spec, want)
	}
	if p.ifNoneMatch != "*" || p.ifMatch != "" {
		t.Fatalf("first deploy sent If-None-Match %q If-Match %q, want create-only", p.ifNoneMatch, p.ifMatch)
	}
	short := "sha256:" + strings.Repeat("ab", 6)
	contains(t, "deploy", out,
		"deployment hello created (generation 1): reg.example/hello@"+short+" (hello 1.2.0)\n",
		"edge-1  new → waiting  hello 1.2.0 "+short+"\n",
		"edge-1  waiting → pulling  hello 1.2.0 "+short+"\n",
		"edge-1  pulling → ready  hello 1.2.0 "+short+"\n",
		"converged: 1/1 nodes ready on reg.example/hello@"+short+" (hello 1.2.0)")
	if n := strings.Count(out, "→ pulling"); n != 1 {
		t.Fatalf("an unchanged node was reported %d times:\n%s", n, out)
	}

	// The second deploy updates only the revision it read.
	out = f.mustRun(t, "deploy", "reg.example/acme/hello:1.2.0", "--name", "greeter", "--daemon", "--wait=false")
	if p := f.lastPut(t); p.name != "greeter" || !p.spec.Daemon || p.spec.Nodes != 0 || p.ifNoneMatch != "*" {
		t.Fatalf("daemon deploy PUT %+v", p)
	}
	f.mustRun(t, "deploy", "reg.example/acme/hello:1.2.0", "--name", "greeter", "--daemon", "--wait=false")
	if p := f.lastPut(t); p.ifMatch != `"2"` || p.ifNoneMatch != "" {
		t.Fatalf("update sent If-Match %q If-None-Match %q, want the revision read", p.ifMatch, p.ifNoneMatch)
	}
	if strings.Contains(out, "converged") {
		t.Fatalf("--wait=false waited:\n%s", out)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func TestDeployRefused(t *testing.T) {
	apiEnv(t)
	tests := []struct {
		name  string
		setup func(f *fakeAPI)
		want  []string
	}{
		{
			name: "another deploy wins the race",
			setup: func(f *fakeAPI) {
				f.deployments["hello"] = &v1.Deployment{Name: "hello", Revision: 5, Generation: 1}
				f.beforePut = func(f *fakeAPI) { f.deployments["hello"].Revision = 6 }
			},
			want: []string{"put deployment hello: deployment hello is at revision 6, not \"5\" (conflict)", "changed while this deploy ran (another deploy won); nothing was written"},
		},
		{
			name: "created meanwhile",
			setup: func(f *fakeAPI) {
				f.beforePut = func(f *fakeAPI) { f.deployments["hello"] = &v1.Deployment{Name: "hello", Revision: 9} }
			},
			want: []string{"already exists (conflict)", "was created by someone else while this deploy ran"},
		},
		{
			name:  "being deleted",
			setup: func(f *fakeAPI) { f.deployments["hello"] = &v1.Deployment{Name: "hello", Revision: 5, Deleting: true} },
			want:  []string{"deployment hello is being deleted: wait until it is gone"},
		},
		{
			name: "unplaceable",
			setup: func(f *fakeAPI) {
				f.putErr = &v1.Error{Code: v1.CodeUnplaceable, Message: "0 of 3 nodes fit: 2 do not match the selector, 1 lacks memory"}
			},
			want: []string{"cannot place hello: 0 of 3 nodes fit: 2 do not match the selector, 1 lacks memory (unplaceable)", "nothing was written"},
		},
		{
			name: "policy",
			setup: func(f *fakeAPI) {
				f.putErr = &v1.Error{Code: v1.CodePolicyDenied, Message: "require-signed: the image is not signed"}
			},
			want: []string{"require-signed: the image is not signed (policy_denied)", "an admission policy refused"},
		},
		{
			name:  "artifact",
			setup: func(f *fakeAPI) { f.putErr = &v1.Error{Code: v1.CodeArtifact, Message: "no tag 1.2.0"} },
			want:  []string{"no tag 1.2.0 (artifact)", "could not resolve, fetch or verify"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t)
			tt.setup(f)
			code, stdout, stderr := f.run(t, "deploy", "reg.example/hello:1.2.0")
			if code != 1 {
				t.Fatalf("deploy exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
			}
			contains(t, "stderr", stderr, append([]string{"fermion: "}, tt.want...)...)
		})
	}
}

func TestDeployTimeout(t *testing.T) {
	apiEnv(t)
	f := newFakeAPI(t)
	failed := &v1.InstanceStatus{Deployment: "hello", Node: "edge-2", Digest: digest, Version: "1.2.0", State: "failed", LastError: "compile: out of memory", Updated: t0}
	f.statuses = []v1.DeploymentStatus{{Desired: 2, Ready: 1, Nodes: []v1.NodeStatus{
		{Node: "edge-1", NodeState: "ready", Desired: &helloVersion, Actual: &v1.InstanceStatus{Node: "edge-1", Digest: digest, Version: "1.2.0", State: "ready"}},
		{Node: "edge-2", NodeState: "ready", Desired: &helloVersion, Actual: failed},
	}}}
	code, stdout, stderr := f.run(t, "deploy", "reg.example/hello:1.2.0", "--nodes", "2", "--timeout", "600ms")
	if code != 1 {
		t.Fatalf("deploy exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	contains(t, "stdout", stdout, "edge-2  new → failed  hello 1.2.0 sha256:abababababab  error: compile: out of memory")
	contains(t, "stderr", stderr, "deployment hello did not converge within 600ms: 1/2 nodes ready", "edge-2: failed: compile: out of memory", "fermion status hello")
}

func TestDeployUsageErrors(t *testing.T) {
	apiEnv(t)
	f := newFakeAPI(t)
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "nodes and daemon", args: []string{"reg.example/hello:1", "--nodes", "2", "--daemon"}, want: "either --nodes or --daemon"},
		{name: "zero nodes", args: []string{"reg.example/hello:1", "--nodes", "0"}, want: "--nodes: must be at least 1"},
		{name: "bad placement", args: []string{"reg.example/hello:1", "--placement", "random"}, want: `--placement: "random": want binpack or spread`},
		{name: "bad strategy", args: []string{"reg.example/hello:1", "--strategy", "canery"}, want: `--strategy "canery" is not a strategy; did you mean "canary"?`},
		{name: "canary without steps", args: []string{"reg.example/hello:1", "--strategy", "canary"}, want: "--strategy canary needs --steps"},
		{name: "bad step", args: []string{"reg.example/hello:1", "--steps", "1node,10%,5O%"}, want: `--steps: step 3: "5O%" is not a step`},
		{name: "weights shrink", args: []string{"reg.example/hello:1", "--steps", "50%,10%"}, want: "weights must increase"},
		{name: "sticky without canary", args: []string{"reg.example/hello:1", "--sticky", "cookie:s"}, want: "--sticky is for --strategy canary"},
		{name: "placement clash", args: []string{"reg.example/hello:1", "--strategy", "spread", "--placement", "binpack"}, want: "disagree"},
		{name: "empty steps", args: []string{"reg.example/hello:1", "--strategy", "canary", "--steps", ""}, want: "--steps is empty"},
		{name: "preference without value", args: []string{"reg.example/hello:1", "--prefer", "tier"}, want: `--prefer "tier": want label=value`},
		{name: "preference weight", args: []string{"reg.example/hello:1", "--prefer", "tier=edge:lots"}, want: `weight "lots" is not a number`},
		{name: "preference out of range", args: []string{"reg.example/hello:1", "--prefer", "a=b:1", "--prefer", "tier=edge:500"}, want: "--prefer[1].weight: must be within [-100, 100]"},
		{name: "not a name", args: []string{"reg.example/acme/hello_world:1"}, want: `deployment name "hello_world"`},
		{name: "bad --name", args: []string{"reg.example/hello:1", "--name", "-x"}, want: "choose one with --name"},
		{name: "missing directory", args: []string{filepath.Join(dir, "nope")}, want: "nope does not exist: give a function directory"},
		{name: "neither directory nor image", args: []string{"nope"}, want: "is neither a directory holding fermion.toml"},
		{name: "key with an image", args: []string{"reg.example/hello:1", "--key", "signing.key"}, want: "--key signs what deploy builds"},
		{name: "bad timeout", args: []string{"reg.example/hello:1", "--timeout", "0s"}, want: "--timeout 0s"},
		{name: "no target", args: nil, want: "accepts 1 arg(s), received 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := f.run(t, append([]string{"deploy"}, tt.args...)...)
			if code != 2 || !strings.Contains(stderr, tt.want) {
				t.Fatalf("exited %d, stderr %q, want 2 and %q\nstdout:\n%s", code, stderr, tt.want, stdout)
			}
		})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.puts) != 0 {
		t.Fatalf("usage errors wrote deployments: %+v", f.puts)
	}
}

// TestDeployDirectory builds the hello example, pushes it (signed) to a real registry
// and deploys the pushed digest.
func TestDeployDirectory(t *testing.T) {
	apiEnv(t)
	const pushToken = "push-token"
	t.Setenv("FERMION_PASSWORD", "pw")
	host := startRegistryServe(t, pushToken)
	f := newFakeAPI(t)
	f.info.Registry = host

	dir := filepath.Join(t.TempDir(), "hello")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(fermiontest.Root(t), "examples", "hello")
	toml, err := os.ReadFile(filepath.Join(src, "fermion.toml"))
	if err != nil {
		t.Fatal(err)
	}
	// The module comes from the per-binary guest build, never from whatever another
	// test left in the source tree.
	for name, b := range map[string][]byte{"fermion.toml": toml, "hello.wasm": fermiontest.Guest(t, "examples/hello", true)} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	keys := filepath.Join(t.TempDir(), "signing")
	keyID := match(t, keyIDLine, mustRun(t, "keys", "generate", "--out", keys))

	out := f.mustRun(t, "deploy", dir, "--no-build", "--cache-dir", t.TempDir(), "--key", keys+".key", "--registry-token", pushToken)
	d := match(t, digestLine, out)
	contains(t, "deploy", out, "pushed "+host+"/hello:0.1.0\n", "signed with key "+keyID, "deployment hello created", "converged")
	if p := f.lastPut(t); p.name != "hello" || p.spec.Image != host+"/hello@"+d || p.spec.Nodes != 1 {
		t.Fatalf("PUT %+v, want hello with image %s/hello@%s", p, host, d)
	}
	// What was pushed is what the registry serves, signed.
	contains(t, "pull", mustRun(t, "pull", host+"/hello@"+d, "--verify", keys+".pub", "-o", filepath.Join(t.TempDir(), "x.wasm")), "verified signature by key "+keyID)

	t.Run("registry token missing", func(t *testing.T) {
		f.info.Registry = host
		// The API token is the default registry token; this registry does not know it.
		code, _, stderr := f.run(t, "deploy", dir, "--no-build", "--cache-dir", t.TempDir())
		if code != 1 || !strings.Contains(stderr, "fermion: push manifest "+host+"/hello:0.1.0: ") {
			t.Fatalf("deploy with a wrong registry token exited %d: %s", code, stderr)
		}
		if r := fermiontest.RepeatedContext(stderr); r != "" {
			t.Fatalf("the error names %q twice: %s", r, stderr)
		}
	})
	t.Run("no registry", func(t *testing.T) {
		f.mu.Lock()
		f.info.Registry = ""
		f.mu.Unlock()
		code, _, stderr := f.run(t, "deploy", dir, "--no-build")
		if code != 1 || !strings.Contains(stderr, "has no built-in registry") {
			t.Fatalf("deploy without a registry exited %d: %s", code, stderr)
		}
	})
}

func TestStatus(t *testing.T) {
	apiEnv(t)
	f := newFakeAPI(t)
	f.mustRun(t, "deploy", "reg.example/hello:1.2.0", "--wait=false")
	f.mustRun(t, "deploy", "reg.example/hello:1.2.0", "--wait=false", "--name", "other")
	f.deployments["other"].Placement.Message = "1 of 2 nodes fit"

	out := f.mustRun(t, "status")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !regexp.MustCompile(`^NAME\s+IMAGE/VERSION\s+READY/DESIRED\s+GENERATION\s+MESSAGE$`).MatchString(lines[0]) ||
		!regexp.MustCompile(`^hello\s+reg.example/hello:1.2.0\s+1/1\s+1\s+-$`).MatchString(lines[1]) ||
		!regexp.MustCompile(`^other\s+reg.example/hello:1.2.0\s+1/1\s+1\s+1 of 2 nodes fit$`).MatchString(lines[2]) {
		t.Fatalf("status:\n%s", out)
	}

	f.statuses = []v1.DeploymentStatus{{Desired: 2, Ready: 1, Nodes: []v1.NodeStatus{
		{Node: "edge-1", NodeState: "ready", Desired: &helloVersion, Actual: &v1.InstanceStatus{Digest: digest, Version: "1.2.0", State: "ready", Instances: 3}},
		{Node: "edge-2", NodeState: "draining", Desired: &helloVersion, Actual: &v1.InstanceStatus{Digest: "sha256:0123456789abcdef", Version: "1.1.0", State: "failed", Instances: 0, LastError: "trap:\nunreachable"}},
		{Node: "edge-3", NodeState: "ready", Desired: &helloVersion},
	}}}
	out = f.mustRun(t, "status", "hello")
	contains(t, "status hello", out, "deployment  hello\n", "ready       1/2, converging\n", "spec        nodes 1\n")
	for _, re := range []string{
		`(?m)^NODE\s+NODE STATE\s+DESIRED\s+ACTUAL\s+STATE\s+INSTANCES\s+LAST ERROR$`,
		`(?m)^edge-1\s+ready\s+1.2.0 sha256:abababababab\s+1.2.0 sha256:abababababab\s+ready\s+3\s+-$`,
		`(?m)^edge-2\s+draining\s+1.2.0 sha256:abababababab\s+1.1.0 sha256:0123456789ab\s+failed\s+0\s+trap: unreachable$`,
		`(?m)^edge-3\s+ready\s+1.2.0 sha256:abababababab\s+-\s+-\s+-\s+-$`,
		// The record's KV revision is not a deployment revision (fermion history's).
		`(?m)^generation\s+1 \(placed \d+, record revision \d+\)$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Fatalf("status hello does not match %s:\n%s", re, out)
		}
	}

	var st v1.DeploymentStatus
	if err := json.Unmarshal([]byte(f.mustRun(t, "status", "hello", "-o", "json")), &st); err != nil || st.Deployment.Name != "hello" || len(st.Nodes) != 3 {
		t.Fatalf("status -o json: %v %+v", err, st)
	}
	var l v1.DeploymentList
	if err := json.Unmarshal([]byte(f.mustRun(t, "status", "-o", "json")), &l); err != nil || len(l.Deployments) != 2 {
		t.Fatalf("status -o json: %v %+v", err, l)
	}

	code, _, stderr := f.run(t, "status", "nope")
	if code != 1 || !strings.Contains(stderr, "fermion: get status of deployment nope: no deployment nope (not_found)") {
		t.Fatalf("status of a missing deployment exited %d: %s", code, stderr)
	}
}

func TestNodes(t *testing.T) {
	apiEnv(t)
	f := newFakeAPI(t)
	f.nodes["edge-1"] = &v1.Node{Name: "edge-1", State: "ready", Schedulable: true, Labels: map[string]string{"zone": "a", "region": "eu-west"},
		Capacity: v1.Resources{MemoryBytes: 2 << 30, Instances: 100}, Allocated: v1.Resources{MemoryBytes: 64 << 20, Instances: 8},
		LeaseRenewed: t0, LeaseAge: 1.234, Assignments: []string{"hello"}}
	f.nodes["edge-2"] = &v1.Node{Name: "edge-2", State: "lost", Capacity: v1.Resources{MemoryBytes: 1536 << 20, Instances: 10},
		LeaseRenewed: t0, LeaseAge: 95.2, Assignments: []string{"a", "b", "c", "d"}}
	// Restored from a backup and not back yet: no lease, so no age (not "0s").
	f.nodes["edge-3"] = &v1.Node{Name: "edge-3", State: "ready", Schedulable: true, Capacity: v1.Resources{MemoryBytes: 1 << 30, Instances: 10}}

	out := f.mustRun(t, "nodes")
	for _, re := range []string{
		`(?m)^NAME\s+STATE\s+SCHEDULABLE\s+LABELS\s+CAPACITY\s+ALLOCATED\s+LEASE AGE\s+ASSIGNMENTS$`,
		`(?m)^edge-1\s+ready\s+true\s+region=eu-west,zone=a\s+2GiB/100\s+64MiB/8\s+1.2s\s+hello$`,
		`(?m)^edge-2\s+lost\s+false\s+-\s+1.5GiB/10\s+0B/0\s+1m35s\s+4$`,
		`(?m)^edge-3\s+ready\s+true\s+-\s+1GiB/10\s+0B/0\s+-\s+-$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Fatalf("nodes does not match %s:\n%s", re, out)
		}
	}
	if out := f.mustRun(t, "nodes", "edge-2"); strings.Contains(out, "edge-1") || !strings.Contains(out, "edge-2") {
		t.Fatalf("nodes edge-2:\n%s", out)
	}
	var n v1.Node
	if err := json.Unmarshal([]byte(f.mustRun(t, "nodes", "edge-1", "-o", "json")), &n); err != nil || n.Labels["zone"] != "a" {
		t.Fatalf("nodes edge-1 -o json: %v %+v", err, n)
	}
	var l v1.NodeList
	if err := json.Unmarshal([]byte(f.mustRun(t, "nodes", "-o", "json")), &l); err != nil || len(l.Nodes) != 3 {
		t.Fatalf("nodes -o json: %v %+v", err, l)
	}
}

func TestNodeDrain(t *testing.T) {
	apiEnv(t)
	f := newFakeAPI(t)
	f.nodes["edge-1"] = &v1.Node{Name: "edge-1", State: "ready", Schedulable: true, Assignments: []string{"a", "b"}}
	f.nodeReads = []v1.Node{
		{Name: "edge-1", State: "draining", Assignments: []string{"a", "b"}},
		{Name: "edge-1", State: "draining", Assignments: []string{"b"}},
		{Name: "edge-1", State: "draining", Assignments: []string{"b"}},
		{Name: "edge-1", State: "drained"},
	}
	out := f.mustRun(t, "node", "drain", "edge-1")
	want := "node edge-1 draining: 2 assignments left (a, b)\nnode edge-1 draining: 1 assignment left (b)\nnode edge-1 drained: no work left\n"
	if out != want {
		t.Fatalf("node drain printed\n%s\nwant\n%s", out, want)
	}
	f.sawRequest(t, "POST /v1/nodes/edge-1/drain")

	if out := f.mustRun(t, "node", "uncordon", "edge-1"); out != "node edge-1 ready, schedulable true\n" {
		t.Fatalf("node uncordon printed %q", out)
	}

	t.Run("timeout", func(t *testing.T) {
		f.nodeReads = []v1.Node{{Name: "edge-1", State: "draining", Assignments: []string{"stuck"}}}
		code, _, stderr := f.run(t, "node", "drain", "edge-1", "--timeout", "500ms")
		if code != 1 || !strings.Contains(stderr, "node edge-1 not drained within 500ms: draining: 1 assignment left (stuck)") {
			t.Fatalf("drain timeout exited %d: %s", code, stderr)
		}
	})
	t.Run("no wait", func(t *testing.T) {
		if out := f.mustRun(t, "node", "drain", "edge-1", "--wait=false"); out != "node edge-1 draining: 1 assignment left (stuck)\n" {
			t.Fatalf("drain --wait=false printed %q", out)
		}
	})
	t.Run("unknown node", func(t *testing.T) {
		code, _, stderr := f.run(t, "node", "drain", "edge-9")
		if code != 1 || !strings.Contains(stderr, "drain node edge-9: no node edge-9 (not_found)") {
			t.Fatalf("drain of an unknown node exited %d: %s", code, stderr)
		}
	})
}

func eventJSON(e v1.Event) string {
	b, _ := json.Marshal(e)
	return string(b) + "\n"
}

func TestEvents(t *testing.T) {
	apiEnv(t)
	f := newFakeAPI(t)
	f.events = []v1.Event{
		{Seq: 1, Time: t0, Type: v1.EventDeployed, Deployment: "hello", Message: "generation 1: hello 1.2.0"},
		{Seq: 2, Time: t0.Add(time.Second), Type: v1.EventFailed, Deployment: "hello", Node: "edge-1", Message: "trap:\nunreachable"},
	}
	out := f.mustRun(t, "events", "--deployment", "hello", "--node", "edge-1", "--type", "failed", "--since", "1h", "--limit", "5")
	f.sawRequest(t, "GET /v1/events?deployment=hello&limit=5&node=edge-1&since=1h0m0s&type=failed")
	want := "TIME                  TYPE           DEPLOYMENT        NODE          MESSAGE\n" +
		"2025-03-01T12:00:00Z  deployed       hello             -             generation 1: hello 1.2.0\n" +
		"2025-03-01T12:00:01Z  failed         hello             edge-1        trap: unreachable\n"
	if out != want {
		t.Fatalf("events printed\n%q\nwant\n%q", out, want)
	}
	f.mustRun(t, "events", "--since", "2025-03-01T11:00:00Z")
	f.sawRequest(t, "GET /v1/events?limit=100&since=2025-03-01T11%3A00%3A00Z")

	var l v1.EventList
	if err := json.Unmarshal([]byte(f.mustRun(t, "events", "-o", "json")), &l); err != nil || len(l.Events) != 2 {
		t.Fatalf("events -o json: %v %+v", err, l)
	}

	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{name: "bad since", args: []string{"--since", "yesterday"}, want: `--since "yesterday"`},
		{name: "limit too big", args: []string{"--limit", "10001"}, want: "--limit 10001: want 1 to 10000"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := f.run(t, append([]string{"events"}, tt.args...)...)
			if code != 2 || !strings.Contains(stderr, tt.want) {
				t.Fatalf("exited %d, stderr %q, want 2 and %q", code, stderr, tt.want)
			}
		})
	}

	for _, tt := range []struct {
		name     string
		args     []string
		lines    int // printed in all, the header's included
		wantLine string
	}{
		{name: "table", lines: 4, wantLine: "2025-03-01T12:00:02Z  started        hello             edge-2        started 3 instances\n"},
		{name: "json", args: []string{"-o", "json"}, lines: 3, wantLine: `{"seq":3,"time":"2025-03-01T12:00:02Z","type":"started","deployment":"hello","node":"edge-2","message":"started 3 instances"}` + "\n"},
	} {
		t.Run("follow "+tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stdout, stderr := &fermiontest.SyncBuffer{}, &fermiontest.SyncBuffer{}
			done := make(chan int, 1)
			args := append([]string{"events", "--follow", "--server", f.srv.URL, "--token", apiToken}, tt.args...)
			go func() { done <- cli.RunContext(ctx, args, stdout, stderr) }()
			// The history arrives, then a live event after keep-alives.
			fermiontest.WaitFor(t, 10*time.Second, func() error {
				if n := strings.Count(stdout.String(), "\n"); n < tt.lines-1 {
					return fmt.Errorf("%d lines of history so far: %q", n, stdout)
				}
				return nil
			})
			f.live <- "\n"
			f.live <- eventJSON(v1.Event{Seq: 3, Time: t0.Add(2 * time.Second), Type: v1.EventStarted, Deployment: "hello", Node: "edge-2", Message: "started 3 instances"})
			f.live <- "\n"
			fermiontest.WaitFor(t, 10*time.Second, func() error {
				if !strings.HasSuffix(stdout.String(), tt.wantLine) {
					return fmt.Errorf("no live event yet: %q", stdout)
				}
				return nil
			})
			cancel()
			select {
			case code := <-done:
				if code != 0 {
					t.Fatalf("events --follow exited %d after an interrupt: %s", code, stderr)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("events --follow did not stop after its context was canceled")
			}
			if n := strings.Count(stdout.String(), "\n"); n != tt.lines {
				t.Fatalf("follow printed %d lines, want %d (the table with its header):\n%s", n, tt.lines, stdout)
			}
		})
	}
}

// TestAPIErrors: errors the user can act on say how.
func TestAPIErrors(t *testing.T) {
	apiEnv(t)
	f := newFakeAPI(t)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	tests := []struct {
		name       string
		args       []string
		failStatus int
		failBody   string
		want       []string
	}{
		{name: "no token", args: []string{"status", "--server", f.srv.URL}, want: []string{"(unauthorized)", "no API token: pass --token or set FERMION_TOKEN"}},
		{name: "wrong token", args: []string{"status", "--server", f.srv.URL, "--token", "wrong"}, want: []string{"the token is unknown, revoked or expired (unauthorized)", "refused the token from --token"}},
		{name: "forbidden", args: []string{"token", "list", "--server", f.srv.URL, "--token", apiToken}, failStatus: 403,
			failBody: `{"error":{"code":"forbidden","message":"a viewer token may not do this"}}`, want: []string{"list tokens: a viewer token may not do this (forbidden)", "lacks the role"}},
		{name: "internal", args: []string{"nodes", "--server", f.srv.URL, "--token", apiToken}, failStatus: 500,
			failBody: `{"error":{"code":"internal","message":"boom","requestId":"req-42"}}`, want: []string{"list nodes: boom (internal)", "request id req-42"}},
		{name: "unavailable", args: []string{"events", "--server", f.srv.URL, "--token", apiToken}, failStatus: 503,
			failBody: `{"error":{"code":"unavailable","message":"no quorum"}}`, want: []string{"no quorum (unavailable)", "retry in a moment"}},
		{name: "server down", args: []string{"nodes", "--server", closed.URL, "--token", apiToken}, want: []string{"list nodes: ", "cannot reach the control plane at " + closed.URL + " (from --server)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.mu.Lock()
			f.failStatus, f.failBody = tt.failStatus, tt.failBody
			f.mu.Unlock()
			code, stdout, stderr := run(t, tt.args...)
			if code != 1 || stdout != "" {
				t.Fatalf("exited %d, stdout %q, stderr %q", code, stdout, stderr)
			}
			contains(t, "stderr", stderr, append([]string{"fermion: "}, tt.want...)...)
		})
	}
	t.Run("bad server url", func(t *testing.T) {
		code, _, stderr := run(t, "status", "--server", "127.0.0.1:7070")
		if code != 2 || !strings.Contains(stderr, "want http:// or https:// (http://127.0.0.1:7070?) (from --server)") {
			t.Fatalf("exited %d: %s", code, stderr)
		}
	})
}

// TestSavedContext: with neither flags nor environment, the verbs use the saved
// context, and its token goes only to its server.
func TestSavedContext(t *testing.T) {
	apiEnv(t)
	f := newFakeAPI(t)
	f.nodes["edge-1"] = &v1.Node{Name: "edge-1", State: "ready"}
	b, _ := json.Marshal(map[string]string{"server": f.srv.URL, "token": apiToken})
	if err := os.WriteFile(filepath.Join(os.Getenv("FERMION_HOME"), "context.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := run(t, "nodes"); code != 0 || !strings.Contains(stdout, "edge-1") {
		t.Fatalf("nodes with a saved context exited %d: %s %s", code, stdout, stderr)
	}
	other := newFakeAPI(t)
	t.Setenv("FERMION_SERVER", other.srv.URL)
	code, _, stderr := run(t, "nodes")
	if code != 1 || !strings.Contains(stderr, "no API token") {
		t.Fatalf("the saved token went to another server: exit %d: %s", code, stderr)
	}
	t.Setenv("FERMION_TOKEN", apiToken)
	if code, _, stderr := run(t, "nodes"); code != 0 {
		t.Fatalf("nodes with FERMION_SERVER and FERMION_TOKEN exited %d: %s", code, stderr)
	}
	other.sawRequest(t, "GET /v1/nodes")
}

func TestAPIHelp(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{args: []string{"deploy", "--help"}, want: []string{"fermion deploy TARGET", "--nodes", "--daemon", "--spread", "--selector", "--strategy", "--prefer", "--key", "--wait", "--timeout", "--server", "--token"}},
		{args: []string{"status", "--help"}, want: []string{"fermion status [NAME]", "--output"}},
		{args: []string{"token", "create", "--help"}, want: []string{"--role", "--ttl", "--description", "--server", "--token"}},
		{args: []string{"node", "drain", "--help"}, want: []string{"fermion node drain NAME", "--wait", "--timeout", "--server"}},
		{args: []string{"events", "--help"}, want: []string{"--follow", "--deployment", "--node", "--type", "--since", "--limit"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := run(t, tt.args...)
			if code != 0 {
				t.Fatalf("exited %d: %s", code, stderr)
			}
			contains(t, "help", stdout, tt.want...)
		})
	}
}

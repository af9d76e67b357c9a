package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
)

const token = "s3cret"

// seen is what the test server saw of one request.
type seen struct {
	Method, Path, Query, Auth, UserAgent, IfMatch, IfNoneMatch, ContentType string
	Body                                                                    string
}

// serve starts a loopback server answering with h and a client of it.
func serve(t *testing.T, h http.HandlerFunc, opts ...client.Option) *client.Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL, token, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func record(r *http.Request) seen {
	b, _ := io.ReadAll(r.Body)
	return seen{
		Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Auth: r.Header.Get("Authorization"),
		UserAgent: r.Header.Get("User-Agent"), IfMatch: r.Header.Get("If-Match"), IfNoneMatch: r.Header.Get("If-None-Match"),
		ContentType: r.Header.Get("Content-Type"), Body: string(b),
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

var (
	t0  = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	dep = v1.Deployment{
		Name: "hello", Spec: v1.DeploymentSpec{Image: "reg/hello:1.2.0", Nodes: 2}, Generation: 3, Created: t0, Updated: t0,
		Version:   v1.Version{App: "hello", Version: "1.2.0", Repository: "reg/hello", Digest: "sha256:abcd"},
		Placement: v1.Placement{ObservedGeneration: 3, Nodes: []string{"edge-1", "edge-2"}},
	}
	node = v1.Node{Name: "edge-1", State: v1.NodeReady, Schedulable: true, Labels: map[string]string{"zone": "a"}, Joined: t0}
)

// TestMethods: every method sends the right request and decodes the reply.
func TestMethods(t *testing.T) {
	tests := []struct {
		name   string
		call   func(ctx context.Context, c *client.Client) (any, error)
		want   seen // Method, Path, Query and Body are compared
		status int
		reply  any
		result any
	}{
		{
			name: "info", call: func(ctx context.Context, c *client.Client) (any, error) { return c.Info(ctx) },
			want: seen{Method: "GET", Path: "/v1/info"}, status: 200,
			reply:  v1.Info{Version: "1.0", Server: "s1", Leader: "s1", Registry: "127.0.0.1:5000", NATS: []string{"nats://127.0.0.1:4222"}},
			result: &v1.Info{Version: "1.0", Server: "s1", Leader: "s1", Registry: "127.0.0.1:5000", NATS: []string{"nats://127.0.0.1:4222"}},
		},
		{
			name: "create token", call: func(ctx context.Context, c *client.Client) (any, error) {
				return c.CreateToken(ctx, v1.TokenRequest{Role: v1.RoleNode, TTL: "24h", Description: "edge"})
			},
			want:   seen{Method: "POST", Path: "/v1/tokens", Body: `{"role":"node","description":"edge","ttl":"24h"}`},
			status: 201, reply: v1.Token{ID: "t1", Role: v1.RoleNode, Created: t0, Secret: "fmt_x"},
			result: &v1.Token{ID: "t1", Role: v1.RoleNode, Created: t0, Secret: "fmt_x"},
		},
		{
			name: "list tokens", call: func(ctx context.Context, c *client.Client) (any, error) { return c.ListTokens(ctx) },
			want: seen{Method: "GET", Path: "/v1/tokens"}, status: 200,
			reply: v1.TokenList{Tokens: []v1.Token{{ID: "t1", Role: "admin", Created: t0}}}, result: &v1.TokenList{Tokens: []v1.Token{{ID: "t1", Role: "admin", Created: t0}}},
		},
		{
			name: "revoke token", call: func(ctx context.Context, c *client.Client) (any, error) { return nil, c.RevokeToken(ctx, "t1") },
			want: seen{Method: "DELETE", Path: "/v1/tokens/t1"}, status: 204,
		},
		{
			name: "list deployments", call: func(ctx context.Context, c *client.Client) (any, error) { return c.ListDeployments(ctx) },
			want: seen{Method: "GET", Path: "/v1/deployments"}, status: 200,
			reply: v1.DeploymentList{Deployments: []v1.Deployment{dep}}, result: &v1.DeploymentList{Deployments: []v1.Deployment{dep}},
		},
		{
			name: "get deployment, name escaped", call: func(ctx context.Context, c *client.Client) (any, error) { return c.GetDeployment(ctx, "a/b") },
			want: seen{Method: "GET", Path: "/v1/deployments/a%2Fb"}, status: 200, reply: dep, result: &dep,
		},
		{
			name: "delete deployment", call: func(ctx context.Context, c *client.Client) (any, error) { return c.DeleteDeployment(ctx, "hello") },
			want: seen{Method: "DELETE", Path: "/v1/deployments/hello"}, status: 202,
			reply: v1.Deployment{Name: "hello", Deleting: true}, result: &v1.Deployment{Name: "hello", Deleting: true},
		},
		{
			name: "deployment status", call: func(ctx context.Context, c *client.Client) (any, error) { return c.DeploymentStatus(ctx, "hello") },
			want: seen{Method: "GET", Path: "/v1/deployments/hello/status"}, status: 200,
			reply: v1.DeploymentStatus{Deployment: dep, Desired: 2, Ready: 1, Nodes: []v1.NodeStatus{{Node: "edge-1", NodeState: "ready", Desired: &dep.Version,
				Actual: &v1.InstanceStatus{Deployment: "hello", Node: "edge-1", State: "ready", Digest: "sha256:abcd", Updated: t0}}}},
			result: &v1.DeploymentStatus{Deployment: dep, Desired: 2, Ready: 1, Nodes: []v1.NodeStatus{{Node: "edge-1", NodeState: "ready", Desired: &dep.Version,
				Actual: &v1.InstanceStatus{Deployment: "hello", Node: "edge-1", State: "ready", Digest: "sha256:abcd", Updated: t0}}}},
		},
		{
			name: "list nodes", call: func(ctx context.Context, c *client.Client) (any, error) { return c.ListNodes(ctx) },
			want: seen{Method: "GET", Path: "/v1/nodes"}, status: 200, reply: v1.NodeList{Nodes: []v1.Node{node}}, result: &v1.NodeList{Nodes: []v1.Node{node}},
		},
		{
			name: "get node", call: func(ctx context.Context, c *client.Client) (any, error) { return c.GetNode(ctx, "edge-1") },
			want: seen{Method: "GET", Path: "/v1/nodes/edge-1"}, status: 200, reply: node, result: &node,
		},
		{
			name: "drain node", call: func(ctx context.Context, c *client.Client) (any, error) { return c.DrainNode(ctx, "edge-1") },
			want: seen{Method: "POST", Path: "/v1/nodes/edge-1/drain"}, status: 200, reply: node, result: &node,
		},
		{
			name: "uncordon node", call: func(ctx context.Context, c *client.Client) (any, error) { return c.UncordonNode(ctx, "edge-1") },
			want: seen{Method: "POST", Path: "/v1/nodes/edge-1/uncordon"}, status: 200, reply: node, result: &node,
		},
		{
			name: "events, all filters", call: func(ctx context.Context, c *client.Client) (any, error) {
				return c.Events(ctx, client.EventFilter{Deployment: "hello", Node: "edge-1", Type: "failed", Since: time.Hour, After: 7, Limit: 5})
			},
			want:   seen{Method: "GET", Path: "/v1/events", Query: "after=7&deployment=hello&limit=5&node=edge-1&since=1h0m0s&type=failed"},
			status: 200, reply: v1.EventList{Events: []v1.Event{{Seq: 8, Time: t0, Type: "failed", Message: "boom"}}},
			result: &v1.EventList{Events: []v1.Event{{Seq: 8, Time: t0, Type: "failed", Message: "boom"}}},
		},
		{
			name: "events since an instant", call: func(ctx context.Context, c *client.Client) (any, error) {
				return c.Events(ctx, client.EventFilter{SinceTime: t0})
			},
			want: seen{Method: "GET", Path: "/v1/events", Query: "since=2025-03-01T12%3A00%3A00Z"}, status: 200,
			reply: v1.EventList{}, result: &v1.EventList{},
		},
		{
			name: "unknown fields are ignored", call: func(ctx context.Context, c *client.Client) (any, error) { return c.GetNode(ctx, "edge-1") },
			want: seen{Method: "GET", Path: "/v1/nodes/edge-1"}, status: 200,
			reply:  map[string]any{"name": "edge-1", "state": "ready", "newField": map[string]any{"x": 1}, "labels": map[string]string{"zone": "a"}},
			result: &v1.Node{Name: "edge-1", State: "ready", Labels: map[string]string{"zone": "a"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got seen
			c := serve(t, func(w http.ResponseWriter, r *http.Request) {
				got = record(r)
				if tt.reply == nil {
					w.WriteHeader(tt.status)
					return
				}
				writeJSON(w, tt.status, tt.reply)
			}, client.WithUserAgent("test-agent/1"))
			res, err := tt.call(context.Background(), c)
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			if got.Method != tt.want.Method || got.Path != tt.want.Path || got.Query != tt.want.Query {
				t.Fatalf("request %s %s?%s, want %s %s?%s", got.Method, got.Path, got.Query, tt.want.Method, tt.want.Path, tt.want.Query)
			}
			if got.Body != "" || tt.want.Body != "" {
				if strings.TrimSpace(got.Body) != tt.want.Body || got.ContentType != "application/json" {
					t.Fatalf("body %q (%s), want %q", got.Body, got.ContentType, tt.want.Body)
				}
			}
			if got.Auth != "Bearer "+token || got.UserAgent != "test-agent/1" {
				t.Fatalf("authorization %q, user agent %q", got.Auth, got.UserAgent)
			}
			if tt.result != nil && !reflect.DeepEqual(res, tt.result) {
				t.Fatalf("result\n%+v\nwant\n%+v", res, tt.result)
			}
		})
	}
}

// TestErrors: every error status arrives as a *v1.Error with its code, wrapped with
// the operation.
func TestErrors(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		body        string
		header      map[string]string
		want        v1.Error
		wantMessage string // for bodies that are not error bodies: a part of the message
	}{
		{name: "bad request", status: 400, body: `{"error":{"code":"bad_request","message":"must be at least 1","field":"spec.nodes","requestId":"r1"}}`,
			want: v1.Error{Code: v1.CodeBadRequest, Message: "must be at least 1", Field: "spec.nodes", RequestID: "r1"}},
		{name: "unauthorized", status: 401, body: `{"error":{"code":"unauthorized","message":"unknown token"}}`, header: map[string]string{"X-Request-Id": "r2"},
			want: v1.Error{Code: v1.CodeUnauthorized, Message: "unknown token", RequestID: "r2"}},
		{name: "forbidden", status: 403, body: `{"error":{"code":"forbidden","message":"viewer may not deploy"}}`, want: v1.Error{Code: v1.CodeForbidden, Message: "viewer may not deploy"}},
		{name: "not found", status: 404, body: `{"error":{"code":"not_found","message":"no deployment hello"}}`, want: v1.Error{Code: v1.CodeNotFound, Message: "no deployment hello"}},
		{name: "conflict", status: 409, body: `{"error":{"code":"conflict","message":"revision moved"}}`, want: v1.Error{Code: v1.CodeConflict, Message: "revision moved"}},
		{name: "unplaceable", status: 409, body: `{"error":{"code":"unplaceable","message":"0 of 3 nodes fit: 3 lack memory"}}`, want: v1.Error{Code: v1.CodeUnplaceable, Message: "0 of 3 nodes fit: 3 lack memory"}},
		{name: "too large", status: 413, body: `{"error":{"code":"too_large","message":"body over 1MiB"}}`, want: v1.Error{Code: v1.CodeTooLarge, Message: "body over 1MiB"}},
		{name: "policy denied", status: 422, body: `{"error":{"code":"policy_denied","message":"unsigned"}}`, want: v1.Error{Code: v1.CodePolicyDenied, Message: "unsigned"}},
		{name: "artifact", status: 422, body: `{"error":{"code":"artifact","message":"no such tag"}}`, want: v1.Error{Code: v1.CodeArtifact, Message: "no such tag"}},
		{name: "unavailable", status: 503, body: `{"error":{"code":"unavailable","message":"no quorum"}}`, want: v1.Error{Code: v1.CodeUnavailable, Message: "no quorum"}},
		{name: "internal", status: 500, body: `{"error":{"code":"internal","message":"bug","requestId":"r9"}}`, want: v1.Error{Code: v1.CodeInternal, Message: "bug", RequestID: "r9"}},
		{name: "unknown fields in the error", status: 404, body: `{"error":{"code":"not_found","message":"gone","hint":"x"},"extra":1}`, want: v1.Error{Code: v1.CodeNotFound, Message: "gone"}},
		// Bodies that are not error bodies (a proxy in between): the code comes from the status.
		{name: "proxy bad gateway", status: 502, body: "<html>bad gateway</html>", want: v1.Error{Code: v1.CodeUnavailable}, wantMessage: "bad gateway"},
		{name: "plain not found", status: 404, body: "404 page not found\n", want: v1.Error{Code: v1.CodeNotFound}, wantMessage: "404 page not found"},
		{name: "empty internal", status: 500, want: v1.Error{Code: v1.CodeInternal}, wantMessage: "HTTP 500"},
		{name: "precondition failed", status: 412, want: v1.Error{Code: v1.CodeConflict}},
		{name: "error body without a code", status: 400, body: `{"error":{}}`, want: v1.Error{Code: v1.CodeBadRequest}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := serve(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			})
			_, err := c.GetDeployment(context.Background(), "hello")
			var e *v1.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not a *v1.Error", err, err)
			}
			if !client.IsCode(err, tt.want.Code) || e.Code != tt.want.Code {
				t.Fatalf("code %q, want %q", e.Code, tt.want.Code)
			}
			if tt.wantMessage == "" && tt.want.Message != "" && *e != tt.want {
				t.Fatalf("error %+v, want %+v", *e, tt.want)
			}
			if !strings.Contains(e.Message, tt.wantMessage) {
				t.Fatalf("message %q lacks %q", e.Message, tt.wantMessage)
			}
			if !strings.HasPrefix(err.Error(), "get deployment hello: ") {
				t.Fatalf("error %q does not name the operation", err)
			}
		})
	}
}

// TestPutConditions: the precondition becomes If-Match or If-None-Match, the revision
// comes from the ETag, and 201 means created.
func TestPutConditions(t *testing.T) {
	var mu sync.Mutex
	var rev uint64 // 0: the deployment does not exist
	var last seen
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		last = record(r)
		conflict := func() {
			writeJSON(w, 409, v1.ErrorBody{Error: &v1.Error{Code: v1.CodeConflict, Message: "changed"}})
		}
		switch r.Method {
		case "GET":
			if rev == 0 {
				writeJSON(w, 404, v1.ErrorBody{Error: &v1.Error{Code: v1.CodeNotFound, Message: "no deployment hello"}})
				return
			}
			w.Header().Set("ETag", fmt.Sprintf(`"%d"`, rev))
			writeJSON(w, 200, dep) // the body's revision is not filled: the ETag's counts
		case "PUT":
			if r.Header.Get("If-None-Match") == "*" && rev != 0 {
				conflict()
				return
			}
			if m := r.Header.Get("If-Match"); m != "" && m != fmt.Sprintf(`"%d"`, rev) {
				conflict()
				return
			}
			status := 200
			if rev == 0 {
				status = 201
			}
			rev += 10
			w.Header().Set("ETag", fmt.Sprintf(`"%d"`, rev))
			writeJSON(w, status, dep)
		}
	})
	ctx := context.Background()
	spec := v1.DeploymentSpec{Image: "reg/hello:1.2.0", Nodes: 2}

	if _, err := c.GetDeployment(ctx, "hello"); !client.IsCode(err, v1.CodeNotFound) {
		t.Fatalf("get of a missing deployment: %v", err)
	}
	d, created, err := c.PutDeployment(ctx, "hello", spec, client.CreateOnly())
	if err != nil || !created || d.Revision != 10 {
		t.Fatalf("create: %v created=%v revision=%v", err, created, d)
	}
	if last.IfNoneMatch != "*" || last.IfMatch != "" {
		t.Fatalf("create sent If-None-Match %q If-Match %q", last.IfNoneMatch, last.IfMatch)
	}
	if _, _, err := c.PutDeployment(ctx, "hello", spec, client.CreateOnly()); !client.IsCode(err, v1.CodeConflict) {
		t.Fatalf("second create: %v, want conflict", err)
	}

	got, err := c.GetDeployment(ctx, "hello")
	if err != nil || got.Revision != 10 {
		t.Fatalf("get: %v revision %v", err, got)
	}
	d, created, err = c.PutDeployment(ctx, "hello", spec, client.IfMatch(got.Revision))
	if err != nil || created || d.Revision != 20 || last.IfMatch != `"10"` || last.IfNoneMatch != "" {
		t.Fatalf("update: %v created=%v %v; sent If-Match %q If-None-Match %q", err, created, d, last.IfMatch, last.IfNoneMatch)
	}
	if strings.TrimSpace(last.Body) != `{"image":"reg/hello:1.2.0","nodes":2}` {
		t.Fatalf("put body %s", last.Body)
	}
	// A second writer holding the old revision loses.
	_, _, err = c.PutDeployment(ctx, "hello", spec, client.IfMatch(got.Revision))
	if !client.IsCode(err, v1.CodeConflict) || !strings.HasPrefix(err.Error(), "put deployment hello: ") {
		t.Fatalf("stale update: %v, want a conflict", err)
	}
	if _, _, err := c.PutDeployment(ctx, "hello", spec, client.Unconditional()); err != nil || last.IfMatch != "" || last.IfNoneMatch != "" {
		t.Fatalf("unconditional: %v; sent If-Match %q If-None-Match %q", err, last.IfMatch, last.IfNoneMatch)
	}
}

// followServer streams events; each value sent on lines is written and flushed as is.
func followServer(t *testing.T, lines <-chan string, contentType string) (*client.Client, <-chan seen) {
	t.Helper()
	reqs := make(chan seen, 1)
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		reqs <- record(r)
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					return
				}
				io.WriteString(w, l)
				w.(http.Flusher).Flush()
			case <-r.Context().Done():
				return
			}
		}
	})
	return c, reqs
}

func eventLine(seq uint64) string {
	b, _ := json.Marshal(v1.Event{Seq: seq, Time: t0, Type: v1.EventStarted, Deployment: "hello", Node: "edge-1", Message: fmt.Sprint("event ", seq)})
	return string(b) + "\n"
}

func TestFollowEvents(t *testing.T) {
	errStop := errors.New("stop")

	t.Run("keep-alives, partial writes and a stop", func(t *testing.T) {
		lines := make(chan string, 16)
		c, reqs := followServer(t, lines, "application/x-ndjson")
		l3 := eventLine(3)
		for _, l := range []string{eventLine(1), "\n", "\n", eventLine(2), l3[:10], l3[10:], "\r\n", eventLine(4)} {
			lines <- l
		}
		var got []uint64
		err := c.FollowEvents(context.Background(), client.EventFilter{Deployment: "hello", After: 0}, func(e v1.Event) error {
			got = append(got, e.Seq)
			if e.Seq == 4 {
				return errStop
			}
			return nil
		})
		if err != errStop {
			t.Fatalf("FollowEvents returned %v, want fn's error as is", err)
		}
		if !reflect.DeepEqual(got, []uint64{1, 2, 3, 4}) {
			t.Fatalf("events %v", got)
		}
		r := <-reqs
		if r.Path != "/v1/events" || r.Query != "deployment=hello&follow=true" || r.Auth != "Bearer "+token {
			t.Fatalf("request %+v", r)
		}
	})

	t.Run("context canceled while waiting", func(t *testing.T) {
		lines := make(chan string, 1)
		c, _ := followServer(t, lines, "application/x-ndjson")
		lines <- eventLine(1)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		err := c.FollowEvents(ctx, client.EventFilter{}, func(e v1.Event) error {
			cancel() // the server sends nothing more: only the cancel ends the call
			return nil
		})
		if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "follow events: ") {
			t.Fatalf("FollowEvents after cancel returned %v", err)
		}
	})

	t.Run("server ends the stream", func(t *testing.T) {
		lines := make(chan string, 2)
		c, _ := followServer(t, lines, "application/x-ndjson")
		lines <- eventLine(5)
		close(lines)
		err := c.FollowEvents(context.Background(), client.EventFilter{}, func(v1.Event) error { return nil })
		if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), "after event 5") {
			t.Fatalf("FollowEvents on a closed stream returned %v", err)
		}
	})

	t.Run("garbage line", func(t *testing.T) {
		lines := make(chan string, 1)
		c, _ := followServer(t, lines, "application/x-ndjson")
		lines <- "not json\n"
		err := c.FollowEvents(context.Background(), client.EventFilter{}, func(v1.Event) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "decode event") {
			t.Fatalf("FollowEvents on garbage returned %v", err)
		}
	})

	t.Run("line too long", func(t *testing.T) {
		defer client.SetLimits(64<<20, 100)()
		lines := make(chan string, 1)
		c, _ := followServer(t, lines, "application/x-ndjson")
		lines <- `{"message":"` + strings.Repeat("x", 200) + "\"}\n"
		err := c.FollowEvents(context.Background(), client.EventFilter{}, func(v1.Event) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "longer than 100 bytes") {
			t.Fatalf("FollowEvents on a long line returned %v", err)
		}
	})

	t.Run("a list instead of a stream", func(t *testing.T) {
		lines := make(chan string, 1)
		c, _ := followServer(t, lines, "application/json")
		close(lines)
		err := c.FollowEvents(context.Background(), client.EventFilter{}, func(v1.Event) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "not a stream") {
			t.Fatalf("FollowEvents on a list returned %v", err)
		}
	})

	t.Run("refused", func(t *testing.T) {
		c := serve(t, func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 403, v1.ErrorBody{Error: &v1.Error{Code: v1.CodeForbidden, Message: "no"}})
		})
		err := c.FollowEvents(context.Background(), client.EventFilter{}, func(v1.Event) error { return nil })
		if !client.IsCode(err, v1.CodeForbidden) {
			t.Fatalf("FollowEvents refused returned %v", err)
		}
	})
}

// TestCancel: a canceled context ends a call the server does not answer.
func TestCancel(t *testing.T) {
	arrived := make(chan struct{})
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done()
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-arrived
		cancel()
	}()
	_, err := c.ListDeployments(ctx)
	if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "list deployments: ") {
		t.Fatalf("canceled call returned %v", err)
	}
	var e *v1.Error
	if errors.As(err, &e) {
		t.Fatalf("a canceled call returned a server error %v", e)
	}
}

func TestTransportError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, err := client.New(url, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ListNodes(context.Background())
	var e *v1.Error
	if err == nil || errors.As(err, &e) || !strings.HasPrefix(err.Error(), "list nodes: ") {
		t.Fatalf("call to a closed server returned %v", err)
	}
}

func TestResponseTooLarge(t *testing.T) {
	defer client.SetLimits(1000, 1<<20)()
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, v1.NodeList{Nodes: []v1.Node{{Name: strings.Repeat("n", 2000)}}})
	})
	_, err := c.ListNodes(context.Background())
	if err == nil || !strings.Contains(err.Error(), "larger than 1000 bytes") {
		t.Fatalf("oversized response returned %v", err)
	}
}

func TestNoToken(t *testing.T) {
	var auth []string
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Values("Authorization")
		w.Write([]byte(`{"openapi":"3.1.0"}`))
	})
	c, err := client.New(c.BaseURL(), "")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := c.OpenAPI(context.Background())
	if err != nil || !bytes.Contains(doc, []byte("3.1.0")) {
		t.Fatalf("openapi: %v %s", err, doc)
	}
	if len(auth) != 0 {
		t.Fatalf("a client without a token sent Authorization %v", auth)
	}
}

func TestBaseURLPrefix(t *testing.T) {
	var path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.EscapedPath()
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	c, err := client.New(srv.URL+"/fermion/", token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetNode(context.Background(), "edge 1"); err != nil {
		t.Fatal(err)
	}
	if path != "/fermion/v1/nodes/edge%201" {
		t.Fatalf("path %q", path)
	}
}

func TestArgumentErrors(t *testing.T) {
	c, err := client.New("http://127.0.0.1:1", token)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{name: "empty deployment name", call: func() error { _, err := c.GetDeployment(ctx, ""); return err }, want: "name: required (bad_request)"},
		{name: "empty put name", call: func() error {
			_, _, err := c.PutDeployment(ctx, "", v1.DeploymentSpec{}, client.CreateOnly())
			return err
		}, want: "name: required"},
		{name: "empty token id", call: func() error { return c.RevokeToken(ctx, "") }, want: "id: required"},
		{name: "empty node name", call: func() error { _, err := c.DrainNode(ctx, ""); return err }, want: "name: required"},
		{name: "both since forms", call: func() error {
			_, err := c.Events(ctx, client.EventFilter{Since: time.Hour, SinceTime: t0})
			return err
		}, want: "either Since or SinceTime"},
		{name: "negative limit", call: func() error {
			return c.FollowEvents(ctx, client.EventFilter{Limit: -1}, func(v1.Event) error { return nil })
		}, want: "limit -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		url, want string // want: an error containing it, or "" for success
	}{
		{url: "http://127.0.0.1:7070"},
		{url: "https://fermion.example.com/"},
		{url: "127.0.0.1:7070", want: "want http:// or https://"},
		{url: "nats://127.0.0.1:4222", want: "want http:// or https://"},
		{url: "http://", want: "no host"},
		{url: "http://h/?x=1", want: "only scheme"},
		{url: "http://u:p@h/", want: "only scheme"},
		{url: "http://a b", want: "server url"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			_, err := client.New(tt.url, token)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("New(%q) = %v, want %q", tt.url, err, tt.want)
			}
		})
	}
}

func TestIsCode(t *testing.T) {
	wrapped := fmt.Errorf("deploy: %w", fmt.Errorf("put: %w", &v1.Error{Code: v1.CodeConflict}))
	if !client.IsCode(wrapped, v1.CodeConflict) || client.IsCode(wrapped, v1.CodeNotFound) || client.IsCode(nil, v1.CodeConflict) || client.IsCode(errors.New("conflict"), v1.CodeConflict) {
		t.Fatal("IsCode answers wrongly")
	}
}

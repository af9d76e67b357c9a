package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/telemetry"
)

// recordingController counts its passes and fails when told to.
type recordingController struct {
	name   string
	passes atomic.Int64
	fail   atomic.Bool
	order  *orderLog
}

func (c *recordingController) Name() string { return c.name }
func (c *recordingController) Reconcile(_ context.Context, pass Pass) error {
	if pass.Acting == nil || !pass.Acting() {
		return errors.New("reconciled while not acting")
	}
	c.passes.Add(1)
	c.order.add(c.name)
	if c.fail.Load() {
		return errors.New(c.name + " failed")
	}
	return nil
}

type orderLog struct {
	mu    sync.Mutex
	names []string
}

func (l *orderLog) add(name string) {
	l.mu.Lock()
	l.names = append(l.names, name)
	l.mu.Unlock()
}

func (l *orderLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.names...)
}

// recordingRunner reports whether it runs.
type recordingRunner struct {
	starts, stops atomic.Int64
	running       atomic.Bool
}

func (r *recordingRunner) Name() string { return "runner" }
func (r *recordingRunner) Run(ctx context.Context) {
	r.starts.Add(1)
	r.running.Store(true)
	<-ctx.Done()
	r.running.Store(false)
	r.stops.Add(1)
}

// TestControllersRunUnderLeadership drives the controller loop as the election would:
// registered controllers run in order only while acting, a failing one does not stop
// the next, and leader runners start with leadership and stop when it ends or the loop
// does.
func TestControllersRunUnderLeadership(t *testing.T) {
	var acting atomic.Bool
	order := &orderLog{}
	first := &recordingController{name: "first", order: order}
	second := &recordingController{name: "second", order: order}
	first.fail.Store(true)
	runner := &recordingRunner{}
	c := &controllers{
		cfg:       &Config{ResyncInterval: time.Hour, LeaseLost: 8 * time.Hour},
		logger:    telemetry.Discard,
		metrics:   newMetrics(nil, nil),
		Acting:    acting.Load,
		notePause: func(time.Duration, time.Duration) {},
		kick:      make(chan struct{}, 1),
		list:      []Controller{first, second},
		runners:   []LeaderRunner{runner},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.controllerLoop(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	// Not acting: a kick runs nothing and starts no runner. The loop drains the kick
	// channel; a second kick proves the first was handled.
	c.kickControllers()
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		select {
		case c.kick <- struct{}{}:
			return nil
		default:
			return errors.New("the first kick is not taken yet")
		}
	})
	if n := first.passes.Load() + second.passes.Load(); n != 0 || runner.starts.Load() != 0 {
		t.Fatalf("not acting, yet %d passes and %d runner starts", n, runner.starts.Load())
	}

	acting.Store(true)
	c.kickControllers()
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if second.passes.Load() == 0 || !runner.running.Load() {
			return fmt.Errorf("passes %d/%d, runner running %v", first.passes.Load(), second.passes.Load(), runner.running.Load())
		}
		return nil
	})
	if got := order.snapshot(); len(got) < 2 || got[0] != "first" || got[1] != "second" {
		t.Fatalf("order %v, want first then second", got)
	}

	// Losing leadership stops the runner; regaining it starts it once more.
	acting.Store(false)
	c.kickControllers()
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if runner.stops.Load() != 1 {
			return errors.New("the runner has not stopped")
		}
		return nil
	})
	acting.Store(true)
	c.kickControllers()
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if runner.starts.Load() != 2 || !runner.running.Load() {
			return fmt.Errorf("runner started %d times, running %v", runner.starts.Load(), runner.running.Load())
		}
		return nil
	})
	cancel()
	<-done
	if runner.running.Load() || runner.stops.Load() != 2 {
		t.Fatalf("after the loop returned: running %v, stopped %d times", runner.running.Load(), runner.stops.Load())
	}
}

// TestRouteGroupsShareTheWrapper registers an extra route group as a new resource
// would and checks that it is served behind serveAPI: authentication, the least role,
// error bodies and the request id, like the built-in routes.
func TestRouteGroupsShareTheWrapper(t *testing.T) {
	s := startLeader(t)
	ctx := context.Background()
	viewer, err := s.CreateToken(ctx, v1.RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	h := s.api.newAPI(append(s.routeGroups(), func(route routeFunc) {
		route("GET /v1/widgets", v1.RoleViewer, func(_ http.ResponseWriter, _ *http.Request, caller cred) (any, int, *v1.Error) {
			return map[string]string{"role": caller.Role}, http.StatusOK, nil
		})
		route("DELETE /v1/widgets", v1.RoleAdmin, func(http.ResponseWriter, *http.Request, cred) (any, int, *v1.Error) {
			return nil, http.StatusNoContent, nil
		})
	})...)
	for _, tc := range []struct {
		name, method, path, token string
		status                    int
		body                      string
	}{
		{"no token", "GET", "/v1/widgets", "", http.StatusUnauthorized, v1.CodeUnauthorized},
		{"viewer reads", "GET", "/v1/widgets", viewer, http.StatusOK, `"role": "viewer"`},
		{"viewer may not delete", "DELETE", "/v1/widgets", viewer, http.StatusForbidden, "needs the admin role"},
		{"admin deletes", "DELETE", "/v1/widgets", s.AdminToken(), http.StatusNoContent, ""},
		{"core routes still served", "GET", "/v1/info", viewer, http.StatusOK, s.Name()},
		{"unknown route", "GET", "/v1/gadgets", viewer, http.StatusNotFound, "no route GET /v1/gadgets"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.path, nil)
			if tc.token != "" {
				r.Header.Set("Authorization", "Bearer "+tc.token)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.body) {
				t.Fatalf("%s %s: %d %s, want %d containing %q", tc.method, tc.path, w.Code, w.Body, tc.status, tc.body)
			}
			if tc.path != "/v1/gadgets" && w.Header().Get("X-Request-Id") == "" {
				t.Fatal("no request id")
			}
		})
	}
}

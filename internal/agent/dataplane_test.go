package agent_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"fermion.dev/fermion/internal/agent"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
)

var client = &http.Client{Timeout: 30 * time.Second}

// example loads an example's manifest and guest.
func example(t *testing.T, name string) (*manifest.Manifest, []byte) {
	t.Helper()
	m, err := manifest.Load(filepath.Join(fermiontest.Root(t), "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	return m, fermiontest.Guest(t, "examples/"+name, true)
}

// withVersion copies m as another version of the app with env granted to it.
func withVersion(m *manifest.Manifest, version string, env map[string]string) *manifest.Manifest {
	c := *m
	c.App.Version = version
	c.Capabilities.Env = env
	return &c
}

func get(url string) (int, string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func mustGet(t *testing.T, url string) (int, string) {
	t.Helper()
	status, body, err := get(url)
	if err != nil {
		t.Fatal(err)
	}
	return status, body
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// servedPlane is a DataPlane serving on real listeners until the test ends.
type servedPlane struct {
	dp         *agent.DataPlane
	url, admin string
	stop       func() error
}

func startPlane(t *testing.T) *servedPlane {
	t.Helper()
	dp, err := agent.NewDataPlane(agent.DataPlaneConfig{
		CacheDir: t.TempDir(), Telemetry: true, Version: "test", DrainTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	gw, admin := listen(t), listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- dp.Serve(ctx, gw, admin) }()
	var once sync.Once
	var serveErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case serveErr = <-served:
			case <-time.After(30 * time.Second):
				serveErr = errors.New("Serve did not return 30s after its context was canceled")
			}
		})
		return serveErr
	}
	t.Cleanup(func() { stop() })
	return &servedPlane{dp: dp, url: "http://" + gw.Addr().String(), admin: "http://" + admin.Addr().String(), stop: stop}
}

func deploy(t *testing.T, dp *agent.DataPlane, m *manifest.Manifest, wasm []byte) *sandbox.Function {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	fn, err := dp.Deploy(ctx, m, wasm)
	if err != nil {
		t.Fatalf("deploy %s: %v", m.ID(), err)
	}
	return fn
}

func TestDataPlane(t *testing.T) {
	p := startPlane(t)
	helloM, helloWasm := example(t, "hello")
	echoM, echoWasm := example(t, "echo")
	hello1 := deploy(t, p.dp, helloM, helloWasm)
	deploy(t, p.dp, echoM, echoWasm)

	t.Run("both functions serve", func(t *testing.T) {
		tests := []struct{ path, want string }{
			{"/hello", "Hello from Fermion!\n"},
			{"/echo/x?q=1", `"path": "/echo/x"`},
		}
		for _, tt := range tests {
			status, body := mustGet(t, p.url+tt.path)
			if status != 200 || !strings.Contains(body, tt.want) {
				t.Fatalf("GET %s = %d %q, want 200 with %q", tt.path, status, body, tt.want)
			}
		}
		var names []string
		for _, f := range p.dp.Functions() {
			names = append(names, f.Name()+"@"+f.Version())
		}
		if got := strings.Join(names, ","); got != "echo@0.1.0,hello@0.1.0" {
			t.Fatalf("Functions() = %s", got)
		}
	})

	t.Run("admin endpoints", func(t *testing.T) {
		for path, want := range map[string]string{
			"/healthz": "ok",
			"/readyz":  "ready",
			"/metrics": `fermion_requests_total{code="2xx",function="hello",version="0.1.0"}`,
		} {
			status, body := mustGet(t, p.admin+path)
			if status != 200 || !strings.Contains(body, want) {
				t.Fatalf("GET %s = %d, want 200 with %q; body:\n%s", path, status, want, body)
			}
		}
	})

	t.Run("redeploy switches routes without failed requests", func(t *testing.T) {
		type tally struct {
			mu       sync.Mutex
			ok       map[string]int // body -> count
			failures []string
		}
		tl := &tally{ok: map[string]int{}}
		seen := func(body string) int {
			tl.mu.Lock()
			defer tl.mu.Unlock()
			return tl.ok[body]
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for i := 0; i < 3; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					status, body, err := get(p.url + "/hello")
					tl.mu.Lock()
					switch {
					case err != nil:
						tl.failures = append(tl.failures, err.Error())
					case status != 200:
						tl.failures = append(tl.failures, fmt.Sprintf("%d %s", status, body))
					default:
						tl.ok[body]++
					}
					tl.mu.Unlock()
				}
			}()
		}
		defer func() {
			select {
			case <-stop:
			default:
				close(stop)
			}
			wg.Wait()
		}()

		// The hammer is running on the first version before anything changes.
		fermiontest.WaitFor(t, 10*time.Second, func() error {
			if seen("Hello from Fermion!\n") < 20 {
				return errors.New("hammer has not started")
			}
			return nil
		})
		old := hello1
		versions := []struct{ version, greeting string }{
			{"0.2.0", "Howdy"}, {"0.3.0", "Hi"}, {"0.4.0", "Hey"}, {"0.5.0", "Yo"},
		}
		for _, v := range versions {
			fn := deploy(t, p.dp, withVersion(helloM, v.version, map[string]string{"GREETING": v.greeting}), helloWasm)
			want := v.greeting + " from Fermion!\n"
			// Routes switched: a request made now is served by the new version.
			if status, body := mustGet(t, p.url+"/hello"); status != 200 || body != want {
				t.Fatalf("after deploying %s: GET /hello = %d %q, want %q", v.version, status, body, want)
			}
			fermiontest.WaitFor(t, 10*time.Second, func() error {
				if seen(want) < 20 {
					return fmt.Errorf("hammer has not seen %q enough", want)
				}
				return nil
			})
			// The replaced version drains and closes in the background.
			prev := old
			fermiontest.WaitFor(t, 10*time.Second, func() error {
				if s := prev.Stats(); s.Total != 0 {
					return fmt.Errorf("replaced %s@%s still has instances: %+v", prev.Name(), prev.Version(), s)
				}
				return nil
			})
			old = fn
		}
		close(stop)
		wg.Wait()
		tl.mu.Lock()
		defer tl.mu.Unlock()
		if len(tl.failures) > 0 {
			t.Fatalf("%d requests failed during redeploys (%d succeeded); failures: %q", len(tl.failures), total(tl.ok), tl.failures)
		}
		var hellos []string
		for _, f := range p.dp.Functions() {
			if f.Name() == "hello" {
				hellos = append(hellos, f.Version())
			}
		}
		if len(hellos) != 1 || hellos[0] != "0.5.0" {
			t.Fatalf("hello versions deployed: %v, want only 0.5.0", hellos)
		}
	})

	t.Run("replaced version's metrics are forgotten", func(t *testing.T) {
		// A replaced version forgets its series as the last step of closing.
		fermiontest.WaitFor(t, 10*time.Second, func() error {
			_, body := mustGet(t, p.admin+"/metrics")
			for _, v := range []string{"0.1.0", "0.2.0", "0.3.0", "0.4.0"} {
				if strings.Contains(body, `function="hello",version="`+v+`"`) {
					return fmt.Errorf("metrics still have series of the replaced hello@%s", v)
				}
			}
			return nil
		})
		_, body := mustGet(t, p.admin+"/metrics")
		if !strings.Contains(body, `fermion_requests_total{code="2xx",function="hello",version="0.5.0"}`) {
			t.Fatal("metrics have no requests of the current hello@0.5.0")
		}
	})

	t.Run("redeploying the same version keeps its metrics", func(t *testing.T) {
		series := `fermion_requests_total{code="2xx",function="hello",version="0.5.0"}`
		count := func() float64 {
			t.Helper()
			_, body := mustGet(t, p.admin+"/metrics")
			for _, l := range strings.Split(body, "\n") {
				if v, ok := strings.CutPrefix(l, series+" "); ok {
					var f float64
					if _, err := fmt.Sscan(v, &f); err != nil {
						t.Fatalf("metrics line %q: %v", l, err)
					}
					return f
				}
			}
			return -1
		}
		before := count()
		if before <= 0 {
			t.Fatalf("no requests of hello@0.5.0 counted before the redeploy (%v)", before)
		}
		old := p.dp.Functions()[1]
		deploy(t, p.dp, withVersion(helloM, "0.5.0", map[string]string{"GREETING": "Yo"}), helloWasm)
		// The replaced hello@0.5.0 forgets its metrics when it has closed.
		fermiontest.WaitFor(t, 10*time.Second, func() error {
			if s := old.Stats(); s.Total != 0 {
				return fmt.Errorf("replaced hello@0.5.0 still has instances: %+v", s)
			}
			return nil
		})
		for i := 0; i < 3; i++ {
			if status, _ := mustGet(t, p.url+"/hello"); status != 200 {
				t.Fatalf("GET /hello = %d", status)
			}
		}
		fermiontest.WaitFor(t, 10*time.Second, func() error {
			if got := count(); got != before+3 {
				return fmt.Errorf("%s = %v, want %v", series, got, before+3)
			}
			return nil
		})
	})

	t.Run("conflicting route is refused and changes nothing", func(t *testing.T) {
		other := *echoM
		other.App.Name = "other"
		other.Routes = []manifest.Route{{Path: "/other"}, {Path: "/hello"}}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if _, err := p.dp.Deploy(ctx, &other, echoWasm); err == nil || !strings.Contains(err.Error(), "/hello") {
			t.Fatalf("Deploy with a route already taken = %v, want an error naming /hello", err)
		}
		if status, body := mustGet(t, p.url+"/hello"); status != 200 || body != "Yo from Fermion!\n" {
			t.Fatalf("GET /hello after a refused deploy = %d %q", status, body)
		}
		if status, _ := mustGet(t, p.url+"/other"); status != 404 {
			t.Fatalf("GET /other after a refused deploy = %d, want 404", status)
		}
		if n := len(p.dp.Functions()); n != 2 {
			t.Fatalf("%d functions after a refused deploy, want 2", n)
		}
	})

	t.Run("remove stops routing", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.dp.Remove(ctx, "echo"); err != nil {
			t.Fatal(err)
		}
		// Its route drains (503, Retry-After) rather than answering 404 at once.
		resp, err := client.Get(p.url + "/echo")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("GET /echo after Remove = %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		if status, _ := mustGet(t, p.url+"/hello"); status != 200 {
			t.Fatalf("GET /hello after removing echo = %d", status)
		}
		if err := p.dp.Remove(ctx, "echo"); err == nil || !strings.Contains(err.Error(), "not deployed") {
			t.Fatalf("second Remove = %v, want a not deployed error", err)
		}
	})

	t.Run("serve stops cleanly", func(t *testing.T) {
		if err := p.stop(); err != nil {
			t.Fatalf("Serve = %v, want nil", err)
		}
		if len(p.dp.Functions()) != 0 {
			t.Fatal("functions still deployed after Serve returned")
		}
		if _, _, err := get(p.url + "/hello"); err == nil {
			t.Fatal("gateway still answers after Serve returned")
		}
		if _, _, err := get(p.admin + "/healthz"); err == nil {
			t.Fatal("admin still answers after Serve returned")
		}
	})
}

func total(m map[string]int) int {
	n := 0
	for _, c := range m {
		n += c
	}
	return n
}

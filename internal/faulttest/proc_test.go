package faulttest

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/fermiontest"
)

// bin is the fermion binary TestMain builds.
var bin string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // every test skips itself
	}
	dir, err := os.MkdirTemp("", "fermion-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "fermion")
	root, err := repoRoot()
	if err == nil {
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/fermion")
		cmd.Dir = root
		var out []byte
		if out, err = cmd.CombinedOutput(); err != nil {
			err = fmt.Errorf("go build ./cmd/fermion: %w\n%s", err, out)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

// proc is one fermion process; its output goes to a log file kept with the test's
// temporary files and shown when the test fails.
type proc struct {
	name    string
	args    []string
	env     []string
	logPath string

	mu   sync.Mutex // leaf
	cmd  *exec.Cmd
	done chan struct{}
}

func newProc(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, args: args, env: env, logPath: filepath.Join(t.TempDir(), name+".log")}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			b, _ := os.ReadFile(p.logPath)
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			t.Logf("--- %s log (tail) ---\n%s", p.name, b)
		}
	})
	return p
}

// start starts the process (again, after a kill).
func (p *proc) start(t *testing.T) {
	t.Helper()
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(done)
	}()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
}

func (p *proc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return fmt.Errorf("%s is not running", p.name)
	}
	return p.cmd.Process.Signal(sig)
}

// kill sends SIGKILL (to a stopped process too) and waits for it to exit.
func (p *proc) kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// stop asks the process to exit (SIGTERM) and waits for it.
func (p *proc) stop() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
}

// replica is one `fermion server` of the cluster.
type replica struct {
	*proc
	api, nats, admin, registry string // URLs and host:port
	dataDir                    string
}

// Timing shared by the cluster and the assertions: a short lost period keeps the suite
// quick, but it must exceed an agent's request timeout (5 s) plus a renewal, or one
// heartbeat stuck in a stalled cluster would lose a healthy node; the leader lease is
// longer than a scheduler hiccup on a busy machine.
const (
	leaseRenew = time.Second
	leaseLost  = 8 * time.Second
	leaderTTL  = 4 * time.Second
)

// startCluster starts three replicas and waits until each answers its API and one of
// them acts as leader.
func startCluster(t *testing.T) []*replica {
	t.Helper()
	ports := fermiontest.Ports(t, 15)
	var routes []string
	for i := range 3 {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[i*5+2]))
	}
	home := t.TempDir()
	rs := make([]*replica, 3)
	for i := range 3 {
		p := ports[i*5 : i*5+5]
		dir := t.TempDir()
		name := fmt.Sprintf("cp-%d", i)
		args := []string{"server", "--data", dir, "--name", name,
			"--listen", fmt.Sprintf("127.0.0.1:%d", p[0]), "--nats-listen", fmt.Sprintf("127.0.0.1:%d", p[1]),
			"--cluster-listen", fmt.Sprintf("127.0.0.1:%d", p[2]), "--route", strings.Join(routes, ","),
			"--admin-listen", fmt.Sprintf("127.0.0.1:%d", p[3]), "--registry-listen", fmt.Sprintf("127.0.0.1:%d", p[4]),
			"--save-context=false", "--log-level", "warn",
			"--lease-renew", leaseRenew.String(), "--lease-lost", leaseLost.String(), "--leader-ttl", leaderTTL.String()}
		rs[i] = &replica{proc: newProc(t, name, []string{"FERMION_CLUSTER_SECRET=fault-suite-secret", "HOME=" + home}, args...),
			api: fmt.Sprintf("http://127.0.0.1:%d", p[0]), nats: fmt.Sprintf("nats://127.0.0.1:%d", p[1]),
			admin: fmt.Sprintf("http://127.0.0.1:%d", p[3]), registry: fmt.Sprintf("127.0.0.1:%d", p[4]), dataDir: dir}
		rs[i].start(t)
	}
	for _, r := range rs {
		fermiontest.WaitFor(t, 60*time.Second, func() error {
			resp, err := http.Get(r.admin + "/readyz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s /readyz: %s", r.name, resp.Status)
			}
			return nil
		})
	}
	waitActing(t, rs, 30*time.Second)
	return rs
}

// token is the bootstrap admin token replica r wrote.
func (r *replica) token(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func (r *replica) client(t *testing.T, token string) *client.Client {
	t.Helper()
	c, err := client.New(r.api, token)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var scrape = &http.Client{Timeout: 300 * time.Millisecond}

// metric reads one unlabelled series from r's /metrics; a replica that does not
// answer (stopped, killed) reads as absent.
func (r *replica) metric(ctx context.Context, name string) (float64, bool) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.admin+"/metrics", nil)
	resp, err := scrape.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 8<<20))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}

// acting returns the replicas that say their controllers may act now, asked at once.
func acting(ctx context.Context, rs []*replica) []int {
	var mu sync.Mutex
	var out []int
	var wg sync.WaitGroup
	for i, r := range rs {
		wg.Go(func() {
			if v, ok := r.metric(ctx, "fermion_controlplane_acting_leader"); ok && v == 1 {
				mu.Lock()
				out = append(out, i)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return out
}

// waitActing waits until exactly one replica acts and returns it.
func waitActing(t *testing.T, rs []*replica, timeout time.Duration) int {
	t.Helper()
	leader := -1
	fermiontest.WaitFor(t, timeout, func() error {
		a := acting(context.Background(), rs)
		if len(a) != 1 {
			return fmt.Errorf("acting replicas: %v", a)
		}
		leader = a[0]
		return nil
	})
	return leader
}

// actingWatch polls every replica's acting gauge until stopped and keeps the most
// that said so in one round.
type actingWatch struct {
	stop   context.CancelFunc
	done   chan struct{}
	most   int
	rounds int
}

func watchActing(rs []*replica) *actingWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &actingWatch{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			n := len(acting(ctx, rs))
			w.most = max(w.most, n)
			w.rounds++
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// finish stops the watch and returns the most replicas acting at once, and the rounds.
func (w *actingWatch) finish() (int, int) {
	w.stop()
	<-w.done
	return w.most, w.rounds
}

package fermiontest

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// AlertmanagerBin returns the path of an installed Alertmanager (Debian's
// prometheus-alertmanager, or alertmanager), or "" when there is none.
func AlertmanagerBin() string {
	for _, name := range []string{"prometheus-alertmanager", "alertmanager"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// NeedAlertmanager returns the installed Alertmanager's path, or skips the test.
func NeedAlertmanager(t testing.TB) string {
	t.Helper()
	bin := AlertmanagerBin()
	if bin == "" {
		t.Skip("Alertmanager not installed (apt-get install prometheus-alertmanager)")
	}
	return bin
}

// StartAlertmanager runs the Alertmanager at bin on a free loopback port with no
// cluster gossip, routing every alert at once (grouped by alertname and scope) to the
// webhook receiver at hook with resolved notifications on, until the test ends. It
// returns its base URL once it answers ready.
func StartAlertmanager(t testing.TB, bin, hook string) string {
	t.Helper()
	return StartAlertmanagerAt(t, bin, hook, 0)
}

// StartAlertmanagerAt is StartAlertmanager on a given loopback port (0: a free one), for
// tests that stop an Alertmanager and start another where the first one was.
func StartAlertmanagerAt(t testing.TB, bin, hook string, port int) string {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`route:
  receiver: hook
  group_by: [alertname, scope]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: %s
        send_resolved: true
`, hook)
	if err := os.WriteFile(filepath.Join(dir, "alertmanager.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if port == 0 {
		port = Ports(t, 1)[0]
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var logs strings.Builder
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "alertmanager.yml"),
		"--storage.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr,
		"--cluster.listen-address=", "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start alertmanager: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("alertmanager output:\n%s", logs.String())
		}
	})
	base := "http://" + addr
	WaitFor(t, 30*time.Second, func() error {
		select {
		case <-exited:
			t.Fatalf("alertmanager exited:\n%s", logs.String())
		default:
		}
		resp, err := http.Get(base + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("alertmanager ready: %s", resp.Status)
		}
		return nil
	})
	return base
}

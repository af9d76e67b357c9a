package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSystemdUnits runs systemd-analyze verify on the units, failing on any complaint
// (it reports unknown or misspelt settings but still exits 0), and checks the settings
// docs/operations.md relies on.
func TestSystemdUnits(t *testing.T) {
	units := []string{"fermion-server.service", "fermion-agent.service"}
	for _, u := range units {
		b, err := os.ReadFile(filepath.Join("systemd", u))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"User=fermion", "StateDirectory=", "EnvironmentFile=-/etc/fermion/", "Restart=", "NoNewPrivileges=yes", "ProtectSystem=strict", "ExecStart=/usr/local/bin/fermion "} {
			if !strings.Contains(string(b), "\n"+want) {
				t.Errorf("%s: no %s line", u, want)
			}
		}
	}
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not on PATH (apt-get install systemd); the units are not verified")
	}
	// verify wants ExecStart's binary to exist: point it at one that does.
	dir := t.TempDir()
	var paths []string
	for _, u := range units {
		b, _ := os.ReadFile(filepath.Join("systemd", u))
		p := filepath.Join(dir, u)
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(string(b), "/usr/local/bin/fermion", "/bin/true")), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	out, err := exec.Command(sa, append([]string{"verify"}, paths...)...).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestContainerfile checks what can be checked without a container engine: a build
// stage and a run stage, the binary built from the package that exists, a non-root user.
func TestContainerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("container", "Containerfile"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if n := len(regexp.MustCompile(`(?m)^FROM `).FindAllString(s, -1)); n < 2 {
		t.Errorf("%d FROM lines, want a build stage and a run stage", n)
	}
	m := regexp.MustCompile(`-o /out/fermion (\./\S+)`).FindStringSubmatch(s)
	if m == nil {
		t.Fatal("no go build -o /out/fermion ./…")
	}
	if _, err := os.Stat(filepath.Join("..", m[1], "main.go")); err != nil {
		t.Errorf("builds %s: %v", m[1], err)
	}
	user := regexp.MustCompile(`(?m)^USER (\S+)`).FindAllStringSubmatch(s, -1)
	if len(user) == 0 || strings.HasPrefix(user[len(user)-1][1], "root") || strings.HasPrefix(user[len(user)-1][1], "0") {
		t.Errorf("the image runs as %v, want an unprivileged user", user)
	}
}

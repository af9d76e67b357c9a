package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fermion.dev/fermion/internal/fermiontest"
)

// TestChecksBeforeBuild: mistakes in paths, addresses and selectors are refused with
// the fix before anything is built, pushed or listened on.
func TestChecksBeforeBuild(t *testing.T) {
	t.Setenv("FERMION_HOME", t.TempDir())
	// No control plane listens here: a check that ran after the first API call would
	// report a connection error instead.
	t.Setenv("FERMION_SERVER", "http://127.0.0.1:1")
	hello := filepath.Join(fermiontest.Root(t), "examples", "hello")
	empty := t.TempDir()
	tests := []struct {
		name string
		args []string
		want []string // in stderr
	}{
		{name: "deploy a missing directory", args: []string{"deploy", "./doesnotexist"}, want: []string{"./doesnotexist does not exist", "fermion new NAME"}},
		{name: "deploy a missing absolute path", args: []string{"deploy", filepath.Join(empty, "nope")}, want: []string{"nope does not exist"}},
		{name: "deploy a directory without a manifest", args: []string{"deploy", empty}, want: []string{"has no fermion.toml", "fermion new NAME"}},
		{name: "deploy with a bad selector", args: []string{"deploy", hello, "--selector", `region = "eu"`}, want: []string{"--selector: ", "Syntax error", `region == "eu-west"`}},
		{name: "deploy with a selector that is not a condition", args: []string{"deploy", hello, "--selector", `region`}, want: []string{"--selector: "}},
		{name: "run on a bare port", args: []string{"run", hello, "--listen", "8080"}, want: []string{"--listen 8080", "use :8080"}},
		{name: "run with a bad admin address", args: []string{"run", hello, "--admin-listen", "localhost"}, want: []string{`--admin-listen "localhost": missing port`}},
		{name: "agent on a bare port", args: []string{"agent", "--server", "nats://127.0.0.1:1", "--listen", "8081"}, want: []string{"--listen 8081", "use :8081"}},
		{name: "server on a bare port", args: []string{"server", "--data", empty, "--listen", "7070"}, want: []string{"--listen 7070", "use :7070"}},
		{name: "up with a missing example", args: []string{"up", "--data", empty, "--example", "./nope"}, want: []string{"./nope does not exist"}},
		{name: "events of an unknown type", args: []string{"events", "--type", "bogus"}, want: []string{`--type "bogus" is not an event type`, "deployed, deleted", "policy_deleted"}},
		{name: "events of a misspelt type", args: []string{"events", "--type", "draned"}, want: []string{"did you mean drained?"}},
		{name: "up with a bare agent port", args: []string{"up", "--data", empty, "--agent-listen", "8080"}, want: []string{"--agent-listen 8080", "use :8080"}},
		{name: "agent with a tiny SLI interval", args: []string{"agent", "--server", "nats://127.0.0.1:1", "--sli-interval", "10ms"}, want: []string{"--sli-interval 10ms is out of range", "100ms to 1h0m0s"}},
		{name: "agent with an unparsable SLI buffer", args: []string{"agent", "--server", "nats://127.0.0.1:1", "--sli-buffer", "lots"}, want: []string{"--sli-buffer: "}},
		{name: "agent with a tiny SLI buffer", args: []string{"agent", "--server", "nats://127.0.0.1:1", "--sli-buffer", "1KiB"}, want: []string{"--sli-buffer 1KiB is out of range", "64KiB to 1GiB"}},
		{name: "agent keeping no revision", args: []string{"agent", "--server", "nats://127.0.0.1:1", "--keep-revisions", "0"}, want: []string{"--keep-revisions 0", "1 (only the running revision) to 10"}},
		{name: "agent keeping too many revisions", args: []string{"agent", "--server", "nats://127.0.0.1:1", "--keep-revisions", "11"}, want: []string{"--keep-revisions 11"}},
		{name: "deploy with an overlong message", args: []string{"deploy", hello, "--message", strings.Repeat("x", 1025)}, want: []string{"--message is 1025 bytes"}},
		{name: "rollback to a negative revision", args: []string{"rollback", "hello", "--to", "-2"}, want: []string{"--to -2", "fermion history hello"}},
		{name: "up with a huge SLI interval", args: []string{"up", "--data", empty, "--agent-sli-interval", "2h"}, want: []string{"--agent-sli-interval 2h0m0s is out of range"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tt.args...)
			if code != 2 {
				t.Fatalf("%v exited %d, want 2\nstdout: %s\nstderr: %s", tt.args, code, stdout, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Fatalf("stderr does not contain %q: %s", w, stderr)
				}
			}
			if strings.Contains(stderr, "building") || strings.Contains(stdout, "building") {
				t.Fatalf("built before refusing:\n%s%s", stdout, stderr)
			}
		})
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("a refused command wrote into %s: %v", empty, entries)
	}
}

// TestDefaultsUnderFermionHome: with FERMION_HOME set, every default directory is under
// it, and each flag's help names one default.
func TestDefaultsUnderFermionHome(t *testing.T) {
	home := t.TempDir()
	t.Setenv("FERMION_HOME", home)
	for _, tt := range []struct {
		verb  string
		flags []string
	}{
		{"agent", []string{"--cache-dir"}},
		{"run", []string{"--cache-dir", "--telemetry-spool"}},
		{"build", []string{"--cache-dir"}},
		{"push", []string{"--cache-dir"}},
		{"deploy", []string{"--cache-dir"}},
		{"up", []string{"--agent-cache-dir"}},
	} {
		t.Run(tt.verb, func(t *testing.T) {
			code, out, errOut := run(t, tt.verb, "--help")
			if code != 0 {
				t.Fatalf("%s --help: %d %s", tt.verb, code, errOut)
			}
			for _, f := range tt.flags {
				line := helpLine(t, out, f)
				if !strings.Contains(line, `(default "`+home+string(filepath.Separator)) {
					t.Errorf("%s %s: default not under FERMION_HOME %s: %s", tt.verb, f, home, line)
				}
			}
		})
	}
	_, out, _ := run(t, "up", "--help")
	for _, f := range []string{"--agent-data", "--data", "--agent-name"} {
		if line := helpLine(t, out, f); strings.Count(line, "(default") != 1 {
			t.Errorf("up %s names %d defaults: %s", f, strings.Count(line, "(default"), line)
		}
	}
	_, out, _ = run(t, "agent", "--help")
	if line := helpLine(t, out, "--data"); !strings.Contains(line, "$FERMION_HOME/agents/<name>") {
		t.Errorf("agent --data: %s", line)
	}
}

// helpLine is the line of help text out that documents flag.
func helpLine(t *testing.T, out, flag string) string {
	t.Helper()
	for l := range strings.Lines(out) {
		if f := strings.Fields(l); len(f) > 0 && (f[0] == flag || (len(f) > 1 && f[1] == flag)) {
			return l
		}
	}
	t.Fatalf("no %s in help:\n%s", flag, out)
	return ""
}

package cli_test

import (
	"strings"
	"testing"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/cli"
)

// TestCompleteNames drives cobra's __complete, as the shell scripts of
// `fermion completion` do on Tab, against a control plane with two deployments and two
// nodes: the names come from the API, filtered by what is typed.
func TestCompleteNames(t *testing.T) {
	apiEnv(t)
	f := newFakeAPI(t)
	f.deployments["hello"] = &v1.Deployment{Name: "hello"}
	f.deployments["echo"] = &v1.Deployment{Name: "echo"}
	f.nodes["edge-1"] = &v1.Node{Name: "edge-1"}
	f.nodes["core-1"] = &v1.Node{Name: "core-1"}
	conn := []string{"--server", f.srv.URL, "--token", apiToken}
	tests := []struct {
		name string
		args []string // after __complete; the last is the word being completed
		want []string
	}{
		{"status: deployments", []string{"status", ""}, []string{"echo", "hello"}},
		{"status: prefix", []string{"status", "he"}, []string{"hello"}},
		{"status: one name only", []string{"status", "hello", ""}, nil},
		{"nodes", []string{"nodes", ""}, []string{"core-1", "edge-1"}},
		{"node drain", []string{"node", "drain", "ed"}, []string{"edge-1"}},
		{"events --deployment", []string{"events", "--deployment", ""}, []string{"echo", "hello"}},
		{"events --node", []string{"events", "--node", "c"}, []string{"core-1"}},
		{"-o", []string{"nodes", "-o", ""}, []string{"table", "json", "yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The connection flags go first: the word before the last may be a flag
			// waiting for its value.
			args := append(append([]string{"__complete", tt.args[0]}, conn...), tt.args[1:]...)
			code, out, errOut := run(t, args...)
			if code != 0 {
				t.Fatalf("exited %d: %s", code, errOut)
			}
			got, directive := completions(out)
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("completions %q, want %q\n%s", got, tt.want, out)
			}
			if directive != ":4" { // ShellCompDirectiveNoFileComp: never file names
				t.Errorf("directive %s, want :4", directive)
			}
		})
	}
	// An unreachable control plane offers nothing, quickly, and prints no error where
	// the shell would read completions.
	code, out, _ := run(t, "__complete", "status", "--server", "http://127.0.0.1:1", "--token", apiToken, "")
	if got, _ := completions(out); code != 0 || len(got) != 0 {
		t.Fatalf("unreachable: exited %d, completions %q", code, got)
	}
}

// completions splits __complete's output: one completion a line, then ":directive".
func completions(out string) (names []string, directive string) {
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(l, ":") {
			directive = l
			continue
		}
		if l != "" {
			names = append(names, strings.SplitN(l, "\t", 2)[0])
		}
	}
	return names, directive
}

// TestCompletionTableNamesCommands: every command the completion table names exists,
// so a renamed verb does not silently lose its completion.
func TestCompletionTableNamesCommands(t *testing.T) {
	for _, path := range cli.CompletedCommands() {
		code, _, errOut := run(t, append(strings.Fields(path), "--help")...)
		if code != 0 {
			t.Errorf("fermion %s --help exited %d: %s", path, code, errOut)
		}
	}
}

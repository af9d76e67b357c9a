package agent

import (
	"testing"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/telemetry"
)

const memoryPolicy = `apiVersion: fermion.dev/v1
kind: Policy
metadata:
  name: node-memory
spec:
  target: runtime
  validations:
    - expression: node.allow.memory == 0 || artifact.limits.memory <= node.allow.memory
      message: memory limit above the node maximum
`

// The control plane's runtime policies are kept in the data directory, so that an agent
// restarted while the control plane is away still enforces them; a set that does not
// compile changes nothing.
func TestRuntimePoliciesKept(t *testing.T) {
	dir := t.TempDir()
	node := func() *Node {
		r, err := newRuntimePolicies(telemetry.Discard, nil)
		if err != nil {
			t.Fatal(err)
		}
		return &Node{cfg: NodeConfig{DataDir: dir}, log: telemetry.Discard, rules: r}
	}
	n := node()
	n.updateRuntimePolicies([]v1.RuntimePolicy{{Name: "node-memory", Version: 1, Mode: "deny", Source: memoryPolicy}})
	if got := n.rules.set.Len(); got != 1 {
		t.Fatalf("%d policies in force, want 1", got)
	}
	n.updateRuntimePolicies([]v1.RuntimePolicy{{Name: "broken", Version: 1, Mode: "deny", Source: "spec: ["}})
	if got := n.rules.set.Len(); got != 1 {
		t.Fatalf("a broken set replaced the one in force: %d policies", got)
	}
	restarted := node()
	restarted.loadRuntimePolicies()
	if got := restarted.rules.set.Len(); got != 1 {
		t.Fatalf("after a restart %d policies in force, want the kept 1", got)
	}
}

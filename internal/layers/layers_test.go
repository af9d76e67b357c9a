// Package layers holds the test that keeps Fermion's import direction: api imports
// nothing of ours, the SDK only api, pure packages no infrastructure, infrastructure no
// roles, roles no CLI. See docs/ARCHITECTURE.md.
package layers

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// rank orders the layers; a package may import only packages of a lower or equal rank
// that its rule allows.
var rules = []struct {
	prefix  string
	allowed []string // prefixes of our packages it may import
}{
	{"fermion.dev/fermion/api", nil},
	{"fermion.dev/fermion/sdk/internal/guesttest", []string{"fermion.dev/fermion/api", "fermion.dev/fermion/sdk/internal/guest"}},
	{"fermion.dev/fermion/sdk/internal", []string{"fermion.dev/fermion/api"}},
	{"fermion.dev/fermion/sdk", []string{"fermion.dev/fermion/api", "fermion.dev/fermion/sdk/internal", "fermion.dev/fermion/sdk/fhttp"}},
	// The hostile test guests may share code among themselves (faults/internal).
	{"fermion.dev/fermion/examples/testdata/faults", []string{"fermion.dev/fermion/sdk", "fermion.dev/fermion/api", "fermion.dev/fermion/examples/testdata/faults/internal"}},
	{"fermion.dev/fermion/examples", []string{"fermion.dev/fermion/sdk", "fermion.dev/fermion/api"}},
	{"fermion.dev/fermion/internal/diag", nil},
	{"fermion.dev/fermion/internal/autoscale", nil},
	{"fermion.dev/fermion/internal/atomicfile", nil},
	{"fermion.dev/fermion/internal/certs", []string{"fermion.dev/fermion/internal/fermiontest"}},
	{"fermion.dev/fermion/internal/wasmbin", nil},
	// threadusage reads the calling thread's CPU clock and page faults for benchmarks.
	{"fermion.dev/fermion/internal/threadusage", nil},
	{"fermion.dev/fermion/internal/manifest", []string{"fermion.dev/fermion/api", "fermion.dev/fermion/internal/diag", "fermion.dev/fermion/internal/slo", "fermion.dev/fermion/internal/rollout"}},
	{"fermion.dev/fermion/internal/telemetry", []string{"fermion.dev/fermion/api", "fermion.dev/fermion/internal/atomicfile", "fermion.dev/fermion/internal/certs", "fermion.dev/fermion/internal/fermiontest"}},
	{"fermion.dev/fermion/internal/artifact", []string{"fermion.dev/fermion/api", "fermion.dev/fermion/internal/wasmbin", "fermion.dev/fermion/internal/manifest", "fermion.dev/fermion/internal/fermiontest"}},
	{"fermion.dev/fermion/internal/nodecache", []string{"fermion.dev/fermion/internal/atomicfile", "fermion.dev/fermion/api", "fermion.dev/fermion/internal/telemetry", "fermion.dev/fermion/internal/fermiontest"}},
	{"fermion.dev/fermion/internal/registry", []string{"fermion.dev/fermion/api", "fermion.dev/fermion/internal/artifact", "fermion.dev/fermion/internal/manifest", "fermion.dev/fermion/internal/telemetry", "fermion.dev/fermion/internal/engine", "fermion.dev/fermion/internal/fermiontest"}},
	{"fermion.dev/fermion/internal/oci", []string{"fermion.dev/fermion/api", "fermion.dev/fermion/internal/certs", "fermion.dev/fermion/internal/artifact", "fermion.dev/fermion/internal/manifest", "fermion.dev/fermion/internal/telemetry", "fermion.dev/fermion/internal/nodecache", "fermion.dev/fermion/internal/registry", "fermion.dev/fermion/internal/engine", "fermion.dev/fermion/internal/fermiontest"}},
	{"fermion.dev/fermion/internal/scheduler", nil},
	// dashboards is the one definition of the Grafana dashboards and the docs' tables;
	// pure rendering, its gen command writes the files.
	{"fermion.dev/fermion/internal/dashboards", []string{"fermion.dev/fermion/internal/dashboards", "fermion.dev/fermion/internal/atomicfile"}},
	// sli is pure SLI aggregation shared by agent (producer) and control plane
	// (consumer): it imports nothing of ours, so neither side drags the other in.
	{"fermion.dev/fermion/internal/sli", nil},
	// policy reads artifact configs through their owner's decoder (artifact.ParseConfig,
	// manifest.ParseNormalized), both pure, rather than declaring the format again.
	{"fermion.dev/fermion/internal/policy", []string{"fermion.dev/fermion/api", "fermion.dev/fermion/internal/diag", "fermion.dev/fermion/internal/artifact", "fermion.dev/fermion/internal/manifest", "fermion.dev/fermion/internal/fermiontest"}},
	// slo is pure SLO maths: specs, budgets, burn-rate alerts, rules text. It reads no
	// clock, store or network; the control plane adapts it.
	{"fermion.dev/fermion/internal/slo", []string{"fermion.dev/fermion/internal/diag"}},
	// rollout is pure progressive-delivery logic: strategies, the rollout state
	// machine and canary analysis over SLI samples. No clock, store or network; the
	// control plane's rollout controller adapts it.
	{"fermion.dev/fermion/internal/rollout", []string{"fermion.dev/fermion/api", "fermion.dev/fermion/internal/diag", "fermion.dev/fermion/internal/sli"}},
	// promsource is the rollout analysis' Prometheus metric source: PromQL templates and
	// the query API. Its test scrapes the telemetry package's real metric definitions.
	{"fermion.dev/fermion/internal/promsource", []string{"fermion.dev/fermion/internal/rollout", "fermion.dev/fermion/internal/sli", "fermion.dev/fermion/internal/diag", "fermion.dev/fermion/internal/telemetry"}},
	// notify delivers alerts to Alertmanager and webhooks; it adapts slo's transitions.
	{"fermion.dev/fermion/internal/notify", []string{"fermion.dev/fermion/internal/slo", "fermion.dev/fermion/internal/fermiontest"}},
	{"fermion.dev/fermion/internal/engine", []string{"fermion.dev/fermion/api", "fermion.dev/fermion/internal/telemetry", "fermion.dev/fermion/internal/fermiontest"}},
	// fleet is the control plane's SLI store (pure) and its JetStream adapter.
	{"fermion.dev/fermion/internal/fleet", []string{"fermion.dev/fermion/api", "fermion.dev/fermion/internal/sli", "fermion.dev/fermion/internal/slo", "fermion.dev/fermion/internal/diag", "fermion.dev/fermion/internal/engine", "fermion.dev/fermion/internal/fermiontest"}},
	// sloctl is the control plane's SLO adapter: spec store, leader's engine, alert
	// views. The control plane constructs it with narrow dependencies (sloengine).
	{"fermion.dev/fermion/internal/sloctl", []string{"fermion.dev/fermion/api", "fermion.dev/fermion/internal/slo", "fermion.dev/fermion/internal/notify", "fermion.dev/fermion/internal/engine", "fermion.dev/fermion/internal/diag", "fermion.dev/fermion/internal/fermiontest"}},
	{"fermion.dev/fermion/internal/sandbox", []string{"fermion.dev/fermion/internal/threadusage", "fermion.dev/fermion/internal/atomicfile", "fermion.dev/fermion/internal/autoscale", "fermion.dev/fermion/internal/certs", "fermion.dev/fermion/api", "fermion.dev/fermion/internal/wasmbin", "fermion.dev/fermion/internal/manifest", "fermion.dev/fermion/internal/telemetry", "fermion.dev/fermion/internal/fermiontest"}},
	{"fermion.dev/fermion/internal/gateway", []string{"fermion.dev/fermion/internal/sli", "fermion.dev/fermion/api", "fermion.dev/fermion/internal/manifest", "fermion.dev/fermion/internal/telemetry", "fermion.dev/fermion/internal/sandbox", "fermion.dev/fermion/internal/fermiontest"}},
	// agenttest starts real agents for the tests of the agent and the packages above it.
	{"fermion.dev/fermion/internal/agent/agenttest", []string{"fermion.dev/fermion/internal/agent"}},
	{"fermion.dev/fermion/internal/agent", []string{"fermion.dev/fermion/internal/sli", "fermion.dev/fermion/internal/atomicfile", "fermion.dev/fermion/internal/oci", "fermion.dev/fermion/internal/nodecache", "fermion.dev/fermion/internal/artifact", "fermion.dev/fermion/api", "fermion.dev/fermion/internal/manifest", "fermion.dev/fermion/internal/telemetry", "fermion.dev/fermion/internal/sandbox", "fermion.dev/fermion/internal/gateway", "fermion.dev/fermion/internal/policy", "fermion.dev/fermion/internal/engine", "fermion.dev/fermion/internal/registry", "fermion.dev/fermion/internal/fermiontest"}},
	// sliingest is the control plane's SLI receive path: decode, check, publish to the
	// FERMION_SLIS stream. It knows nothing of the control plane's state but a func.
	{"fermion.dev/fermion/internal/sliingest", []string{"fermion.dev/fermion/api", "fermion.dev/fermion/internal/sli", "fermion.dev/fermion/internal/engine", "fermion.dev/fermion/internal/telemetry", "fermion.dev/fermion/internal/fermiontest"}},
	// state is the control plane's typed state layer: the roles (API, agent service,
	// election, controllers) import it, never the other way round.
	// backup archives and restores JetStream buckets; it knows nothing of what they hold.
	{"fermion.dev/fermion/internal/backup", nil},
	// state records a rollout's state machine as it is (rollout.State, pure data).
	{"fermion.dev/fermion/internal/controlplane/state", []string{"fermion.dev/fermion/api", "fermion.dev/fermion/internal/engine", "fermion.dev/fermion/internal/rollout", "fermion.dev/fermion/internal/fermiontest"}},
	// console is the web console's embedded assets and handler; its Go code imports
	// nothing of ours (the page speaks only the /v1 API). Its browser tests start a
	// control plane in-process.
	{"fermion.dev/fermion/internal/console", []string{"fermion.dev/fermion/api", "fermion.dev/fermion/client", "fermion.dev/fermion/internal/controlplane", "fermion.dev/fermion/internal/fermiontest", "fermion.dev/fermion/internal/artifact", "fermion.dev/fermion/internal/manifest", "fermion.dev/fermion/internal/oci", "fermion.dev/fermion/internal/slo", "fermion.dev/fermion/internal/sli"}},
	{"fermion.dev/fermion/internal/controlplane", []string{"fermion.dev/fermion/internal/console", "fermion.dev/fermion/internal/backup", "fermion.dev/fermion/internal/sliingest", "fermion.dev/fermion/internal/sli", "fermion.dev/fermion/internal/atomicfile", "fermion.dev/fermion/api", "fermion.dev/fermion/client", "fermion.dev/fermion/internal/engine", "fermion.dev/fermion/internal/registry", "fermion.dev/fermion/internal/oci", "fermion.dev/fermion/internal/artifact", "fermion.dev/fermion/internal/manifest", "fermion.dev/fermion/internal/policy", "fermion.dev/fermion/internal/scheduler", "fermion.dev/fermion/internal/telemetry", "fermion.dev/fermion/internal/nodecache", "fermion.dev/fermion/internal/agent", "fermion.dev/fermion/internal/controlplane", "fermion.dev/fermion/internal/fermiontest", "fermion.dev/fermion/internal/slo", "fermion.dev/fermion/internal/notify", "fermion.dev/fermion/internal/sloctl", "fermion.dev/fermion/internal/fleet", "fermion.dev/fermion/internal/rollout"}},
	{"fermion.dev/fermion/client", []string{"fermion.dev/fermion/api"}},
	// rustbuild: finds a Rust toolchain for wasm32 WASI and builds crates; a leaf that
	// fermiontest (Rust guests for tests) and cli (fermion new --lang rust) use.
	{"fermion.dev/fermion/internal/rustbuild", nil},
	{"fermion.dev/fermion/internal/fermiontest", []string{"fermion.dev/fermion/internal/rustbuild"}},
	{"fermion.dev/fermion/internal/faulttest", []string{"fermion.dev/fermion/api", "fermion.dev/fermion/client", "fermion.dev/fermion/internal/"}},
	{"fermion.dev/fermion/internal/cli", []string{"fermion.dev/fermion/api", "fermion.dev/fermion/internal/", "fermion.dev/fermion"}},
	{"fermion.dev/fermion/cmd", []string{"fermion.dev/fermion/internal/cli"}},
	// deploy holds files for hosts (systemd, container, Grafana) and their tests; no code.
	{"fermion.dev/fermion/deploy", nil},
	{"fermion.dev/fermion/bench", []string{"fermion.dev/fermion/"}},
}

type pkg struct {
	ImportPath   string
	Doc          string
	Name         string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

func TestImportDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", "fermion.dev/fermion/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		if p.ImportPath == "fermion.dev/fermion" || strings.HasPrefix(p.ImportPath, "fermion.dev/fermion/internal/layers") {
			continue
		}
		if p.Doc == "" {
			t.Errorf("%s: package has no doc comment saying what it is for", p.ImportPath)
		}
		rule := -1
		for i, r := range rules {
			if p.ImportPath == r.prefix || strings.HasPrefix(p.ImportPath, r.prefix+"/") {
				rule = i
				break
			}
		}
		if rule < 0 {
			t.Errorf("%s: no layer rule; add it to rules in %s", p.ImportPath, "internal/layers/layers_test.go")
			continue
		}
		imports := append(append(append([]string{}, p.Imports...), p.TestImports...), p.XTestImports...)
		for _, imp := range imports {
			if imp != "fermion.dev/fermion" && !strings.HasPrefix(imp, "fermion.dev/fermion/") {
				continue
			}
			if imp == p.ImportPath || strings.HasPrefix(imp, p.ImportPath+"/") {
				continue
			}
			ok := false
			for _, a := range rules[rule].allowed {
				if imp == a || strings.HasPrefix(imp, strings.TrimSuffix(a, "/")+"/") || (strings.HasSuffix(a, "/") && strings.HasPrefix(imp, a)) {
					ok = true
				}
			}
			if !ok {
				t.Errorf("%s imports %s, against the layer rules (docs/ARCHITECTURE.md)", p.ImportPath, imp)
			}
		}
	}
}

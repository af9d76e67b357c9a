package telemetry_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fermion.dev/fermion/internal/fermiontest"
)

// TestMetricsDocumented: every metric a node registers (its own, a function version's
// and the span spool's) has a row in docs/telemetry.md's metric table, so a new counter
// such as fermion_request_log_skipped_total cannot ship unlisted. The Go runtime's and
// the process's collectors are documented as families, not one by one.
func TestMetricsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(fermiontest.Root(t), "docs", "telemetry.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := nodeMetrics(t)
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) == 0 {
		t.Fatal("the registry gathered no metrics")
	}
	for _, mf := range mfs {
		name := mf.GetName()
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
			continue
		}
		if !strings.Contains(string(doc), "| `"+name+"` |") {
			t.Errorf("%s has no row in docs/telemetry.md's metric table (| `%s` | type | labels | meaning |)", name, name)
		}
	}
}

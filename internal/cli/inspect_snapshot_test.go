package cli

import (
	"context"
	"strings"
	"testing"

	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/oci"
	"fermion.dev/fermion/internal/sandbox"
)

// TestSnapshotPlanOfWithoutModule covers what inspect says before it needs the module:
// command modules and component.snapshot = false. (TestArtifactFlow covers a reactor
// fetched from a registry.)
func TestSnapshotPlanOfWithoutModule(t *testing.T) {
	tests := []struct {
		name, abi, manifest string
		want                string
		wantText            string
	}{
		{"command module", sandbox.ABICommand, `{"component":{"abi":"command"}}`, "not_applicable", "no (not_applicable): a command module runs once per request"},
		{"snapshot off", sandbox.ABIReactor, `{"component":{"abi":"reactor","snapshot":false}}`, sandbox.SnapshotDisabled,
			"no (disabled): the manifest sets component.snapshot = false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &oci.Pulled{Parsed: &artifact.Parsed{Config: artifact.Config{Manifest: []byte(tt.manifest)}}}
			p.Parsed.Config.Module.ABI = tt.abi
			got := snapshotPlanOf(context.Background(), nil, p) // no client: nothing may be fetched
			if got.Result != tt.want || !strings.HasPrefix(got.String(), tt.wantText) {
				t.Fatalf("got %+v (%s), want %s", got, got, tt.want)
			}
		})
	}
}

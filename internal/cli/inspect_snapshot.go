package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/oci"
	"fermion.dev/fermion/internal/sandbox"
)

// snapshotShown is whether a node would start the artifact's instances from a snapshot,
// as inspect shows it.
type snapshotShown struct {
	// Result is sandbox.SnapshotTaken ("taken": a node takes one), a sandbox refusal
	// code, "not_applicable" for command modules, or "unknown" when the module could not
	// be read.
	Result string `json:"result"`
	Reason string `json:"reason"`
}

func (s snapshotShown) String() string {
	if s.Result == sandbox.SnapshotTaken {
		return "yes: " + s.Reason
	}
	return fmt.Sprintf("no (%s): %s", s.Result, s.Reason)
}

// snapshotPlanOf fetches the artifact's module and says, without running it, whether a
// node would start its instances from a snapshot (sandbox.SnapshotPlan).
func snapshotPlanOf(ctx context.Context, cl *oci.Client, p *oci.Pulled) snapshotShown {
	if p.Parsed.Config.Module.ABI == sandbox.ABICommand {
		return snapshotShown{Result: "not_applicable", Reason: "a command module runs once per request; there is no instance to start from a snapshot"}
	}
	var m struct {
		Component struct {
			Snapshot *bool `json:"snapshot"`
		} `json:"component"`
	}
	if json.Unmarshal(p.Parsed.Config.Manifest, &m) == nil && m.Component.Snapshot != nil && !*m.Component.Snapshot {
		return snapshotShown{Result: sandbox.SnapshotDisabled, Reason: "the manifest sets component.snapshot = false; every new instance runs _initialize"}
	}
	var buf bytes.Buffer
	if err := cl.FetchBlob(ctx, p.Ref, p.Parsed.Layer, &buf); err != nil {
		return snapshotShown{Result: "unknown", Reason: fmt.Sprintf("fetch module: %v", err)}
	}
	// The default load bounds: the plan only depends on what the rewrite finds, and a
	// module over a bound is refused at load whatever the snapshot.
	code, reason, err := sandbox.SnapshotPlan(buf.Bytes(), manifest.LoadLimits{})
	if err != nil {
		return snapshotShown{Result: "unknown", Reason: fmt.Sprintf("read module: %v", err)}
	}
	return snapshotShown{Result: code, Reason: reason}
}

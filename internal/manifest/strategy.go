package manifest

import (
	"fermion.dev/fermion/internal/rollout"
)

// strategy decodes the [strategy] table (and its [strategy.analysis]): how a change
// of this app's version reaches the nodes. rollout.DecodeTable is the one reading of
// the format; its problems, unknown keys and did-you-mean included, are reported at
// the table's keys. Nil when the table is absent (all at once, unless the deploy
// names a strategy).
func (d *decoder) strategy(raw map[string]any) *rollout.Spec {
	t, ok := d.table(raw, "", "strategy", `[strategy] with kind = "canary" and steps = ["10%", "50%", "100%"] below it`)
	if !ok {
		return nil
	}
	spec, probs := rollout.DecodeTable(d.file, "strategy", t, func(field string) (int, int) {
		p := d.idx[field]
		return p.line, p.col
	})
	for _, p := range probs {
		p.File = d.file
		d.probs = append(d.probs, p)
	}
	if len(probs) > 0 {
		return nil
	}
	return &spec
}

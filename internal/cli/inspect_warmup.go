package cli

import (
	"fmt"

	"fermion.dev/fermion/internal/manifest"
)

// warmupShown is the artifact's warmup hook as inspect shows it; nil (JSON null) when it
// has none.
type warmupShown struct {
	Path    string `json:"path"`
	Timeout string `json:"timeout"`
}

func (w *warmupShown) String() string {
	if w == nil {
		return "none"
	}
	return fmt.Sprintf("GET %s on each new instance before it takes traffic (timeout %s)", w.Path, w.Timeout)
}

// warmupOf reads component.warmup from an artifact's normalized manifest, through the
// format's one decoder.
func warmupOf(norm []byte) *warmupShown {
	n, err := manifest.ParseNormalized(norm)
	if err != nil || n.Component.Warmup == "" {
		return nil
	}
	return &warmupShown{Path: n.Component.Warmup, Timeout: n.Component.WarmupTimeout}
}

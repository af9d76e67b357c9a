// Command gen writes the files rendered by internal/dashboards: the Grafana JSON under
// deploy/grafana and the generated section of docs/telemetry.md. Run it through
// `go generate ./internal/dashboards`.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"fermion.dev/fermion/internal/atomicfile"
	"fermion.dev/fermion/internal/dashboards"
)

func main() {
	root := flag.String("root", ".", "repository root")
	flag.Parse()
	if err := generate(*root); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func generate(root string) error {
	// Render everything before writing anything, so a failure leaves the tree as it was.
	files, err := dashboards.Files()
	if err != nil {
		return err
	}
	docPath := filepath.Join(root, dashboards.DocsPath)
	doc, err := os.ReadFile(docPath)
	if err != nil {
		return fmt.Errorf("read %s: %w", docPath, err)
	}
	doc, err = dashboards.ReplaceGenerated(doc, dashboards.Markdown(dashboards.All()))
	if err != nil {
		return fmt.Errorf("%s: %w", docPath, err)
	}
	files[dashboards.DocsPath] = doc
	for rel, b := range files {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		if err := atomicfile.Write(p, b, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	return nil
}

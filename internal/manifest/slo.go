package manifest

import (
	"fmt"

	"fermion.dev/fermion/internal/slo"
)

// slos decodes the [[slo]] tables: the app's SLOs, applied with its deployment and
// deleted with it. Each is validated by slo.ManifestSLO.Spec, the SLO package's one
// reading of the format; its problems are reported at the table's keys.
func (d *decoder) slos(raw map[string]any, app string) []slo.ManifestSLO {
	els, ok := d.array(raw, "", "slo", "[[slo]] tables (note the double brackets)")
	if !ok {
		return nil
	}
	var out []slo.ManifestSLO
	seen := map[string]string{}
	for i, el := range els {
		at := indexPath("slo", i)
		t, ok := el.(map[string]any)
		if !ok {
			d.at(at, "must be a table, not %s; write [[slo]] then name = \"availability\"", describe(el))
			continue
		}
		d.checkKeys(t, at, "slo[]")
		var m slo.ManifestSLO
		good := true
		for key, dst := range map[string]*string{"name": &m.Name, "sli": &m.SLI, "threshold": &m.Threshold, "window": &m.Window,
			"scope": &m.Scope, "preset": &m.Preset, "runbook": &m.Runbook} {
			if v, present := t[key]; present {
				if s, ok := d.str(t, at, key); ok {
					*dst = s
				} else if _, isStr := v.(string); !isStr {
					good = false
				}
			}
		}
		switch v := t["objective"].(type) {
		case nil:
		case float64:
			m.Objective = v
		case int64:
			m.Objective = float64(v)
		default:
			d.at(joinPath(at, "objective"), "must be a number of percent such as 99.9, not %s", describe(v))
			good = false
		}
		// Label names are checked by m.Spec below, with the SLO package's rule.
		if nodes, ok := d.stringMap(t, at, "nodes", func(string) string { return "" }, nil); ok {
			m.Nodes = nodes
		}
		if _, probs := m.Spec(d.file, at, app); len(probs) > 0 {
			for _, p := range probs {
				d.at(p.Field, "%s", p.Msg)
			}
			good = false
		}
		if first, dup := seen[m.Name]; dup && m.Name != "" {
			d.at(joinPath(at, "name"), "SLO %q is declared twice (first at %s); give each [[slo]] its own name", m.Name, first)
			good = false
		}
		seen[m.Name] = at
		if good {
			out = append(out, m)
		}
	}
	return out
}

// SLOSpecs returns the manifest's SLOs as validated specs of its app.
func (m *Manifest) SLOSpecs() ([]slo.Spec, error) {
	out := make([]slo.Spec, 0, len(m.SLOs))
	for i, ms := range m.SLOs {
		sp, probs := ms.Spec(m.Path, indexPath("slo", i), m.App.Name)
		if len(probs) > 0 {
			return nil, fmt.Errorf("slo %s: %s", ms.Name, probs[0].Msg)
		}
		out = append(out, sp)
	}
	return out, nil
}

package dashboards

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Markers delimit the generated part of docs/telemetry.md. Everything between them is
// replaced by Markdown; edits there are lost on the next generate.
const (
	BeginMarker = "<!-- BEGIN GENERATED dashboards: edit internal/dashboards, then run go generate ./internal/dashboards -->"
	EndMarker   = "<!-- END GENERATED dashboards -->"
)

// Regenerate is the command that rewrites every generated file.
const Regenerate = "go generate ./internal/dashboards"

// Markdown renders the dashboards as the docs' sections: a heading, the purpose and a
// panel | query table per dashboard.
func Markdown(ds []Dashboard) string {
	var b strings.Builder
	for i, d := range ds {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "### %s\n\n%s", d.Title, d.Purpose)
		if len(d.Vars) > 0 {
			names := make([]string, len(d.Vars))
			for j, v := range d.Vars {
				names[j] = "`$" + v.Name + "`"
			}
			fmt.Fprintf(&b, " Variables: %s.", strings.Join(names, ", "))
		}
		fmt.Fprintf(&b, " Grafana: [deploy/grafana/%s.json](../deploy/grafana/%s.json).\n\n", d.UID, d.UID)
		b.WriteString("| panel | query |\n|---|---|\n")
		for _, p := range d.Panels {
			qs := make([]string, len(p.Queries))
			for j, q := range p.Queries {
				qs[j] = "`" + q.Expr + "`"
			}
			cell := strings.Join(qs, ", ")
			switch {
			case cell == "":
				cell = p.Note
			case p.Note != "":
				cell += " (" + p.Note + ")"
			}
			fmt.Fprintf(&b, "| %s | %s |\n", cellEscape(p.Title), cellEscape(cell))
		}
	}
	return b.String()
}

// cellEscape keeps a pipe inside a table cell from ending it.
func cellEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// ReplaceGenerated returns doc with the text between BeginMarker and EndMarker replaced
// by generated. It fails, rather than appending, when the markers are missing or out of
// order, so a mangled document is never half rewritten.
func ReplaceGenerated(doc []byte, generated string) ([]byte, error) {
	begin := bytes.Index(doc, []byte(BeginMarker))
	end := bytes.Index(doc, []byte(EndMarker))
	if begin < 0 || end < 0 {
		return nil, errors.New("replace generated dashboards section: markers missing; put " + BeginMarker + " and " + EndMarker + " on lines of their own around the section")
	}
	if end < begin || bytes.Count(doc, []byte(BeginMarker)) != 1 || bytes.Count(doc, []byte(EndMarker)) != 1 {
		return nil, errors.New("replace generated dashboards section: want exactly one begin marker before exactly one end marker")
	}
	var out bytes.Buffer
	out.Write(doc[:begin+len(BeginMarker)])
	out.WriteString("\n\n")
	out.WriteString(generated)
	out.WriteString("\n")
	out.Write(doc[end:])
	return out.Bytes(), nil
}

// Grafana's JSON model, the parts Fermion sets. Field names are Grafana's.
type (
	grafanaDashboard struct {
		UID           string          `json:"uid"`
		Title         string          `json:"title"`
		Description   string          `json:"description"`
		Tags          []string        `json:"tags"`
		Editable      bool            `json:"editable"`
		SchemaVersion int             `json:"schemaVersion"`
		Version       int             `json:"version"`
		Refresh       string          `json:"refresh"`
		Time          grafanaTime     `json:"time"`
		Templating    grafanaTemplate `json:"templating"`
		Panels        []grafanaPanel  `json:"panels"`
	}
	grafanaTime struct {
		From string `json:"from"`
		To   string `json:"to"`
	}
	grafanaTemplate struct {
		List []grafanaVar `json:"list"`
	}
	grafanaVar struct {
		Name       string     `json:"name"`
		Label      string     `json:"label"`
		Type       string     `json:"type"`
		Query      any        `json:"query"`
		Definition string     `json:"definition,omitempty"`
		Datasource *grafanaDS `json:"datasource,omitempty"`
		Refresh    int        `json:"refresh"`
		Hide       int        `json:"hide"`
		Current    struct{}   `json:"current"`
		Options    []struct{} `json:"options"`
		IncludeAll bool       `json:"includeAll"`
		Multi      bool       `json:"multi"`
		Sort       int        `json:"sort,omitempty"`
		Regex      string     `json:"regex"`
	}
	grafanaDS struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	grafanaPanel struct {
		ID          int             `json:"id"`
		Type        string          `json:"type"`
		Title       string          `json:"title"`
		Description string          `json:"description,omitempty"`
		Datasource  *grafanaDS      `json:"datasource,omitempty"`
		GridPos     grafanaGrid     `json:"gridPos"`
		FieldConfig *grafanaFields  `json:"fieldConfig,omitempty"`
		Options     map[string]any  `json:"options,omitempty"`
		Targets     []grafanaTarget `json:"targets,omitempty"`
	}
	grafanaGrid struct {
		H int `json:"h"`
		W int `json:"w"`
		X int `json:"x"`
		Y int `json:"y"`
	}
	grafanaFields struct {
		Defaults  map[string]any `json:"defaults"`
		Overrides []struct{}     `json:"overrides"`
	}
	grafanaTarget struct {
		RefID        string     `json:"refId"`
		Datasource   *grafanaDS `json:"datasource"`
		Expr         string     `json:"expr"`
		LegendFormat string     `json:"legendFormat,omitempty"`
		Instant      bool       `json:"instant,omitempty"`
		Range        bool       `json:"range"`
		Format       string     `json:"format,omitempty"`
	}
)

// grafanaSchema is the dashboard JSON schema version the files are written in
// (Grafana 10.x); newer Grafanas migrate it on import.
const grafanaSchema = 39

// datasource is the dashboards' Prometheus: a variable the importer picks, so the files
// name no installation's datasource uid.
var datasource = &grafanaDS{Type: "prometheus", UID: "${datasource}"}

// Grafana renders d as a Grafana dashboard JSON document, importable as is (Dashboards →
// Import, or a provisioning directory).
func Grafana(d Dashboard) ([]byte, error) {
	g := grafanaDashboard{
		UID: d.UID, Title: "Fermion / " + d.Title, Description: d.Purpose,
		Tags: []string{"fermion"}, Editable: true, SchemaVersion: grafanaSchema, Version: 1,
		Refresh: "30s", Time: grafanaTime{From: "now-6h", To: "now"},
	}
	g.Templating.List = append(g.Templating.List, grafanaVar{
		Name: "datasource", Label: "Prometheus", Type: "datasource", Query: "prometheus", Options: []struct{}{},
	})
	for _, v := range d.Vars {
		g.Templating.List = append(g.Templating.List, grafanaVar{
			Name: v.Name, Label: v.Label, Type: "query", Datasource: datasource,
			Query:      map[string]string{"query": v.Query, "refId": v.Name},
			Definition: v.Query, Refresh: 2, Sort: 1, Options: []struct{}{},
		})
	}
	// Two panels a row, full width for tables and logs, each row as tall as its tallest.
	x, y := 0, 0
	for i, p := range d.Panels {
		if len(p.Queries) == 0 && p.Kind != Logs {
			return nil, fmt.Errorf("render dashboard %s: panel %q has no query", d.UID, p.Title)
		}
		w, h := 12, 8
		if p.Kind == Table || p.Kind == Logs {
			w = 24
		}
		if x+w > 24 {
			x, y = 0, y+h
		}
		gp := grafanaPanel{ID: i + 1, Title: p.Title, Description: p.Note, GridPos: grafanaGrid{H: h, W: w, X: x, Y: y}}
		x += w
		if p.Kind == Logs {
			// Fermion's logs go to whatever log store the operator runs; the panel says
			// what to look for there instead of guessing a Loki datasource.
			gp.Type = "text"
			gp.Options = map[string]any{"mode": "markdown", "content": "Search the log store for " + p.Note + "."}
			g.Panels = append(g.Panels, gp)
			continue
		}
		gp.Type = string(p.Kind)
		gp.Datasource = datasource
		gp.FieldConfig = &grafanaFields{Defaults: map[string]any{"unit": string(p.Unit)}, Overrides: []struct{}{}}
		for j, q := range p.Queries {
			t := grafanaTarget{RefID: string(rune('A' + j)), Datasource: datasource, Expr: q.Expr, LegendFormat: q.Legend, Range: true}
			switch p.Kind {
			case Table:
				t.Instant, t.Range, t.Format = true, false, "table"
			case Heatmap:
				t.Format = "heatmap"
			case Stat:
				t.Instant, t.Range = true, false
			}
			gp.Targets = append(gp.Targets, t)
		}
		g.Panels = append(g.Panels, gp)
	}
	b, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("render dashboard %s: %w", d.UID, err)
	}
	return append(b, '\n'), nil
}

// Files returns every generated file but the docs, by path from the repository root.
func Files() (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, d := range All() {
		b, err := Grafana(d)
		if err != nil {
			return nil, err
		}
		out["deploy/grafana/"+d.UID+".json"] = b
	}
	return out, nil
}

// DocsPath is the document that holds the generated tables.
const DocsPath = "docs/telemetry.md"

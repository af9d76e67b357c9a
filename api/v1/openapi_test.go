package v1_test

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
)

func openAPI(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(v1.OpenAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return doc
}

// obj follows keys through nested objects, failing the test where one is missing.
func obj(t *testing.T, v any, keys ...string) map[string]any {
	t.Helper()
	for i, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("openapi.json: %s is not an object", strings.Join(keys[:i], "."))
		}
		if v, ok = m[k]; !ok {
			t.Fatalf("openapi.json: no %s", strings.Join(keys[:i+1], "."))
		}
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("openapi.json: %s is not an object", strings.Join(keys, "."))
	}
	return m
}

// TestOpenAPIRoutes: the document describes exactly the API's routes and methods.
func TestOpenAPIRoutes(t *testing.T) {
	doc := openAPI(t)
	if doc["openapi"] != "3.1.0" {
		t.Fatalf("openapi version %v, want 3.1.0", doc["openapi"])
	}
	want := map[string][]string{
		"/v1/info":                      {"get"},
		"/v1/openapi.json":              {"get"},
		"/v1/tokens":                    {"get", "post"},
		"/v1/tokens/{id}":               {"delete"},
		"/v1/deployments":               {"get"},
		"/v1/deployments/{name}":        {"delete", "get", "put"},
		"/v1/deployments/{name}/status": {"get"},
		"/v1/nodes":                     {"get"},
		"/v1/nodes/{name}":              {"delete", "get"},
		"/v1/nodes/{name}/drain":        {"post"},
		"/v1/nodes/{name}/uncordon":     {"post"},
		"/v1/events":                    {"get"},
		"/v1/policies":                  {"get"},
		"/v1/policies/violations":       {"get"},
		"/v1/policies/{name}":           {"delete", "get", "put"},
		// SLOs and alerts (issue 14).
		"/v1/slos":               {"get", "put"},
		"/v1/slos/{name}":        {"delete", "get", "put"},
		"/v1/slos/{name}/status": {"get"},
		"/v1/alerts":             {"get"},
		"/v1/alerts/expected":    {"post"},
		"/v1/slis":               {"get"},
		"/v1/slis/slowest":       {"get"},
		// Revisions and rollback (issue 15).
		"/v1/deployments/{name}/revisions":     {"get"},
		"/v1/deployments/{name}/revisions/{n}": {"get"},
		"/v1/deployments/{name}/rollback":      {"post"},
		// Rollouts (issue 15).
		"/v1/deployments/{name}/rollout":          {"get"},
		"/v1/deployments/{name}/rollout/{action}": {"post"},
		// Backup and restore (opsurface).
		"/v1/backup":  {"get"},
		"/v1/restore": {"put"},
		// Instance timelines (issue 16).
		"/v1/nodes/{name}/instances":       {"get"},
		"/v1/deployments/{name}/instances": {"get"},
	}
	methods := []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}
	paths := obj(t, doc, "paths")
	for path, item := range paths {
		var got []string
		for k := range item.(map[string]any) {
			if slices.Contains(methods, k) {
				got = append(got, k)
			}
		}
		sort.Strings(got)
		if w, ok := want[path]; !ok {
			t.Errorf("path %s is not in the API", path)
		} else if !slices.Equal(got, w) {
			t.Errorf("path %s has methods %v, want %v", path, got, w)
		}
	}
	for path := range want {
		if _, ok := paths[path]; !ok {
			t.Errorf("path %s is missing", path)
		}
	}

	scheme := obj(t, doc, "components", "securitySchemes", "bearer")
	if scheme["type"] != "http" || scheme["scheme"] != "bearer" {
		t.Errorf("bearer security scheme is %v", scheme)
	}
	if sec, _ := json.Marshal(doc["security"]); string(sec) != `[{"bearer":[]}]` {
		t.Errorf("global security %s, want bearer", sec)
	}
	if sec, _ := json.Marshal(obj(t, paths, "/v1/openapi.json", "get")["security"]); string(sec) != `[]` {
		t.Errorf("GET /v1/openapi.json security %s, want none", sec)
	}
	// Every operation has an id and describes its errors with the error body.
	ids := map[string]bool{}
	for path, item := range paths {
		for m, o := range item.(map[string]any) {
			if !slices.Contains(methods, m) {
				continue
			}
			id, _ := o.(map[string]any)["operationId"].(string)
			if id == "" || ids[id] {
				t.Errorf("%s %s: operationId %q missing or repeated", m, path, id)
			}
			ids[id] = true
			if _, ok := obj(t, o, "responses")["default"]; !ok {
				t.Errorf("%s %s: no default (error) response", m, path)
			}
		}
	}
	put := obj(t, paths, "/v1/deployments/{name}", "put")
	var headers []string
	for _, p := range put["parameters"].([]any) {
		if p := p.(map[string]any); p["in"] == "header" {
			headers = append(headers, p["name"].(string))
		}
	}
	if !slices.Equal(headers, []string{"If-Match", "If-None-Match"}) {
		t.Errorf("PUT deployment header parameters %v", headers)
	}
	for _, status := range []string{"200", "201"} {
		obj(t, put, "responses", status, "headers", "ETag")
	}
	for _, status := range []string{"200", "201"} {
		obj(t, put, "responses", status, "headers", "Warning")
	}
	obj(t, paths, "/v1/deployments/{name}", "get", "responses", "200", "headers", "ETag")
	obj(t, paths, "/v1/events", "get", "responses", "200", "content", "application/x-ndjson")
}

// TestOpenAPIRefs: every $ref points at something in the document.
func TestOpenAPIRefs(t *testing.T) {
	doc := openAPI(t)
	var n int
	var walk func(at string, v any)
	walk = func(at string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if r, ok := v["$ref"]; ok {
				n++
				s, _ := r.(string)
				if !resolves(doc, s) {
					t.Errorf("%s: $ref %q does not resolve", at, s)
				}
			}
			for k, c := range v {
				walk(at+"/"+k, c)
			}
		case []any:
			for i, c := range v {
				walk(at+"/"+strconv.Itoa(i), c)
			}
		}
	}
	walk("#", doc)
	if n < 20 {
		t.Fatalf("only %d $refs: is the walk broken?", n)
	}
}

func resolves(doc map[string]any, ref string) bool {
	p, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return false
	}
	var v any = doc
	for _, tok := range strings.Split(p, "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		if v, ok = m[tok]; !ok {
			return false
		}
	}
	return true
}

// schemaTypes maps each schema to the type whose JSON it describes.
var schemaTypes = map[string]reflect.Type{
	"Error":            reflect.TypeFor[v1.Error](),
	"ErrorBody":        reflect.TypeFor[v1.ErrorBody](),
	"Info":             reflect.TypeFor[v1.Info](),
	"TokenRequest":     reflect.TypeFor[v1.TokenRequest](),
	"Token":            reflect.TypeFor[v1.Token](),
	"TokenList":        reflect.TypeFor[v1.TokenList](),
	"Preference":       reflect.TypeFor[v1.Preference](),
	"DeploymentSpec":   reflect.TypeFor[v1.DeploymentSpec](),
	"Version":          reflect.TypeFor[v1.Version](),
	"Deployment":       reflect.TypeFor[v1.Deployment](),
	"Placement":        reflect.TypeFor[v1.Placement](),
	"DeploymentList":   reflect.TypeFor[v1.DeploymentList](),
	"Resources":        reflect.TypeFor[v1.Resources](),
	"Node":             reflect.TypeFor[v1.Node](),
	"NodeList":         reflect.TypeFor[v1.NodeList](),
	"InstanceStatus":   reflect.TypeFor[v1.InstanceStatus](),
	"CanaryStatus":     reflect.TypeFor[v1.CanaryStatus](),
	"NodeStatus":       reflect.TypeFor[v1.NodeStatus](),
	"DeploymentStatus": reflect.TypeFor[v1.DeploymentStatus](),
	"Event":            reflect.TypeFor[v1.Event](),
	"EventList":        reflect.TypeFor[v1.EventList](),
	"PolicyViolation":  reflect.TypeFor[v1.PolicyViolation](),
	"PolicyApply":      reflect.TypeFor[v1.PolicyApply](),
	"Policy":           reflect.TypeFor[v1.Policy](),
	"PolicyList":       reflect.TypeFor[v1.PolicyList](),
	// SLOs and alerts (issue 14).
	"SLOApply":        reflect.TypeFor[v1.SLOApply](),
	"SLO":             reflect.TypeFor[v1.SLO](),
	"SLOList":         reflect.TypeFor[v1.SLOList](),
	"SLOStatus":       reflect.TypeFor[v1.SLOStatus](),
	"SLOSeriesStatus": reflect.TypeFor[v1.SLOSeriesStatus](),
	"SLOBurn":         reflect.TypeFor[v1.SLOBurn](),
	"Alert":           reflect.TypeFor[v1.Alert](),
	"Incident":        reflect.TypeFor[v1.Incident](),
	"AlertList":       reflect.TypeFor[v1.AlertList](),
	"AlertMark":       reflect.TypeFor[v1.AlertMark](),
	"SLIGroup":        reflect.TypeFor[v1.SLIGroup](),
	"SLIList":         reflect.TypeFor[v1.SLIList](),
	// Slowest requests (issue 16).
	"SlowRequest":     reflect.TypeFor[v1.SlowRequest](),
	"SlowestRequests": reflect.TypeFor[v1.SlowestRequests](),
	// Revisions and rollback (issue 15).
	"Change":          reflect.TypeFor[v1.Change](),
	"Revision":        reflect.TypeFor[v1.Revision](),
	"RevisionList":    reflect.TypeFor[v1.RevisionList](),
	"RollbackRequest": reflect.TypeFor[v1.RollbackRequest](),
	// Rollouts (issue 15).
	"RolloutStrategy":      reflect.TypeFor[v1.RolloutStrategy](),
	"RolloutAnalysis":      reflect.TypeFor[v1.RolloutAnalysis](),
	"RolloutRevision":      reflect.TypeFor[v1.RolloutRevision](),
	"RolloutCheck":         reflect.TypeFor[v1.RolloutCheck](),
	"RolloutVerdict":       reflect.TypeFor[v1.RolloutVerdict](),
	"Rollout":              reflect.TypeFor[v1.Rollout](),
	"RolloutActionRequest": reflect.TypeFor[v1.RolloutActionRequest](),
	"StableRevision":       reflect.TypeFor[v1.StableRevision](),
	// A deployment's rollout in status views (smalls).
	"RolloutSummary": reflect.TypeFor[v1.RolloutSummary](),
	// Backup and restore (opsurface).
	"BackupSummary": reflect.TypeFor[v1.BackupSummary](),
	// Telemetry export health (console).
	"TelemetryHealth": reflect.TypeFor[v1.TelemetryHealth](),
	// Instance timelines (issue 16).
	"InstancesList":    reflect.TypeFor[v1.InstancesList](),
	"InstanceTimeline": reflect.TypeFor[v1.InstanceTimeline](),
	"InstanceEvent":    reflect.TypeFor[v1.InstanceEvent](),
	"NodeError":        reflect.TypeFor[v1.NodeError](),
}

// TestOpenAPISchemas: each schema has exactly its type's JSON fields, with matching
// JSON types, and requires exactly the fields that are always present.
func TestOpenAPISchemas(t *testing.T) {
	doc := openAPI(t)
	schemas := obj(t, doc, "components", "schemas")
	names := map[reflect.Type]string{}
	for name, typ := range schemaTypes {
		names[typ] = name
	}
	for name := range schemas {
		if _, ok := schemaTypes[name]; !ok {
			t.Errorf("schema %s describes no type in schemaTypes", name)
		}
	}
	for name, typ := range schemaTypes {
		t.Run(name, func(t *testing.T) {
			s := obj(t, schemas, name)
			if s["type"] != "object" {
				t.Fatalf("type %v, want object", s["type"])
			}
			props := obj(t, s, "properties")
			var required []string
			seen := map[string]bool{}
			for i := range typ.NumField() {
				f := typ.Field(i)
				jname, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
				if !f.IsExported() || jname == "-" {
					continue
				}
				if jname == "" {
					t.Fatalf("field %s has no json name", f.Name)
				}
				seen[jname] = true
				p, ok := props[jname]
				if !ok {
					t.Errorf("property %s (field %s) is missing", jname, f.Name)
					continue
				}
				checkType(t, name+"."+jname, p.(map[string]any), f.Type, names)
				if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
					required = append(required, jname)
				}
			}
			for p := range props {
				if !seen[p] {
					t.Errorf("property %s has no field in %s", p, typ)
				}
			}
			var got []string
			if r, ok := s["required"].([]any); ok {
				for _, x := range r {
					got = append(got, x.(string))
				}
			}
			sort.Strings(got)
			sort.Strings(required)
			if !slices.Equal(got, required) {
				t.Errorf("required %v, want the fields without omitempty/omitzero %v", got, required)
			}
		})
	}
}

func checkType(t *testing.T, at string, s map[string]any, typ reflect.Type, names map[reflect.Type]string) {
	t.Helper()
	if typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	if typ == reflect.TypeFor[json.RawMessage]() {
		// JSON held as is (a rollout strategy): described, not typed further.
		if s["type"] != "object" {
			t.Errorf("%s: raw JSON is described as an object, not %v", at, s)
		}
		return
	}
	if typ == reflect.TypeFor[time.Time]() {
		if s["type"] != "string" || s["format"] != "date-time" {
			t.Errorf("%s: a time is a date-time string, not %v", at, s)
		}
		return
	}
	jsonType := func() []string {
		switch v := s["type"].(type) {
		case string:
			return []string{v}
		case []any:
			var out []string
			for _, x := range v {
				if x != "null" {
					out = append(out, x.(string))
				}
			}
			return out
		}
		return nil
	}
	want := ""
	switch typ.Kind() {
	case reflect.String:
		want = "string"
	case reflect.Bool:
		want = "boolean"
	case reflect.Int, reflect.Int64, reflect.Uint64:
		want = "integer"
	case reflect.Float64:
		want = "number"
	case reflect.Slice:
		want = "array"
		if items, ok := s["items"].(map[string]any); ok {
			checkType(t, at+"[]", items, typ.Elem(), names)
		} else {
			t.Errorf("%s: array without items", at)
		}
	case reflect.Map:
		want = "object"
		if v, ok := s["additionalProperties"].(map[string]any); ok {
			checkType(t, at+"{}", v, typ.Elem(), names)
		} else {
			t.Errorf("%s: map without additionalProperties", at)
		}
	case reflect.Struct:
		name, ok := names[typ]
		if !ok {
			t.Errorf("%s: type %s has no schema", at, typ)
		} else if s["$ref"] != "#/components/schemas/"+name {
			t.Errorf("%s: $ref %v, want #/components/schemas/%s", at, s["$ref"], name)
		}
		return
	default:
		t.Errorf("%s: no JSON type known for %s", at, typ)
		return
	}
	if got := jsonType(); !slices.Equal(got, []string{want}) {
		t.Errorf("%s: type %v, want %s (from %s)", at, s["type"], want, typ)
	}
	if typ.Kind() == reflect.Uint64 && s["minimum"] != 0.0 {
		t.Errorf("%s: an unsigned integer needs minimum 0", at)
	}
}

// TestOpenAPIEnums: the document's enums and code list follow the constants.
func TestOpenAPIEnums(t *testing.T) {
	doc := openAPI(t)
	schemas := obj(t, doc, "components", "schemas")
	enum := func(keys ...string) []string {
		var out []string
		for _, v := range obj(t, schemas, keys...)["enum"].([]any) {
			out = append(out, v.(string))
		}
		return out
	}
	if got := enum("TokenRequest", "properties", "role"); !slices.Equal(got, v1.Roles) {
		t.Errorf("role enum %v, want %v", got, v1.Roles)
	}
	if got := enum("DeploymentSpec", "properties", "strategy"); !slices.Equal(got, []string{v1.StrategyBinpack, v1.StrategySpread}) {
		t.Errorf("strategy enum %v", got)
	}
	for _, at := range [][]string{{"PolicyApply", "properties", "mode"}, {"Policy", "properties", "mode"}, {"PolicyViolation", "properties", "mode"}} {
		if got := enum(at...); !slices.Equal(got, v1.PolicyModes) {
			t.Errorf("%s enum %v, want %v", strings.Join(at, "."), got, v1.PolicyModes)
		}
	}
	// Every error code constant is listed in the code's description.
	desc := obj(t, schemas, "Error", "properties", "code")["description"].(string)
	for _, c := range constants(t, "Code") {
		if !strings.Contains(desc, "`"+c+"`") {
			t.Errorf("error code %q is not listed in Error.code's description", c)
		}
	}
	typeDesc := obj(t, schemas, "Event", "properties", "type")["description"].(string)
	for _, c := range constants(t, "Event") {
		if !strings.Contains(typeDesc, c) {
			t.Errorf("event type %q is not listed in Event.type's description", c)
		}
	}
}

// constants returns the values of the string constants in v1.go whose names start
// with prefix.
func constants(t *testing.T, prefix string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "v1.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if !strings.HasPrefix(n.Name, prefix) || i >= len(vs.Values) {
					continue
				}
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					s, _ := strconv.Unquote(lit.Value)
					out = append(out, s)
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("no %s constants in v1.go", prefix)
	}
	return out
}

// notHTTP are the structs of v1.go that no HTTP body carries (the agent protocol's).
var notHTTP = []string{"Assignment"}

// TestOpenAPICoversTypes: a struct added to v1.go gets a schema or a place in notHTTP.
func TestOpenAPICoversTypes(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "v1.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.TYPE {
			continue
		}
		for _, spec := range g.Specs {
			ts := spec.(*ast.TypeSpec)
			if _, ok := ts.Type.(*ast.StructType); !ok || !ts.Name.IsExported() {
				continue
			}
			if _, ok := schemaTypes[ts.Name.Name]; !ok && !slices.Contains(notHTTP, ts.Name.Name) {
				t.Errorf("type %s has no schema in openapi.json (or add it to notHTTP)", ts.Name.Name)
			}
		}
	}
}

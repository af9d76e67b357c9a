package cli_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	v1 "fermion.dev/fermion/api/v1"
)

// TestOutputYAML: wherever -o json prints the API's document, -o yaml prints the same
// document as YAML: the same field names and values.
func TestOutputYAML(t *testing.T) {
	apiEnv(t)
	f := newFakeAPI(t)
	f.nodes["edge-1"] = &v1.Node{Name: "edge-1", State: "ready", Schedulable: true, Labels: map[string]string{"zone": "a"},
		Capacity: v1.Resources{MemoryBytes: 2 << 30, Instances: 100}, LeaseAge: 1.5, Assignments: []string{"hello"}}
	f.events = []v1.Event{{Seq: 1, Time: t0, Type: v1.EventDeployed, Deployment: "hello", Message: "generation 1: hello 1.2.0"}}
	for _, args := range [][]string{
		{"nodes"},
		{"nodes", "edge-1"},
		{"events"},
		{"token", "list"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var fromJSON, fromYAML any
			if err := json.Unmarshal([]byte(f.mustRun(t, append(args, "-o", "json")...)), &fromJSON); err != nil {
				t.Fatal(err)
			}
			y := f.mustRun(t, append(args, "-o", "yaml")...)
			if strings.HasPrefix(strings.TrimSpace(y), "{") {
				t.Fatalf("-o yaml printed JSON:\n%s", y)
			}
			j, err := yaml.YAMLToJSON([]byte(y))
			if err != nil {
				t.Fatalf("-o yaml is not YAML: %v\n%s", err, y)
			}
			if err := json.Unmarshal(j, &fromYAML); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(fromJSON, fromYAML) {
				t.Fatalf("-o yaml differs from -o json:\n%v\n%v\nyaml:\n%s", fromJSON, fromYAML, y)
			}
		})
	}
}

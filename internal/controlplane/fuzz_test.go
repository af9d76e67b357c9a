package controlplane

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	v1 "fermion.dev/fermion/api/v1"
)

// FuzzDeploymentBody feeds arbitrary bytes to the deployment PUT body decoder and the
// spec's validation: they must answer with a coded error or a valid spec, never panic.
func FuzzDeploymentBody(f *testing.F) {
	for _, s := range []string{
		`{"image":"127.0.0.1:5000/hello:1.0.0","nodes":2,"spread":"zone"}`,
		`{"image":"r/x@sha256:00","daemon":true,"selector":"region == \"eu\"","preferences":[{"label":"tier","value":"edge","weight":3}]}`,
		`{"image":"x","nodes":-1}`, `{"nodes":"two"}`, `{"image":"x","nodes":1,"extra":1}`, `{} {}`, ``, `[`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPut, "/v1/deployments/x", strings.NewReader(string(body)))
		r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, maxBody)
		var spec v1.DeploymentSpec
		if e := decodeBody(r, &spec); e != nil {
			if e.Code == "" || e.Message == "" {
				t.Fatalf("uncoded error %+v", e)
			}
			return
		}
		if e := spec.Validate(); e != nil {
			if e.Code != v1.CodeBadRequest || !strings.HasPrefix(e.Field, "spec.") {
				t.Fatalf("validation error %+v", e)
			}
			return
		}
		if spec.Image == "" || (!spec.Daemon && spec.Nodes <= 0) {
			t.Fatalf("accepted %+v", spec)
		}
	})
}

// FuzzAgentMessages feeds arbitrary bytes to the agent protocol's decoders.
func FuzzAgentMessages(f *testing.F) {
	f.Add([]byte(`{"labels":{"zone":"a"},"capacity":{"memoryBytes":1,"milliCpu":1,"instances":1},"runtimeVersion":"1"}`))
	f.Add([]byte(`{"statuses":[{"deployment":"hello","state":"ready"}]}`))
	f.Add([]byte(`{"node":"edge-1"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var reg v1.Register
		if decodeStrict(data, &reg) == nil {
			validateRegister(&reg)
		}
		var hb v1.Heartbeat
		decodeStrict(data, &hb)
		var jr v1.JoinRequest
		if decodeStrict(data, &jr) == nil {
			v1.ValidName("node", jr.Node)
		}
	})
}

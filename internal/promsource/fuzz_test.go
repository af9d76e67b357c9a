package promsource

import (
	"strings"
	"testing"
)

// FuzzParseResponse feeds the query API's decoder and the histogram conversion
// arbitrary bodies: they must return an error or a usable result, never panic.
func FuzzParseResponse(f *testing.F) {
	f.Add(200, vector(elem(`"le":"0.1"`, "3"), elem(`"le":"+Inf"`, "4")))
	f.Add(200, vector(elem("", "1.5")))
	f.Add(400, `{"status":"error","errorType":"bad_data","error":"x"}`)
	f.Add(200, `{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}`)
	f.Add(200, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"le":"-1"},"value":[0,"1e300"]}]}}`)
	f.Fuzz(func(t *testing.T, status int, body string) {
		vec, err := parseResponse(status, []byte(body))
		if err != nil {
			return
		}
		_, _ = scalarCount(vec)
		bs, err := histogramBuckets(vec)
		if err != nil {
			return
		}
		if sk := sketchOf(bs); sk != nil {
			_ = sk.Quantile(0.99)
		}
	})
}

// FuzzParseConfig: any file gives a config whose queries all render, or an error.
func FuzzParseConfig(f *testing.F) {
	f.Add("timeout = \"5s\"\nrequests = 'sum(x{a=\"{{.App}}\"}[{{.Window}}])'\n")
	f.Add("latency = \"{{.Nope}}\"")
	f.Add("max_response_bytes = 2048\n")
	f.Fuzz(func(t *testing.T, src string) {
		cfg, err := ParseConfig("f.toml", []byte(src))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.toml") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		for _, k := range QueryNames {
			if _, err := cfg.render(k, Data{App: "a", Version: "1", Window: "1s"}); err != nil {
				t.Fatalf("accepted config's %s query does not render: %v", k, err)
			}
		}
	})
}

package promsource

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	cfg, err := ParseConfig("m.toml", []byte(`
timeout = "3s"
max_response_bytes = 65536
requests = 'sum(increase(http_requests_total{app="{{.App}}",track="{{.Version}}"}[{{.Window}}]))'
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Timeout != 3*time.Second || cfg.MaxResponseBytes != 65536 {
		t.Errorf("limits = %s, %d", cfg.Timeout, cfg.MaxResponseBytes)
	}
	q, err := cfg.render(QueryRequests, Data{App: "hello", Version: "2", Window: "30s"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `sum(increase(http_requests_total{app="hello",track="2"}[30s]))`; q != want {
		t.Errorf("requests = %q, want %q", q, want)
	}
	if cfg.Queries[QueryErrors] != defaultQueries[QueryErrors] {
		t.Errorf("an absent query must keep its default")
	}
	def := DefaultConfig()
	for _, k := range QueryNames {
		if _, err := def.render(k, Data{App: "a", Version: "1", Window: "1s"}); err != nil {
			t.Errorf("default %s: %v", k, err)
		}
	}
}

func TestParseConfigProblems(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []string // each must appear, in this order
	}{
		{"unknown key with suggestion", "timout = \"1s\"\n", []string{`m.toml:1:1: timout: unknown key; did you mean "timeout"?`}},
		{"unknown key", "\n  bogus_thing = 1\n", []string{"m.toml:2:3: bogus_thing: unknown key; a metrics config holds timeout, max_response_bytes, requests"}},
		{"bad timeout", `timeout = "forever"`, []string{`m.toml:1:1: timeout: must be a duration between 100ms and 5m`}},
		{"timeout too long", `timeout = "1h"`, []string{"timeout: must be a duration"}},
		{"timeout not a string", `timeout = 5`, []string{"not the integer 5"}},
		{"bad size", `max_response_bytes = "big"`, []string{`max_response_bytes: must be a byte count`}},
		{"query not a string", `errors = 3`, []string{"errors: must be a PromQL query in a string"}},
		{"empty query", `errors = "  "`, []string{"errors: must be a PromQL query"}},
		{"template syntax", `errors = "sum({{.App)"`, []string{"errors: template does not parse"}},
		{"unknown field", `latency = "x{a=\"{{.Ap}}\"}"`, []string{"latency: template fails", "{{.App}}, {{.Version}} and {{.Window}}"}},
		{"table", "[queries]\nrequests = \"x\"\n", []string{`m.toml:1:1: queries: unknown key; a metrics config holds`}},
		{"toml syntax", "timeout = \n", []string{"m.toml:1:", "invalid TOML"}},
		{"several, in file order", "requests = 1\ntimeout = \"x\"\n", []string{"m.toml:1:1: requests", "m.toml:2:1: timeout"}},
		{"not utf-8", "timeout = \"\xff\"", []string{"not valid UTF-8"}},
		{"too large", "# " + strings.Repeat("x", 70<<10), []string{"at most 65536"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("m.toml", []byte(tc.src))
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want an *Error", err)
			}
			msg, at := err.Error(), 0
			for _, w := range tc.want {
				i := strings.Index(msg[at:], w)
				if i < 0 {
					t.Fatalf("error\n%s\nlacks (in order) %q", msg, w)
				}
				at += i + len(w)
			}
		})
	}
}

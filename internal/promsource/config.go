package promsource

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/BurntSushi/toml"

	"fermion.dev/fermion/internal/diag"
)

// Query names: the keys of the config file, one per rollout.Sample field.
const (
	QueryRequests   = "requests"    // requests answered, any status
	QueryErrors     = "errors"      // requests answered 5xx
	QueryColdStarts = "cold_starts" // requests that waited for a new instance
	QueryTraps      = "traps"       // instances discarded for a trap or a timeout
	QueryLatency    = "latency"     // request-duration histogram: one series per `le`
)

// QueryNames are the query keys in Sample order.
var QueryNames = []string{QueryRequests, QueryErrors, QueryColdStarts, QueryTraps, QueryLatency}

// Fields are every key a config file may hold.
var Fields = append([]string{"timeout", "max_response_bytes"}, QueryNames...)

// The defaults read the metrics every Fermion node exports (docs/telemetry.md):
// function is the app's name, version its version, code the status class. Each sums
// over nodes and routes, as a rollout.Sample is merged over them.
var defaultQueries = map[string]string{
	QueryRequests:   `sum(increase(fermion_requests_total{function="{{.App}}",version="{{.Version}}"}[{{.Window}}]))`,
	QueryErrors:     `sum(increase(fermion_requests_total{function="{{.App}}",version="{{.Version}}",code="5xx"}[{{.Window}}]))`,
	QueryColdStarts: `sum(increase(fermion_cold_starts_total{function="{{.App}}",version="{{.Version}}"}[{{.Window}}]))`,
	QueryTraps:      `sum(increase(fermion_instance_discards_total{function="{{.App}}",version="{{.Version}}",reason=~"trap|timeout"}[{{.Window}}]))`,
	QueryLatency:    `sum by (le) (increase(fermion_request_duration_seconds_bucket{function="{{.App}}",version="{{.Version}}"}[{{.Window}}]))`,
}

// Defaults for the config's limits.
const (
	DefaultTimeout          = 10 * time.Second
	DefaultMaxResponseBytes = 4 << 20
	maxConfigSize           = 64 << 10
)

// Config is a parsed metrics config: a template per query and the limits of each call.
type Config struct {
	// Queries maps each of QueryNames to its template's text.
	Queries map[string]string
	// Timeout bounds one query (the caller's ctx may end it sooner).
	Timeout time.Duration
	// MaxResponseBytes bounds one response body; a larger one is an error rather than
	// memory a misbehaving server could take.
	MaxResponseBytes int64

	tmpls map[string]*template.Template
}

// DefaultConfig is the config with no file: Fermion's own metric names.
func DefaultConfig() *Config {
	c, probs := parseConfig("", nil)
	if len(probs) > 0 {
		panic("promsource: default queries do not parse: " + diag.Join(probs))
	}
	return c
}

// Data is what a query template sees. App and Version are escaped for a PromQL
// double-quoted string, so `{{.App}}` goes between quotes as it is; Window is a PromQL
// duration in whole seconds, such as "60s".
type Data struct {
	App, Version, Window string
}

// Error lists every problem of a config file, positioned.
type Error struct{ Problems []diag.Problem }

func (e *Error) Error() string { return diag.Join(e.Problems) }

// ParseConfig reads a metrics config: TOML with the keys in Fields, each query a Go
// template over Data. Absent queries keep their defaults. Unknown keys, wrong types,
// templates that do not parse or name a field Data lacks are refused, all at once,
// each with its file:line and a fix; the error is an *Error.
//
//	timeout = "5s"
//	requests = 'sum(increase(http_requests_total{app="{{.App}}",track="{{.Version}}"}[{{.Window}}]))'
func ParseConfig(file string, data []byte) (*Config, error) {
	c, probs := parseConfig(file, data)
	if len(probs) > 0 {
		return nil, &Error{Problems: probs}
	}
	return c, nil
}

func parseConfig(file string, data []byte) (*Config, []diag.Problem) {
	if file == "" {
		file = "metrics config"
	}
	var probs []diag.Problem
	bad := func(key, format string, args ...any) {
		line, col := keyLine(data, key)
		probs = append(probs, diag.Problem{File: file, Line: line, Col: col, Field: key, Msg: fmt.Sprintf(format, args...)})
	}
	if len(data) > maxConfigSize {
		return nil, []diag.Problem{{File: file, Msg: fmt.Sprintf("file is %d bytes; a metrics config may be at most %d", len(data), maxConfigSize)}}
	}
	if !utf8.Valid(data) {
		return nil, []diag.Problem{{File: file, Msg: "file is not valid UTF-8"}}
	}
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		p := diag.Problem{File: file, Msg: "invalid TOML: " + err.Error()}
		var pe toml.ParseError
		if errors.As(err, &pe) {
			p.Msg = "invalid TOML: " + pe.Message
			p.Line, p.Col = pe.Position.Line, pe.Position.Col
		}
		return nil, []diag.Problem{p}
	}
	c := &Config{Queries: map[string]string{}, Timeout: DefaultTimeout, MaxResponseBytes: DefaultMaxResponseBytes, tmpls: map[string]*template.Template{}}
	for k := range defaultQueries {
		c.Queries[k] = defaultQueries[k]
	}
	for k, v := range raw {
		switch k {
		case "timeout":
			s, ok := v.(string)
			d, err := time.ParseDuration(s)
			if !ok || err != nil || d < 100*time.Millisecond || d > 5*time.Minute {
				bad(k, "must be a duration between 100ms and 5m such as \"10s\", not %s", describeValue(v))
				continue
			}
			c.Timeout = d
		case "max_response_bytes":
			n, ok := v.(int64)
			if !ok || n < 1024 || n > 1<<30 {
				bad(k, "must be a byte count between 1024 and 1073741824 such as 4194304, not %s", describeValue(v))
				continue
			}
			c.MaxResponseBytes = n
		default:
			if _, known := defaultQueries[k]; !known {
				if s := diag.Closest(k, Fields); s != "" {
					bad(k, "unknown key; did you mean %q?", s)
				} else {
					bad(k, "unknown key; a metrics config holds %s", strings.Join(Fields, ", "))
				}
				continue
			}
			s, ok := v.(string)
			if !ok || strings.TrimSpace(s) == "" {
				bad(k, "must be a PromQL query in a string (a Go template over {{.App}}, {{.Version}}, {{.Window}}), not %s", describeValue(v))
				continue
			}
			c.Queries[k] = s
		}
	}
	for _, k := range QueryNames {
		t, err := compileQuery(k, c.Queries[k])
		if err != nil {
			bad(k, "%v", err)
			continue
		}
		c.tmpls[k] = t
	}
	diag.Sort(probs)
	if len(probs) > 0 {
		return nil, probs
	}
	return c, nil
}

// compileQuery parses a template and runs it once on sample data, so a misspelt field
// ({{.Ap}}) is refused when the config is read rather than at the first analysis.
func compileQuery(name, text string) (*template.Template, error) {
	t, err := template.New(name).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("template does not parse: %s", strings.TrimPrefix(err.Error(), "template: "))
	}
	var b bytes.Buffer
	if err := t.Execute(&b, Data{App: "app", Version: "1.0.0", Window: "60s"}); err != nil {
		return nil, fmt.Errorf("template fails: %s; the fields are {{.App}}, {{.Version}} and {{.Window}}", strings.TrimPrefix(err.Error(), "template: "))
	}
	if strings.TrimSpace(b.String()) == "" {
		return nil, errors.New("template renders an empty query")
	}
	return t, nil
}

// render fills query name's template for one version.
func (c *Config) render(name string, d Data) (string, error) {
	var b bytes.Buffer
	if err := c.tmpls[name].Execute(&b, d); err != nil {
		return "", fmt.Errorf("render %s query: %w", name, err)
	}
	return b.String(), nil
}

// escapeLabel makes s safe inside a PromQL double-quoted string.
func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// keyLine finds a top-level key's line: the config has no tables, so a key (or a table
// header written by mistake) is the first thing on its line.
func keyLine(data []byte, key string) (line, col int) {
	re := regexp.MustCompile(`^([ \t]*)(\[{1,2}[ \t]*)?"?` + regexp.QuoteMeta(key) + `"?[ \t]*[=\].]`)
	for i, l := range strings.Split(string(data), "\n") {
		if m := re.FindStringSubmatchIndex(l); m != nil {
			return i + 1, m[3] - m[2] + 1
		}
	}
	return 0, 0
}

func describeValue(v any) string {
	switch x := v.(type) {
	case string:
		if len(x) > 40 {
			x = x[:40] + "…"
		}
		return fmt.Sprintf("the string %q", x)
	case int64:
		return fmt.Sprintf("the integer %d", x)
	case float64:
		return fmt.Sprintf("the number %v", x)
	case bool:
		return fmt.Sprintf("%v", x)
	case map[string]any:
		return "a table"
	case []any, []map[string]any:
		return "an array"
	default:
		return fmt.Sprintf("a %T", v)
	}
}

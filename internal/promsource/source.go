package promsource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"fermion.dev/fermion/internal/rollout"
)

// Source is a rollout.Metrics over a Prometheus HTTP API.
type Source struct {
	base   *url.URL
	cfg    *Config
	client *http.Client
}

var _ rollout.Metrics = (*Source)(nil)

// New returns a Source querying the Prometheus at baseURL (such as
// http://127.0.0.1:9090, or a path prefix behind a proxy) with cfg's queries; a nil
// cfg is DefaultConfig. client nil is a client of its own; timeouts come from cfg and
// the caller's ctx.
func New(baseURL string, cfg *Config, client *http.Client) (*Source, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("prometheus URL %q: give the server's http(s) base URL, such as http://127.0.0.1:9090", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("prometheus URL %q: give the base URL without a query or fragment", baseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	if cfg == nil {
		cfg = DefaultConfig()
	}
	if client == nil {
		client = &http.Client{}
	}
	return &Source{base: u, cfg: cfg, client: client}, nil
}

// URL is the Prometheus base URL, any password in it redacted: for logs.
func (s *Source) URL() string { return s.base.Redacted() }

// Samples runs every query for stable and for canary over [from, to), evaluated at to.
// A query that finds no series reads as zero: a version with no traffic yet has an
// empty sample, which the analysis calls inconclusive.
func (s *Source) Samples(ctx context.Context, app, stable, canary string, from, to time.Time) (rollout.Sample, rollout.Sample, error) {
	if !to.After(from) {
		return rollout.Sample{}, rollout.Sample{}, fmt.Errorf("prometheus samples of %s: the window %s–%s is empty", app, from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	st, err := s.sample(ctx, app, stable, from, to)
	if err != nil {
		return rollout.Sample{}, rollout.Sample{}, fmt.Errorf("prometheus samples of %s %s (stable): %w", app, stable, err)
	}
	ca, err := s.sample(ctx, app, canary, from, to)
	if err != nil {
		return rollout.Sample{}, rollout.Sample{}, fmt.Errorf("prometheus samples of %s %s (canary): %w", app, canary, err)
	}
	return st, ca, nil
}

// window is the PromQL range of [from, to): whole seconds, rounded up so the range
// never misses the window's first scrape.
func window(from, to time.Time) string {
	secs := int64(math.Ceil(to.Sub(from).Seconds()))
	return strconv.FormatInt(max(secs, 1), 10) + "s"
}

func (s *Source) sample(ctx context.Context, app, version string, from, to time.Time) (rollout.Sample, error) {
	d := Data{App: escapeLabel(app), Version: escapeLabel(version), Window: window(from, to)}
	var out rollout.Sample
	for _, f := range []struct {
		name string
		dst  *uint64
	}{{QueryRequests, &out.Requests}, {QueryErrors, &out.Errors}, {QueryColdStarts, &out.ColdStarts}, {QueryTraps, &out.Traps}} {
		q, err := s.cfg.render(f.name, d)
		if err != nil {
			return out, err
		}
		series, err := s.query(ctx, q, to)
		if err != nil {
			return out, fmt.Errorf("%s query: %w", f.name, err)
		}
		if *f.dst, err = scalarCount(series); err != nil {
			return out, fmt.Errorf("%s query %s: %w", f.name, q, err)
		}
	}
	q, err := s.cfg.render(QueryLatency, d)
	if err != nil {
		return out, err
	}
	series, err := s.query(ctx, q, to)
	if err != nil {
		return out, fmt.Errorf("%s query: %w", QueryLatency, err)
	}
	buckets, err := histogramBuckets(series)
	if err != nil {
		return out, fmt.Errorf("%s query %s: %w", QueryLatency, q, err)
	}
	out.Latency = sketchOf(buckets)
	return out, nil
}

// series is one element of an instant vector.
type series struct {
	Metric map[string]string
	Value  float64
}

// query runs one instant query at t and returns its vector.
func (s *Source) query(parent context.Context, q string, t time.Time) ([]series, error) {
	ctx, cancel := context.WithTimeout(parent, s.cfg.Timeout)
	defer cancel()
	u := *s.base
	u.Path += "/api/v1/query"
	form := url.Values{"query": {q}, "time": {strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		if parent.Err() != nil {
			return nil, fmt.Errorf("query prometheus: %w", parent.Err())
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("prometheus at %s did not answer within %s (raise timeout in the metrics config, or check the server's load)", s.base.Redacted(), s.cfg.Timeout)
		}
		return nil, fmt.Errorf("prometheus at %s unreachable: %w (check --rollout-prometheus and that the server runs)", s.base.Redacted(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, s.cfg.MaxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read prometheus response: %w", err)
	}
	if int64(len(body)) > s.cfg.MaxResponseBytes {
		return nil, fmt.Errorf("prometheus response exceeds %d bytes; the query selects too many series (aggregate it with sum, or raise max_response_bytes)", s.cfg.MaxResponseBytes)
	}
	return parseResponse(resp.StatusCode, body)
}

// ErrNotPrometheus marks a response that is not the Prometheus query API's JSON.
var ErrNotPrometheus = errors.New("not a Prometheus query API response")

// parseResponse decodes a /api/v1/query answer into its instant vector. A scalar result
// reads as one series without labels.
func parseResponse(status int, body []byte) ([]series, error) {
	var r struct {
		Status    string          `json:"status"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Status == "" {
		return nil, fmt.Errorf("HTTP %d: %w: %s (is --rollout-prometheus the server's base URL?)", status, ErrNotPrometheus, snippet(body))
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("prometheus refused the query (HTTP %d, %s): %s", status, r.ErrorType, r.Error)
	}
	if status/100 != 2 {
		return nil, fmt.Errorf("prometheus answered HTTP %d", status)
	}
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(r.Data, &data); err != nil {
		return nil, fmt.Errorf("%w: data: %v", ErrNotPrometheus, err)
	}
	switch data.ResultType {
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  json.RawMessage   `json:"value"`
		}
		if err := json.Unmarshal(data.Result, &vec); err != nil {
			return nil, fmt.Errorf("%w: vector: %v", ErrNotPrometheus, err)
		}
		out := make([]series, 0, len(vec))
		for _, e := range vec {
			v, err := sampleValue(e.Value)
			if err != nil {
				return nil, err
			}
			out = append(out, series{Metric: e.Metric, Value: v})
		}
		return out, nil
	case "scalar":
		v, err := sampleValue(data.Result)
		if err != nil {
			return nil, err
		}
		return []series{{Value: v}}, nil
	default:
		return nil, fmt.Errorf("the query returned a %s; write one that returns an instant vector (no range selector outside increase(…))", cmpOr(data.ResultType, "result of no type"))
	}
}

// sampleValue decodes a [time, "value"] pair.
func sampleValue(raw json.RawMessage) (float64, error) {
	var pair []json.RawMessage
	if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
		return 0, fmt.Errorf("%w: a sample is not a [time, value] pair: %s", ErrNotPrometheus, snippet(raw))
	}
	var s string
	if err := json.Unmarshal(pair[1], &s); err != nil {
		return 0, fmt.Errorf("%w: a sample value is not a string: %s", ErrNotPrometheus, snippet(pair[1]))
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: sample value %q is not a number", ErrNotPrometheus, s)
	}
	return v, nil
}

// scalarCount reads a query that sums to one series: none is zero (no traffic), more
// than one or a value that is not a count is an error.
func scalarCount(vec []series) (uint64, error) {
	switch len(vec) {
	case 0:
		return 0, nil
	case 1:
	default:
		return 0, fmt.Errorf("returned %d series (first %v); it must return one: wrap it in sum(…)", len(vec), vec[0].Metric)
	}
	return count(vec[0].Value)
}

func count(v float64) (uint64, error) {
	switch {
	case math.IsNaN(v):
		return 0, errors.New("returned NaN (a division by zero, or a histogram with no samples?); return a count")
	case math.IsInf(v, 0):
		return 0, fmt.Errorf("returned %v; return a count", v)
	case v < -0.5:
		return 0, fmt.Errorf("returned %v, a negative count; use increase(…) on a counter", v)
	case v > 1e15:
		return 0, fmt.Errorf("returned %v, more than any window's requests", v)
	}
	// increase() extrapolates to the window's edges, so counts come back fractional.
	return uint64(math.Round(max(v, 0))), nil
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	if s == "" {
		return "an empty body"
	}
	return strconv.Quote(s)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

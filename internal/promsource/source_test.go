package promsource

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeProm answers /api/v1/query with answer(query); it records the queries and times.
type fakeProm struct {
	mu      sync.Mutex
	queries []string
	times   []string
	answer  func(q string) (int, string)
}

func (f *fakeProm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v1/query" {
		http.NotFound(w, r)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	q := r.Form.Get("query")
	f.mu.Lock()
	f.queries = append(f.queries, q)
	f.times = append(f.times, r.Form.Get("time"))
	f.mu.Unlock()
	status, body := f.answer(q)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprint(w, body)
}

func vector(elems ...string) string {
	return `{"status":"success","data":{"resultType":"vector","result":[` + strings.Join(elems, ",") + `]}}`
}

func elem(labels, value string) string {
	return `{"metric":{` + labels + `},"value":[1700000000.0,"` + value + `"]}`
}

// fermionAnswers serves plausible values for the default queries: the canary version
// "2" gets its own numbers.
func fermionAnswers(q string) (int, string) {
	canary := strings.Contains(q, `version="2"`)
	pick := func(s, c string) string {
		if canary {
			return c
		}
		return s
	}
	switch {
	case strings.Contains(q, "_bucket"):
		return 200, vector(elem(`"le":"0.001"`, pick("10", "0")), elem(`"le":"0.01"`, pick("90", "50")),
			elem(`"le":"0.1"`, pick("100", "99.6")), elem(`"le":"+Inf"`, pick("100", "100")))
	case strings.Contains(q, `code="5xx"`):
		return 200, vector(elem("", pick("1", "5")))
	case strings.Contains(q, "fermion_requests_total"):
		return 200, vector(elem("", pick("100.4", "99.6")))
	case strings.Contains(q, "fermion_cold_starts_total"):
		return 200, vector(elem("", pick("2", "3")))
	case strings.Contains(q, "fermion_instance_discards_total"):
		return 200, vector(elem("", pick("0", "1")))
	}
	return 400, `{"status":"error","errorType":"bad_data","error":"unexpected query"}`
}

func TestSamplesFromQueryAPI(t *testing.T) {
	f := &fakeProm{answer: fermionAnswers}
	srv := httptest.NewServer(f)
	defer srv.Close()
	s, err := New(srv.URL+"/", nil, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	to := time.Unix(1700000060, 0)
	st, ca, err := s.Samples(context.Background(), "hello", "1", "2", to.Add(-time.Minute), to)
	if err != nil {
		t.Fatal(err)
	}
	if st.Requests != 100 || st.Errors != 1 || st.ColdStarts != 2 || st.Traps != 0 {
		t.Errorf("stable = %+v, want 100 requests, 1 error, 2 cold starts, 0 traps", st)
	}
	if ca.Requests != 100 || ca.Errors != 5 || ca.ColdStarts != 3 || ca.Traps != 1 {
		t.Errorf("canary = %+v, want 100 requests, 5 errors, 3 cold starts, 1 trap", ca)
	}
	if st.Latency.Count() != 100 || ca.Latency.Count() != 100 {
		t.Errorf("latency counts %d, %d; want 100 each", st.Latency.Count(), ca.Latency.Count())
	}
	// Stable: 10 in (0, 1ms], 80 in (1ms, 10ms], 10 in (10ms, 100ms]. Its median is
	// 50 of 80 into the second bucket by linear interpolation: 1ms + 9ms·40/80 = 5.5ms.
	if got := st.Latency.Quantile(0.5); got < 5*time.Millisecond || got > 6*time.Millisecond {
		t.Errorf("stable median %v, want about 5.5ms", got)
	}
	for i, q := range f.queries {
		if !strings.Contains(q, "[60s]") || !strings.Contains(q, `function="hello"`) {
			t.Errorf("query %q: want the app and a [60s] window", q)
		}
		if f.times[i] != "1700000060.000" {
			t.Errorf("query %q at %s, want the window's end 1700000060.000", q, f.times[i])
		}
	}
	if len(f.queries) != 10 {
		t.Errorf("%d queries, want 5 per version", len(f.queries))
	}
}

func TestSamplesNoSeriesIsZero(t *testing.T) {
	srv := httptest.NewServer(&fakeProm{answer: func(q string) (int, string) { return 200, vector() }})
	defer srv.Close()
	s, _ := New(srv.URL, nil, srv.Client())
	to := time.Now()
	st, ca, err := s.Samples(context.Background(), "hello", "1", "2", to.Add(-time.Minute), to)
	if err != nil {
		t.Fatalf("no series must read as an empty sample, got %v", err)
	}
	if st.Requests != 0 || ca.Requests != 0 || ca.Latency != nil {
		t.Errorf("got %+v, %+v; want empty samples", st, ca)
	}
}

func TestSamplesErrors(t *testing.T) {
	only := func(status int, body string) func(string) (int, string) {
		return func(string) (int, string) { return status, body }
	}
	histOK := func(counts func(string) (int, string)) func(string) (int, string) {
		return func(q string) (int, string) {
			if strings.Contains(q, "_bucket") {
				return 200, vector(elem(`"le":"+Inf"`, "1"))
			}
			return counts(q)
		}
	}
	countsOK := func(hist string) func(string) (int, string) {
		return func(q string) (int, string) {
			if strings.Contains(q, "_bucket") {
				return 200, hist
			}
			return 200, vector(elem("", "1"))
		}
	}
	for _, tc := range []struct {
		name   string
		answer func(string) (int, string)
		want   string
	}{
		{"prometheus error", only(400, `{"status":"error","errorType":"bad_data","error":"parse error at char 5"}`), "prometheus refused the query (HTTP 400, bad_data): parse error at char 5"},
		{"unavailable", only(503, `{"status":"error","errorType":"unavailable","error":"starting"}`), "HTTP 503, unavailable"},
		{"not prometheus", only(200, `<html>hello</html>`), "not a Prometheus query API response"},
		{"proxy 502", only(502, ``), "HTTP 502"},
		{"success but 500", only(500, vector()), "answered HTTP 500"},
		{"matrix", only(200, `{"status":"success","data":{"resultType":"matrix","result":[]}}`), "returned a matrix"},
		{"two series", histOK(only(200, vector(elem(`"node":"a"`, "1"), elem(`"node":"b"`, "2")))), "returned 2 series"},
		{"NaN", histOK(only(200, vector(elem("", "NaN")))), "returned NaN"},
		{"Inf", histOK(only(200, vector(elem("", "+Inf")))), "returned +Inf"},
		{"negative", histOK(only(200, vector(elem("", "-3")))), "negative count"},
		{"bad number", only(200, vector(elem("", "many"))), `"many" is not a number`},
		{"bad pair", only(200, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1]}]}}`), "not a [time, value] pair"},
		{"no le", countsOK(vector(elem(`"x":"1"`, "1"))), "without an le label"},
		{"bad le", countsOK(vector(elem(`"le":"fast"`, "1"))), `le="fast", not a bucket bound`},
		{"no +Inf", countsOK(vector(elem(`"le":"0.1"`, "1"))), `no le="+Inf" bucket`},
		{"le twice", countsOK(vector(elem(`"le":"0.1"`, "1"), elem(`"le":"0.10"`, "1"), elem(`"le":"+Inf"`, "1"))), "twice"},
		{"NaN bucket", countsOK(vector(elem(`"le":"0.1"`, "NaN"), elem(`"le":"+Inf"`, "1"))), "returned NaN for le"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(&fakeProm{answer: tc.answer})
			defer srv.Close()
			s, _ := New(srv.URL, nil, srv.Client())
			to := time.Now()
			_, _, err := s.Samples(context.Background(), "hello", "1", "2", to.Add(-time.Minute), to)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "prometheus samples of hello 1 (stable)") {
				t.Errorf("err = %v, want it to name the app, version and side", err)
			}
		})
	}
}

func TestSamplesUnreachableTimeoutAndSize(t *testing.T) {
	t.Run("unreachable", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close() // nothing listens there now
		s, _ := New("http://"+addr, nil, nil)
		to := time.Now()
		_, _, err = s.Samples(context.Background(), "hello", "1", "2", to.Add(-time.Minute), to)
		if err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("err = %v, want unreachable", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer srv.Close()
		defer close(release)
		cfg, err := ParseConfig("m.toml", []byte(`timeout = "100ms"`))
		if err != nil {
			t.Fatal(err)
		}
		s, _ := New(srv.URL, cfg, srv.Client())
		to := time.Now()
		_, _, err = s.Samples(context.Background(), "hello", "1", "2", to.Add(-time.Minute), to)
		if err == nil || !strings.Contains(err.Error(), "did not answer within 100ms") {
			t.Fatalf("err = %v, want a timeout naming 100ms", err)
		}
	})
	t.Run("caller's ctx", func(t *testing.T) {
		srv := httptest.NewServer(&fakeProm{answer: fermionAnswers})
		defer srv.Close()
		s, _ := New(srv.URL, nil, srv.Client())
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		to := time.Now()
		_, _, err := s.Samples(ctx, "hello", "1", "2", to.Add(-time.Minute), to)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		big := vector(elem(`"pad":"`+strings.Repeat("x", 2000)+`"`, "1"))
		srv := httptest.NewServer(&fakeProm{answer: func(string) (int, string) { return 200, big }})
		defer srv.Close()
		cfg, _ := ParseConfig("", []byte("max_response_bytes = 1024"))
		s, _ := New(srv.URL, cfg, srv.Client())
		to := time.Now()
		_, _, err := s.Samples(context.Background(), "hello", "1", "2", to.Add(-time.Minute), to)
		if err == nil || !strings.Contains(err.Error(), "exceeds 1024 bytes") {
			t.Fatalf("err = %v, want the size bound", err)
		}
	})
	t.Run("empty window", func(t *testing.T) {
		s, _ := New("http://127.0.0.1:1", nil, nil)
		to := time.Now()
		if _, _, err := s.Samples(context.Background(), "hello", "1", "2", to, to); err == nil || !strings.Contains(err.Error(), "is empty") {
			t.Fatalf("err = %v, want an empty-window error", err)
		}
	})
}

func TestNewRejectsBadURL(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:9090", "ftp://x", "http://", "http://h:9090/?x=1", "http://h/#f"} {
		if _, err := New(u, nil, nil); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
	if _, err := New("https://prom.example.internal/prometheus", nil, nil); err != nil {
		t.Errorf("a base URL with a path prefix: %v", err)
	}
}

func TestLabelsAreEscaped(t *testing.T) {
	f := &fakeProm{answer: func(string) (int, string) { return 200, vector() }}
	srv := httptest.NewServer(f)
	defer srv.Close()
	s, _ := New(srv.URL, nil, srv.Client())
	to := time.Now()
	if _, _, err := s.Samples(context.Background(), `a"b`, `1\2`, "2", to.Add(-time.Minute), to); err != nil {
		t.Fatal(err)
	}
	if q := f.queries[0]; !strings.Contains(q, `function="a\"b",version="1\\2"`) {
		t.Errorf("query %q: want the app and version escaped", q)
	}
}

// TestBasicAuthFromURL: credentials in the base URL are sent as basic auth and kept out
// of URL().
func TestBasicAuthFromURL(t *testing.T) {
	var user, pass string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ = r.BasicAuth()
		fmt.Fprint(w, vector())
	}))
	defer srv.Close()
	s, err := New(strings.Replace(srv.URL, "http://", "http://ops:s3cret@", 1)+"/prom", nil, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	to := time.Now()
	if _, _, err := s.Samples(context.Background(), "hello", "1", "2", to.Add(-time.Minute), to); err != nil {
		t.Fatal(err)
	}
	if user != "ops" || pass != "s3cret" {
		t.Errorf("basic auth %q:%q, want ops:s3cret", user, pass)
	}
	if strings.Contains(s.URL(), "s3cret") {
		t.Errorf("URL() %q shows the password", s.URL())
	}
}

package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"testing"
	"time"
)

type marshals struct{ A int }

func (m marshals) MarshalJSON() ([]byte, error) { return []byte(`{"custom":1}`), nil }

type valuer string

func (v valuer) LogValue() slog.Value { return slog.StringValue("resolved:" + string(v)) }

// both returns a logger on slog.JSONHandler and one on jsonHandler, and their outputs.
func both() (std, fast *slog.Logger, stdOut, fastOut *bytes.Buffer) {
	stdOut, fastOut = &bytes.Buffer{}, &bytes.Buffer{}
	std = slog.New(slog.NewJSONHandler(stdOut, &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: DurationAsString}))
	fast = slog.New(newJSONHandler(fastOut, slog.LevelDebug))
	return
}

// TestJSONHandlerMatchesSlog logs the same records through slog.JSONHandler and
// jsonHandler and wants the same bytes.
func TestJSONHandlerMatchesSlog(t *testing.T) {
	ts := time.Date(2026, 11, 26, 10, 42, 11, 123456789, time.UTC)
	cases := []struct {
		name string
		log  func(l *slog.Logger)
	}{
		{"request line", func(l *slog.Logger) {
			l.LogAttrs(context.Background(), slog.LevelInfo, "request", slog.String("request_id", "0123abcd"),
				slog.String("method", "GET"), slog.Int("status", 200), slog.Float64("duration_ms", 0.123),
				slog.Bool("cold", false), slog.String("route", "/hello"))
		}},
		{"escapes", func(l *slog.Logger) {
			l.Info("quote\" back\\ nl\n cr\r tab\t ctl\x01\x1f <html> & ünïcödé \u2028\u2029 bad\xff utf8",
				"k\"ey", "v\x00al")
		}},
		{"numbers", func(l *slog.Logger) {
			l.Info("n", "i", -42, "u", uint64(math.MaxUint64), "f0", 0.0, "f1", 1.5, "fsmall", 1e-7, "fbig", 1e21,
				"fneg", -2.5e-9, "fint", 3.0, "nan", math.NaN(), "inf", math.Inf(1), "f32", float32(0.1))
		}},
		{"other kinds", func(l *slog.Logger) {
			l.Info("k", "d", 1500*time.Millisecond, "t", ts, "b", true, "err", errors.New("boom"),
				"m", marshals{}, "s", struct{ X, Y int }{1, 2}, "nil", nil, "v", valuer("x"), "slice", []string{"a", "<b>"})
		}},
		{"durations", func(l *slog.Logger) {
			l.Warn("join failed; retrying", "retryIn", 138*time.Millisecond, "zero", time.Duration(0),
				slog.Group("g", "d", -90*time.Minute), "max", time.Duration(math.MaxInt64))
		}},
		{"groups", func(l *slog.Logger) {
			l.Info("g", slog.Group("req", "method", "GET", slog.Group("inner", "x", 1)), slog.Group("empty"),
				slog.Group("", "inlined", true), "after", 1)
		}},
		{"with attrs and groups", func(l *slog.Logger) {
			l = l.With("node", "n1").WithGroup("g1").With("a", 1).WithGroup("g2").WithGroup("g3")
			l.Info("nested", "b", 2)
			l.Info("no attrs")
		}},
		{"group then nothing", func(l *slog.Logger) {
			l.WithGroup("unused").Info("m")
			l.WithGroup("g").With(slog.Group("empty")).Info("m", "x", 1)
		}},
		{"levels", func(l *slog.Logger) {
			l.Debug("d")
			l.Warn("w")
			l.Error("e")
			l.Log(context.Background(), slog.LevelInfo+2, "custom")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			std, fast, stdOut, fastOut := both()
			tc.log(std)
			tc.log(fast)
			// The time key differs between the runs; compare everything else exactly.
			s, f := stripTimes(t, stdOut.Bytes()), stripTimes(t, fastOut.Bytes())
			if !bytes.Equal(s, f) {
				t.Fatalf("differs from slog.JSONHandler:\nslog: %s\nfast: %s", s, f)
			}
		})
	}
}

// stripTimes removes the "time" key of every line, checking that each line is JSON.
func stripTimes(t *testing.T, out []byte) []byte {
	t.Helper()
	var b []byte
	for _, line := range bytes.SplitAfter(out, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if !json.Valid(line) {
			t.Fatalf("not JSON: %s", line)
		}
		if i := bytes.Index(line, []byte(`"time":"`)); i >= 0 {
			j := bytes.Index(line[i+8:], []byte(`",`))
			line = append(append([]byte(nil), line[:i]...), line[i+8+j+2:]...)
		}
		b = append(b, line...)
	}
	return b
}

func TestJSONHandlerRecordTime(t *testing.T) {
	std, fast, stdOut, fastOut := both()
	ts := time.Date(2026, 11, 26, 10, 42, 11, 120000000, time.FixedZone("x", 3600))
	for _, l := range []*slog.Logger{std, fast} {
		r := slog.NewRecord(ts, slog.LevelInfo, "m", 0)
		l.Handler().Handle(context.Background(), r)
		l.Handler().Handle(context.Background(), slog.NewRecord(time.Time{}, slog.LevelInfo, "zero time", 0))
	}
	if stdOut.String() != fastOut.String() {
		t.Fatalf("slog: %s\nfast: %s", stdOut, fastOut)
	}
}

func FuzzJSONHandler(f *testing.F) {
	f.Add("msg", "key", "value", 1.5)
	f.Add("\x00\xff\"", "\u2028", "<>&", math.Inf(-1))
	f.Fuzz(func(t *testing.T, msg, key, val string, x float64) {
		std, fast, stdOut, fastOut := both()
		for _, l := range []*slog.Logger{std, fast} {
			l.Info(msg, key, val, "x", x, slog.Group(key, val, x))
		}
		s, fb := stripTimes(t, stdOut.Bytes()), stripTimes(t, fastOut.Bytes())
		if !bytes.Equal(s, fb) {
			t.Fatalf("differs from slog.JSONHandler:\nslog: %s\nfast: %s", s, fb)
		}
	})
}

func BenchmarkRequestLog(b *testing.B) {
	for _, tc := range []struct {
		name string
		h    slog.Handler
	}{
		{"slog.JSONHandler", slog.NewJSONHandler(discard{}, nil)},
		{"jsonHandler", newJSONHandler(discard{}, slog.LevelInfo)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			l := slog.New(tc.h).With("node", "n1")
			b.ReportAllocs()
			for b.Loop() {
				l.LogAttrs(context.Background(), slog.LevelInfo, "request",
					slog.String("request_id", "0123456789abcdef0123456789abcdef"), slog.String("method", "GET"),
					slog.String("host", "localhost:8080"), slog.String("path", "/hello"), slog.Int("status", 200),
					slog.Float64("duration_ms", 0.734), slog.Bool("cold", false),
					slog.String("trace_id", "0123456789abcdef0123456789abcdef"), slog.String("route", "/hello"),
					slog.String("function", "hello"), slog.String("version", "0.1.0"))
			}
		})
	}
}

func BenchmarkLogRequest(b *testing.B) {
	l := slog.New(newJSONHandler(discard{}, slog.LevelInfo)).With("node", "n1")
	r := RequestLine{ID: "0123456789abcdef0123456789abcdef", Method: "GET", Host: "localhost:8080", Path: "/hello",
		Status: 200, Duration: 734 * time.Microsecond, TraceID: "0123456789abcdef0123456789abcdef", Route: "/hello",
		Function: "hello", Version: "0.1.0"}
	b.ReportAllocs()
	for b.Loop() {
		LogRequest(context.Background(), l, &r)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// TestLogRequest checks the direct request line against the same line through slog.
func TestLogRequest(t *testing.T) {
	lines := []RequestLine{
		{ID: "id1", Method: "GET", Host: "h", Path: "/p\"q", Status: 200, Duration: 1234567 * time.Nanosecond, TraceID: "ab"},
		{ID: "id2", Method: "POST", Host: "h", Path: "/", Status: 504, Duration: time.Second, Cold: true, TraceID: "cd",
			Route: "/", Function: "f", Version: "1", Reason: "timeout"},
		{ID: "id3", Method: "GET", Host: "h", Path: "/s", Status: 200, Duration: time.Millisecond, TraceID: "ef",
			Route: "/s", Function: "f", Version: "1", Weight: 31},
	}
	for _, with := range []func(*slog.Logger) *slog.Logger{
		func(l *slog.Logger) *slog.Logger { return l },
		func(l *slog.Logger) *slog.Logger { return l.With("node", "n1") },
		func(l *slog.Logger) *slog.Logger { return l.WithGroup("g").With("a", 1) },
		func(l *slog.Logger) *slog.Logger { return l.WithGroup("pending") },
	} {
		var direct, viaSlog bytes.Buffer
		ld := with(slog.New(newJSONHandler(&direct, slog.LevelInfo)))
		ls := with(slog.New(slog.NewJSONHandler(&viaSlog, nil)))
		for i := range lines {
			LogRequest(context.Background(), ld, &lines[i])
			ls.LogAttrs(context.Background(), slog.LevelInfo, "request", lines[i].attrs()...)
		}
		if d, s := stripTimes(t, direct.Bytes()), stripTimes(t, viaSlog.Bytes()); !bytes.Equal(d, s) {
			t.Fatalf("direct: %s\nslog:   %s", d, s)
		}
	}
	var none bytes.Buffer
	LogRequest(context.Background(), slog.New(newJSONHandler(&none, slog.LevelWarn)), &lines[0])
	if none.Len() != 0 {
		t.Fatalf("request logged below the level: %s", none.String())
	}
}

// TestDurationsAreStrings: a duration reads as one ("138ms"), not as nanoseconds.
func TestDurationsAreStrings(t *testing.T) {
	var out bytes.Buffer
	l, err := NewLogger(&out, "info")
	if err != nil {
		t.Fatal(err)
	}
	l.Warn("join failed; retrying", "retryIn", 138*time.Millisecond, slog.Group("g", "d", time.Duration(1500)))
	var line struct {
		RetryIn string
		G       struct{ D string }
	}
	if err := json.Unmarshal(out.Bytes(), &line); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if line.RetryIn != "138ms" || line.G.D != "1.5µs" {
		t.Fatalf("durations logged as %q and %q, want 138ms and 1.5µs: %s", line.RetryIn, line.G.D, out.String())
	}
}

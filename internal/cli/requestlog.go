package cli

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"fermion.dev/fermion/internal/telemetry"
)

// maxRequestLogRate bounds --request-log-rate: a node writing more lines than this a
// second wants --request-log-all, and the token bucket's resolution is 1 µs a token.
const maxRequestLogRate = 1_000_000

// requestLogOptions are the request log's flags (which requests get a line), shared by
// run, agent and up (prefixed agent- there).
type requestLogOptions struct {
	rate   int
	all    bool
	slow   time.Duration
	prefix string
}

func (o *requestLogOptions) flags(f *pflag.FlagSet, prefix string) {
	o.prefix = prefix
	f.IntVar(&o.rate, prefix+"request-log-rate", telemetry.DefaultRequestLogRate,
		"request log lines per second written before the rest are sampled (a burst of one second's worth); above it, failures and slow requests still get theirs, and each sampled line carries a \"weight\" (the requests it stands for)")
	f.BoolVar(&o.all, prefix+"request-log-all", false, "write a request log line for every request, whatever the rate")
	f.DurationVar(&o.slow, prefix+"request-log-slow", telemetry.DefaultRequestLogSlow,
		"requests this slow or slower always get a request log line (0: no such rule)")
}

// config turns the flags into a telemetry.RequestLogConfig, naming the flag that is wrong.
func (o requestLogOptions) config() (telemetry.RequestLogConfig, error) {
	flag := func(name string) string { return "--" + o.prefix + name }
	if o.rate < 1 {
		return telemetry.RequestLogConfig{}, usageError{fmt.Errorf("%s %d: lines per second must be at least 1; to log every request use %s",
			flag("request-log-rate"), o.rate, flag("request-log-all"))}
	}
	if o.rate > maxRequestLogRate {
		return telemetry.RequestLogConfig{}, usageError{fmt.Errorf("%s %d: at most %d lines per second; to log every request use %s",
			flag("request-log-rate"), o.rate, maxRequestLogRate, flag("request-log-all"))}
	}
	if o.slow < 0 {
		return telemetry.RequestLogConfig{}, usageError{fmt.Errorf("%s %s: a duration cannot be negative; use 0 to log slow requests only within the rate",
			flag("request-log-slow"), o.slow)}
	}
	c := telemetry.RequestLogConfig{Rate: o.rate, All: o.all, Slow: o.slow}
	if c.Slow == 0 {
		c.Slow = -1 // no slow rule: the config's 0 means the default
	}
	return c, nil
}

package cli

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"fermion.dev/fermion/internal/gateway"
	"fermion.dev/fermion/internal/manifest"
)

// gatewayLimitOptions are the gateway's client limits as flags, shared by run, agent and
// up (prefixed agent- there). On the command line 0 switches a timeout, the cap or the
// rate off.
type gatewayLimitOptions struct {
	maxConnections                                      int
	headerTimeout, bodyTimeout, writeTimeout, keepAlive time.Duration
	minBodyRate, maxHeaderSize                          string
	prefix                                              string
}

func (o *gatewayLimitOptions) flags(f *pflag.FlagSet, prefix string) {
	o.prefix = prefix
	f.IntVar(&o.maxConnections, prefix+"max-connections", gateway.DefaultMaxConnections,
		"most client connections the gateway holds open; past it idle keep-alive ones are closed first, then newcomers get 503 with Retry-After (0: no cap)")
	f.DurationVar(&o.headerTimeout, prefix+"header-timeout", gateway.DefaultHeaderTimeout, "time a client has to send a request's header (0: none)")
	f.DurationVar(&o.bodyTimeout, prefix+"body-timeout", gateway.DefaultBodyTimeout,
		"longest silence while a request body arrives, and the grace before --"+prefix+"min-body-rate applies (0: none)")
	f.StringVar(&o.minBodyRate, prefix+"min-body-rate", "512B", "average rate per second a request body must keep up after --"+prefix+"body-timeout, e.g. 1KiB (0: none)")
	f.DurationVar(&o.writeTimeout, prefix+"write-timeout", gateway.DefaultWriteTimeout, "longest a client may leave a response unread (0: none)")
	f.DurationVar(&o.keepAlive, prefix+"keepalive-timeout", gateway.DefaultIdleTimeout, "how long an idle keep-alive connection stays open, closed within an eighth more (0: no keep-alive, one request per connection)")
	f.StringVar(&o.maxHeaderSize, prefix+"max-header-size", "64KiB", "largest request header accepted (431 past it)")
}

// limits turns the flags into gateway.Limits, naming the flag that is wrong.
func (o gatewayLimitOptions) limits() (gateway.Limits, error) {
	off := func(d time.Duration) time.Duration {
		if d == 0 {
			return -1
		}
		return d
	}
	flag := func(name string) string { return "--" + o.prefix + name }
	for name, d := range map[string]time.Duration{"header-timeout": o.headerTimeout, "body-timeout": o.bodyTimeout, "write-timeout": o.writeTimeout, "keepalive-timeout": o.keepAlive} {
		if d < 0 {
			return gateway.Limits{}, usageError{fmt.Errorf("%s %s: a duration cannot be negative; use 0 to switch it off", flag(name), d)}
		}
	}
	if o.maxConnections < 0 {
		return gateway.Limits{}, usageError{fmt.Errorf("%s %d: cannot be negative; use 0 for no cap", flag("max-connections"), o.maxConnections)}
	}
	l := gateway.Limits{MaxConnections: o.maxConnections, HeaderTimeout: off(o.headerTimeout), BodyTimeout: off(o.bodyTimeout),
		WriteTimeout: off(o.writeTimeout), IdleTimeout: off(o.keepAlive)}
	if l.MaxConnections == 0 {
		l.MaxConnections = -1
	}
	rate, err := manifest.ParseSize(o.minBodyRate)
	if err != nil {
		return gateway.Limits{}, usageError{fmt.Errorf("%s: %w", flag("min-body-rate"), err)}
	}
	if l.MinBodyRate = rate; rate == 0 {
		l.MinBodyRate = -1
	}
	hdr, err := manifest.ParseSize(o.maxHeaderSize)
	if err != nil || hdr <= 0 || hdr > 1<<30 {
		return gateway.Limits{}, usageError{fmt.Errorf("%s %q: want a size such as 64KiB", flag("max-header-size"), o.maxHeaderSize)}
	}
	l.MaxHeaderBytes = int(hdr)
	if l.MinBodyRate > 0 && l.BodyTimeout < 0 {
		return gateway.Limits{}, usageError{fmt.Errorf("%s needs %s: it is the grace before the rate applies; set it, or %s 0", flag("min-body-rate"), flag("body-timeout"), flag("min-body-rate"))}
	}
	if err := l.Validate(); err != nil {
		return gateway.Limits{}, usageError{fmt.Errorf("%s: %w", flag("max-header-size"), err)}
	}
	return l, nil
}

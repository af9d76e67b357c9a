package cli

import (
	"fmt"
	"net/url"
	"time"

	"github.com/spf13/cobra"
)

// The SLO engine's server flags (fermion server and fermion up).

func (o *serverOptions) sloFlags(c *cobra.Command) {
	f := c.Flags()
	f.DurationVar(&o.sloInterval, "slo-interval", 10*time.Second, "how often the leader evaluates the SLOs and their burn-rate alerts")
	f.StringArrayVar(&o.alertmanagers, "alertmanager", nil, "Alertmanager base URL SLO alerts are sent to through its v2 API, such as http://127.0.0.1:9093 (repeatable)")
	f.StringArrayVar(&o.alertWebhooks, "alert-webhook", nil, "URL SLO alerts are POSTed to as JSON, once per change (repeatable)")
}

func (o *serverOptions) checkSLOFlags() error {
	if o.sloInterval < time.Second || o.sloInterval > 5*time.Minute {
		return usageError{fmt.Errorf("--slo-interval %s: give 1s to 5m (10s by default); pages wait for the next evaluation", o.sloInterval)}
	}
	for _, f := range []struct {
		flag string
		urls []string
	}{{"alertmanager", o.alertmanagers}, {"alert-webhook", o.alertWebhooks}} {
		for _, s := range f.urls {
			u, err := url.Parse(s)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return usageError{fmt.Errorf("--%s %q: give an http(s) URL such as http://127.0.0.1:9093", f.flag, s)}
			}
		}
	}
	return nil
}

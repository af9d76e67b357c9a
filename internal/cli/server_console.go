package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"fermion.dev/fermion/internal/console"
)

// Console flags (console): the web console served with the API.

func (o *serverOptions) consoleFlags(c *cobra.Command) {
	f := c.Flags()
	f.StringVar(&o.traceUIURL, "trace-ui-url", "", "trace UI link template for the web console, with {trace_id} where the trace id goes (e.g. http://jaeger:16686/trace/{trace_id})")
	f.BoolVar(&o.noConsole, "no-console", false, "serve the API only, without the web console at /")
}

func (o *serverOptions) checkConsoleFlags() error {
	if err := console.ValidateTraceUIURL(o.traceUIURL); err != nil {
		return usageError{fmt.Errorf("--trace-ui-url %w", err)}
	}
	return nil
}

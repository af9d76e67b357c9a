package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"fermion.dev/fermion/internal/promsource"
	"fermion.dev/fermion/internal/rollout"
)

// The rollout analysis' metric source flags (fermion server and fermion up): a
// Prometheus in place of the fleet SLI store (rollint).

type rolloutMetricsOptions struct {
	prometheus, config string
}

func (o *rolloutMetricsOptions) flags(c *cobra.Command) {
	f := c.Flags()
	f.StringVar(&o.prometheus, "rollout-prometheus", "", "judge canaries on PromQL queries against this Prometheus (base URL such as http://127.0.0.1:9090) instead of the fleet SLIs")
	f.StringVar(&o.config, "rollout-metrics-config", "", "TOML file of PromQL templates overriding the default queries of --rollout-prometheus (docs/rollouts.md#metrics-from-prometheus)")
}

// source builds the metric source the flags ask for: nil (the fleet SLI store) with
// neither flag. Both are checked before the server starts anything.
func (o *rolloutMetricsOptions) source(logger *slog.Logger) (rollout.Metrics, error) {
	if o.prometheus == "" {
		if o.config != "" {
			return nil, usageError{errors.New("--rollout-metrics-config needs --rollout-prometheus: the queries run against that server")}
		}
		return nil, nil
	}
	var cfg *promsource.Config
	if o.config != "" {
		data, err := os.ReadFile(o.config)
		if err != nil {
			return nil, usageError{fmt.Errorf("--rollout-metrics-config: %w", err)}
		}
		if cfg, err = promsource.ParseConfig(o.config, data); err != nil {
			return nil, usageError{fmt.Errorf("--rollout-metrics-config:\n%w", err)}
		}
	}
	s, err := promsource.New(o.prometheus, cfg, nil)
	if err != nil {
		return nil, usageError{fmt.Errorf("--rollout-prometheus: %w", err)}
	}
	logger.Info("canary analysis reads Prometheus", "url", s.URL(), "metrics_config", o.config)
	return s, nil
}

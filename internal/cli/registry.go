package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"fermion.dev/fermion/internal/engine"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/registry"
	"fermion.dev/fermion/internal/telemetry"
)

func newRegistryCmd() *cobra.Command {
	c := &cobra.Command{Use: "registry", Short: "The built-in OCI registry"}
	var data, listen, adminListen, logLevel, tlsCert, tlsKey, maxBlob string
	var pushTokens, pullTokens []string
	var profiling bool
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Serve the built-in OCI registry (distribution API v2) stored in embedded JetStream",
		Long: `Serve runs the OCI registry alone: blobs in a JetStream object store, manifests and
tags in KV buckets under --data, every acknowledged write synced to disk. Pushes need a
token (--push-token or FERMION_REGISTRY_PUSH_TOKEN; one is generated and printed when
none is given). Pulls are anonymous unless --pull-token is set. Version tags (1.2.3,
v1.2.3-rc.1) are immutable.`,
		Example: `  fermion registry serve --data ./reg --listen 127.0.0.1:5000`,
		Args:    exactArgs(0),
		RunE: func(c *cobra.Command, _ []string) error {
			ctx := c.Context()
			logger, done, err := serviceLogger(c.ErrOrStderr(), logLevel)
			if err != nil {
				return err
			}
			defer done()
			if err := tlsPair("", tlsCert, tlsKey); err != nil {
				return err
			}
			maxBlobBytes, err := parseMaxBlobSize("--max-blob-size", maxBlob)
			if err != nil {
				return err
			}
			if len(pushTokens) == 0 {
				for _, t := range strings.Split(os.Getenv("FERMION_REGISTRY_PUSH_TOKEN"), ",") {
					if t = strings.TrimSpace(t); t != "" {
						pushTokens = append(pushTokens, t)
					}
				}
				if len(pushTokens) == 0 {
					b := make([]byte, 16)
					rand.Read(b)
					pushTokens = []string{hex.EncodeToString(b)}
					fmt.Fprintf(c.OutOrStdout(), "push token (generated; pass --push-token to choose one): %s\n", pushTokens[0])
				}
			}
			eng, err := engine.Start(ctx, engine.Config{Name: "fermion-registry", DataDir: data, SyncAlways: true, Logger: logger})
			if err != nil {
				return err
			}
			defer eng.Close()
			reg := prometheus.NewRegistry()
			r, err := registry.New(ctx, eng.JetStream(), registry.Config{PushTokens: pushTokens, PullTokens: pullTokens, Metrics: reg, Logger: logger, MaxBlobBytes: maxBlobBytes})
			if err != nil {
				return err
			}
			defer r.Close()
			var regTLS *telemetry.TLS
			if tlsCert != "" {
				if regTLS, err = telemetry.NewTLS(reg, logger, "registry", tlsCert, tlsKey); err != nil {
					return usageError{fmt.Errorf("--tls-cert, --tls-key: %w", err)}
				}
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("registry listen: %w; choose another address with --listen", err)
			}
			scheme := "http"
			if regTLS != nil {
				ln, scheme = regTLS.Listener(ln), "https"
			}
			srv := &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
			var admin *http.Server
			if adminListen != "" {
				aln, err := net.Listen("tcp", adminListen)
				if err != nil {
					ln.Close()
					return fmt.Errorf("admin listen: %w; choose another address with --admin-listen", err)
				}
				admin = &http.Server{Handler: telemetry.AdminHandler(telemetry.Admin{Gatherer: reg, Profiling: profiling}), ReadHeaderTimeout: 10 * time.Second}
				go admin.Serve(aln)
				h, note := reachable(aln.Addr().String())
				fmt.Fprintf(c.OutOrStdout(), "metrics on http://%s/metrics%s\n", h, note)
			}
			h, note := reachable(ln.Addr().String())
			fmt.Fprintf(c.OutOrStdout(), "registry listening on %s://%s (data in %s)%s\n", scheme, h, data, note)
			errc := make(chan error, 1)
			go func() { errc <- srv.Serve(ln) }()
			select {
			case err := <-errc:
				return err
			case <-ctx.Done():
			}
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err = srv.Shutdown(sctx)
			if admin != nil {
				admin.Close()
			}
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			fmt.Fprintln(c.OutOrStdout(), "stopped")
			return err
		},
	}
	serve.Flags().StringVar(&data, "data", "fermion-registry", "data directory (JetStream store)")
	serve.Flags().StringVar(&listen, "listen", "127.0.0.1:5000", "registry address")
	serve.Flags().StringVar(&adminListen, "admin-listen", "", "metrics and health address (empty: off)")
	serve.Flags().StringVar(&tlsCert, "tls-cert", "", "serve over HTTPS with this PEM certificate (chain), reloaded when the file changes")
	serve.Flags().StringVar(&tlsKey, "tls-key", "", "the PEM private key for --tls-cert")
	serve.Flags().BoolVar(&profiling, "profiling", false, profilingUsage)
	serve.Flags().StringSliceVar(&pushTokens, "push-token", nil, "token that may push (repeatable)")
	serve.Flags().StringSliceVar(&pullTokens, "pull-token", nil, "token required to pull (repeatable; none: anonymous pulls)")
	serve.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	serve.Flags().StringVar(&maxBlob, "max-blob-size", maxBlobSizeDefault, maxBlobSizeUsage)
	c.AddCommand(serve)
	return c
}

// The blob size cap of the built-in registry, as a flag of registry serve and server.
const (
	maxBlobSizeDefault = "2GiB"
	maxBlobSizeUsage   = "largest blob (module, layer) the registry accepts, e.g. 512MiB or 8GiB; uploads stream to storage with bounded memory whatever the size"
)

// parseMaxBlobSize reads a --max-blob-size style flag.
func parseMaxBlobSize(flag, s string) (int64, error) {
	n, err := manifest.ParseSize(s)
	if err != nil {
		return 0, usageError{fmt.Errorf("%s: %w", flag, err)}
	}
	if n <= 0 {
		return 0, usageError{fmt.Errorf("%s %s: the cap must be more than 0 bytes", flag, s)}
	}
	return n, nil
}

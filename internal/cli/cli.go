// Package cli is the fermion command line: one file per verb, all of it testable
// without a process (Run takes the arguments and output streams; RunContext also a
// context that stops long-running verbs).
package cli

import (
	"fermion.dev/fermion/internal/sandbox"

	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"fermion.dev/fermion/internal/certs"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/telemetry"
)

// Run runs the fermion command line and returns the process exit code.
func Run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == sandbox.CompileWorkerArg {
		// A compile worker the sandbox started from this binary (not a verb users run).
		return sandbox.CompileWorkerMain(args[1:], os.Stdin, stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return RunContext(ctx, args, stdout, stderr)
}

// usageError marks mistakes in how the command was called (exit code 2).
type usageError struct{ error }

// RunContext is Run with a context: cancelling it stops serving verbs gracefully.
func RunContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	if strings.HasPrefix(err.Error(), "unknown command ") {
		// cobra's own error for a mistyped verb: a usage mistake like a bad flag.
		err = usageError{fmt.Errorf("%w\nrun '%s --help' for usage", err, root.CommandPath())}
	}
	fmt.Fprintf(stderr, "fermion: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "fermion",
		Short: "Run sandboxed WebAssembly functions close to your data and users",
		Long: `Fermion runs small sandboxed WebAssembly functions on edge nodes and governs them
from one control plane. Telemetry (Prometheus metrics, OpenTelemetry traces, JSON logs)
is on by default.

Start with:
  fermion new hello --lang go
  cd hello && fermion run .`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	// --version prints what 'fermion version' does without asking a server. Cobra
	// renders it as a template: the text holds no braces.
	root.Version = Version
	var local bytes.Buffer
	printVersion(&local, localVersion(debug.ReadBuildInfo()))
	root.SetVersionTemplate(local.String())
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w\nrun '%s --help' for usage", err, c.CommandPath())}
	})
	root.AddCommand(newVersionCmd(), newRunCmd(), newNewCmd(), newKeysCmd(), newBuildCmd(), newPushCmd(), newPullCmd(), newInspectCmd(), newRegistryCmd(),
		newServerCmd(), newAgentCmd(), newUpCmd(), newDeployCmd(), newStatusCmd(), newNodesCmd(), newNodeCmd(), newEventsCmd(), newTokenCmd(), newPolicyCmd(), newSLOCmd())
	root.AddCommand(newAlertsCmd())                                    // sloengine
	root.AddCommand(newTopCmd())                                       // fleet SLIs (top.go)
	root.AddCommand(newHistoryCmd(), newRollbackCmd(), newDeleteCmd()) // revisions (issue 15)
	root.AddCommand(newRolloutCmd())                                   // rollouts (issue 15)
	root.AddCommand(newSlowestCmd())                                   // slowest requests (slowest.go)
	root.AddCommand(newInstancesCmd())                                 // instance timelines (instances.go)
	addCompletions(root)                                               // complete.go: deployment, node … names from the API
	return root
}

// exactArgs is cobra.ExactArgs with a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(c, args); err != nil {
			return usageError{fmt.Errorf("%w\nusage: %s", err, c.UseLine())}
		}
		return nil
	}
}

// serviceLogger is the logger of a long-running verb: JSON lines at the --log-level
// given, batched to stderr. Call done before returning, to flush the last lines.
func serviceLogger(stderr io.Writer, level string) (logger *slog.Logger, done func(), err error) {
	w := telemetry.NewBufferedWriter(stderr, 200*time.Millisecond)
	logger, err = telemetry.NewLogger(w, level)
	if err != nil {
		w.Close()
		return nil, nil, usageError{err}
	}
	return logger, func() { w.Close() }, nil
}

// profilingUsage describes --profiling wherever a command has an admin address.
const profilingUsage = "serve Go's CPU, heap and goroutine profiles at /debug/pprof/ on the admin address, for go tool pprof (off by default: profiles show the process's internals)"

// gatewayTLSFlags adds the gateway's --tls-cert and --tls-key (after prefix).
func gatewayTLSFlags(f *pflag.FlagSet, prefix string, cert, key *string) {
	f.StringVar(cert, prefix+"tls-cert", "", "serve the gateway over HTTPS with this PEM certificate (chain), reloaded when the file changes")
	f.StringVar(key, prefix+"tls-key", "", "the PEM private key for --"+prefix+"tls-cert")
}

// loadCA reads the PEM CA certificates in the file named by flag (or FERMION_CA_FILE
// when it is empty), added to the system's roots; nil, nil when neither names one. An
// error names where the file came from.
func loadCA(flag string) (*x509.CertPool, error) {
	file, from := flag, "--ca-file"
	if file == "" {
		file, from = os.Getenv("FERMION_CA_FILE"), "FERMION_CA_FILE"
	}
	if file == "" {
		return nil, nil
	}
	pool, err := certs.LoadSystemPool(file)
	if err != nil {
		return nil, usageError{fmt.Errorf("%s: %w", from, err)}
	}
	return pool, nil
}

// tlsPair checks that a certificate and its key are given together.
func tlsPair(prefix, cert, key string) error {
	if (cert == "") != (key == "") {
		return usageError{fmt.Errorf("--%stls-cert and --%stls-key go together", prefix, prefix)}
	}
	return nil
}

// shutdownTracing flushes the spans still queued, waiting at most 5 seconds: an
// unreachable collector must not hold up the process's exit (the exporter's own retries
// last up to a minute).
func shutdownTracing(t *telemetry.Tracing) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t.Shutdown(ctx)
}

// spoolUsage and spoolMaxUsage describe the span export spool's flags.
const (
	spoolUsage    = "directory where span exports wait while the OTLP collector is unreachable; sent when it answers, kept across restarts"
	spoolMaxUsage = "bound on the span export spool; the oldest exports are dropped past it (0: no spool)"
)

// newTracing sets up span export from the OTEL_* environment (telemetry.NewTracing),
// with exports the collector cannot take spooled in dir up to max bytes ("0": none).
// With telemetry off nothing is spooled: no spans are made.
func newTracing(ctx context.Context, logger *slog.Logger, telemetryOn bool, dir, max string) (*telemetry.Tracing, error) {
	n, err := manifest.ParseSize(max)
	if err != nil {
		return nil, usageError{fmt.Errorf("--telemetry-spool-max: %w", err)}
	}
	var spool *telemetry.SpoolConfig
	if telemetryOn && n > 0 {
		spool = &telemetry.SpoolConfig{Dir: dir, MaxBytes: n, Logger: logger}
	}
	t, err := telemetry.NewTracing(ctx, "fermion", Version, spool)
	if err != nil && spool != nil {
		return nil, fmt.Errorf("%w (choose the spool's directory with --telemetry-spool, or turn it off with --telemetry-spool-max 0)", err)
	}
	return t, err
}

package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/atomicfile"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/telemetry"
)

// defaultServer is the control plane a bare `fermion server` or `fermion up` listens on.
const defaultServer = "http://127.0.0.1:7070"

// savedContext is the control plane the API verbs use when neither flags nor the
// environment name one: $FERMION_HOME/context.json, written by `fermion server` and
// `fermion up`.
type savedContext struct {
	Server string `json:"server"`
	Token  string `json:"token"`
}

// fermionHome is $FERMION_HOME, defaulting to ~/.fermion: where the context, up's state
// and agents' default data directories live.
func fermionHome() (string, error) {
	home := os.Getenv("FERMION_HOME")
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("find the fermion home directory: %w; set FERMION_HOME", err)
		}
		home = filepath.Join(h, ".fermion")
	}
	return home, nil
}

// defaultCacheDir is the compilation cache's default: $FERMION_HOME/cache/wazero when
// FERMION_HOME is set, so one variable moves all of Fermion's files (a test, a second
// installation); else the user's cache directory.
func defaultCacheDir() string {
	if home := os.Getenv("FERMION_HOME"); home != "" {
		return filepath.Join(home, "cache", "wazero")
	}
	return sandbox.DefaultCacheDir()
}

// defaultSpoolDir is fermion run's span spool: under FERMION_HOME when set, as
// defaultCacheDir.
func defaultSpoolDir() string {
	if home := os.Getenv("FERMION_HOME"); home != "" {
		return filepath.Join(home, "telemetry-spool")
	}
	return telemetry.DefaultSpoolDir()
}

// contextPath is $FERMION_HOME/context.json, FERMION_HOME defaulting to ~/.fermion.
func contextPath() (string, error) {
	home, err := fermionHome()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, "context.json"), nil
}

// loadContext reads the saved context. A missing file is an empty context.
func loadContext() (savedContext, error) {
	path, err := contextPath()
	if err != nil {
		return savedContext{}, err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return savedContext{}, nil
	}
	if err != nil {
		return savedContext{}, fmt.Errorf("read context: %w", err)
	}
	var sc savedContext
	if err := json.Unmarshal(b, &sc); err != nil {
		return savedContext{}, fmt.Errorf("%s: %w; fix or delete it (fermion server and fermion up write it)", path, err)
	}
	return sc, nil
}

// saveContext records the control plane and token for the API verbs to use by default,
// readable only by the user, and returns the file's path. A reader sees the old file or
// the new one, never half of one.
func saveContext(server, token string) (path string, err error) {
	path, err = contextPath()
	if err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(savedContext{Server: server, Token: token}, "", "  ")
	if err != nil {
		return "", fmt.Errorf("save context: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("save context: %w", err)
	}
	if err := atomicfile.Write(path, append(b, '\n'), 0o600); err != nil {
		return "", fmt.Errorf("save context: %w", err)
	}
	return path, nil
}

// apiFlags are shared by the verbs that call the control plane.
type apiFlags struct {
	server, token, caFile string

	// Filled by client: what was used and where it came from, for hints.
	usedServer, serverFrom, usedToken, tokenFrom string
}

func (f *apiFlags) add(c *cobra.Command) {
	c.PersistentFlags().StringVar(&f.server, "server", "", "control plane URL (default $FERMION_SERVER, else the saved context's, else "+defaultServer+")")
	c.PersistentFlags().StringVar(&f.token, "token", "", "API token (default $FERMION_TOKEN, else the saved context's)")
	c.PersistentFlags().StringVar(&f.caFile, "ca-file", "", "PEM CA certificates to trust for an https:// control plane, besides the system's (default $FERMION_CA_FILE)")
}

// resolve picks the server and token: flag, else environment, else the saved context,
// else (server only) the default. The saved token goes only to the saved server, so
// pointing --server elsewhere never leaks it.
func (f *apiFlags) resolve() error {
	f.usedServer, f.serverFrom = f.server, "--server"
	if f.usedServer == "" {
		f.usedServer, f.serverFrom = os.Getenv("FERMION_SERVER"), "FERMION_SERVER"
	}
	f.usedToken, f.tokenFrom = f.token, "--token"
	if f.usedToken == "" {
		f.usedToken, f.tokenFrom = os.Getenv("FERMION_TOKEN"), "FERMION_TOKEN"
	}
	if f.usedServer == "" || f.usedToken == "" {
		sc, err := loadContext()
		if err != nil {
			return err
		}
		path, _ := contextPath()
		if f.usedServer == "" && sc.Server != "" {
			f.usedServer, f.serverFrom = sc.Server, displayPath(path)
		}
		if f.usedToken == "" && sc.Token != "" && (sc.Server == "" || sameServer(sc.Server, f.usedServer)) {
			f.usedToken, f.tokenFrom = sc.Token, displayPath(path)
		}
	}
	if f.usedServer == "" {
		f.usedServer, f.serverFrom = defaultServer, "the default"
	}
	if f.usedToken == "" {
		f.tokenFrom = ""
	}
	return nil
}

func sameServer(a, b string) bool {
	return strings.TrimRight(a, "/") == strings.TrimRight(b, "/")
}

// caPool is the system's roots plus the CA from --ca-file or FERMION_CA_FILE, as the
// flag's help says, or nil for the system's roots alone.
func (f *apiFlags) caPool() (*x509.CertPool, error) { return loadCA(f.caFile) }

// client returns a client of the resolved control plane.
func (f *apiFlags) client() (*client.Client, error) {
	if err := f.resolve(); err != nil {
		return nil, err
	}
	opts := []client.Option{client.WithUserAgent("fermion/" + Version)}
	pool, err := f.caPool()
	if err != nil {
		return nil, err
	}
	if pool != nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
		opts = append(opts, client.WithHTTPClient(&http.Client{Transport: t}))
	}
	cl, err := client.New(f.usedServer, f.usedToken, opts...)
	if err != nil {
		return nil, usageError{fmt.Errorf("%w (from %s)", err, f.serverFrom)}
	}
	return cl, nil
}

// explain adds what to do to the errors a user can act on.
func (f *apiFlags) explain(ctx context.Context, err error) error {
	if err == nil || ctx.Err() != nil {
		return err
	}
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		return fmt.Errorf("%w\nthe control plane's certificate at %s is not signed by a CA this machine trusts: pass the CA with --ca-file or FERMION_CA_FILE", err, f.usedServer)
	}
	if _, ok := errors.AsType[x509.HostnameError](err); ok {
		return fmt.Errorf("%w\nthe certificate does not name the host in %s (from %s): use a name it lists with --server, or reissue it with this one", err, f.usedServer, f.serverFrom)
	}
	if ce, ok := errors.AsType[x509.CertificateInvalidError](err); ok && ce.Reason == x509.Expired {
		return fmt.Errorf("%w\nthe control plane at %s serves an expired or not yet valid certificate: renew the --tls-cert files (the server reloads them without a restart)", err, f.usedServer)
	}
	var e *v1.Error
	if !errors.As(err, &e) {
		return fmt.Errorf("%w\ncannot reach the control plane at %s (from %s): is fermion server running there? pass --server or set FERMION_SERVER", err, f.usedServer, f.serverFrom)
	}
	switch e.Code {
	case v1.CodeUnauthorized:
		if f.usedToken == "" {
			return fmt.Errorf("%w\nno API token: pass --token or set FERMION_TOKEN (fermion server prints an admin token)", err)
		}
		return fmt.Errorf("%w\nthe control plane at %s refused the token from %s: pass another with --token or FERMION_TOKEN", err, f.usedServer, f.tokenFrom)
	case v1.CodeForbidden:
		return fmt.Errorf("%w\nthe token (from %s) lacks the role for this: ask an admin for a deployer or admin token", err, f.tokenFrom)
	case v1.CodeUnavailable:
		return fmt.Errorf("%w\nthe control plane cannot reach its state store right now; retry in a moment", err)
	case v1.CodeInternal:
		if e.RequestID != "" {
			return fmt.Errorf("%w\nthis is a bug in the control plane; its log has the details under request id %s", err, e.RequestID)
		}
	}
	return err
}

// nameVerb completes c as a command that makes one API call on the NAME (or ID) it is
// given and prints the line do returns.
func (f *apiFlags) nameVerb(c *cobra.Command, do func(ctx context.Context, cl *client.Client, name string) (string, error)) *cobra.Command {
	c.Args = exactArgs(1)
	c.RunE = func(c *cobra.Command, args []string) error {
		ctx := c.Context()
		cl, err := f.client()
		if err != nil {
			return err
		}
		msg, err := do(ctx, cl, args[0])
		if err != nil {
			return f.explain(ctx, err)
		}
		fmt.Fprintln(c.OutOrStdout(), msg)
		return nil
	}
	return c
}

// listVerb completes c as a command that takes no arguments, fetches one value from the
// API and prints it: as the API's JSON with -o json, otherwise as the table rows writes.
func listVerb[T any](f *apiFlags, c *cobra.Command, fetch func(ctx context.Context, cl *client.Client) (T, error), rows func(tw io.Writer, v T)) *cobra.Command {
	var o outputFlag
	c.Args = exactArgs(0)
	c.RunE = func(c *cobra.Command, _ []string) error {
		if err := o.check(); err != nil {
			return err
		}
		ctx := c.Context()
		cl, err := f.client()
		if err != nil {
			return err
		}
		v, err := fetch(ctx, cl)
		if err != nil {
			return f.explain(ctx, err)
		}
		if o.json() {
			return o.print(c.OutOrStdout(), v)
		}
		tw := newTable(c.OutOrStdout())
		rows(tw, v)
		return tw.Flush()
	}
	o.add(c)
	return c
}

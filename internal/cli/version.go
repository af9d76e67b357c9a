package cli

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"
)

// Version is the release version, set at link time with
// -ldflags "-X fermion.dev/fermion/internal/cli.Version=v1.2.3".
var Version = "0.1.0-dev"

// BuildDate is when the binary was built, RFC 3339, set at link time with
// -ldflags "-X fermion.dev/fermion/internal/cli.BuildDate=$(date -u +%FT%TZ)". Without it
// version reports the commit's time, which the Go toolchain records.
var BuildDate = ""

// versionInfo is what fermion version prints; its JSON is -o json's.
type versionInfo struct {
	Version  string `json:"version"`
	Commit   string `json:"commit,omitempty"`
	Modified bool   `json:"modified,omitempty"` // built from a work tree with changes
	// Date is BuildDate, else the commit's time (DateSource says which).
	Date       string         `json:"date,omitempty"`
	DateSource string         `json:"dateSource,omitempty"` // "build" or "commit"
	Go         string         `json:"go"`
	Platform   string         `json:"platform"`
	Server     *serverVersion `json:"server,omitempty"`
}

// serverVersion is the configured control plane's version, or why it is unknown.
type serverVersion struct {
	URL     string `json:"url"`
	Version string `json:"version,omitempty"`
	Replica string `json:"replica,omitempty"`
	Error   string `json:"error,omitempty"`
}

// localVersion reads the version of this binary from the link-time variables and the
// build information the Go toolchain embeds (vcs.* settings, present when built from a
// repository with go build).
func localVersion(bi *debug.BuildInfo, ok bool) versionInfo {
	v := versionInfo{Version: Version, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if ok && bi != nil {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			case "vcs.time":
				if v.Date == "" {
					v.Date, v.DateSource = s.Value, "commit"
				}
			}
		}
	}
	if BuildDate != "" {
		v.Date, v.DateSource = BuildDate, "build"
	}
	return v
}

// versionString is the version with the short commit, for --version and user agents.
func versionString() string {
	v := localVersion(debug.ReadBuildInfo())
	s := v.Version
	if v.Commit != "" {
		s += " (" + shortCommit(v.Commit)
		if v.Modified {
			s += "-dirty"
		}
		s += ")"
	}
	return s
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

// printVersion prints v as lines of "key  value", the first as before: fermion VERSION
// (COMMIT) GO OS/ARCH, so scripts reading that line keep working.
func printVersion(w io.Writer, v versionInfo) {
	fmt.Fprintf(w, "fermion %s %s %s\n", versionString(), v.Go, v.Platform)
	commit := or(v.Commit)
	if v.Modified {
		commit += " (modified)"
	}
	fmt.Fprintf(w, "commit   %s\n", commit)
	date := or(v.Date)
	if v.DateSource == "commit" {
		date += " (commit time)"
	}
	fmt.Fprintf(w, "built    %s\n", date)
	if s := v.Server; s != nil {
		if s.Error != "" {
			fmt.Fprintf(w, "server   %s: unknown: %s\n", s.URL, s.Error)
		} else {
			fmt.Fprintf(w, "server   %s: fermion %s (replica %s)\n", s.URL, s.Version, or(s.Replica))
		}
	}
}

// serverVersionTimeout bounds the question to the server: version must answer promptly
// when the control plane is away.
const serverVersionTimeout = 3 * time.Second

func newVersionCmd() *cobra.Command {
	var af apiFlags
	var o outputFlag
	c := &cobra.Command{
		Use:   "version",
		Short: "Print the version of fermion (commit, build date) and of the control plane in use",
		Long: `Version prints this binary's version, the commit it was built from and its build
date (the commit's time unless set at link time), and, when a control plane is configured
(--server, FERMION_SERVER or the saved context), the version that control plane reports.
An unreachable control plane is reported, not an error: version still exits 0.`,
		Example: `  fermion version
  fermion version -o json
  fermion --version`,
		Args: exactArgs(0),
		RunE: func(c *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			v := localVersion(debug.ReadBuildInfo())
			v.Server = askServerVersion(c.Context(), &af)
			if o.json() {
				return o.print(c.OutOrStdout(), v)
			}
			printVersion(c.OutOrStdout(), v)
			return nil
		},
	}
	af.add(c)
	o.add(c)
	return c
}

// askServerVersion asks the configured control plane for its version; nil when none is
// configured (only the default address would be tried).
func askServerVersion(ctx context.Context, af *apiFlags) *serverVersion {
	if err := af.resolve(); err != nil {
		return &serverVersion{Error: err.Error()}
	}
	if af.serverFrom == "the default" {
		return nil
	}
	sv := &serverVersion{URL: af.usedServer}
	cl, err := af.client()
	if err != nil {
		sv.Error = err.Error()
		return sv
	}
	ctx, cancel := context.WithTimeout(ctx, serverVersionTimeout)
	defer cancel()
	info, err := cl.Info(ctx)
	if err != nil {
		sv.Error = err.Error()
		return sv
	}
	sv.Version, sv.Replica = info.Version, info.Server
	return sv
}

package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/atomicfile"
	"fermion.dev/fermion/internal/backup"
)

// fermion server backup / restore: the state's archive through the API
// (docs/operations.md, "Backup and restore").

func newServerBackupCmd() *cobra.Command {
	var af apiFlags
	var force bool
	c := &cobra.Command{
		Use:   "backup FILE",
		Short: "Save the control plane's state (deployments, policies, SLOs, tokens, nodes, artifacts) to FILE",
		Long: `Backup asks the control plane (the current context, or --server/--token; an admin
token) for an archive of its state while it runs, checks that the archive is whole, and
only then writes FILE. Restore it into a fresh server or cluster with fermion server
restore. Leases, the leader election, observed instance status, SLO engine state and
event history are not in it; see docs/operations.md.`,
		Example: `  fermion server backup fermion-$(date +%F).backup`,
		Args:    exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			path := args[0]
			if _, err := os.Stat(path); err == nil && !force {
				return usageError{fmt.Errorf("%s exists: choose another name, or pass --force to replace it", path)}
			}
			dir := filepath.Dir(path)
			if st, err := os.Stat(dir); err != nil || !st.IsDir() {
				return usageError{fmt.Errorf("%s: the directory %s does not exist; create it first", path, dir)}
			}
			ctx := c.Context()
			cl, err := af.client()
			if err != nil {
				return err
			}
			tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.partial")
			if err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			defer os.Remove(tmp.Name()) // after the rename, a no-op
			defer tmp.Close()
			if _, err := cl.Backup(ctx, tmp); err != nil {
				return af.explain(ctx, err)
			}
			if _, err := tmp.Seek(0, 0); err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			a, err := backup.Read(tmp)
			if err != nil {
				return fmt.Errorf("backup: the archive received is not whole, %s not written: %w", path, err)
			}
			if err := tmp.Sync(); err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			if err := tmp.Close(); err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			if err := os.Rename(tmp.Name(), path); err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			if err := atomicfile.SyncDir(dir); err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			fmt.Fprintf(c.OutOrStdout(), "backup %s: %s\n", path, archiveCounts(a.Summary.Buckets, a.Summary.Keys, a.Summary.Objects, a.Summary.Bytes))
			return nil
		},
	}
	c.Flags().BoolVar(&force, "force", false, "replace FILE if it exists")
	af.add(c)
	return c
}

func newServerRestoreCmd() *cobra.Command {
	var af apiFlags
	c := &cobra.Command{
		Use:   "restore FILE",
		Short: "Load a backup from fermion server backup into a fresh control plane",
		Long: `Restore checks FILE locally, then sends it to the control plane (the current context,
or --server/--token; an admin token), which refuses it unless it is fresh: no
deployments, policies or nodes. Start the new server (or all three replicas of a new
cluster) with empty --data directories, restore, then point agents at it: their node
tokens are in the backup, so they join again with their saved credentials.`,
		Example: `  fermion server --data /var/lib/fermion-new &
  fermion server restore fermion-2026-12-06.backup`,
		Args: exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			path := args[0]
			f, err := os.Open(path)
			if errors.Is(err, fs.ErrNotExist) {
				return usageError{fmt.Errorf("%s: no such file; pass a file written by fermion server backup", path)}
			}
			if err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			defer f.Close()
			if _, err := backup.Read(f); err != nil {
				return usageError{fmt.Errorf("%s: %w", path, err)}
			}
			if _, err := f.Seek(0, 0); err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			ctx := c.Context()
			cl, err := af.client()
			if err != nil {
				return err
			}
			sum, err := cl.Restore(ctx, f)
			if err != nil {
				return af.explain(ctx, err)
			}
			fmt.Fprintf(c.OutOrStdout(), "restored %s: %s\n", path, archiveCounts(sum.Buckets, sum.Keys, sum.Objects, sum.Bytes))
			return nil
		},
	}
	af.add(c)
	return c
}

// archiveCounts is what a backup archive holds, as backup and restore print it.
func archiveCounts(buckets, keys, objects int, bytes int64) string {
	return fmt.Sprintf("%s, %s, %s, %s", v1.Count(buckets, "bucket"), v1.Count(keys, "key"), v1.Count(objects, "object"), v1.Count(bytes, "byte"))
}

package cli

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/oci"
	"fermion.dev/fermion/internal/sandbox"
)

func appName(p *oci.Pulled) string {
	m, err := p.Parsed.Config.App()
	if err != nil {
		return "" // Resolve has parsed the config; nothing to name otherwise
	}
	return m.App.Name
}

func newInspectCmd() *cobra.Command {
	var rf registryFlags
	var verify []string
	var match, asJSON bool
	c := &cobra.Command{
		Use:   "inspect REF",
		Short: "Show an artifact's manifest, config, size, imports and signatures",
		Long: `Inspect shows an artifact's manifest, config, size, imports and signatures. With
--verify KEY (repeatable) it checks the signatures against those public keys, names every
key that signed the artifact, and exits non-zero when none did.`,
		Example: `  fermion inspect localhost:5000/acme/hello:1.2.0
  fermion inspect localhost:5000/acme/hello@sha256:… --verify signing.pub`,
		Args: exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ref, err := oci.ParseRef(args[0])
			if err != nil {
				return usageError{err}
			}
			cl, err := rf.client()
			if err != nil {
				return err
			}
			p, err := cl.Resolve(c.Context(), ref)
			if err != nil {
				return rf.hint(err)
			}
			sigs, err := cl.Signatures(c.Context(), ref, p.ManifestDigest)
			if err != nil {
				return err
			}
			policy, err := trustPolicy(verify, match)
			if err != nil {
				return err
			}
			verdict := "unsigned"
			if len(sigs) > 0 {
				verdict = fmt.Sprintf("%d signature(s), not checked (pass --verify KEY)", len(sigs))
			}
			// With --verify, inspect is a check: it prints everything, then fails when
			// no given key verifies, so scripts can rely on its exit code.
			var verifyErr error
			var signers []string
			if len(verify) > 0 {
				all, err := policy.VerifyAll(ref.Name(), p.ManifestDigest, sigs)
				for _, v := range all {
					signers = append(signers, v.KeyID)
				}
				if err != nil {
					verdict = "NOT VERIFIED: " + err.Error()
					verifyErr = fmt.Errorf("inspect %s: no signature verified: %w", ref, err)
				} else {
					verdict = "verified by key " + strings.Join(signers, ", key ")
				}
			}
			snap := snapshotPlanOf(c.Context(), cl, p) // inspect_snapshot.go
			w := c.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				if err := enc.Encode(map[string]any{
					"reference": ref.String(), "digest": p.ManifestDigest, "manifest": json.RawMessage(p.Manifest),
					"config": p.Parsed.Config, "signatures": len(sigs), "verification": verdict, "verifiedBy": signers,
					"load_bounds": loadBoundsOf(p.Parsed.Config.Manifest), "snapshot": snap,
					"warmup": warmupOf(p.Parsed.Config.Manifest), // inspect_warmup.go
				}); err != nil {
					return err
				}
				return verifyErr
			}
			cfg := p.Parsed.Config
			fmt.Fprintf(w, "reference  %s\ndigest     %s\nartifact   %s\n", ref, p.ManifestDigest, p.Parsed.Manifest.ArtifactType)
			size := int64(len(p.Manifest)) + p.Parsed.ConfigDescriptor.Size + p.Parsed.Layer.Size
			fmt.Fprintf(w, "size       %d bytes (module %d)\n", size, p.Parsed.Layer.Size)
			fmt.Fprintf(w, "module     %s abi=%s\n", p.Parsed.Layer.Digest, cfg.Module.ABI)
			keys := make([]string, 0, len(p.Parsed.Manifest.Annotations))
			for k := range p.Parsed.Manifest.Annotations {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(w, "annotation %s=%s\n", k, p.Parsed.Manifest.Annotations[k])
			}
			fmt.Fprintf(w, "imports    %s\n", importList(cfg.Module.Imports))
			if len(cfg.Scan.Capabilities) > 0 {
				fmt.Fprintf(w, "needs      %s\n", strings.Join(cfg.Scan.Capabilities, ", "))
			}
			for _, f := range cfg.Scan.Findings {
				fmt.Fprintf(w, "finding    %s\n", f)
			}
			fmt.Fprintf(w, "load bounds (limits.*; \"default\" is the built-in value, which a node's flags may change):\n")
			for _, b := range loadBoundsOf(cfg.Manifest) {
				fmt.Fprintf(w, "  %-22s %-9s %s\n", b.Key, b.Value, b.Source)
			}
			fmt.Fprintf(w, "snapshot   %s\n", snap)                   // inspect_snapshot.go
			fmt.Fprintf(w, "warmup     %s\n", warmupOf(cfg.Manifest)) // inspect_warmup.go
			fmt.Fprintf(w, "signatures %s\n", verdict)
			for _, s := range sigs {
				fmt.Fprintf(w, "  signature layer %s\n", s.Layer.Digest)
			}
			var manifest any
			json.Unmarshal(cfg.Manifest, &manifest)
			b, _ := json.MarshalIndent(manifest, "  ", "  ")
			fmt.Fprintf(w, "config:\n  %s\n", b)
			return verifyErr
		},
	}
	rf.add(c)
	c.Flags().StringSliceVar(&verify, "verify", nil, "check signatures against this public key (repeatable)")
	c.Flags().BoolVar(&match, "match-repository", false, matchRepositoryUsage)
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// boundShown is one load bound as inspect shows it.
type boundShown struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Source string `json:"source"` // "manifest" or "default"
}

// loadBoundsOf lists every load bound of an artifact's normalized manifest: the
// manifest's value where it sets one, the sandbox's default otherwise.
func loadBoundsOf(norm []byte) []boundShown {
	var m struct {
		Limits map[string]json.RawMessage `json:"limits"`
	}
	json.Unmarshal(norm, &m)
	var out []boundShown
	for _, b := range sandbox.LoadBounds() {
		shown := boundShown{Key: b.Key, Value: b.FormatBound(b.Get(&sandbox.DefaultLoadLimits)), Source: "default"}
		if raw, ok := m.Limits[b.Key]; ok {
			var n int64
			var d string
			switch {
			case json.Unmarshal(raw, &n) == nil && n > 0:
				shown.Value, shown.Source = b.FormatBound(n), "manifest"
			case json.Unmarshal(raw, &d) == nil && d != "":
				shown.Value, shown.Source = d, "manifest"
			}
		}
		out = append(out, shown)
	}
	return out
}

// importList is a module's imports as inspect prints them: module.name in module
// order, each once, with ×n after one the module imports n times (a module may import
// one name twice, under two types or kinds; --json keeps every entry).
func importList(imports []artifact.Import) string {
	var names []string
	count := map[string]int{}
	for _, im := range imports {
		name := im.Module + "." + im.Name
		if count[name] == 0 {
			names = append(names, name)
		}
		count[name]++
	}
	for i, name := range names {
		if n := count[name]; n > 1 {
			names[i] += "×" + strconv.Itoa(n)
		}
	}
	return strings.Join(names, " ")
}

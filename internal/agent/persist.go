package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/atomicfile"
)

// A node's data directory:
//
//	DataDir/node.json          the node's NATS credentials from join (0600)
//	DataDir/assignments.json   the last AssignmentSet applied
//	DataDir/trust.json         the trusted keys the control plane last sent
//	DataDir/cache/             the artifact cache (nodecache)
//
// Each file is replaced atomically (temp file, fsync, rename, fsync of the directory), so
// a crash leaves the old or the new version. The agent reads them on start, before it
// reaches the control plane: that is what lets it serve its last assignments while the
// control plane is away.
const (
	credsFile       = "node.json"
	assignmentsFile = "assignments.json"
	trustFile       = "trust.json"
	cacheSubdir     = "cache"
)

// nodeCreds are what join returned: NATS user NodeUserPrefix+Node, password Secret.
type nodeCreds struct {
	Node   string `json:"node"`
	Secret string `json:"secret"`
}

// trustFileBody is trust.json.
type trustFileBody struct {
	TrustedKeys       []string `json:"trustedKeys"`
	RequireSignatures bool     `json:"requireSignatures,omitempty"`
	MatchRepository   bool     `json:"matchRepository,omitempty"`
	// Registry is how to reach the control plane's registry, for pulls before the
	// control plane answers after a restart.
	Registry *v1.RegistryInfo `json:"registry,omitempty"`
}

// readJSON decodes dir/name into v. It returns false, nil when the file does not exist.
// A file that does not decode is renamed aside (name.corrupt) and reported, so that the
// agent starts without it rather than not at all.
func readJSON(dir, name string, v any) (bool, error) {
	p := filepath.Join(dir, name)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", p, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		if rerr := os.Rename(p, p+".corrupt"); rerr != nil {
			return false, fmt.Errorf("read %s: %w (and could not set it aside: %v)", p, err, rerr)
		}
		return false, fmt.Errorf("read %s: %w; set aside as %s.corrupt", p, err, name)
	}
	return true, nil
}

// writeJSON replaces dir/name with v's JSON, readable by the owner alone.
func writeJSON(dir, name string, v any) error {
	b, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	if err := writeFileAtomic(dir, name, append(b, '\n')); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
	}
	return nil
}

// writeFileAtomic replaces dir/name with data (mode 0600).
func writeFileAtomic(dir, name string, data []byte) error {
	return atomicfile.Write(filepath.Join(dir, name), data, 0o600)
}

// removeTemps deletes leftovers of writes a crash interrupted.
func removeTemps(dir string) error { return atomicfile.RemoveTemps(dir) }

// loadAssignments reads assignments.json: the set to serve before the control plane
// answers. nil when there is none.
func loadAssignments(dir string) (*v1.AssignmentSet, error) {
	var set v1.AssignmentSet
	ok, err := readJSON(dir, assignmentsFile, &set)
	if !ok {
		return nil, err
	}
	return &set, nil
}

package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	v1 "fermion.dev/fermion/api/v1"
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
	tmpPrefix       = ".tmp-"
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

// writeFileAtomic replaces dir/name with data (mode 0600): temp file in dir, fsync,
// rename, fsync of dir.
func writeFileAtomic(dir, name string, data []byte) (err error) {
	tmp, err := os.CreateTemp(dir, tmpPrefix+name+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// removeTemps deletes leftovers of writes a crash interrupted.
func removeTemps(dir string) error {
	des, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, de := range des {
		if strings.HasPrefix(de.Name(), tmpPrefix) {
			if err := os.Remove(filepath.Join(dir, de.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

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

package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Normalized is the typed form of Normalize's output, the app manifest as an
// artifact's config carries it: the one declaration of that format. Whoever reads the
// manifest inside a config (the registry's and the node's rescan, admission policies,
// the control plane resolving a deployment) decodes it with ParseNormalized into this
// type rather than declaring the fields it needs again.
type Normalized = normManifest

// ParseNormalized decodes a manifest's normalized JSON. It checks the types of what it
// reads and nothing else: the values are checked where they are used (on a node, by
// Parse itself, through the TOML form). Unknown fields are ignored here, because the
// config around the manifest is decoded strictly (artifact.ParseConfig) and a newer
// builder's extra manifest fields must not make an older reader refuse to list it.
func ParseNormalized(b []byte) (*Normalized, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return nil, errors.New("the app manifest is not a JSON object")
	}
	n := &Normalized{}
	if err := json.Unmarshal(b, n); err != nil {
		return nil, fmt.Errorf("read the app manifest: %w", err)
	}
	return n, nil
}

package artifact

import (
	"fmt"
	"slices"

	"fermion.dev/fermion/internal/manifest"
)

// Rescan runs the scanner again on a module against the manifest recorded in its
// artifact's config and checks that the config's module information and findings are
// what the module really is. A registry (on push) or a node (on pull) then need not trust
// the pusher's own scan: a module that needs capabilities its manifest does not grant is
// refused wherever it arrives. The layer must already have been checked with VerifyLayer.
func Rescan(p *Parsed, wasm []byte) error {
	nm, err := p.Config.App()
	if err != nil {
		return fmt.Errorf("rescan: %w: config manifest: %v", ErrBadManifest, err)
	}
	m := &manifest.Manifest{}
	m.Component.ABI = nm.Component.ABI
	m.Capabilities.Env = nm.Capabilities.Env
	m.Capabilities.AllowedOutboundHosts = nm.Capabilities.AllowedOutboundHosts
	for _, f := range nm.Capabilities.Files {
		m.Capabilities.Files = append(m.Capabilities.Files, manifest.Mount{Source: f.Source, Destination: f.Destination})
	}
	info, res, err := Scan(m, wasm)
	if err != nil {
		return err
	}
	want := p.Config.Module
	switch {
	case info.Digest != want.Digest || info.Size != want.Size:
		return fmt.Errorf("rescan: %w: config describes module %s (%d bytes), the layer is %s (%d bytes)",
			ErrBadManifest, want.Digest, want.Size, info.Digest, info.Size)
	case info.ABI != want.ABI:
		return fmt.Errorf("rescan: %w: config says abi %q, the module is %q", ErrBadManifest, want.ABI, info.ABI)
	case !slices.Equal(info.Imports, want.Imports) || !slices.Equal(info.Exports, want.Exports):
		return fmt.Errorf("rescan: %w: config's imports or exports differ from the module's", ErrBadManifest)
	case !slices.Equal(res.Capabilities, p.Config.Scan.Capabilities):
		return fmt.Errorf("rescan: %w: config records capabilities %v, the module needs %v",
			ErrBadManifest, p.Config.Scan.Capabilities, res.Capabilities)
	}
	return nil
}

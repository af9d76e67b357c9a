package fermion

import "embed"

// RustSDK holds the Rust guest SDK's crate (sdk/rust), which `fermion new --lang rust`
// copies into the function so that it builds offline.
//
//go:embed sdk/rust/Cargo.toml sdk/rust/build.rs sdk/rust/README.md sdk/rust/src/*.rs
var RustSDK embed.FS

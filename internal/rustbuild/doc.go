// Package rustbuild finds a Rust toolchain that can build Fermion functions (a rustc
// whose sysroot has the wasm32-wasip1 or wasm32-wasi standard library, and the cargo
// beside it) and builds crates with it, offline.
//
// The toolchain Debian packages (rustc, cargo, libstd-rust-dev-wasm32, lld) lives in
// /usr/bin; a rustup toolchain without wasm targets often comes first on PATH, and
// cargo runs whatever rustc is on PATH unless RUSTC names one. So the search tries the
// PATH's rustc and then Debian's, and a build (or a scaffolded fermion.toml) names the
// chosen rustc explicitly when it is not the PATH's.
package rustbuild

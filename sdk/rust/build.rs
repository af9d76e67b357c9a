//! Tells the SDK whether rustc links wasi-libc's reactor start file into a cdylib,
//! which then defines `_initialize` itself (rust-lang/rust#161421, Rust 1.100): the
//! SDK must define it only for older compilers, or the link fails with a duplicate
//! symbol. Std only, like the crate.

use std::env;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=RUSTC");
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let version = match Command::new(rustc).arg("--version").output() {
        Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
        Err(_) => return,
    };
    let minor = minor(&version);
    // Declares the cfg so rustc 1.80 and later do not warn that it is unexpected. Cargo
    // before 1.80 warns about the directive itself ("requires -Zcheck-cfg") on every
    // build of a user's function, so it is given only to those that know it.
    if minor.map_or(false, |m| m >= 80) {
        println!("cargo:rustc-check-cfg=cfg(fermion_rustc_defines_initialize)");
    }
    if minor.map_or(false, |m| m >= 100) {
        println!("cargo:rustc-cfg=fermion_rustc_defines_initialize");
    }
}

/// The minor version in "rustc 1.63.0 (...)" or "rustc 1.100.0-nightly (...)".
fn minor(version: &str) -> Option<u32> {
    let v = version.split_whitespace().nth(1)?;
    let mut parts = v.split('.');
    if parts.next()? != "1" {
        return None;
    }
    parts.next()?.parse().ok()
}

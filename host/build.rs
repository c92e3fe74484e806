//! Builds the guest component (`guest/`, its own workspace) for `wasm32-wasip2` and leaves it
//! in `OUT_DIR/guest.wasm`, where `include_bytes!` embeds it in the host.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let host_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = host_dir
        .parent()
        .expect("host/ sits in the repository root");
    let guest = root.join("guest");
    for watched in ["guest/src", "guest/Cargo.toml", "guest/Cargo.lock", "wit"] {
        println!("cargo::rerun-if-changed={}", root.join(watched).display());
    }

    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    ensure_target_installed(Path::new(&rustc));

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = guest.join("target");
    let mut build = Command::new(cargo);
    build
        .arg("build")
        .arg("--manifest-path")
        .arg(guest.join("Cargo.toml"))
        .args(["--release", "--locked", "--target", TARGET])
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer build's flags, wrappers and target are for the host: a host link flag breaks
    // wasm-component-ld, and clippy's wrapper would lint the guest under the host's rules.
    for inherited in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PROFILE_RELEASE_LTO",
    ] {
        build.env_remove(inherited);
    }
    let status = build
        .status()
        .expect("run cargo to build the guest component");
    assert!(status.success(), "building the guest component failed");

    let wasm = target_dir
        .join(TARGET)
        .join("release")
        .join("litegraph_backup_guest.wasm");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo")).join("guest.wasm");
    std::fs::copy(&wasm, &out)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", wasm.display(), out.display()));
}

/// Fails with the one-line fix when the toolchain lacks the wasm target (machines that set
/// `RUSTUP_AUTO_INSTALL=0` do not install it from rust-toolchain.toml).
fn ensure_target_installed(rustc: &Path) {
    let output = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .expect("run rustc to find the target's library directory");
    let libdir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() || !Path::new(&libdir).is_dir() {
        panic!("the {TARGET} target is not installed; run: rustup target add {TARGET}");
    }
}

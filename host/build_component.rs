//! Builds a WebAssembly component crate of this repository (its own workspace) for
//! `wasm32-wasip2` with a nested cargo, and copies the result into `OUT_DIR`. Shared by the
//! build scripts of `host` (the policy) and `tests` (fixture guests).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

/// Builds the crate at `<repository>/<crate_dir>` whose library is `lib_name`, and leaves
/// the component in `OUT_DIR/<out_name>`; returns that path.
pub fn build(crate_dir: &str, lib_name: &str, out_name: &str) -> PathBuf {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .ancestors()
        .find(|dir| dir.join("rust-toolchain.toml").is_file())
        .expect("the repository root holds rust-toolchain.toml")
        .to_owned();
    let source = root.join(crate_dir);
    for watched in [
        source.join("src"),
        source.join("Cargo.toml"),
        source.join("Cargo.lock"),
        root.join("wit"),
    ] {
        println!("cargo::rerun-if-changed={}", watched.display());
    }

    // Components are always built with the toolchain rust-toolchain.toml pins (the one with
    // the wasm target), whatever toolchain builds the host (`cargo +nightly fuzz` does): the
    // `cargo` and `rustc` on PATH, without the outer build's toolchain override, resolve it.
    ensure_target_installed(&source);

    // One target directory for every component: they share wit-bindgen and std builds.
    let target_dir = root.join("guest").join("target");
    let mut build = Command::new("cargo");
    build
        .current_dir(&source)
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .arg("build")
        .arg("--manifest-path")
        .arg(source.join("Cargo.toml"))
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
    let status = build.status().expect("run cargo to build a component");
    assert!(
        status.success(),
        "building the component {crate_dir} failed"
    );

    let wasm = target_dir
        .join(TARGET)
        .join("release")
        .join(format!("{lib_name}.wasm"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo")).join(out_name);
    std::fs::copy(&wasm, &out)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", wasm.display(), out.display()));
    out
}

/// Fails with the one-line fix when the toolchain lacks the wasm target (machines that set
/// `RUSTUP_AUTO_INSTALL=0` do not install it from rust-toolchain.toml).
fn ensure_target_installed(source: &Path) {
    let output = Command::new("rustc")
        .current_dir(source)
        .env_remove("RUSTUP_TOOLCHAIN")
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .expect("run rustc to find the target's library directory");
    let libdir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() || !Path::new(&libdir).is_dir() {
        panic!("the {TARGET} target is not installed; run: rustup target add {TARGET}");
    }
}

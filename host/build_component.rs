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

    // One target directory for every component: they share wit-bindgen and std builds.
    let target_dir = root.join("guest").join("target");
    // Components are always built with the toolchain rust-toolchain.toml pins (the one with
    // the wasm target), whatever toolchain builds the host (`cargo +nightly fuzz` does): the
    // `cargo` and `rustc` on PATH, without the outer build's toolchain override, resolve it.
    ensure_target_installed(&source, &target_dir);

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

/// Installs the wasm target when the toolchain lacks it: rust-toolchain.toml names it, but
/// machines that set `RUSTUP_AUTO_INSTALL=0` do not install it on their own. Fails with the
/// one-line fix only if installing fails.
fn ensure_target_installed(source: &Path, target_dir: &Path) {
    if target_installed(source) {
        return;
    }
    // The host's and the tests' build scripts may both get here at once: one installs, the
    // other waits and finds it done.
    let lock = std::fs::create_dir_all(target_dir)
        .and_then(|()| std::fs::File::create(target_dir.join(".rustup-target.lock")))
        .and_then(|file| file.lock().map(|()| file));
    if lock.is_ok() && target_installed(source) {
        return;
    }
    println!(
        "cargo::warning=installing the {TARGET} target (once) for the toolchain in rust-toolchain.toml: rustup target add {TARGET}"
    );
    // In the repository, without the outer build's toolchain override, rustup picks the
    // toolchain rust-toolchain.toml pins: the one the components are built with.
    let added = Command::new("rustup")
        .current_dir(source)
        .env_remove("RUSTUP_TOOLCHAIN")
        .args(["target", "add", TARGET])
        .status();
    let installed = matches!(added, Ok(status) if status.success()) && target_installed(source);
    if !installed {
        panic!(
            "the {TARGET} target is not installed and installing it failed; run: rustup target add {TARGET}"
        );
    }
}

/// Whether the toolchain that builds the components has the wasm target's standard library.
fn target_installed(source: &Path) -> bool {
    let output = Command::new("rustc")
        .current_dir(source)
        .env_remove("RUSTUP_TOOLCHAIN")
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .expect("run rustc to find the target's library directory");
    let libdir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    output.status.success() && Path::new(&libdir).is_dir()
}

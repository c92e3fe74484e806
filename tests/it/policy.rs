//! The guest's policy is plain Rust with native unit and property tests (`guest/`, its own
//! workspace). This runs them, so that `cargo test` at the root covers them too.

use std::process::Command;

#[test]
fn guest_policy_unit_and_property_tests_pass() {
    let guest = concat!(env!("CARGO_MANIFEST_DIR"), "/../guest");
    let output = Command::new(env!("CARGO"))
        .args(["test", "--quiet", "--locked", "--manifest-path"])
        .arg(format!("{guest}/Cargo.toml"))
        .arg("--target-dir")
        .arg(format!("{guest}/target"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("run cargo test for the guest");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "guest tests failed:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("test result: ok"), "{report}");
    assert!(
        !report.contains(" 0 passed"),
        "the guest has tests: {report}"
    );
}

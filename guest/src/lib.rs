//! The policy of litegraph-backup: every decision about backups (names, conflicts, metadata,
//! what a listing shows), made inside a WebAssembly sandbox. It has no I/O of its own; it
//! asks the host's `store` and `snapshot` capabilities for everything.
//!
//! The policy is plain Rust over a [`service::Host`] trait, so it compiles and is tested
//! natively too; `component` is the thin shim that exports it through the WIT world.

wit_bindgen::generate!({
    world: "backup-service",
    path: "../wit",
    additional_derives: [PartialEq, Eq],
});

pub mod clock;
pub mod drill;
pub mod manifest;
pub mod metadata;
pub mod names;
pub mod retention;
pub mod service;

#[cfg(target_arch = "wasm32")]
mod component;

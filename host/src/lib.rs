//! litegraph-backup's host: the mechanisms (SQLite snapshots page by page, a backup directory nothing
//! can escape, digests) lent to the policy component, and the edges that expose it (CLI).
//!
//! The flow is one way: an edge turns a request into one call of the guest's `backup`
//! interface ([`Runtime`]), the guest decides and calls the capabilities ([`store`],
//! [`snapshot`]), and the answer goes back out as a [`BackupFile`] or an [`Error`].

mod budget;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod digests;
pub mod http;
pub mod monitor;
pub mod remote;
pub mod runtime;
pub mod schedule;
pub mod snapshot;
pub mod store;
pub mod wire;

pub use runtime::{Capabilities, Error, Limits, Policy, Runtime};
pub use wire::{
    BackupDetails, BackupFile, Drill, LastCheck, PruneDecision, PushOutcome, RemoteBackup,
    RemoteVerification, Restoration, Retention, Verification,
};

/// The generated bindings of `wit/` (the `backup-service` world).
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        world: "backup-service",
        path: "../wit",
    });

    pub(crate) use litegraph::backup::types::{
        BackupDetails, BackupFile, Datetime, DrillReport, Error, FileDigests, FileStat, LastCheck,
        PruneDecision, PushOutcome, RemoteBackup, RemoteVerification, Restoration, Retention,
        ScratchRestore, Verification,
    };
}

/// The guest component, built from `guest/` by `build.rs`.
pub const GUEST_COMPONENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/guest.wasm"));

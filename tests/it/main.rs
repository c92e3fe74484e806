//! End-to-end tests of litegraph-backup: the real guest component, the real CLI binary,
//! real SQLite databases and real files.

mod cli;
mod component;
mod concurrency;
mod names;
mod policy;
mod support;

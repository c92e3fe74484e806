//! End-to-end tests of litegraph-backup: the real guest component, the real CLI binary,
//! real SQLite databases, real files and real sockets.

mod cli;
mod client;
mod compile_cache;
mod component;
mod concurrency;
mod config_file;
mod crash;
mod drill;
mod faults;
mod hostile;
mod hostile_load;
mod http;
mod live_database;
mod monitoring;
mod names;
mod offsite;
mod operator;
mod ordering;
mod policy;
mod progress;
mod prune_cli;
mod restore;
mod retention;
mod scale;
mod schedule;
mod serve;
mod snapshot_pass;
mod support;

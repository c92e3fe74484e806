//! Offsite copies (issue 11): the loopback S3 server the tests stand on, then the real CLI
//! pushing to it, pulling from it and recovering from it.

mod cli;
mod drill;
mod operator;
mod server;
mod setup;

//! Observability, as one thin layer: every operation the [`Runtime`](crate::Runtime) runs is
//! reported once, when it ends, as an [`OperationRecord`] (what, on which backup, outcome,
//! duration, bytes), and the log line ([`log`]), the Prometheus metrics ([`metrics`]) and
//! `status` ([`status`]) all read that one record. The long passes of the mechanisms (copy,
//! digests, restore, upload, download) report how far they are to a [`Progress`] sink: a
//! terminal's progress bar for the CLI, nothing elsewhere.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::store::BackupDir;

pub mod log;
pub mod metrics;
pub mod progress;
pub mod status;

pub use metrics::Metrics;
pub use progress::{NoProgress, Progress};
pub use status::StatusBook;

/// An operation of the backup service, as metrics label it and the log names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    Create,
    Verify,
    Restore,
    Prune,
    Drill,
    Delete,
    Push,
    Pull,
    RemoteVerify,
    RemotePrune,
}

impl Operation {
    pub const ALL: [Operation; 10] = [
        Operation::Create,
        Operation::Verify,
        Operation::Restore,
        Operation::Prune,
        Operation::Drill,
        Operation::Delete,
        Operation::Push,
        Operation::Pull,
        Operation::RemoteVerify,
        Operation::RemotePrune,
    ];

    /// The name as a Prometheus label value and in the log: `create`, `remote_verify`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Verify => "verify",
            Operation::Restore => "restore",
            Operation::Prune => "prune",
            Operation::Drill => "drill",
            Operation::Delete => "delete",
            Operation::Push => "push",
            Operation::Pull => "pull",
            Operation::RemoteVerify => "remote_verify",
            Operation::RemotePrune => "remote_prune",
        }
    }

    /// The inverse of [`Operation::as_str`].
    pub fn from_name(name: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|op| op.as_str() == name)
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The request was refused as given (a bad name, no such backup, a name taken): the
    /// caller's mistake, not a failure of the service. Logged, counted, never alerted on,
    /// and it changes nothing on disk (not even the status record).
    Refused(String),
    /// The operation failed (busy, I/O, a guest fault) or its verdict is negative (a
    /// verification or a drill found problems, a removal failed): what an operator is
    /// alerted to. The text says why.
    Failure(String),
}

impl Outcome {
    /// `success`, `refused` or `failure`: the log's and the metrics' word for it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Refused(_) => "refused",
            Outcome::Failure(_) => "failure",
        }
    }

    /// Why it did not succeed.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Success => None,
            Outcome::Refused(why) | Outcome::Failure(why) => Some(why),
        }
    }
}

/// One operation, reported once when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationRecord {
    pub operation: Operation,
    /// The backup it was about, when it was about one (create: the name made, or asked for).
    pub backup: Option<String>,
    /// The remote target it was about (push, pull, remote verify and prune).
    pub target: Option<String>,
    pub started: SystemTime,
    pub duration: Duration,
    /// Bytes processed: the backup's size for create, verify, restore, drill and pull;
    /// what was stored remotely for push; what was removed for the prunes and delete.
    pub bytes: u64,
    pub outcome: Outcome,
}

/// Where the records go, and where progress is shown: one per process (or per embedding
/// server), shared by every operation. Cheap to clone.
#[derive(Clone)]
pub struct Monitor {
    metrics: Arc<Metrics>,
    status: Arc<StatusBook>,
    progress: Arc<dyn Progress>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor").finish_non_exhaustive()
    }
}

impl Monitor {
    /// Records into fresh metrics and into the status record of `backups`; shows no
    /// progress.
    pub fn new(backups: Arc<BackupDir>) -> Monitor {
        Monitor {
            metrics: Arc::new(Metrics::new()),
            status: Arc::new(StatusBook::new(backups)),
            progress: Arc::new(NoProgress),
        }
    }

    /// Shows the passes' progress on `progress` (a terminal's bars).
    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Monitor {
        self.progress = progress;
        self
    }

    /// Reports one finished operation: one log line, the metrics, the status record.
    pub fn record(&self, record: &OperationRecord) {
        log::write(record);
        self.metrics.observe(record);
        self.status.observe(record);
    }

    /// Sets the metrics' last success and failure times from the status record, which
    /// every process writes and which outlives them: what a server does when it starts and
    /// at each scrape, so that an alert on the time since the last successful backup sees
    /// backups made by another process, and does not go quiet across a restart.
    pub fn remember_past_runs(&self) {
        let record = self.status.read();
        for operation in Operation::ALL {
            let Some(past) = record.operation(operation) else {
                continue;
            };
            // The record keeps the last of each per operation, whatever the target: a
            // remote operation's time goes under the target it was about.
            if let Some(success) = &past.last_success {
                let target = success.target.as_deref();
                let ended = Some(success.ended());
                self.metrics.remember(operation, target, ended, None);
            }
            if let Some(failure) = &past.last_failure {
                let target = failure.target.as_deref();
                let ended = Some(failure.ended());
                self.metrics.remember(operation, target, None, ended);
            }
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn status(&self) -> &StatusBook {
        &self.status
    }

    pub fn progress(&self) -> &dyn Progress {
        &*self.progress
    }
}

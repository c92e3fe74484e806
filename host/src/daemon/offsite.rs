//! A scheduled run's offsite step: the verified backup pushed to each remote target, with
//! every local backup the target lacks (an earlier push failed), then the target's
//! retention applied with the local rules. It runs before the local retention, so that a
//! backup leaves the machine before the rules may remove it. Each target on its own, so that
//! one unreachable target neither stops the others nor the schedule; every outcome is
//! logged and recorded for the API.

use std::time::SystemTime;

use super::{Run, Scheduler, removed};
use crate::Error;
use crate::monitor::Operation;

/// One remote target's last push and prune, as the API shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteStatus {
    pub target: String,
    pub last_push: Option<PushRecord>,
    pub last_prune: Option<PruneRecord>,
}

impl RemoteStatus {
    pub(super) fn new(target: String) -> RemoteStatus {
        RemoteStatus {
            target,
            last_push: None,
            last_prune: None,
        }
    }
}

/// One push of a scheduled backup to one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRecord {
    /// When it ended.
    pub at: SystemTime,
    pub backup: String,
    /// False when the target held it already; `None` when the push failed.
    pub uploaded: Option<bool>,
    /// Why it failed; `None` when it succeeded.
    pub error: Option<String>,
}

/// One application of the retention rules to one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneRecord {
    pub at: SystemTime,
    /// How many backups it removed; `None` when it could not run.
    pub removed: Option<usize>,
    /// What failed (the prune, or some removals); `None` when all went through.
    pub error: Option<String>,
}

impl Scheduler {
    /// Brings every target up to date with the local backups, `name` (the run's new one)
    /// among them, then prunes each by the retention rules when there are any; failures go
    /// into `run` and the log, never further. A backup whose push failed in an earlier run
    /// (the target was down) goes now, oldest first: the local retention that follows may
    /// otherwise remove it before it ever left the machine.
    pub(super) fn offsite(&self, run: &mut Run, name: &str) {
        for target in self.runtime.capabilities().remotes.names() {
            // One target at a time (not `push(name, None)`, which stops at the first
            // failure): an unreachable target must not keep the backup from the others.
            let missing = self.missing_on(&target, name);
            let held = self.push_missing(run, &missing, name, &target);
            if held && !self.retention.is_empty() {
                self.prune_target(run, &target);
            }
        }
    }

    /// What `target` lacks, oldest first, as the policy decides (`unpushed`); `name` alone
    /// when that cannot be told (the target unreachable: its push then says why).
    fn missing_on(&self, target: &str, name: &str) -> Vec<String> {
        match self.runtime.unpushed(target) {
            Ok(missing) => missing,
            Err(e) => {
                tracing::warn!("what remote target {target} lacks cannot be told ({e})");
                vec![name.to_owned()]
            }
        }
    }

    /// Pushes `missing` to `target` in order; true when the target holds `name` now. A
    /// backup of its own that cannot go (damaged, refused by name) does not stop the
    /// others; a target that fails (unreachable, credentials) stops its catch-up, which
    /// the next run resumes.
    fn push_missing(&self, run: &mut Run, missing: &[String], name: &str, target: &str) -> bool {
        let mut caught_up = Vec::new();
        let mut held = !missing.iter().any(|n| n == name);
        for backup in missing {
            match self.push(run, backup, target) {
                Ok(()) if backup == name => held = true,
                Ok(()) => caught_up.push(backup.as_str()),
                Err(e) if of_the_backup(&e) => {}
                Err(_) => break,
            }
        }
        if !caught_up.is_empty() {
            tracing::info!(
                "remote target {target} caught up: {} backup(s) an earlier push missed went \
                 now ({})",
                caught_up.len(),
                caught_up.join(", ")
            );
        }
        held
    }

    /// Pushes `name` to `target`, recording the outcome.
    fn push(&self, run: &mut Run, name: &str, target: &str) -> Result<(), Error> {
        let started = SystemTime::now();
        let outcome = self.runtime.push(name, Some(target));
        let record = match &outcome {
            Ok(outcomes) => {
                let uploaded = outcomes.iter().any(|o| o.uploaded);
                let took = started.elapsed().unwrap_or_default().as_secs_f64();
                match outcomes.first() {
                    Some(o) if uploaded => tracing::info!(
                        "pushed {name} to remote target {target} in {took:.1} s ({} bytes stored)",
                        o.remote.stored_length
                    ),
                    _ => tracing::info!("remote target {target} holds {name} already"),
                }
                PushRecord {
                    at: SystemTime::now(),
                    backup: name.to_owned(),
                    uploaded: Some(uploaded),
                    error: None,
                }
            }
            Err(e) => {
                let why = format!("{name} could not be pushed to remote target {target}: {e}");
                tracing::error!("{why}");
                run.failed(Operation::Push, why.clone());
                PushRecord {
                    at: SystemTime::now(),
                    backup: name.to_owned(),
                    uploaded: None,
                    error: Some(why),
                }
            }
        };
        self.record(target, |status| status.last_push = Some(record));
        outcome.map(|_| ())
    }

    fn prune_target(&self, run: &mut Run, target: &str) {
        let record = match self.runtime.remote_prune(target, &self.retention, false) {
            Ok(decisions) => {
                let failures: Vec<String> = decisions
                    .iter()
                    .filter_map(|d| {
                        let why = d.removal_failed.as_ref()?;
                        Some(format!("{}: {why}", d.backup.filename))
                    })
                    .collect();
                let removed = removed(&decisions);
                let error = (!failures.is_empty()).then(|| {
                    format!(
                        "on remote target {target}, {} could not be removed: {}",
                        failures.len(),
                        failures.join("; ")
                    )
                });
                match &error {
                    Some(why) => {
                        tracing::error!("{why}");
                        run.failed(Operation::RemotePrune, why.clone());
                    }
                    None => tracing::info!(
                        "remote target {target}: {removed} removed by the retention rules"
                    ),
                }
                PruneRecord {
                    at: SystemTime::now(),
                    removed: Some(removed),
                    error,
                }
            }
            Err(e) => {
                let why = format!(
                    "the retention rules could not be applied to remote target {target}: {e}"
                );
                tracing::error!("{why}");
                run.failed(Operation::RemotePrune, why.clone());
                PruneRecord {
                    at: SystemTime::now(),
                    removed: None,
                    error: Some(why),
                }
            }
        };
        self.record(target, |status| status.last_prune = Some(record));
    }

    /// Updates the shared status of `target`.
    fn record(&self, target: &str, update: impl FnOnce(&mut RemoteStatus)) {
        let mut status = self.status.lock();
        match status.remotes.iter_mut().find(|r| r.target == target) {
            Some(remote) => update(remote),
            None => {
                let mut remote = RemoteStatus::new(target.to_owned());
                update(&mut remote);
                status.remotes.push(remote);
            }
        }
    }
}

/// Whether a push failed for reasons of the backup's own (the next backup may go), rather
/// than the target's (the next would fail the same way).
fn of_the_backup(error: &Error) -> bool {
    matches!(
        error,
        Error::NotFound | Error::Corrupt(_) | Error::Exist | Error::InvalidName(_)
    )
}

/// Checks each remote target once, on a thread of its own so that a slow or unreachable
/// one never holds `serve` back: a listing of what it holds (the cheapest call the policy
/// offers). A failure is a warning naming the target and why (credentials refused,
/// unreachable), never a reason to stop: the network may come back before the next push.
pub fn check_targets_in_background(runtime: &crate::Runtime) {
    let targets = runtime.capabilities().remotes.names();
    if targets.is_empty() {
        return;
    }
    let runtime = runtime.clone();
    let spawned = std::thread::Builder::new()
        .name("remote-check".into())
        .spawn(move || {
            for target in targets {
                match runtime.remote_list(&target) {
                    Ok(held) => tracing::info!(
                        "remote target {target} answers; it holds {} backup(s)",
                        held.len()
                    ),
                    Err(e) => tracing::warn!(
                        "remote target {target} failed its start-up check: {e}; serving \
                         anyway, and each push to it tries again"
                    ),
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("the remote targets could not be checked at start-up: {e}");
    }
}

//! A scheduled run's offsite step: the verified backup pushed to each remote target, then
//! the target's retention applied with the local rules. Each target on its own, so that
//! one unreachable target neither stops the others nor the schedule; every outcome is
//! logged and recorded for the API.

use std::time::SystemTime;

use super::{Run, Scheduler, removed};

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
    /// Pushes `name` to every target, then prunes each by the retention rules when there
    /// are any; failures go into `run` and the log, never further.
    pub(super) fn offsite(&self, run: &mut Run, name: &str) {
        for target in self.runtime.capabilities().remotes.names() {
            // One target at a time (not `push(name, None)`, which stops at the first
            // failure): an unreachable target must not keep the backup from the others.
            let pushed = self.push(run, name, &target);
            if pushed && !self.retention.is_empty() {
                self.prune_target(run, &target);
            }
        }
    }

    /// True when the target holds the backup now.
    fn push(&self, run: &mut Run, name: &str, target: &str) -> bool {
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
                run.failed(why.clone());
                PushRecord {
                    at: SystemTime::now(),
                    backup: name.to_owned(),
                    uploaded: None,
                    error: Some(why),
                }
            }
        };
        self.record(target, |status| status.last_push = Some(record));
        outcome.is_ok()
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
                        run.failed(why.clone());
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
                run.failed(why.clone());
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

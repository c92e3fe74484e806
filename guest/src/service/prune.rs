//! `prune`: the retention module decides on the recorded facts; removal is `delete`'s.

use super::{Host, Service, backup_file, describe_error};
use crate::litegraph::backup::types::{Error, PruneDecision, Retention};
use crate::retention::{self, Candidate};

impl<H: Host> Service<H> {
    /// Decides, for every backup (oldest first, as `list`), keep or remove and why, and
    /// unless `dry_run` removes those to remove one by one through [`Service::delete`]: a
    /// removal that fails is recorded in its decision and the others go on. A backup that
    /// is gone already when its turn comes (a concurrent delete) counts as removed.
    pub fn prune(&self, rules: &Retention, dry_run: bool) -> Result<Vec<PruneDecision>, Error> {
        if retention::is_empty(rules) {
            return Err(Error::InvalidArgument(
                "no retention rule given (or only rules of 0): such a prune would remove every \
                 backup; give at least one keep rule"
                    .into(),
            ));
        }
        let records = self.catalogue()?;
        let candidates: Vec<Candidate> = records
            .iter()
            .map(|record| Candidate {
                created: record.metadata.created,
                subject: rules.include_named || record.metadata.origin.chosen_by_policy(),
                verified: record.metadata.last_verification.is_some_and(|v| v.passed),
            })
            .collect();
        let verdicts = retention::decide(&candidates, rules);
        Ok(records
            .into_iter()
            .zip(verdicts)
            .map(|(record, verdict)| {
                let backup = backup_file(record.metadata, &record.stat);
                let removal_failed = match verdict.keep || dry_run {
                    true => None,
                    false => self.remove_backup(&backup.filename),
                };
                PruneDecision {
                    backup,
                    keep: verdict.keep,
                    reasons: verdict.reasons,
                    removal_failed,
                }
            })
            .collect())
    }

    /// Removes one backup as `delete` does; the error's sentence when that fails.
    fn remove_backup(&self, name: &str) -> Option<String> {
        match self.delete(name) {
            Ok(()) | Err(Error::NotFound) => None,
            Err(error) => Some(describe_error(&error)),
        }
    }
}

#[cfg(test)]
mod tests;

//! `prune`: the retention module decides, this applies its decisions through `delete`.

use super::{Host, Service};
use crate::litegraph::backup::types::{Error, PruneDecision, Retention};

impl<H: Host> Service<H> {
    /// Decides, for every backup (oldest first), keep or remove and why, and removes those
    /// to remove unless `dry_run`.
    pub fn prune(&self, rules: &Retention, dry_run: bool) -> Result<Vec<PruneDecision>, Error> {
        let _ = dry_run;
        if crate::retention::is_empty(rules) {
            return Err(Error::InvalidArgument(
                "no retention rule given: a prune without one would remove every backup".into(),
            ));
        }
        Ok(self
            .list()?
            .into_iter()
            .map(|backup| PruneDecision {
                backup,
                keep: true,
                reasons: vec!["retention not implemented yet".into()],
                removal_failed: None,
            })
            .collect())
    }
}

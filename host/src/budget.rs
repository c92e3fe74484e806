//! What one operation may ask of the host, besides the guest's own time and memory. The
//! guest's deadline counts only its computing time (a large snapshot takes the host
//! seconds), so without a budget a hostile guest could loop on cheap host calls forever,
//! take snapshot after snapshot until the disk is full, or have the host hash the same
//! large file again and again. Every legitimate operation stays far inside these limits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::bindings::Error;

/// Host calls of any kind in one operation (listing 1,000 backups takes about 3,000).
const MAX_CALLS: u64 = 200_000;
/// Host calls a listing may need per entry it returns (a stat and a metadata read; for a
/// backup seen for the first time its digests and a record written; an orphan's removal),
/// with room to spare.
const CALLS_PER_LISTED_ENTRY: u64 = 8;
/// Guest computing time per listed entry (checking its name, decoding its record, sorting):
/// about 50 us were measured per entry in a debug build, 100,000 entries.
const GUEST_TIME_PER_LISTED_ENTRY: Duration = Duration::from_micros(200);
/// Guest memory per listed entry (its name, record and the answer's BackupFile): a listing
/// of 100,000 backups asked for 66 MiB in all.
const GUEST_MEMORY_PER_LISTED_ENTRY: usize = 2 << 10;
/// The most guest memory a listing may add to the fixed limit (half a million entries).
pub(crate) const MAX_LISTING_MEMORY: usize = 1 << 30;
/// Snapshots in one operation: a create takes one, a restore one (its safety backup).
const MAX_SNAPSHOTS: u32 = 1;
/// Digests, checks, restores or drills of one file in one operation (`verify` hashes a file at
/// most twice, `restore` restores at most twice: the backup, then the safety backup back).
const MAX_HEAVY_PER_FILE: u32 = 2;
/// Bytes of metadata written in one operation.
const MAX_WRITTEN: u64 = 64 << 20;

/// The costly host calls, counted per file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Heavy {
    Digests,
    Check,
    Restore,
    /// A restore into a scratch database, and its checks.
    Drill,
}

/// One operation's spending, shared by its capabilities. Once it is exceeded, the call is
/// refused (`not-permitted`) and the operation marked, so that the guest is stopped at its
/// next deadline check even if it ignores the refusal.
#[derive(Debug, Clone, Default)]
pub(crate) struct Budget(Arc<Mutex<Spent>>);

#[derive(Debug, Default)]
struct Spent {
    calls: u64,
    /// Calls allowed beyond [`MAX_CALLS`], in proportion to the largest listing made.
    allowance: u64,
    /// The most entries a listing of this operation returned.
    entries: u64,
    snapshots: u32,
    written: u64,
    heavy: HashMap<(Heavy, String), u32>,
    exceeded: Option<String>,
}

impl Budget {
    fn spend(&self, charge: impl FnOnce(&mut Spent) -> Option<String>) -> Result<(), Error> {
        let mut spent = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        spent.calls += 1;
        let limit = MAX_CALLS.saturating_add(spent.allowance);
        let over = if spent.calls > limit {
            Some(format!("more than {limit} host calls"))
        } else {
            charge(&mut spent)
        };
        match over {
            None => Ok(()),
            Some(what) => {
                let why = format!("the policy exceeded its budget for one operation: {what}");
                spent.exceeded.get_or_insert_with(|| why.clone());
                Err(Error::NotPermitted(why))
            }
        }
    }

    /// Any host call.
    pub(crate) fn call(&self) -> Result<(), Error> {
        self.spend(|_| None)
    }

    /// Allows an operation over a directory of `entries` files more host calls and more
    /// computing time than the fixed budget: the budget bounds a runaway guest, not a big
    /// directory. Not cumulative: repeated listings never raise it past the largest one.
    pub(crate) fn listed(&self, entries: usize) {
        let entries = entries as u64;
        let mut spent = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        spent.allowance = spent
            .allowance
            .max(CALLS_PER_LISTED_ENTRY.saturating_mul(entries));
        spent.entries = spent.entries.max(entries);
    }

    /// Guest memory allowed beyond the fixed limit, for the directory listed.
    pub(crate) fn extra_guest_memory(&self) -> usize {
        let entries = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entries;
        usize::try_from(entries)
            .unwrap_or(usize::MAX)
            .saturating_mul(GUEST_MEMORY_PER_LISTED_ENTRY)
            .min(MAX_LISTING_MEMORY)
    }

    /// Guest computing time allowed beyond the fixed limit, for the directory listed.
    pub(crate) fn extra_guest_time(&self) -> Duration {
        let entries = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entries;
        GUEST_TIME_PER_LISTED_ENTRY.saturating_mul(u32::try_from(entries).unwrap_or(u32::MAX))
    }

    /// A snapshot of the live database.
    pub(crate) fn snapshot(&self) -> Result<(), Error> {
        self.spend(|spent| {
            spent.snapshots += 1;
            (spent.snapshots > MAX_SNAPSHOTS).then(|| format!("more than {MAX_SNAPSHOTS} snapshot"))
        })
    }

    /// A digest, check or restore of `name`.
    pub(crate) fn heavy(&self, kind: Heavy, name: &str) -> Result<(), Error> {
        self.spend(|spent| {
            let count = spent.heavy.entry((kind, name.to_owned())).or_default();
            *count += 1;
            (*count > MAX_HEAVY_PER_FILE)
                .then(|| format!("{kind:?} of {name:?} more than {MAX_HEAVY_PER_FILE} times"))
        })
    }

    /// A metadata write of `bytes`.
    pub(crate) fn write(&self, bytes: usize) -> Result<(), Error> {
        self.spend(|spent| {
            spent.written += bytes as u64;
            (spent.written > MAX_WRITTEN).then(|| format!("more than {MAX_WRITTEN} bytes written"))
        })
    }

    /// Why the budget was exceeded, if it was.
    pub(crate) fn exceeded(&self) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .exceeded
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_snapshot_and_two_hashes_of_a_file_per_operation() {
        let budget = Budget::default();
        assert!(budget.snapshot().is_ok());
        assert!(matches!(budget.snapshot(), Err(Error::NotPermitted(_))));
        assert!(budget.heavy(Heavy::Digests, "a.db").is_ok());
        assert!(budget.heavy(Heavy::Digests, "a.db").is_ok());
        assert!(budget.heavy(Heavy::Digests, "b.db").is_ok());
        assert!(budget.heavy(Heavy::Check, "a.db").is_ok());
        assert!(matches!(
            budget.heavy(Heavy::Digests, "a.db"),
            Err(Error::NotPermitted(_))
        ));
        assert!(
            budget
                .exceeded()
                .is_some_and(|why| why.contains("snapshot"))
        );
    }

    #[test]
    fn a_large_listing_raises_the_budget_once() {
        let budget = Budget::default();
        let entries = (MAX_CALLS / CALLS_PER_LISTED_ENTRY) as usize;
        budget.listed(entries);
        budget.listed(10);
        budget.listed(entries);
        assert_eq!(
            budget.extra_guest_time(),
            GUEST_TIME_PER_LISTED_ENTRY * entries as u32
        );
        assert_eq!(
            budget.extra_guest_memory(),
            (GUEST_MEMORY_PER_LISTED_ENTRY * entries).min(MAX_LISTING_MEMORY)
        );
        for _ in 0..2 * MAX_CALLS {
            assert!(budget.call().is_ok());
        }
        assert!(matches!(budget.call(), Err(Error::NotPermitted(_))));
    }

    #[test]
    fn endless_calls_run_out() {
        let budget = Budget::default();
        for _ in 0..MAX_CALLS {
            assert!(budget.call().is_ok());
        }
        assert!(matches!(budget.call(), Err(Error::NotPermitted(_))));
        assert!(budget.exceeded().is_some());
    }
}

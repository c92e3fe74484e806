//! Which backups to keep: the rules of restic's `forget`, decided on creation times alone.
//!
//! For each count rule (`last`, `hourly`, `daily`, `weekly`, `monthly`, `yearly`), the
//! backups subject to pruning are walked newest first and one is kept whenever its calendar
//! bucket (UTC hour, day, ISO week, month, year; for `last`, every backup is a bucket of its
//! own) differs from that of the last one this rule kept, until the rule has kept N: the
//! newest backup in each of the last N buckets that hold one. As restic does (since 0.16),
//! a rule that runs out of backups before it has kept N also keeps the oldest one, so that
//! the longest history survives while the rule is not yet full. `within D` keeps every
//! subject backup made strictly after the newest subject backup's time minus D. A backup is
//! kept when any rule keeps it.
//!
//! Whatever the rules say, the newest backup, the newest one whose last verification
//! passed, and (unless the rules include them) backups named by a person are kept.

use crate::clock::{Civil, iso_week};
use crate::litegraph::backup::types::{Datetime, Retention};

/// What the rules need to know about one backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Its recorded creation time.
    pub created: Datetime,
    /// Whether the rules apply to it: its name was chosen by the policy, or the rules
    /// include named backups.
    pub subject: bool,
    /// Whether its last verification passed.
    pub verified: bool,
}

/// The decision on one backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub keep: bool,
    /// Every reason it is kept, or why it goes.
    pub reasons: Vec<String>,
}

pub const NEWEST: &str = "newest";
pub const NEWEST_VERIFIED: &str = "newest verified";
pub const NAMED: &str = "named by a person";
pub const NO_RULE: &str = "no rule keeps it";
pub const WITHIN: &str = "within";

/// Whether the rules keep nothing at all: no rule, or only rules of 0 (as restic, a rule of
/// 0 is no rule). Such a prune would remove every backup the protections do not hold.
pub fn is_empty(rules: &Retention) -> bool {
    counts(rules).iter().all(|(_, n)| *n == 0) && rules.keep_within_seconds.unwrap_or(0) == 0
}

/// The calendar (or positional) buckets of the count rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Last,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Period {
    /// The bucket of the backup created at `seconds` that is `position` from the newest
    /// (0 = newest): a number that only grows with time, and its label for people.
    pub fn bucket(self, seconds: u64, position: usize) -> (i64, String) {
        let c = Civil::from_unix_seconds(seconds);
        let (year, month, day, hour) = (c.year, i64::from(c.month), i64::from(c.day), c.hour);
        match self {
            // Later backups have smaller positions: negate so that the key grows with time.
            Period::Last => (-(position as i64), format!("last {}", position + 1)),
            Period::Hourly => (
                ((year * 100 + month) * 100 + day) * 100 + i64::from(hour),
                format!("hourly {year:04}-{month:02}-{day:02} {hour:02}:00"),
            ),
            Period::Daily => (
                (year * 100 + month) * 100 + day,
                format!("daily {year:04}-{month:02}-{day:02}"),
            ),
            Period::Weekly => {
                let (year, week) = iso_week(seconds);
                (
                    year * 100 + i64::from(week),
                    format!("weekly {year:04}-W{week:02}"),
                )
            }
            Period::Monthly => (year * 100 + month, format!("monthly {year:04}-{month:02}")),
            Period::Yearly => (year, format!("yearly {year:04}")),
        }
    }
}

/// Each count rule with its N (0 when unset).
pub fn counts(rules: &Retention) -> [(Period, u32); 6] {
    [
        (Period::Last, rules.keep_last.unwrap_or(0)),
        (Period::Hourly, rules.keep_hourly.unwrap_or(0)),
        (Period::Daily, rules.keep_daily.unwrap_or(0)),
        (Period::Weekly, rules.keep_weekly.unwrap_or(0)),
        (Period::Monthly, rules.keep_monthly.unwrap_or(0)),
        (Period::Yearly, rules.keep_yearly.unwrap_or(0)),
    ]
}

/// Decides about every backup. `backups` come oldest first, as `list` orders them (by
/// creation time, then name); the verdicts come in the same order.
pub fn decide(backups: &[Candidate], rules: &Retention) -> Vec<Verdict> {
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); backups.len()];
    let newest_first: Vec<usize> = (0..backups.len())
        .rev()
        .filter(|&i| backups[i].subject)
        .collect();
    for (period, n) in counts(rules) {
        for (i, why) in walk(backups, &newest_first, period, n) {
            reasons[i].push(why);
        }
    }
    if let (Some(within), Some(&newest)) = (rules.keep_within_seconds, newest_first.first()) {
        let since = nanos(backups[newest].created).saturating_sub(u128::from(within) * NANOS);
        for &i in newest_first
            .iter()
            .filter(|&&i| nanos(backups[i].created) > since)
        {
            reasons[i].push(WITHIN.to_owned());
        }
    }
    protect(backups, &mut reasons);
    reasons
        .into_iter()
        .map(|reasons| match reasons.is_empty() {
            true => Verdict {
                keep: false,
                reasons: vec![NO_RULE.to_owned()],
            },
            false => Verdict {
                keep: true,
                reasons,
            },
        })
        .collect()
}

/// One count rule's walk, newest first: the backups it keeps, each with its reason.
fn walk(
    backups: &[Candidate],
    newest_first: &[usize],
    period: Period,
    n: u32,
) -> Vec<(usize, String)> {
    let mut kept = Vec::new();
    let mut left = n;
    let mut last_bucket = None;
    for (position, &i) in newest_first.iter().enumerate() {
        if left == 0 {
            break;
        }
        let (bucket, label) = period.bucket(backups[i].created.seconds, position);
        let oldest = position + 1 == newest_first.len();
        if last_bucket != Some(bucket) {
            kept.push((i, label));
        } else if oldest {
            kept.push((i, format!("oldest {label}")));
        } else {
            continue;
        }
        last_bucket = Some(bucket);
        left -= 1;
    }
    kept
}

/// What no rule can remove: the newest backup, the newest that passed verification, and
/// those named by a person that the rules do not apply to.
fn protect(backups: &[Candidate], reasons: &mut [Vec<String>]) {
    if let Some(reasons) = reasons.last_mut() {
        reasons.push(NEWEST.to_owned());
    }
    if let Some(i) = backups.iter().rposition(|b| b.verified) {
        reasons[i].push(NEWEST_VERIFIED.to_owned());
    }
    for (backup, reasons) in backups.iter().zip(reasons.iter_mut()) {
        if !backup.subject {
            reasons.push(NAMED.to_owned());
        }
    }
}

const NANOS: u128 = 1_000_000_000;

fn nanos(t: Datetime) -> u128 {
    u128::from(t.seconds) * NANOS + u128::from(t.nanoseconds)
}

#[cfg(test)]
mod tests;

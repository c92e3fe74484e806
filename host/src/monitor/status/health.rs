//! Whether the backups are healthy: the one set of rules that `GET /health` and the
//! `status` command both apply, to evidence each gathers with [`gather`] (the server from
//! its own schedule, the command from the schedule `serve` recorded).
//!
//! Degraded when an operator must act: the backup directory or the live database is gone,
//! the backups cannot be listed, the last scheduled run failed (and no backup was made
//! since), no backup was made for two of the schedule's runs, there is no backup at all
//! though the schedule ran, or the newest backup failed its last restore drill (it may not
//! restore). Without a schedule, the schedule rules do not apply.

use std::time::{Duration, SystemTime};

use crate::schedule::Schedule;
use crate::{BackupFile, Runtime};

/// What the rules look at.
#[derive(Debug, Clone)]
pub struct Evidence {
    pub now: SystemTime,
    /// What is wrong with the host's own places (the backup directory moved, the live
    /// database gone), one sentence each.
    pub places: Vec<String>,
    /// The backup schedule in force; `None`: backups are made only when asked.
    pub schedule: Option<Schedule>,
    /// The last scheduled run, if one ended.
    pub last_run: Option<LastRun>,
    /// Why the backups could not be listed; `None` when they were (or when the directory
    /// is gone, which `places` says).
    pub listing_error: Option<String>,
    /// The newest backup, if any.
    pub newest: Option<Newest>,
}

/// How the last scheduled run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastRun {
    pub ended: SystemTime,
    /// What went wrong; `None` when it succeeded.
    pub error: Option<String>,
}

/// The newest backup, with its last drill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Newest {
    pub filename: String,
    pub created: SystemTime,
    pub last_drill: Option<DrillVerdict>,
}

/// How a backup's last restore drill ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillVerdict {
    pub at: SystemTime,
    pub passed: bool,
    /// Why it failed, in short.
    pub summary: String,
}

/// What an operator must fix, one sentence each; empty when healthy.
pub fn problems(evidence: &Evidence) -> Vec<String> {
    let mut problems = evidence.places.clone();
    if let Some(why) = &evidence.listing_error {
        problems.push(format!("the backups cannot be listed: {why}"));
    }
    // A backup made since the failed run (by hand, or by a run since) answers it.
    if let Some(LastRun {
        ended,
        error: Some(why),
    }) = &evidence.last_run
        && evidence
            .newest
            .as_ref()
            .is_none_or(|newest| newest.created <= *ended)
    {
        problems.push(format!(
            "the last scheduled run failed ({}): {why}",
            when(*ended, evidence.now)
        ));
    }
    if let (Some(schedule), Some(newest)) = (&evidence.schedule, &evidence.newest)
        && overdue(schedule, newest.created, evidence.now)
    {
        problems.push(format!(
            "the newest backup, {}, is older than two periods of the schedule {schedule} (made \
             {}): scheduled backups are not being made",
            newest.filename,
            when(newest.created, evidence.now)
        ));
    }
    // Backups deleted (or never made) under a schedule that ran: nothing to restore.
    if let (Some(schedule), None, Some(run)) =
        (&evidence.schedule, &evidence.newest, &evidence.last_run)
        && evidence.listing_error.is_none()
        && evidence.places.is_empty()
    {
        problems.push(format!(
            "there is no backup at all, though the schedule {schedule} ran (its last run ended \
             {})",
            when(run.ended, evidence.now)
        ));
    }
    if let Some(Newest {
        filename,
        last_drill: Some(drill),
        ..
    }) = &evidence.newest
        && !drill.passed
    {
        let why = if drill.summary.is_empty() {
            String::new()
        } else {
            format!(": {}", drill.summary)
        };
        problems.push(format!(
            "the newest backup, {filename}, failed its last restore drill ({}){why}; it may not \
             restore",
            when(drill.at, evidence.now)
        ));
    }
    problems
}

/// Whether a backup made at `newest` is older than two of the schedule's periods: the
/// second run due after it has come and gone. For an interval, twice the interval; for a
/// cron expression, two of its occurrences (a weekday-only schedule's weekend is no gap).
pub fn overdue(schedule: &Schedule, newest: SystemTime, now: SystemTime) -> bool {
    schedule.next_after(schedule.next_after(newest)) < now
}

/// Gathers the evidence from `runtime`'s backup directory and live database: the places
/// checked, then the backups listed (a light guest call) and the newest one's last drill.
/// Also answers the listing, for a caller that shows it.
pub fn gather(
    runtime: &Runtime,
    schedule: Option<Schedule>,
    last_run: Option<LastRun>,
) -> (Evidence, Vec<BackupFile>) {
    let capabilities = runtime.capabilities();
    let in_place = capabilities.backups.check_in_place();
    let places = [in_place.clone(), capabilities.database.check_present()]
        .into_iter()
        .filter_map(Result::err)
        .collect();
    let mut evidence = Evidence {
        now: SystemTime::now(),
        places,
        schedule,
        last_run,
        listing_error: None,
        newest: None,
    };
    // A directory moved or deleted is said once, not again as a listing that failed.
    if in_place.is_err() {
        return (evidence, Vec::new());
    }
    let backups = match runtime.list() {
        Ok(backups) => backups,
        Err(e) => {
            evidence.listing_error = Some(e.to_string());
            return (evidence, Vec::new());
        }
    };
    evidence.newest = newest(&backups).map(|backup| Newest {
        filename: backup.filename.clone(),
        created: backup.created_utc.system_time(),
        last_drill: last_drill(runtime, &backup.filename),
    });
    (evidence, backups)
}

/// The newest backup of a listing: its last, since the policy lists oldest first (by
/// creation time, then name).
pub fn newest(backups: &[BackupFile]) -> Option<&BackupFile> {
    backups.last()
}

/// The last drill of `backup`, as its metadata records it (whoever drilled it); `None`
/// when it was never drilled, or its record cannot be read (which `verify` would tell).
fn last_drill(runtime: &Runtime, backup: &str) -> Option<DrillVerdict> {
    let drill = runtime.details(backup).ok()?.last_drill?;
    Some(DrillVerdict {
        at: drill.at.system_time(),
        passed: drill.passed,
        summary: drill.summary,
    })
}

/// `3h 12m ago (2026-12-01T03:00:00Z)`, or `in 5m` for a time to come.
pub fn when(t: SystemTime, now: SystemTime) -> String {
    let shown = humantime::format_rfc3339_seconds(t);
    match now.duration_since(t) {
        Ok(ago) => format!("{} ago, {shown}", humane(ago)),
        Err(ahead) => format!("in {}, {shown}", humane(ahead.duration())),
    }
}

/// A duration as a person reads it: its two largest units, `3h 12m`, `2d 4h`, `45s`.
pub fn humane(d: Duration) -> String {
    const UNITS: [(&str, u64); 4] = [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)];
    let mut left = d.as_secs();
    let mut parts = Vec::new();
    for (unit, seconds) in UNITS {
        let count = left / seconds;
        if count > 0 || (parts.is_empty() && unit == "s") {
            parts.push(format!("{count}{unit}"));
            left -= count * seconds;
        }
        if parts.len() == 2 || (!parts.is_empty() && count == 0) {
            break;
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    /// 2026-12-04T12:00:00Z, a Friday.
    fn friday_noon() -> SystemTime {
        humantime::parse_rfc3339("2026-12-04T12:00:00Z").expect("a time")
    }

    fn evidence(schedule: &str, newest_age: Duration) -> Evidence {
        let now = friday_noon();
        Evidence {
            now,
            places: Vec::new(),
            schedule: Some(schedule.parse().expect("a schedule")),
            last_run: None,
            listing_error: None,
            newest: Some(Newest {
                filename: "litegraph-backup-x.db".into(),
                created: now - newest_age,
                last_drill: None,
            }),
        }
    }

    #[test]
    fn an_interval_schedule_degrades_after_twice_its_period() {
        assert_eq!(problems(&evidence("6h", 11 * HOUR)), Vec::<String>::new());
        let late = problems(&evidence("6h", 13 * HOUR));
        assert_eq!(late.len(), 1, "{late:?}");
        assert!(
            late[0].contains("litegraph-backup-x.db")
                && late[0].contains("older than two periods of the schedule 6h")
                && late[0].contains("13h ago"),
            "{late:?}"
        );
    }

    #[test]
    fn a_cron_schedule_degrades_after_two_occurrences_pass() {
        // Daily at 03:00: a backup of yesterday 03:00 is fine until tomorrow 03:00.
        assert!(problems(&evidence("0 3 * * *", 33 * HOUR)).is_empty());
        assert_eq!(problems(&evidence("0 3 * * *", 58 * HOUR)).len(), 1);
    }

    #[test]
    fn a_weekday_schedule_is_not_degraded_over_the_weekend() {
        // Made Friday 03:00; the runs due after it are Monday and Tuesday 03:00.
        let schedule: Schedule = "0 3 * * 1-5".parse().expect("a schedule");
        let made = friday_noon() - 9 * HOUR;
        let sunday = friday_noon() + 48 * HOUR;
        let tuesday_noon = friday_noon() + 96 * HOUR;
        assert!(!overdue(&schedule, made, sunday));
        assert!(overdue(&schedule, made, tuesday_noon));
    }

    #[test]
    fn without_a_schedule_age_is_no_problem() {
        let mut old = evidence("1h", 1000 * HOUR);
        old.schedule = None;
        assert!(problems(&old).is_empty());
    }

    #[test]
    fn a_failed_scheduled_run_is_named_with_its_error() {
        let mut failed = evidence("2s", Duration::from_secs(4));
        failed.last_run = Some(LastRun {
            ended: failed.now - Duration::from_secs(3),
            error: Some("no backup was made: the live database x.db does not exist".into()),
        });
        assert_eq!(
            problems(&failed),
            [
                "the last scheduled run failed (3s ago, 2026-12-04T11:59:57Z): no backup was \
              made: the live database x.db does not exist"
            ]
        );
        failed.last_run = Some(LastRun {
            ended: failed.now,
            error: None,
        });
        assert!(problems(&failed).is_empty());
    }

    // Found by the operator review: a stopped server's failed run kept `status` degraded
    // after backups were made by hand.
    #[test]
    fn a_backup_made_after_a_failed_run_answers_it() {
        let mut failed = evidence("1h", Duration::from_secs(60));
        failed.last_run = Some(LastRun {
            ended: failed.now - Duration::from_secs(120),
            error: Some("busy".into()),
        });
        assert!(problems(&failed).is_empty(), "{:?}", problems(&failed));
    }

    // Found by the operator review: with every backup deleted, the age rule had no newest
    // backup to look at, and a scheduled server said Healthy.
    #[test]
    fn no_backup_at_all_under_a_schedule_that_ran_degrades() {
        let mut gone = evidence("1h", HOUR);
        gone.newest = None;
        assert!(problems(&gone).is_empty(), "no run yet: a fresh install");
        gone.last_run = Some(LastRun {
            ended: gone.now - Duration::from_secs(60),
            error: None,
        });
        let found = problems(&gone);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("there is no backup at all"),
            "{found:?}"
        );
        gone.schedule = None;
        assert!(
            problems(&gone).is_empty(),
            "without a schedule, none is asked for"
        );
    }

    #[test]
    fn a_failed_drill_of_the_newest_backup_degrades() {
        let mut drilled = evidence("1d", HOUR);
        let newest = drilled.newest.as_mut().expect("newest");
        newest.last_drill = Some(DrillVerdict {
            at: friday_noon() - HOUR,
            passed: false,
            summary: "integrity_check: page 3 is never used".into(),
        });
        let found = problems(&drilled);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].contains("failed its last restore drill")
                && found[0].contains("page 3 is never used"),
            "{found:?}"
        );
    }

    #[test]
    fn places_and_listing_come_first() {
        let mut broken = evidence("1h", HOUR * 5);
        broken.places = vec!["the live database x.db does not exist".into()];
        broken.listing_error = Some("permission denied".into());
        let found = problems(&broken);
        assert_eq!(found[0], "the live database x.db does not exist");
        assert_eq!(found[1], "the backups cannot be listed: permission denied");
        assert_eq!(found.len(), 3);
    }

    #[test]
    fn durations_read_as_their_two_largest_units() {
        for (seconds, shown) in [
            (0, "0s"),
            (45, "45s"),
            (60, "1m"),
            (3 * 3600 + 12 * 60 + 5, "3h 12m"),
            (3600 + 5, "1h"),
            (2 * 86_400 + 4 * 3600, "2d 4h"),
            (86_400 + 59, "1d"),
        ] {
            assert_eq!(humane(Duration::from_secs(seconds)), shown, "{seconds}");
        }
    }
}

//! Prune through the service, on the in-memory host and its clock.

use std::collections::BTreeSet;

use super::super::fake::FakeHost;
use super::*;
use crate::clock::days_from_civil;
use crate::litegraph::backup::types::BackupFile;
use crate::metadata::{Metadata, Origin, sidecar_name};
use crate::retention::{NAMED, NEWEST, NEWEST_VERIFIED, NO_RULE};

const DATABASE: &[u8] = b"SQLite format 3\0 pages";

fn rules() -> Retention {
    Retention {
        keep_last: None,
        keep_hourly: None,
        keep_daily: None,
        keep_weekly: None,
        keep_monthly: None,
        keep_yearly: None,
        keep_within_seconds: None,
        include_named: false,
    }
}

fn keep_last(n: u32) -> Retention {
    Retention {
        keep_last: Some(n),
        ..rules()
    }
}

/// Seconds since the epoch of a UTC date and hour.
fn utc(year: i64, month: u32, day: u32, hour: u64) -> u64 {
    days_from_civil(year, month, day) as u64 * 86_400 + hour * 3_600
}

/// Makes a backup at `seconds` on the fake clock: a default name when `name` is `None`.
fn backup_at(
    service: &Service<&FakeHost>,
    host: &FakeHost,
    seconds: u64,
    name: Option<&str>,
) -> String {
    host.clock.set(seconds);
    service.create(name.map(str::to_owned)).unwrap().filename
}

fn backups(host: &FakeHost) -> BTreeSet<String> {
    host.names()
        .into_iter()
        .filter(|name| !name.starts_with('.'))
        .collect()
}

fn names_where(decisions: &[PruneDecision], keep: bool) -> Vec<String> {
    decisions
        .iter()
        .filter(|d| d.keep == keep)
        .map(|d| d.backup.filename.clone())
        .collect()
}

// The check: a year of hourly backups (the scheduled way: create with the default
// name, then verify) through keep-daily 7, keep-weekly 4, keep-monthly 12.
//
// 8,760 backups, from 2025-01-01 00:00 to 2025-12-31 23:00 UTC, every hour on the hour.
// Each rule keeps the newest backup (the 23:00 one, or the last hour of the period) in each
// of its latest N buckets:
// - daily 7: 23:00 on 2025-12-25, 26, 27, 28, 29, 30, 31;
// - weekly 4: 2025-12-31 is a Wednesday whose ISO week is 2026-W01 (its Thursday is
//   2026-01-01), so the buckets are 2026-W01 (newest: Wed 12-31 23:00), 2025-W52 (Sun 12-28
//   23:00), W51 (Sun 12-21 23:00), W50 (Sun 12-14 23:00);
// - monthly 12: the last hour of each month of 2025, Jan 31 to Dec 31. The rule fills its
//   12 buckets with January's newest, so restic's "also keep the oldest" does not apply and
//   2025-01-01 00:00 goes.
// Union: the 7 daily, weekly adds 12-21 and 12-14, monthly adds Jan..Nov: 20 backups. The
// newest (12-31 23:00) is also the newest verified, and already kept.
#[test]
fn a_year_of_hourly_backups_through_daily_7_weekly_4_monthly_12() {
    let host = FakeHost::with_database(DATABASE);
    let service = Service::new(&host);
    let start = utc(2025, 1, 1, 0);
    for hour in 0..365 * 24 {
        let name = backup_at(&service, &host, start + hour * 3_600, None);
        assert!(service.verify(&name, false).unwrap().problems.is_empty());
    }
    let at_23 = |month: u32, day: u32| format!("litegraph-backup-2025{month:02}{day:02}-230000.db");
    let mut expected: BTreeSet<String> = (25..=31).map(|day| at_23(12, day)).collect();
    expected.extend([at_23(12, 21), at_23(12, 14)]);
    let month_ends = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30];
    expected.extend(
        (1..=11)
            .zip(month_ends)
            .map(|(month, day)| at_23(month, day)),
    );
    assert_eq!(expected.len(), 20);
    let rules = Retention {
        keep_daily: Some(7),
        keep_weekly: Some(4),
        keep_monthly: Some(12),
        ..rules()
    };

    let dry = service.prune(&rules, true).unwrap();
    assert_eq!(dry.len(), 8_760);
    assert_eq!(
        names_where(&dry, true).into_iter().collect::<BTreeSet<_>>(),
        expected
    );
    assert_eq!(backups(&host).len(), 8_760, "a dry run removes nothing");

    let done = service.prune(&rules, false).unwrap();
    assert_eq!(done, dry, "the run decides as the dry run did");
    assert_eq!(backups(&host), expected);
    let newest = done.last().unwrap();
    assert_eq!(newest.backup.filename, at_23(12, 31));
    assert_eq!(
        newest.reasons,
        [
            "daily 2025-12-31",
            "weekly 2026-W01",
            "monthly 2025-12",
            NEWEST,
            NEWEST_VERIFIED
        ]
    );
    let first = &done[0];
    assert!(!first.keep);
    assert_eq!(first.reasons, [NO_RULE]);
    // Every sidecar of a removed backup went with it.
    assert_eq!(host.names().len(), 2 * expected.len());
}

#[test]
fn a_dry_run_removes_nothing_and_reports_what_a_run_would() {
    let host = FakeHost::with_database(DATABASE);
    let service = Service::new(&host);
    for hour in 0..4 {
        backup_at(&service, &host, utc(2025, 5, 1, hour), None);
    }
    let before = host.names();
    let _ = host.take_calls();
    let decisions = service.prune(&keep_last(1), true).unwrap();
    assert_eq!(host.names(), before);
    assert!(
        !host
            .take_calls()
            .iter()
            .any(|call| call.starts_with("remove"))
    );
    assert_eq!(names_where(&decisions, false).len(), 3);
    assert!(decisions.iter().all(|d| d.removal_failed.is_none()));
}

#[test]
fn decisions_come_oldest_first_with_every_backup() {
    let host = FakeHost::with_database(DATABASE);
    let service = Service::new(&host);
    let named = backup_at(&service, &host, utc(2025, 5, 1, 1), Some("zz-first.db"));
    let later = backup_at(&service, &host, utc(2025, 5, 1, 2), None);
    let decisions = service.prune(&keep_last(5), true).unwrap();
    let listed: Vec<BackupFile> = service.list().unwrap();
    assert_eq!(
        decisions.iter().map(|d| &d.backup).collect::<Vec<_>>(),
        listed.iter().collect::<Vec<_>>()
    );
    assert_eq!(listed[0].filename, named);
    assert_eq!(listed[1].filename, later);
}

#[test]
fn named_backups_are_kept_unless_the_rules_include_them() {
    let host = FakeHost::with_database(DATABASE);
    let service = Service::new(&host);
    let nightly = backup_at(
        &service,
        &host,
        utc(2025, 5, 1, 1),
        Some("before-upgrade.db"),
    );
    for hour in 2..5 {
        backup_at(&service, &host, utc(2025, 5, 1, hour), None);
    }
    let decisions = service.prune(&keep_last(1), false).unwrap();
    assert_eq!(decisions[0].backup.filename, nightly);
    assert_eq!(decisions[0].reasons, [NAMED]);
    assert_eq!(backups(&host).len(), 2);
    assert!(backups(&host).contains(&nightly));
    let including = Retention {
        include_named: true,
        ..keep_last(1)
    };
    service.prune(&including, false).unwrap();
    assert!(!backups(&host).contains(&nightly));
    assert_eq!(backups(&host).len(), 1);
}

#[test]
fn safety_backups_and_hand_copied_default_names_are_subject_to_pruning() {
    let host = FakeHost::with_database(DATABASE);
    let service = Service::new(&host);
    let original = backup_at(&service, &host, utc(2025, 5, 1, 1), Some("original.db"));
    host.clock.set(utc(2025, 5, 1, 2));
    let safety = service.restore(&original).unwrap().safety_backup.filename;
    // A file copied in by hand under a default name has no record of its origin.
    host.clock.set(utc(2025, 5, 1, 3));
    host.put("litegraph-backup-20250501-030000.db", DATABASE);
    backup_at(&service, &host, utc(2025, 5, 1, 4), None);
    let decisions = service.prune(&keep_last(1), false).unwrap();
    let removed = names_where(&decisions, false);
    assert_eq!(
        removed,
        [safety, "litegraph-backup-20250501-030000.db".to_owned()]
    );
}

#[test]
fn the_newest_backup_that_passed_verification_is_kept() {
    let host = FakeHost::with_database(DATABASE);
    let service = Service::new(&host);
    let sound = backup_at(&service, &host, utc(2025, 5, 1, 1), None);
    assert!(service.verify(&sound, false).unwrap().problems.is_empty());
    // A later backup that fails verification does not take its place.
    let broken = backup_at(&service, &host, utc(2025, 5, 1, 2), None);
    host.files.borrow_mut().get_mut(&broken).unwrap().bytes = b"garbage".to_vec();
    assert!(!service.verify(&broken, false).unwrap().problems.is_empty());
    let newest = backup_at(&service, &host, utc(2025, 5, 1, 3), None);
    let decisions = service.prune(&keep_last(1), false).unwrap();
    assert_eq!(decisions[0].reasons, [NEWEST_VERIFIED]);
    assert_eq!(decisions[1].reasons, [NO_RULE]);
    assert_eq!(decisions[2].reasons, ["last 1", NEWEST]);
    assert_eq!(backups(&host), BTreeSet::from([sound, newest]));
}

#[test]
fn verify_records_its_outcome_and_time() {
    let host = FakeHost::with_database(DATABASE);
    let service = Service::new(&host);
    let name = backup_at(&service, &host, utc(2025, 5, 1, 1), None);
    host.clock.set(utc(2025, 5, 2, 0));
    service.verify(&name, true).unwrap();
    let recorded = |host: &FakeHost| {
        let bytes = host.files.borrow()[&sidecar_name(&name)].bytes.clone();
        Metadata::decode(&bytes).unwrap()
    };
    let metadata = recorded(&host);
    assert_eq!(metadata.origin, Origin::DefaultName);
    let outcome = metadata.last_verification.unwrap();
    assert!(outcome.passed);
    assert_eq!(outcome.at.seconds, utc(2025, 5, 2, 0));
    host.files.borrow_mut().get_mut(&name).unwrap().bytes = b"garbage".to_vec();
    service.verify(&name, false).unwrap();
    assert!(!recorded(&host).last_verification.unwrap().passed);
}

#[test]
fn a_failed_removal_is_reported_and_the_others_go_on() {
    let host = FakeHost::with_database(DATABASE);
    let service = Service::new(&host);
    let names: Vec<String> = (0..4)
        .map(|hour| backup_at(&service, &host, utc(2025, 5, 1, hour), None))
        .collect();
    host.unremovable.borrow_mut().insert(names[1].clone());
    let decisions = service.prune(&keep_last(1), false).unwrap();
    assert_eq!(
        decisions[1].removal_failed.as_deref(),
        Some(format!("{}: permission denied", names[1]).as_str())
    );
    assert!(!decisions[1].keep);
    for i in [0, 2] {
        assert_eq!(decisions[i].removal_failed, None);
    }
    assert_eq!(
        backups(&host),
        BTreeSet::from([names[1].clone(), names[3].clone()])
    );
}

#[test]
fn a_prune_without_any_rule_is_refused_before_looking() {
    let host = FakeHost::with_database(DATABASE);
    let service = Service::new(&host);
    backup_at(&service, &host, utc(2025, 5, 1, 1), None);
    let _ = host.take_calls();
    for rules in [
        rules(),
        keep_last(0),
        Retention {
            include_named: true,
            ..rules()
        },
    ] {
        for dry_run in [true, false] {
            assert!(matches!(
                service.prune(&rules, dry_run),
                Err(Error::InvalidArgument(_))
            ));
        }
    }
    assert!(host.take_calls().is_empty());
    assert_eq!(backups(&host).len(), 1);
}

// A restore's own verification wrote the backup's record before the restore had the
// operation lock, so a restore that waited for another changed the directory meanwhile.
#[test]
fn a_restore_s_verification_is_not_recorded() {
    let host = FakeHost::with_database(DATABASE);
    let service = Service::new(&host);
    let name = backup_at(&service, &host, utc(2025, 5, 1, 1), None);
    let sidecar = sidecar_name(&name);
    let before = host.files.borrow()[&sidecar].bytes.clone();
    service.restore(&name).unwrap();
    assert_eq!(host.files.borrow()[&sidecar].bytes, before);
}

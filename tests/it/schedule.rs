//! `serve --schedule`, the real binary on real files: scheduled runs (create, verify,
//! prune), the catch-up run after downtime, a kill -9 mid-run, SIGTERM during a run, a busy
//! database. Every wait polls a condition with an upper bound.

use std::fs::File;
use std::time::{Duration, Instant, SystemTime};

use litegraph_backup_tests::{create_litegraph_database_of_size, integrity};
use serde_json::Value;

use crate::client::{ADMIN, request};
use crate::serve::Served;
use crate::support::Deployment;

/// What the longest wait for a scheduled run may take on a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(120);

/// The backups the log says the schedule made and verified, in the order made.
fn made(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|line| line.split("scheduled backup ").nth(1))
        .filter_map(|rest| rest.split_once(" made and verified"))
        .map(|(name, _)| name.to_owned())
        .collect()
}

/// The names of the backups, oldest first.
fn listed(deployment: &Deployment) -> Vec<String> {
    deployment
        .runtime()
        .list()
        .expect("list")
        .into_iter()
        .map(|b| b.filename)
        .collect()
}

/// The host's temporaries in the backup directory, and SQLite's journals beside them (not
/// the backups' `.meta` records).
fn temporaries(deployment: &Deployment) -> Vec<String> {
    deployment
        .backup_dir_entries()
        .into_iter()
        .filter(|name| {
            name.starts_with(".lgb-")
                && (name.ends_with(".tmp") || name.ends_with(".part") || name.contains(".tmp-"))
        })
        .collect()
}

/// Waits until a snapshot is being written: its `.lgb-*.tmp` is in the backup directory.
fn wait_for_snapshot(deployment: &Deployment) {
    let began = Instant::now();
    while !temporaries(deployment)
        .iter()
        .any(|name| name.ends_with(".tmp"))
    {
        assert!(began.elapsed() < PATIENCE, "no snapshot began");
        std::thread::yield_now();
    }
}

fn verify_passes(deployment: &Deployment, name: &str) {
    let output = deployment.run(&["verify", name]);
    assert!(
        output.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&output.stdout)
    );
}

fn schedule_status(served: &Served) -> Value {
    let answer = request(served.addr, "GET", "/v1.0/backup-schedule", &[ADMIN], b"");
    assert_eq!(answer.status, 200, "{}", answer.text());
    serde_json::from_slice(&answer.body).expect("JSON")
}

#[test]
fn a_schedule_with_keep_last_3_holds_the_newest_three_and_the_named_ones_each_verified() {
    let deployment = Deployment::with_nodes(200);
    assert!(deployment.run(&["create", "by-hand.db"]).status.success());
    let served = Served::start(&deployment, &["--schedule", "2s", "--keep-last", "3"]);
    served.wait_for_log("five scheduled runs", PATIENCE, |log| made(log).len() >= 5);

    let status = schedule_status(&served);
    assert_eq!(status["Schedule"], "2s");
    assert_eq!(status["Retention"]["KeepLast"], 3);
    assert_eq!(status["LastRun"]["Outcome"], "Succeeded", "{status}");
    assert_eq!(status["LastRun"]["Verified"], true);
    assert!(
        status["NextRunUtc"].is_string() || status["RunningSinceUtc"].is_string(),
        "{status}"
    );

    let (code, log) = served.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(!log.contains("scheduled run failed"), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("next scheduled backup at 20") && l.ends_with('Z')),
        "the log says when the next run is due, in UTC: {log}"
    );
    let made = made(&log);
    let newest_three = made[made.len() - 3..].to_vec();
    let backups = listed(&deployment);
    let scheduled: Vec<String> = backups
        .iter()
        .filter(|name| name.starts_with("litegraph-backup-"))
        .cloned()
        .collect();
    assert_eq!(scheduled, newest_three, "made: {made:?}\n{log}");
    assert!(backups.contains(&"by-hand.db".to_owned()), "{backups:?}");
    assert_eq!(backups.len(), 4, "{backups:?}");
    for name in &backups {
        verify_passes(&deployment, name);
    }
}

// A server killed (kill -9) in the middle of a scheduled run: on restart, one catch-up run
// at once (a run fell due while it was down), and the dead run's temporaries swept.
#[test]
fn killed_mid_run_and_restarted_it_catches_up_once_and_leaves_no_temporary() {
    const PERIOD: Duration = Duration::from_secs(3);
    let deployment = Deployment::without_database();
    create_litegraph_database_of_size(&deployment.database, 64 << 20).expect("a database");
    let served = Served::start(&deployment, &["--schedule", "3s"]);
    let log = served.wait_for_log("the first run", PATIENCE, |log| !made(log).is_empty());
    assert!(
        log.contains("catch-up run now: no scheduled backup exists yet"),
        "{log}"
    );
    let first = made(&log)[0].clone();
    wait_for_snapshot(&deployment);
    let log = served.kill();
    assert_eq!(
        made(&log),
        std::slice::from_ref(&first),
        "killed during the second run"
    );
    let left = temporaries(&deployment);
    assert!(!left.is_empty(), "the killed run left its temporary");

    // Temporaries younger than 10 s may belong to a live process that has not locked them
    // yet: make the dead run's old enough to be swept rather than wait.
    for name in &left {
        let aged = SystemTime::now() - Duration::from_secs(60);
        File::options()
            .write(true)
            .open(deployment.backup(name))
            .and_then(|file| file.set_modified(aged))
            .expect("age a temporary");
    }
    // The first backup must be older than one period at restart for a run to be missed.
    let made_at = deployment
        .runtime()
        .read(&first)
        .expect("the first backup")
        .created_utc
        .system_time();
    let began = Instant::now();
    while SystemTime::now() < made_at + PERIOD {
        assert!(began.elapsed() < PATIENCE, "the clock stands still");
        std::thread::sleep(Duration::from_millis(20));
    }

    let served = Served::start(&deployment, &["--schedule", "3s"]);
    served.wait_for_log("the catch-up run", PATIENCE, |log| !made(log).is_empty());
    let (code, log) = served.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(log.matches("catch-up run now").count(), 1, "{log}");
    assert!(
        log.contains(&format!(
            "the newest scheduled backup, {first}, was made at"
        )),
        "{log}"
    );
    assert!(
        log.contains("temporary files left by an interrupted run"),
        "{log}"
    );
    assert_eq!(temporaries(&deployment), Vec::<String>::new(), "{log}");
    let backups = listed(&deployment);
    assert_eq!(backups[0], first);
    assert!(backups.len() >= 2, "{backups:?}");
    for name in &backups {
        assert_eq!(
            integrity(&deployment.backup(name), true).expect("check"),
            "ok"
        );
    }
}

#[test]
fn sigterm_during_a_scheduled_run_lets_it_finish_and_starts_no_other() {
    let deployment = Deployment::without_database();
    create_litegraph_database_of_size(&deployment.database, 64 << 20).expect("a database");
    let served = Served::start(&deployment, &["--schedule", "1h"]);
    wait_for_snapshot(&deployment);
    let (code, log) = served.terminate();
    assert_eq!(code, Some(0), "{log}");
    let signalled = log.find("SIGTERM received").expect("the signal is logged");
    let finished = log.find(" made and verified").expect("the run finished");
    assert!(
        signalled < finished,
        "the run finished after the signal: {log}"
    );
    let made = made(&log);
    assert_eq!(made.len(), 1, "{log}");
    assert_eq!(listed(&deployment), made);
    assert_eq!(
        integrity(&deployment.backup(&made[0]), true).expect("check"),
        "ok"
    );
    assert_eq!(temporaries(&deployment), Vec::<String>::new());
}

#[test]
fn a_busy_database_is_retried_with_backoff_then_the_failure_is_recorded() {
    let deployment = Deployment::with_nodes(20);
    // Another process's create holds the operation lock for as long as this test wants.
    let lock = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(deployment.backup(".lgb-operation.lock"))
        .expect("the operation lock file");
    lock.lock().expect("hold the operation lock");
    let served = Served::start(
        &deployment,
        &["--schedule", "8s", "--busy-timeout", "100ms"],
    );
    let log = served.wait_for_log("the failed run", PATIENCE, |log| {
        log.contains("scheduled run failed")
    });
    let retries: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("the database is busy; the scheduled run tries again in"))
        .collect();
    assert!(retries.len() >= 2, "{log}");
    assert!(
        retries[0].ends_with("in 1s") && retries[1].ends_with("in 2s"),
        "{log}"
    );
    let status = schedule_status(&served);
    assert_eq!(status["LastRun"]["Outcome"], "Failed", "{status}");
    assert_eq!(status["LastRun"]["Backup"], Value::Null);
    assert!(
        status["LastRun"]["Error"]
            .as_str()
            .is_some_and(|e| e.contains("no backup was made") && e.contains("locked")),
        "{status}"
    );

    // Once the lock is free, the next run succeeds.
    lock.unlock().expect("release the operation lock");
    served.wait_for_log("a run after the lock is free", PATIENCE, |log| {
        !made(log).is_empty()
    });
    assert_eq!(schedule_status(&served)["LastRun"]["Outcome"], "Succeeded");
}

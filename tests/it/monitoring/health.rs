//! `/health` that means something, seen from outside: a real `serve --schedule`, its
//! database removed under it; `/health` turns Degraded naming the failed run within two
//! periods, and `status` in another process says the same from the status record.

use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::client::{ADMIN, request};
use crate::serve::Served;
use crate::support::{Deployment, stdout};

/// The longest any wait here may take on a loaded 2-core machine.
pub(super) const PATIENCE: Duration = Duration::from_secs(120);

/// Polls `done` until it holds, for at most `limit`; the last answer.
pub(super) fn wait_until<T>(what: &str, limit: Duration, mut done: impl FnMut() -> Option<T>) -> T {
    let began = Instant::now();
    loop {
        if let Some(found) = done() {
            return found;
        }
        assert!(began.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `GET /health`: the status and the JSON body.
pub(super) fn health(served: &Served) -> (u16, Value) {
    let answer = request(served.addr, "GET", "/health", &[], b"");
    let body = serde_json::from_slice(&answer.body).expect("JSON");
    (answer.status, body)
}

/// `GET /v1.0/backup-schedule`.
pub(super) fn schedule(served: &Served) -> Value {
    let answer = request(served.addr, "GET", "/v1.0/backup-schedule", &[ADMIN], b"");
    assert_eq!(answer.status, 200, "{}", answer.text());
    serde_json::from_slice(&answer.body).expect("JSON")
}

/// How many scheduled runs ended `outcome` (`Succeeded`, `Failed`) since start-up.
pub(super) fn runs(served: &Served, outcome: &str) -> u64 {
    schedule(served)["Runs"][outcome]
        .as_u64()
        .expect("a count of runs")
}

/// Removes the live database and its WAL companions.
pub(super) fn remove_database(deployment: &Deployment) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", deployment.database.display()));
    }
}

#[test]
fn health_turns_degraded_naming_the_failed_run_within_two_periods_of_the_database_going() {
    const PERIOD: Duration = Duration::from_secs(3);
    let deployment = Deployment::with_nodes(20);
    let served = Served::start(&deployment, &["--schedule", "3s"]);
    wait_until("a successful run", PATIENCE, || {
        (runs(&served, "Succeeded") >= 1).then_some(())
    });
    let (status, body) = health(&served);
    assert_eq!(status, 200, "{body}\n{}", served.log());
    assert_eq!(body, serde_json::json!({ "Status": "Healthy" }));

    remove_database(&deployment);
    let removed = Instant::now();
    let problems = wait_until("a problem naming the failed run", PATIENCE, || {
        let (status, body) = health(&served);
        let problems = body["Problems"].as_array().cloned().unwrap_or_default();
        let named = problems.iter().any(|p| {
            p.as_str()
                .is_some_and(|p| p.starts_with("the last scheduled run failed"))
        });
        named.then(|| {
            assert_eq!(status, 503, "{body}");
            assert_eq!(body["Status"], "Degraded");
            problems
        })
    });
    let took = removed.elapsed();
    assert!(
        took <= 2 * PERIOD,
        "the failed run showed after {took:?}, more than two periods"
    );
    let failed = problems
        .iter()
        .filter_map(Value::as_str)
        .find(|p| p.starts_with("the last scheduled run failed"))
        .expect("named");
    let shown = deployment.database.display().to_string();
    assert!(
        failed.contains("no backup was made") && failed.contains(&shown),
        "{failed}"
    );

    // Another process, while the server runs: the same verdict from the status record.
    let status = deployment.run(&["status"]);
    assert_eq!(status.status.code(), Some(4), "{}", stdout(&status));
    let text = stdout(&status);
    assert!(text.contains("Degraded"), "{text}");
    assert!(text.contains("the last scheduled run failed"), "{text}");
    assert!(text.contains("3s (as recorded by serve"), "{text}");

    let (code, log) = served.terminate();
    assert_eq!(code, Some(0), "{log}");

    // After it stopped: the record says so, and still names the failed run.
    let status = deployment.run(&["--json", "status"]);
    assert_eq!(status.status.code(), Some(4));
    let json: Value = serde_json::from_slice(&status.stdout).expect("JSON");
    assert_eq!(json["Status"], "Degraded");
    let schedule = &json["Schedule"];
    assert_eq!(schedule["Schedule"], "3s");
    assert!(schedule["StoppedUtc"].is_string(), "{schedule}");
    assert_eq!(schedule["NextRunUtc"], Value::Null);
    let error = schedule["LastRun"]["Error"].as_str().expect("an error");
    assert!(error.contains("no backup was made"), "{error}");
}

#[test]
fn health_stays_healthy_and_exact_while_scheduled_runs_succeed() {
    let deployment = Deployment::with_nodes(20);
    let served = Served::start(&deployment, &["--schedule", "1s"]);
    wait_until("three successful runs", PATIENCE, || {
        (runs(&served, "Succeeded") >= 3).then_some(())
    });
    let (status, body) = health(&served);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, serde_json::json!({ "Status": "Healthy" }));
    assert_eq!(runs(&served, "Failed"), 0);
    let (code, log) = served.terminate();
    assert_eq!(code, Some(0), "{log}");
}

#[test]
fn a_server_without_a_schedule_applies_no_schedule_rule() {
    let deployment = Deployment::with_nodes(20);
    // A schedule recorded by an earlier server that has long stopped...
    let earlier = Served::start(&deployment, &["--schedule", "1s"]);
    wait_until("a run", PATIENCE, || {
        (runs(&earlier, "Succeeded") >= 1).then_some(())
    });
    let (code, _) = earlier.terminate();
    assert_eq!(code, Some(0));
    // ...and the backup it made, older than two of its periods by now.
    let newest = deployment
        .runtime()
        .list()
        .expect("list")
        .into_iter()
        .map(|b| b.created_utc.system_time())
        .max()
        .expect("a backup");
    wait_until("two periods to pass", PATIENCE, || {
        (SystemTime::now() > newest + Duration::from_secs(3)).then_some(())
    });
    let status = deployment.run(&["status"]);
    assert_eq!(status.status.code(), Some(4), "{}", stdout(&status));
    assert!(
        stdout(&status).contains("older than two periods of the schedule 1s"),
        "{}",
        stdout(&status)
    );

    // A server started without one records that: neither it nor `status` applies the rule.
    let served = Served::start(&deployment, &[]);
    let (status, body) = health(&served);
    assert_eq!(status, 200, "{body}");
    let status = deployment.run(&["status"]);
    assert_eq!(status.status.code(), Some(0), "{}", stdout(&status));
    assert!(stdout(&status).contains("none (as recorded by serve"));
    let (code, log) = served.terminate();
    assert_eq!(code, Some(0), "{log}");
}

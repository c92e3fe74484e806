//! `litegraph-backup status`: what each CLI operation left in the status record, read by
//! another process while nothing runs; the newest backup, its age, count and size; exit 0
//! healthy, 4 degraded, as `/health` would say.

use rusqlite::Connection;
use serde_json::Value;

use super::health::remove_database;
use crate::support::{Deployment, stderr, stdout};

fn status_json(deployment: &Deployment) -> (Option<i32>, Value) {
    let output = deployment.run(&["--json", "status"]);
    let json = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&output), stderr(&output)));
    (output.status.code(), json)
}

#[test]
fn status_of_an_empty_backup_directory_is_healthy_with_nothing_recorded() {
    let deployment = Deployment::with_nodes(10);
    let output = deployment.run(&["status"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.starts_with("Status:       Healthy\n"), "{text}");
    assert!(text.contains("Backups:      none in "), "{text}");
    assert!(text.contains("Last runs:    none recorded"), "{text}");

    let (code, json) = status_json(&deployment);
    assert_eq!(code, Some(0));
    assert_eq!(json["Status"], "Healthy");
    assert_eq!(json["Problems"], serde_json::json!([]));
    assert_eq!(json["Backups"]["Count"], 0);
    assert_eq!(json["Backups"]["Newest"], Value::Null);
    assert_eq!(json["Schedule"], Value::Null);
    assert_eq!(json["Operations"], serde_json::json!({}));
}

#[test]
fn status_tells_the_last_success_and_failure_of_each_cli_operation() {
    let deployment = Deployment::with_nodes(100);
    assert!(deployment.run(&["create", "a.db"]).status.success());
    let made = std::fs::metadata(deployment.backup("a.db"))
        .expect("a.db")
        .len();

    // A create that fails: the database locked past the busy timeout.
    let holder = Connection::open(&deployment.database).expect("open");
    holder
        .execute_batch("PRAGMA journal_mode = DELETE; BEGIN EXCLUSIVE")
        .expect("hold the lock");
    let locked = deployment.run(&["--busy-timeout-ms", "200", "create", "b.db"]);
    assert_eq!(locked.status.code(), Some(5), "{}", stderr(&locked));
    holder.execute_batch("COMMIT").expect("release");
    drop(holder);
    // A refusal (no such backup) is the caller's mistake: never recorded.
    let refused = deployment.run(&["restore", "nosuch.db"]);
    assert_eq!(refused.status.code(), Some(3), "{}", stderr(&refused));
    assert!(
        deployment
            .run(&["prune", "--keep-last", "1"])
            .status
            .success()
    );

    let output = deployment.run(&["status"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "a failed manual create is shown, not degraded: {}",
        stdout(&output)
    );
    let text = stdout(&output);
    assert!(text.contains("Backups:      1 in "), "{text}");
    assert!(text.contains("Newest:       a.db, made "), "{text}");
    let create = text
        .lines()
        .skip_while(|l| !l.starts_with("  create"))
        .take(2)
        .collect::<Vec<_>>();
    assert_eq!(create.len(), 2, "{text}");
    assert!(
        create[0].contains("succeeded") && create[0].contains("a.db"),
        "{text}"
    );
    assert!(
        create[1].contains("FAILED") && create[1].contains("locked"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("  prune") && l.contains("succeeded")),
        "{text}"
    );
    assert!(!text.contains("\n  restore"), "{text}");

    let (code, json) = status_json(&deployment);
    assert_eq!(code, Some(0));
    assert_eq!(json["Status"], "Healthy");
    assert_eq!(json["Backups"]["Count"], 1);
    assert_eq!(json["Backups"]["TotalBytes"], made);
    let newest = &json["Backups"]["Newest"];
    assert_eq!(newest["Filename"], "a.db");
    assert!(newest["AgeSeconds"].as_u64().expect("an age") < 600);
    assert!(
        newest["CreatedUtc"]
            .as_str()
            .expect("a time")
            .ends_with('Z')
    );
    let create = &json["Operations"]["create"];
    assert_eq!(create["LastSuccess"]["Backup"], "a.db");
    assert_eq!(create["LastSuccess"]["Bytes"], made);
    assert_eq!(create["LastSuccess"]["Reason"], Value::Null);
    assert!(create["LastSuccess"]["Milliseconds"].is_u64());
    assert_eq!(create["LastFailure"]["Backup"], "b.db");
    let reason = create["LastFailure"]["Reason"].as_str().expect("a reason");
    assert!(reason.contains("locked"), "{reason}");
    assert!(json["Operations"]["prune"]["LastSuccess"].is_object());
    assert_eq!(
        json["Operations"]["restore"],
        Value::Null,
        "refusals are not kept"
    );
    assert_eq!(json["Schedule"], Value::Null);
}

#[test]
fn status_is_degraded_with_exit_4_when_the_database_is_gone() {
    let deployment = Deployment::with_nodes(10);
    assert!(deployment.run(&["create", "a.db"]).status.success());
    remove_database(&deployment);
    let output = deployment.run(&["status"]);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    let text = stdout(&output);
    let shown = deployment.database.display().to_string();
    assert!(text.starts_with("Status:       Degraded\n"), "{text}");
    assert!(
        text.contains(&format!("- the live database {shown} does not exist")),
        "{text}"
    );
    let (code, json) = status_json(&deployment);
    assert_eq!(code, Some(4));
    assert_eq!(json["Status"], "Degraded");
    assert!(json["Problems"].to_string().contains(&shown));
}

#[test]
fn a_recorded_next_run_long_past_says_the_server_may_be_gone() {
    let deployment = Deployment::with_nodes(10);
    // What a `serve --schedule 1h` killed in 2020 left: no stop recorded, its next run due
    // long ago.
    let record = r#"{
      "Version": 1,
      "Operations": {},
      "Schedule": {
        "RecordedUtc": "2020-01-01T00:00:00.000000Z",
        "Schedule": "1h",
        "NextRunUtc": "2020-01-01T01:00:00.000000Z"
      }
    }"#;
    std::fs::write(deployment.backup(".lgb-status.json"), record).expect("write the record");
    let output = deployment.run(&["status"]);
    assert_eq!(output.status.code(), Some(0), "no backup to judge by age");
    let text = stdout(&output);
    assert!(
        text.contains("Schedule:     1h (as recorded by serve"),
        "{text}"
    );
    assert!(
        text.contains("next run ") && text.contains("(overdue: is `serve` still running?)"),
        "{text}"
    );
    let (_, json) = status_json(&deployment);
    assert_eq!(
        json["Schedule"]["NextRunUtc"],
        "2020-01-01T01:00:00.000000Z"
    );
}

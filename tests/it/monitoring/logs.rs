//! One log line per operation: in `serve`'s log as text or as JSON (`--log-format json`),
//! and not in a command's output, which stays what it was (its answer, or one error line).

use std::time::Duration;

use rusqlite::Connection;
use serde_json::Value;

use crate::client::{ADMIN, post_backup, request};
use crate::serve::Served;
use crate::support::{Deployment, stderr, stdout};

/// The JSON objects of `log`'s lines; panics on a line that is not one.
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .map(|line| {
            let object: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"));
            for key in ["timestamp", "level", "message"] {
                assert!(object.get(key).is_some(), "no {key} in {line}");
            }
            object
        })
        .collect()
}

/// The operation lines of `operation` among `lines`.
fn operation_lines<'a>(lines: &'a [Value], operation: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|line| line["operation"] == operation)
        .collect()
}

#[test]
fn serve_logs_each_operation_as_one_json_object_with_its_fields() {
    let deployment = Deployment::with_nodes(100);
    let served = Served::start(&deployment, &["--log-format", "json"]);

    let made = post_backup(served.addr, "json.db");
    assert_eq!(made.status, 200, "{}", made.text());
    let refused = post_backup(served.addr, "../escape.db");
    assert_eq!(refused.status, 400, "{}", refused.text());
    served.wait_for_log("two create lines", Duration::from_secs(10), |log| {
        log.matches(r#""operation":"create""#).count() >= 2
    });
    let length = request(served.addr, "GET", "/v1.0/backups", &[ADMIN], b"");
    let length = serde_json::from_slice::<Value>(&length.body).expect("JSON")[0]["Length"]
        .as_u64()
        .expect("a length");
    let (code, log) = served.terminate();
    assert_eq!(code, Some(0), "{log}");

    let lines = json_lines(&log);
    assert!(
        lines.iter().any(|line| line["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("listening on"))),
        "{log}"
    );
    let creates = operation_lines(&lines, "create");
    assert_eq!(creates.len(), 2, "{log}");
    let success = creates[0];
    assert_eq!(success["level"], "INFO");
    assert_eq!(success["outcome"], "success");
    assert_eq!(success["backup"], "json.db");
    assert_eq!(success["bytes"], length);
    let duration = success["duration"].as_f64().expect("duration is a number");
    assert!((0.0..60.0).contains(&duration), "{success}");
    assert!(success.get("reason").is_none(), "{success}");
    assert!(
        success.get("target").is_none(),
        "no remote target: {success}"
    );

    let refusal = creates[1];
    assert_eq!(refusal["level"], "WARN");
    assert_eq!(refusal["outcome"], "refused");
    assert!(
        refusal["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{refusal}"
    );
    assert_eq!(refusal["bytes"], 0);
}

#[test]
fn serve_logs_each_operation_as_a_text_line_by_default() {
    let deployment = Deployment::with_nodes(100);
    let served = Served::start(&deployment, &[]);
    assert_eq!(post_backup(served.addr, "text.db").status, 200);
    let log = served.wait_for_log("the create line", Duration::from_secs(10), |log| {
        log.contains("create succeeded")
    });
    let line = log
        .lines()
        .find(|line| line.contains("create succeeded"))
        .expect("found");
    for field in [
        " INFO ",
        r#"operation="create""#,
        r#"outcome="success""#,
        r#"backup="text.db""#,
        "duration=",
        "bytes=",
    ] {
        assert!(line.contains(field), "{field} in {line}");
    }
    assert!(
        serde_json::from_str::<Value>(line).is_err(),
        "text, not JSON"
    );
}

#[test]
fn a_piped_create_prints_what_it_printed_before() {
    let deployment = Deployment::with_nodes(100);
    let output = deployment.run(&["create", "x.db"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stderr(&output), "", "no operation line by default");
    // The answer alone: its first line, then the backup's details, as `show` prints them.
    let text = stdout(&output);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(format!("created {}", deployment.backup("x.db").display()).as_str())
    );
    let labels: Vec<&str> = lines
        .map(|line| line.split("  ").next().unwrap_or_default())
        .collect();
    assert_eq!(
        labels,
        [
            "Filename",
            "Length",
            "MD5",
            "SHA-1",
            "SHA-256",
            "Created",
            "Last update",
            "Last access"
        ],
        "{text}"
    );

    let json = deployment.run(&["create", "--json", "y.db"]);
    assert_eq!(stderr(&json), "");
    let text = stdout(&json);
    assert_eq!(text.lines().count(), 1, "{text}");
    let backup: Value = serde_json::from_str(&text).expect("one JSON object");
    assert_eq!(backup["Filename"], "y.db");
}

#[test]
fn a_failed_command_prints_one_error_line_unless_the_log_is_asked_for() {
    let deployment = Deployment::with_nodes(100);
    let holder = Connection::open(&deployment.database).expect("open");
    let mode: String = holder
        .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
        .expect("rollback journal");
    assert_eq!(mode, "delete");
    holder
        .execute_batch("BEGIN EXCLUSIVE")
        .expect("hold the lock");

    let quiet = deployment.run(&["--busy-timeout-ms", "200", "create", "x.db"]);
    assert_eq!(quiet.status.code(), Some(5), "busy");
    let message = stderr(&quiet);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(message.starts_with("error: "), "{message}");

    let logged = deployment.run(&[
        "--busy-timeout-ms",
        "200",
        "--log",
        "info",
        "--log-format",
        "json",
        "create",
        "y.db",
    ]);
    assert_eq!(logged.status.code(), Some(5), "busy");
    let message = stderr(&logged);
    let line = message
        .lines()
        .find(|line| line.contains(r#""operation":"create""#))
        .unwrap_or_else(|| panic!("an operation line: {message}"));
    let line: Value = serde_json::from_str(line).expect("JSON");
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["outcome"], "failure");
    assert!(
        line["reason"]
            .as_str()
            .is_some_and(|r| r.contains("locked")),
        "{line}"
    );
    assert!(
        message
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("error: ")),
        "the command's own error line still ends it: {message}"
    );
    holder.execute_batch("COMMIT").expect("release");
}

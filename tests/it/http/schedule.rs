//! The schedule and retention routes, apart from `/v1.0/backups/{filename}` so that no
//! backup name is mistaken for them: `GET /v1.0/backup-schedule` and
//! `POST /v1.0/backup-retention/prune[?dryrun]`.

use litegraph_backup::Retention;
use litegraph_backup::daemon::SharedStatus;
use litegraph_backup::http::{self, ApiState};
use serde_json::Value;

use super::{admin, app, call, create};
use crate::support::Deployment;

/// The API with a schedule and retention rules configured, as `serve` gives them.
fn app_with(deployment: &Deployment, schedule: &str, retention: Retention) -> axum::Router {
    let schedule = schedule.parse().expect("a schedule");
    let status = SharedStatus::new(Some(&schedule), retention);
    http::router(
        ApiState::new(deployment.runtime(), "litegraphadmin")
            .expect("state")
            .with_schedule(status),
    )
}

/// Makes `count` backups under the policy's default names, oldest first.
async fn default_named_backups(app: &axum::Router, count: usize) -> Vec<String> {
    let mut names = Vec::new();
    for _ in 0..count {
        let reply = admin(app, "POST", "/v1.0/backups", "{}").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        names.push(
            reply.json()["Filename"]
                .as_str()
                .expect("a name")
                .to_owned(),
        );
    }
    names
}

async fn listed(app: &axum::Router) -> Vec<String> {
    let reply = admin(app, "GET", "/v1.0/backups", "").await;
    assert_eq!(reply.status, 200);
    let mut names: Vec<String> = reply
        .json()
        .as_array()
        .expect("an array")
        .iter()
        .map(|b| b["Filename"].as_str().expect("a name").to_owned())
        .collect();
    names.sort();
    names
}

/// The names a prune's answer says go, and those it keeps, oldest first as decided.
fn decided(decisions: &Value) -> (Vec<String>, Vec<String>) {
    let (mut remove, mut keep) = (Vec::new(), Vec::new());
    for decision in decisions.as_array().expect("an array of decisions") {
        let name = decision["Backup"]["Filename"]
            .as_str()
            .expect("a name")
            .to_owned();
        assert!(
            !decision["Reasons"].as_array().expect("Reasons").is_empty(),
            "every decision says why: {decision}"
        );
        match decision["Keep"].as_bool().expect("Keep") {
            true => keep.push(name),
            false => remove.push(name),
        }
    }
    (remove, keep)
}

#[tokio::test]
async fn schedule_without_one_configured_reads_null_and_needs_the_token() {
    let deployment = Deployment::with_nodes(5);
    let app = app(&deployment);
    let refused = call(&app, "GET", "/v1.0/backup-schedule", None, "").await;
    assert_eq!(refused.status, 401);
    let reply = admin(&app, "GET", "/v1.0/backup-schedule", "").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let status = reply.json();
    assert_eq!(status["Schedule"], Value::Null);
    assert_eq!(status["NextRunUtc"], Value::Null);
    assert_eq!(status["LastRun"], Value::Null);
    assert_eq!(status["Retention"]["KeepLast"], Value::Null);
    assert_eq!(status["Retention"]["IncludeNamed"], false);
}

#[tokio::test]
async fn schedule_shows_the_configured_schedule_and_retention() {
    let deployment = Deployment::with_nodes(5);
    let retention = Retention {
        keep_last: Some(3),
        keep_daily: Some(7),
        keep_within: Some(std::time::Duration::from_secs(2 * 86_400)),
        ..Retention::default()
    };
    let app = app_with(&deployment, "0 3 * * *", retention);
    let status = admin(&app, "GET", "/v1.0/backup-schedule", "").await.json();
    assert_eq!(status["Schedule"], "0 3 * * *");
    assert_eq!(status["Retention"]["KeepLast"], 3);
    assert_eq!(status["Retention"]["KeepDaily"], 7);
    assert_eq!(status["Retention"]["KeepWeekly"], Value::Null);
    assert_eq!(status["Retention"]["KeepWithin"], "2days");
}

#[tokio::test]
async fn prune_dry_run_decides_and_removes_nothing_then_the_real_one_removes() {
    let deployment = Deployment::with_nodes(5);
    let app = app(&deployment);
    let made = default_named_backups(&app, 5).await;
    create(&app, "person-named.db").await;
    let before = listed(&app).await;

    let dry = admin(
        &app,
        "POST",
        "/v1.0/backup-retention/prune?dryrun",
        r#"{"KeepLast": 2}"#,
    )
    .await;
    assert_eq!(dry.status, 200, "{}", dry.text());
    let (remove, keep) = decided(&dry.json());
    assert_eq!(
        remove,
        made[..3].to_vec(),
        "all but the newest two policy names"
    );
    assert!(keep.contains(&"person-named.db".to_owned()), "{keep:?}");
    assert_eq!(listed(&app).await, before, "a dry run removes nothing");

    let real = admin(
        &app,
        "POST",
        "/v1.0/backup-retention/prune",
        r#"{"KeepLast": 2}"#,
    )
    .await;
    assert_eq!(real.status, 200, "{}", real.text());
    assert_eq!(decided(&real.json()).0, remove, "the same decisions");
    let mut left = made[3..].to_vec();
    left.push("person-named.db".to_owned());
    left.sort();
    assert_eq!(listed(&app).await, left);
}

#[tokio::test]
async fn prune_without_rules_in_the_body_applies_the_configured_ones() {
    let deployment = Deployment::with_nodes(5);
    let app = app_with(
        &deployment,
        "6h",
        Retention {
            keep_last: Some(1),
            ..Retention::default()
        },
    );
    let made = default_named_backups(&app, 3).await;
    let reply = admin(&app, "POST", "/v1.0/backup-retention/prune?dryrun=true", "").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(decided(&reply.json()).0, made[..2].to_vec());
}

#[tokio::test]
async fn prune_with_no_rule_anywhere_or_a_typo_is_refused() {
    let deployment = Deployment::with_nodes(5);
    let app = app(&deployment);
    let made = default_named_backups(&app, 2).await;
    for (query, body, why) in [
        ("", "", "No retention rule is configured"),
        ("", "{}", ""),
        ("", r#"{"KeepLats": 1}"#, "KeepLats"),
        ("", r#"{"KeepWithin": "2"}"#, "KeepWithin"),
        (
            "?dryrun=maybe",
            r#"{"KeepLast": 1}"#,
            "dryrun must be true or false",
        ),
    ] {
        let uri = format!("/v1.0/backup-retention/prune{query}");
        let reply = admin(&app, "POST", &uri, body).await;
        assert_eq!(reply.status, 400, "{uri} {body}: {}", reply.text());
        let description = reply.json()["Description"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        assert!(description.contains(why), "{body}: {description}");
    }
    let mut left = listed(&app).await;
    left.retain(|name| made.contains(name));
    assert_eq!(left.len(), 2, "nothing removed");
}

// The routes sit beside /v1.0/backups/{filename}, never under it: backups called `prune`
// and `schedule` are read, verified and deleted like any other.
#[tokio::test]
async fn backups_named_prune_and_schedule_still_work_under_backups() {
    let deployment = Deployment::with_nodes(5);
    let app = app(&deployment);
    for name in ["prune", "schedule"] {
        create(&app, name).await;
        let read = admin(&app, "GET", &format!("/v1.0/backups/{name}"), "").await;
        assert_eq!(read.status, 200, "{}", read.text());
        assert_eq!(read.json()["Filename"], name);
        let exists = admin(&app, "HEAD", &format!("/v1.0/backups/{name}"), "").await;
        assert_eq!(exists.status, 200);
        let verified = admin(&app, "POST", &format!("/v1.0/backups/{name}/verify"), "").await;
        assert_eq!(verified.status, 200, "{}", verified.text());
        assert_eq!(verified.json()["Verified"], true);
    }
    let status = admin(&app, "GET", "/v1.0/backup-schedule", "").await;
    assert!(
        status.json().get("Schedule").is_some(),
        "the schedule, not a backup"
    );
    for name in ["prune", "schedule"] {
        let deleted = admin(&app, "DELETE", &format!("/v1.0/backups/{name}"), "").await;
        assert_eq!(deleted.status, 200, "{}", deleted.text());
    }
    assert!(listed(&app).await.is_empty());
}

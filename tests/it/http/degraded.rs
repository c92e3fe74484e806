//! A server whose backup directory or live database went away under it: `/health` says
//! so, and the backup routes answer with what an operator must fix.

use serde_json::Value;

use super::{admin, app, call, create};
use crate::support::Deployment;

/// The `Problems` of a degraded `/health`, which must answer 503.
async fn health_problems(app: &axum::Router) -> String {
    let reply = call(app, "GET", "/health", None, "").await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    let health = reply.json();
    assert_eq!(health["Status"], "Degraded");
    let problems = health["Problems"].as_array().expect("Problems");
    assert!(!problems.is_empty());
    Value::from(problems.clone()).to_string()
}

// Before, `list` answered `[]` from the stale handle, `create` failed with an opaque 500
// and `/health` said Healthy.
#[tokio::test]
async fn moved_backup_directory_is_reported_by_health_and_by_every_answer() {
    let deployment = Deployment::with_nodes(10);
    let app = app(&deployment);
    create(&app, "before.db").await;
    let moved = deployment.backups.with_extension("moved");
    std::fs::rename(&deployment.backups, &moved).expect("move the backup directory");
    let shown = deployment.backups.display().to_string();

    let problems = health_problems(&app).await;
    assert!(problems.contains(&shown), "{problems}");

    for (method, uri, body) in [
        ("POST", "/v1.0/backups", r#"{"Filename":"after.db"}"#),
        ("GET", "/v1.0/backups", ""),
    ] {
        let reply = admin(&app, method, uri, body).await;
        assert_eq!(reply.status, 500, "{method} {uri}: {}", reply.text());
        let error = reply.json();
        assert_eq!(error["Error"], "InternalError");
        let description = error["Description"].as_str().expect("a description");
        assert!(
            description.contains(&shown) && description.contains("moved"),
            "{method} {uri}: {description}"
        );
    }
    assert!(
        !moved.join("after.db").exists(),
        "no create into the moved directory"
    );

    std::fs::rename(&moved, &deployment.backups).expect("move it back");
    let healthy = call(&app, "GET", "/health", None, "").await;
    assert_eq!(healthy.status, 200);
    assert_eq!(healthy.json(), serde_json::json!({ "Status": "Healthy" }));
}

// Before, a create after the live database was deleted failed with an opaque 500.
#[tokio::test]
async fn deleted_live_database_is_named_in_health_and_in_a_503() {
    let deployment = Deployment::with_nodes(10);
    let app = app(&deployment);
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", deployment.database.display());
        let _ = std::fs::remove_file(file);
    }
    let shown = deployment.database.display().to_string();

    let problems = health_problems(&app).await;
    assert!(problems.contains(&shown), "{problems}");

    let reply = admin(&app, "POST", "/v1.0/backups", r#"{"Filename":"x.db"}"#).await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    let error = reply.json();
    assert_eq!(error["Error"], "ServiceUnavailable");
    assert_eq!(error["StatusCode"], 503);
    let description = error["Description"].as_str().expect("a description");
    assert!(description.contains(&shown), "{description}");
    assert!(
        !deployment.database.exists(),
        "no empty database was created in its place"
    );
}

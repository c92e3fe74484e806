//! The HTTP API: LiteGraph's routes, status codes and bodies, auth, bad input, streaming.
//! The many small cases go through `Router::oneshot`; concurrency and streaming through a
//! real socket.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use litegraph_backup::http::{self, ApiState, MAX_BODY_BYTES};
use litegraph_backup_tests::{file_sha256, integrity};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::support::{Deployment, assert_backup_file, decoded_data};

mod degraded;
mod schedule;
mod socket;

const AUTHENTICATION_FAILED: &str = r#"{"Error":"AuthenticationFailed","Message":"Your authentication material was not accepted.","StatusCode":401}"#;
const BAD_REQUEST_MESSAGE: &str =
    "We were unable to discern your request.  Please check your URL, query, and request body.";

pub(super) struct Reply {
    pub(super) status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    pub(super) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub(super) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII").to_owned())
    }
}

pub(super) fn app(deployment: &Deployment) -> Router {
    http::router(ApiState::new(deployment.runtime(), "litegraphadmin").expect("state"))
}

/// One request through the router, answer collected.
async fn oneshot(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

pub(super) async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    authorization: Option<&str>,
    body: &str,
) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    let request = request
        .body(Body::from(body.to_owned()))
        .expect("a request");
    oneshot(app, request).await
}

pub(super) async fn admin(app: &Router, method: &str, uri: &str, body: &str) -> Reply {
    call(app, method, uri, Some("Bearer litegraphadmin"), body).await
}

/// Makes a backup through the API, which must answer 200.
pub(super) async fn create(app: &Router, name: &str) {
    let body = format!(r#"{{"Filename":"{name}"}}"#);
    let reply = admin(app, "POST", "/v1.0/backups", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

#[tokio::test]
async fn every_backup_route_requires_the_admin_token() {
    let deployment = Deployment::with_nodes(10);
    let app = app(&deployment);
    let routes = [
        ("GET", "/v1.0/backups"),
        ("POST", "/v1.0/backups"),
        ("GET", "/v1.0/backups/x.db"),
        ("HEAD", "/v1.0/backups/x.db"),
        ("DELETE", "/v1.0/backups/x.db"),
        ("GET", "/v1.0/backups/x.db/download"),
        ("POST", "/v1.0/backups/x.db/verify"),
        ("POST", "/v1.0/backups/x.db/restore"),
    ];
    let refused = [
        None,
        Some("Bearer wrong"),
        Some("Bearer litegraphadmin "),
        Some("Bearer  litegraphadmin"),
        Some("Bearer LITEGRAPHADMIN"),
        Some("Basic bGl0ZWdyYXBoYWRtaW4="),
        Some("litegraphadmin"),
        Some("Bearer"),
        Some(""),
    ];
    let before = deployment.tree();
    for (method, uri) in routes {
        for authorization in refused {
            let reply = call(&app, method, uri, authorization, r#"{"Filename":"x.db"}"#).await;
            assert_eq!(reply.status, 401, "{method} {uri} with {authorization:?}");
            assert_eq!(
                reply.header("content-type").as_deref(),
                Some("application/json")
            );
            let expected = if method == "HEAD" {
                ""
            } else {
                AUTHENTICATION_FAILED
            };
            assert_eq!(reply.text(), expected, "{method} {uri}");
        }
    }
    assert_eq!(deployment.tree(), before, "refused requests change nothing");
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let reply = call(
            &app,
            "GET",
            "/v1.0/backups",
            Some(&format!("{scheme} litegraphadmin")),
            "",
        )
        .await;
        assert_eq!(reply.status, 200, "scheme {scheme:?} is case-insensitive");
    }
}

#[tokio::test]
async fn health_answers_without_a_token() {
    let deployment = Deployment::with_nodes(10);
    let reply = call(&app(&deployment), "GET", "/health", None, "").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/json")
    );
}

#[tokio::test]
async fn post_creates_a_backup_and_answers_its_backup_file() {
    let deployment = Deployment::with_nodes(200);
    let app = app(&deployment);
    let reply = admin(
        &app,
        "POST",
        "/v1.0/backups",
        r#"{"Filename": "backup-2025.db"}"#,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/json")
    );
    let created = reply.json();
    assert_backup_file(&created, &reply.text());
    assert!(created.get("Data").is_none(), "no Data on create");
    let copy = deployment.backup("backup-2025.db");
    assert_eq!(integrity(&copy, true).expect("check"), "ok");
    assert_eq!(
        created["SHA256Hash"],
        file_sha256(&copy).expect("hash").as_str()
    );

    let listed = admin(&app, "GET", "/v1.0/backups", "").await;
    assert_eq!(listed.status, 200);
    let items = listed.json();
    let items = items.as_array().expect("an array");
    assert_eq!(items.len(), 1);
    assert_backup_file(&items[0], &listed.text());
    assert!(items[0].get("Data").is_none(), "no Data in the list");
    assert_eq!(items[0]["SHA256Hash"], created["SHA256Hash"]);
}

#[tokio::test]
async fn post_without_a_name_uses_litegraphs_default() {
    let deployment = Deployment::with_nodes(10);
    let app = app(&deployment);
    for body in ["{}", r#"{"filename":"ignored.db"}"#, r#"{"Other":1}"#] {
        let reply = admin(&app, "POST", "/v1.0/backups", body).await;
        assert_eq!(reply.status, 200, "{body}: {}", reply.text());
        let name = reply.json()["Filename"]
            .as_str()
            .expect("a name")
            .to_owned();
        assert!(
            name.starts_with("litegraph-backup-") && name.ends_with(".db"),
            "{name}"
        );
    }
    assert!(!deployment.backup("ignored.db").exists());
}

#[tokio::test]
async fn bad_create_requests_are_refused_and_change_nothing() {
    let deployment = Deployment::with_nodes(10);
    let app = app(&deployment);
    let before = deployment.tree();

    let empty = admin(&app, "POST", "/v1.0/backups", "").await;
    assert_eq!(empty.status, 400);
    assert_eq!(
        empty.json(),
        json!({"Error": "BadRequest", "Message": BAD_REQUEST_MESSAGE, "StatusCode": 400})
    );

    for body in [
        "{",
        "not json",
        "[]",
        r#"{"Filename":null}"#,
        r#"{"Filename":""}"#,
        r#"{"Filename":42}"#,
        r#"{"Filename":"../x.db"}"#,
        r#"{"Filename":"a/b.db"}"#,
        r#"{"Filename":".hidden"}"#,
        r#"{"Filename":"a\u0000b"}"#,
        r#"{"Filename":"a\nb"}"#,
    ] {
        let reply = admin(&app, "POST", "/v1.0/backups", body).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text());
        let error = reply.json();
        assert_eq!(error["Error"], "BadRequest", "{body}");
        assert_eq!(error["Message"], BAD_REQUEST_MESSAGE);
        assert_eq!(error["StatusCode"], 400);
        assert!(error["Description"].is_string(), "{body}: says why");
    }

    let huge = format!(
        r#"{{"Filename":"x.db","Padding":"{}"}}"#,
        "x".repeat(MAX_BODY_BYTES)
    );
    let too_large = admin(&app, "POST", "/v1.0/backups", &huge).await;
    assert_eq!(too_large.status, 413);
    assert_eq!(too_large.json()["Error"], "TooLarge");

    assert_eq!(deployment.tree(), before);
}

#[tokio::test]
async fn existing_name_is_a_conflict_and_the_original_stays() {
    let deployment = Deployment::with_nodes(10);
    let app = app(&deployment);
    let body = r#"{"Filename":"x.db"}"#;
    assert_eq!(admin(&app, "POST", "/v1.0/backups", body).await.status, 200);
    let before = deployment.tree();
    let reply = admin(&app, "POST", "/v1.0/backups", body).await;
    assert_eq!(reply.status, 409);
    let error = reply.json();
    assert_eq!(error["Error"], "Conflict");
    assert_eq!(
        error["Message"],
        "Operation failed as it would create a conflict with an existing resource."
    );
    assert_eq!(deployment.tree(), before);
}

#[tokio::test]
async fn read_exists_delete_answer_like_litegraph() {
    let deployment = Deployment::with_nodes(10);
    let app = app(&deployment);
    create(&app, "x.db").await;

    let head = admin(&app, "HEAD", "/v1.0/backups/x.db", "").await;
    assert_eq!((head.status.as_u16(), head.body.len()), (200, 0));
    let missing = admin(&app, "HEAD", "/v1.0/backups/y.db", "").await;
    assert_eq!(
        (missing.status.as_u16(), missing.body.len()),
        (404, 0),
        "HEAD errors have no body"
    );

    let not_found = admin(&app, "GET", "/v1.0/backups/y.db", "").await;
    assert_eq!(not_found.status, 404);
    assert_eq!(
        not_found.json(),
        json!({"Error": "NotFound", "Message": "The requested resource was not found.",
               "StatusCode": 404, "Description": "Unable to find backup with filename y.db"})
    );

    let deleted = admin(&app, "DELETE", "/v1.0/backups/x.db", "").await;
    assert_eq!(
        (deleted.status.as_u16(), deleted.body.len()),
        (200, 0),
        "200, not 204"
    );
    assert_eq!(
        deleted.header("content-type").as_deref(),
        Some("application/json")
    );
    assert!(!deployment.backup("x.db").exists());
    let again = admin(&app, "DELETE", "/v1.0/backups/x.db", "").await;
    assert_eq!(again.status, 404);
    assert_eq!(
        again.json()["Description"],
        "Unable to find backup with filename x.db"
    );
}

#[tokio::test]
async fn get_one_carries_the_whole_file_as_base64_data() {
    let deployment = Deployment::with_nodes(500);
    let app = app(&deployment);
    create(&app, "x.db").await;
    let reply = admin(&app, "GET", "/v1.0/backups/x.db", "").await;
    assert_eq!(reply.status, 200);
    let value = reply.json();
    assert_backup_file(&value, &reply.text());
    assert!(value.get("Data").is_some(), "GET one carries Data, last");
    assert_eq!(
        decoded_data(&value),
        std::fs::read(deployment.backup("x.db")).expect("read")
    );
}

#[tokio::test]
async fn download_serves_raw_bytes_and_single_ranges() {
    let deployment = Deployment::with_nodes(200);
    let app = app(&deployment);
    create(&app, "x.db").await;
    let file = std::fs::read(deployment.backup("x.db")).expect("read");
    let length = file.len();

    let full = admin(&app, "GET", "/v1.0/backups/x.db/download", "").await;
    assert_eq!(full.status, 200);
    assert_eq!(
        full.header("content-type").as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(full.body, file);

    let ranged = |range: &str| {
        let request = Request::get("/v1.0/backups/x.db/download")
            .header("Authorization", "Bearer litegraphadmin")
            .header("Range", range)
            .body(Body::empty())
            .expect("a request");
        let app = app.clone();
        async move {
            let reply = oneshot(&app, request).await;
            (reply.status, reply.header("content-range"), reply.body)
        }
    };
    let (status, content_range, body) = ranged("bytes=0-99").await;
    assert_eq!(status, 206);
    assert_eq!(content_range, Some(format!("bytes 0-99/{length}")));
    assert_eq!(body, &file[..100]);
    let (status, _, body) = ranged("bytes=-10").await;
    assert_eq!(
        (status.as_u16(), body.as_slice()),
        (206, &file[length - 10..])
    );
    let (status, _, body) = ranged(&format!("bytes={}-", length - 5)).await;
    assert_eq!(
        (status.as_u16(), body.as_slice()),
        (206, &file[length - 5..])
    );
    let (status, content_range, _) = ranged(&format!("bytes={length}-")).await;
    assert_eq!(status, 416);
    assert_eq!(content_range, Some(format!("bytes */{length}")));
    let (status, _, body) = ranged("bytes=0-1,4-5").await;
    assert_eq!(
        (status.as_u16(), body.len()),
        (200, length),
        "several ranges: the whole file"
    );
}

#[tokio::test]
async fn traversal_in_the_path_is_refused_and_changes_nothing() {
    let deployment = Deployment::with_nodes(10);
    let app = app(&deployment);
    create(&app, "keep.db").await;
    let before = deployment.tree();
    for name in [
        "%2e%2e%2fkeep.db",
        "..%2fkeep.db",
        "%2e%2e",
        "..",
        "a%00b.db",
        "%00",
        "a%2fb.db",
        "%2fetc%2fpasswd",
        "a%5cb.db",
        "%0a",
        ".hidden",
    ] {
        for method in ["GET", "HEAD", "DELETE"] {
            let reply = admin(&app, method, &format!("/v1.0/backups/{name}"), "").await;
            assert_eq!(reply.status, 400, "{method} {name}: {}", reply.text());
            if method != "HEAD" {
                assert_eq!(reply.json()["Error"], "BadRequest");
            }
        }
        let download = admin(&app, "GET", &format!("/v1.0/backups/{name}/download"), "").await;
        assert_eq!(download.status, 400, "download {name}");
    }
    let invalid_utf8 = admin(&app, "GET", "/v1.0/backups/%ff.db", "").await;
    assert_eq!(invalid_utf8.status, 400);
    assert_eq!(deployment.tree(), before);
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let deployment = Deployment::with_nodes(10);
    let app = app(&deployment);
    for uri in [
        "/",
        "/v1.0",
        "/v1.0/backup",
        "/v2.0/backups",
        "/v1.0/backups/a/b",
    ] {
        let reply = admin(&app, "GET", uri, "").await;
        assert_eq!(reply.status, 404, "{uri}");
        assert_eq!(reply.json()["Error"], "NotFound");
    }
    for (method, uri) in [
        ("PUT", "/v1.0/backups"),
        ("DELETE", "/v1.0/backups"),
        ("POST", "/v1.0/backups/x.db"),
        ("PATCH", "/v1.0/backups/x.db"),
    ] {
        let reply = admin(&app, method, uri, "").await;
        assert_eq!(reply.status, 405, "{method} {uri}");
        assert_eq!(reply.json()["StatusCode"], 405);
    }
}

#[tokio::test]
async fn router_mounts_in_another_axum_server() {
    let deployment = Deployment::with_nodes(10);
    let api = http::router(ApiState::new(deployment.runtime(), "s3cret").expect("state"));
    let host_app: Router = Router::new()
        .route("/their/own", axum::routing::get(|| async { "theirs" }))
        .merge(api);
    let theirs = call(&host_app, "GET", "/their/own", None, "").await;
    assert_eq!(
        (theirs.status.as_u16(), theirs.text().as_str()),
        (200, "theirs")
    );
    let ours = call(&host_app, "GET", "/v1.0/backups", Some("Bearer s3cret"), "").await;
    assert_eq!((ours.status.as_u16(), ours.text().as_str()), (200, "[]"));
    let refused = call(&host_app, "GET", "/v1.0/backups", None, "").await;
    assert_eq!(refused.status, 401);
}

#[tokio::test]
async fn verify_and_restore_over_http() {
    let deployment = Deployment::with_nodes(300);
    let app = app(&deployment);
    create(&app, "a.db").await;

    let verdict = admin(&app, "POST", "/v1.0/backups/a.db/verify?full=true", "").await;
    assert_eq!(verdict.status, 200);
    let raw = verdict.text();
    let verdict = verdict.json();
    assert_eq!(verdict["Verified"], true);
    assert_eq!(verdict["Check"], "integrity_check");
    assert_eq!(verdict["Problems"], json!([]));
    let backup_text = &raw[raw.find("\"Backup\":").expect("a Backup")..];
    assert_backup_file(&verdict["Backup"], backup_text);
    let bad_flag = admin(&app, "POST", "/v1.0/backups/a.db/verify?full=maybe", "").await;
    assert_eq!(bad_flag.status, 400);
    // Before, `?full` alone was a 400 and `full=yes` too; a repeated `full` took the first.
    for (query, check) in [
        ("full", "integrity_check"),
        ("full=YES", "integrity_check"),
        ("full=no", "quick_check"),
    ] {
        let uri = format!("/v1.0/backups/a.db/verify?{query}");
        let verdict = admin(&app, "POST", &uri, "").await;
        assert_eq!(verdict.status, 200, "{query}: {}", verdict.text());
        assert_eq!(verdict.json()["Check"], check, "{query}");
    }
    let repeated = admin(&app, "POST", "/v1.0/backups/a.db/verify?full=1&full=0", "").await;
    assert_eq!(repeated.status, 400);
    assert!(
        repeated.json()["Description"]
            .as_str()
            .expect("why")
            .contains("more than once")
    );

    litegraph_backup_tests::create_litegraph_database(&deployment.database, 50).expect("change");
    let restored = admin(&app, "POST", "/v1.0/backups/a.db/restore", "").await;
    assert_eq!(restored.status, 200, "{}", restored.text());
    let restored = restored.json();
    assert_eq!(restored["Restored"]["Filename"], "a.db");
    let safety = restored["SafetyBackup"]["Filename"]
        .as_str()
        .expect("a name");
    assert!(deployment.backup(safety).is_file());
    assert_eq!(
        litegraph_backup_tests::content_digest(&deployment.database).expect("digest"),
        litegraph_backup_tests::content_digest(&deployment.backup("a.db")).expect("digest")
    );

    let copy = deployment.backup("a.db");
    let mut bytes = std::fs::read(&copy).expect("read");
    bytes[4096] ^= 0xff;
    std::fs::write(&copy, bytes).expect("tamper");
    let verdict = admin(&app, "POST", "/v1.0/backups/a.db/verify", "")
        .await
        .json();
    assert_eq!(verdict["Verified"], false);
    assert!(
        verdict["Problems"].to_string().contains("SHA-256 differs"),
        "{verdict}"
    );
    let live = file_sha256(&deployment.database).expect("hash");
    let refused = admin(&app, "POST", "/v1.0/backups/a.db/restore", "").await;
    assert_eq!(refused.status, 400);
    assert!(
        refused.json()["Description"]
            .as_str()
            .expect("why")
            .contains("failed verification")
    );
    assert_eq!(file_sha256(&deployment.database).expect("hash"), live);
    let missing = admin(&app, "POST", "/v1.0/backups/none.db/restore", "").await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn openapi_document_lists_exactly_the_routes_of_the_router() {
    let document: Value = serde_json::from_str(http::OPENAPI).expect("valid JSON");
    assert_eq!(document["openapi"], "3.0.3");
    let mut documented: Vec<(String, String)> = document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("a path item")
                .keys()
                .filter(|key| *key != "parameters")
                .map(|method| (method.to_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut routed: Vec<(String, String)> = http::routes()
        .into_iter()
        .map(|(method, path, _, _)| (method.to_string(), path.to_owned()))
        .collect();
    documented.sort();
    routed.sort();
    assert_eq!(
        documented, routed,
        "the document and the router's table agree"
    );

    // Every route is really routed: with an existing backup, none is a routing 404 or a 405.
    let deployment = Deployment::with_nodes(10);
    let app = app(&deployment);
    create(&app, "x.db").await;
    let deletes_last = routed
        .iter()
        .filter(|(m, _)| m != "DELETE")
        .chain(routed.iter().filter(|(m, _)| m == "DELETE"));
    for (method, path) in deletes_last {
        let uri = path.replace("{filename}", "x.db");
        let body = match (method.as_str(), uri.as_str()) {
            ("POST", "/v1.0/backups") => "{}",
            ("POST", "/v1.0/backup-retention/prune") => r#"{"KeepLast": 5}"#,
            _ => "",
        };
        let reply = admin(&app, method, &uri, body).await;
        assert!(
            reply.status.is_success(),
            "{method} {uri}: {} {}",
            reply.status,
            reply.text()
        );
    }
    let served = call(&app, "GET", "/openapi.json", None, "").await;
    assert_eq!(served.status, 200);
    assert_eq!(
        served.json(),
        document,
        "served without a token, as written"
    );
}

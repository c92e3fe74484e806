//! The HTTP API's request path and body handling, through the real router, guest and files:
//! whatever the method, path and body, the answer is one of the API's statuses (never a
//! 500 or a panic), and nothing outside the backup directory changes.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arbitrary::Arbitrary;
use axum::Router;
use axum::body::Body;
use axum::http::Request;
use libfuzzer_sys::fuzz_target;
use litegraph_backup::http::{ApiState, router};
use litegraph_backup::snapshot::LiveDatabase;
use litegraph_backup::store::BackupDir;
use litegraph_backup::{Capabilities, Limits, Runtime};
use tower::ServiceExt;

#[derive(Arbitrary, Debug)]
struct Input {
    method: u8,
    path: String,
    body: Vec<u8>,
    token: bool,
}

struct World {
    tokio: tokio::runtime::Runtime,
    app: Router,
    runtime: Runtime,
    canary: PathBuf,
    _root: tempfile::TempDir,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let root = tempfile::tempdir().expect("a scratch directory");
        let database = root.path().join("litegraph.db");
        let db = rusqlite::Connection::open(&database).expect("a database");
        db.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE nodes (guid TEXT, data TEXT); INSERT INTO nodes VALUES ('a', '{}');")
            .expect("a schema");
        drop(db);
        let backups = root.path().join("backups");
        let canary = root.path().join("canary.txt");
        std::fs::write(&canary, b"canary").expect("a canary");
        let runtime = Runtime::new(
            Capabilities::new(
                LiveDatabase::new(&database, Duration::from_secs(5)),
                BackupDir::create(&backups).expect("a backup directory"),
            ),
            Limits::default(),
        )
        .expect("the policy compiles");
        runtime.create(Some("seed.db")).expect("a first backup");
        let app = router(ApiState::new(runtime.clone(), "litegraphadmin").expect("a state"));
        let tokio = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a tokio runtime");
        World {
            tokio,
            app,
            runtime,
            canary,
            _root: root,
        }
    })
}

fuzz_target!(|input: Input| {
    let world = world();
    let method = ["GET", "HEAD", "POST", "DELETE", "PUT"][usize::from(input.method) % 5];
    let uri = format!("/v1.0/backups/{}", input.path);
    let mut request = Request::builder().method(method).uri(&uri);
    if input.token {
        request = request.header("Authorization", "Bearer litegraphadmin");
    }
    let Ok(request) = request.body(Body::from(input.body)) else {
        return; // not a URI a client could send
    };
    let response = world
        .tokio
        .block_on(world.app.clone().oneshot(request))
        .expect("the router is infallible");
    let status = response.status().as_u16();
    assert!(
        matches!(
            status,
            200 | 206 | 400 | 401 | 404 | 405 | 408 | 409 | 413 | 416
        ),
        "{method} {uri} answered {status}"
    );
    assert_eq!(std::fs::read(&world.canary).expect("the canary"), b"canary");

    // Keep the directory small: every so often, drop what the fuzzer created.
    static CALLS: AtomicU64 = AtomicU64::new(0);
    if CALLS.fetch_add(1, Ordering::Relaxed) % 256 == 255 {
        for backup in world.runtime.list().expect("list") {
            if backup.filename != "seed.db" {
                let _ = world.runtime.delete(&backup.filename);
            }
        }
    }
});

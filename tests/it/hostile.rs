//! A hostile guest (tests/fixtures/hostile-guest) in place of the policy: it loops, hoards
//! memory, panics, overflows its stack and tries every way out of the backup directory. Each
//! ends in a clean error, nothing outside the directory is touched, and the host keeps
//! serving other requests while and after it happens.

use std::fs;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use litegraph_backup::remote::{Location, TargetConfig, Targets};
use litegraph_backup::{Error, Limits, Policy, Runtime};
use litegraph_backup_tests::file_sha256;

use crate::client::{ADMIN, Server, post_backup, request};
use crate::support::{Deployment, stderr};

const HOSTILE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hostile.wasm"));

const LIMITS: Limits = Limits {
    memory_bytes: 32 << 20,
    guest_time: Duration::from_millis(300),
};

const INTERNAL_ERROR: &str = r#"{"Error":"InternalError","Message":"An internal error has been encountered.","StatusCode":500}"#;

fn hostile(deployment: &Deployment) -> Runtime {
    let policy = Policy::from_component(HOSTILE, LIMITS).expect("the fixture compiles");
    Runtime::from_policy(&policy, deployment.runtime().capabilities().clone())
}

/// A deployment with things to steal: files beside the backup directory, a file inside it,
/// a symbolic link to a database outside and one to the directory above.
fn bait() -> Deployment {
    let deployment = Deployment::with_nodes(50);
    // A first real backup, so that the operation lock file exists before the pictures.
    deployment
        .runtime()
        .create(Some("real.db"))
        .expect("create");
    let root = deployment.root.path();
    fs::write(root.join("outside.txt"), b"outside").expect("write");
    fs::write(root.join("victim.txt"), b"victim").expect("write");
    fs::copy(&deployment.database, root.join("outside.db")).expect("copy");
    fs::write(deployment.backup("inside.txt"), b"inside").expect("write");
    std::os::unix::fs::symlink(root.join("outside.db"), deployment.backup("link.db"))
        .expect("link");
    std::os::unix::fs::symlink(root, deployment.backup("dirlink")).expect("link");
    deployment
}

#[test]
fn each_misbehaviour_ends_in_a_clean_error_and_the_runtime_goes_on() {
    let deployment = bait();
    let runtime = hostile(&deployment);
    let expectations = [
        ("loop", "over its limit of 300 ms"),
        ("bomb", "over its limit of 32 MiB"),
        ("panic", "unreachable"),
        ("recurse", "call stack exhausted"),
    ];
    for (behaviour, said) in expectations {
        let result = runtime.create(Some(behaviour));
        assert!(
            matches!(&result, Err(Error::Guest(why)) if why.contains(said)),
            "{behaviour}: {result:?}"
        );
        assert_eq!(
            runtime.exists("inside.txt"),
            Ok(true),
            "still serving after {behaviour}"
        );
    }
}

#[test]
fn a_guest_cannot_make_the_host_work_without_end() {
    let deployment = bait();
    let before = deployment.tree();
    let runtime = hostile(&deployment);
    for behaviour in ["flood", "hoard", "rehash"] {
        let result = runtime.create(Some(behaviour));
        assert!(
            matches!(&result, Err(Error::Guest(why)) if why.contains("exceeded its budget")),
            "{behaviour}: {result:?}"
        );
    }
    // No second snapshot was taken, and the one allowed is gone with its operation.
    assert_eq!(deployment.tree(), before);
    assert_eq!(runtime.exists("inside.txt"), Ok(true), "still serving");
}

#[test]
fn a_guest_cannot_write_over_backups_or_the_hosts_files() {
    let deployment = bait();
    let before = deployment.tree();
    let result = hostile(&deployment).create(Some("overwrite"));
    assert_eq!(
        result,
        Err(Error::NotPermitted("all writes refused".into())),
        "writes are for metadata files only"
    );
    assert_eq!(deployment.tree(), before);
}

#[test]
fn every_escape_is_refused_by_the_host() {
    let deployment = bait();
    let passwd = file_sha256("/etc/passwd".as_ref()).ok();
    let before = deployment.tree();

    let result = hostile(&deployment).create(Some("escape"));

    assert!(
        matches!(&result, Err(Error::NotPermitted(why)) if why.starts_with("all ") && why.ends_with("attempts refused")),
        "{result:?}"
    );
    // The fixture's own account is not trusted: the files say the same.
    assert_eq!(
        deployment.tree(),
        before,
        "nothing inside or beside the directory changed"
    );
    assert_eq!(file_sha256("/etc/passwd".as_ref()).ok(), passwd);
    assert!(!std::path::Path::new("/tmp/escaped-by-guest.txt").exists());
    assert!(
        fs::symlink_metadata(deployment.backup("link.db"))
            .expect("stat")
            .is_symlink()
    );
}

#[test]
fn every_escape_through_a_remote_target_is_refused_by_the_host() {
    let deployment = bait();
    let root = deployment.root.path();
    let target = root.join("offsite");
    fs::create_dir(&target).expect("mkdir");
    let remotes = Targets::open(vec![TargetConfig {
        name: "offsite".into(),
        location: Location::Directory(target.clone()),
        zstd_level: None,
        recipients: Vec::new(),
        identity_files: Vec::new(),
    }])
    .expect("a directory target opens");
    let capabilities = deployment
        .runtime()
        .capabilities()
        .clone()
        .with_remotes(remotes);
    let policy = Policy::from_component(HOSTILE, LIMITS).expect("the fixture compiles");
    let runtime = Runtime::from_policy(&policy, capabilities);
    let before = deployment.tree();

    let result = runtime.push("real.db", Some("offsite"));

    assert!(
        matches!(&result, Err(Error::NotPermitted(why)) if why == "all 7 attempts refused"),
        "{result:?}"
    );
    assert_eq!(
        deployment.tree(),
        before,
        "nothing beside the directory changed"
    );
    assert_eq!(
        fs::read_dir(&target).expect("list").count(),
        0,
        "nothing was written to the target"
    );
    assert!(!root.join("escaped").exists());
}

#[test]
fn the_server_keeps_answering_while_guests_misbehave() {
    let deployment = bait();
    let server = Server::start_with(hostile(&deployment));
    let done = AtomicBool::new(false);
    let answered_meanwhile = AtomicUsize::new(0);
    thread::scope(|scope| {
        let misbehaving = scope.spawn(|| {
            let answers: Vec<_> = ["loop", "bomb", "panic", "recurse", "escape"]
                .into_iter()
                .map(|behaviour| (behaviour, post_backup(server.addr, behaviour)))
                .collect();
            done.store(true, Ordering::SeqCst);
            answers
        });
        let mut round = 0;
        while !done.load(Ordering::SeqCst) {
            let (target, expected) = if round % 2 == 0 {
                ("/v1.0/backups/inside.txt", 200)
            } else {
                ("/v1.0/backups/missing.db", 404)
            };
            assert_eq!(
                request(server.addr, "HEAD", target, &[ADMIN], b"").status,
                expected
            );
            if !done.load(Ordering::SeqCst) {
                answered_meanwhile.fetch_add(1, Ordering::SeqCst);
            }
            round += 1;
        }
        for (behaviour, answer) in misbehaving.join().expect("join") {
            if behaviour == "escape" {
                // The host refused the policy's escapes: a 400 that says so, naming no path
                // outside the backup directory but the one the policy tried.
                assert_eq!(answer.status, 400, "{behaviour}: {}", answer.text());
                continue;
            }
            assert_eq!(answer.status, 500, "{behaviour}");
            assert_eq!(
                answer.text(),
                INTERNAL_ERROR,
                "{behaviour}: nothing internal in the body"
            );
        }
    });
    assert!(answered_meanwhile.load(Ordering::SeqCst) >= 1);
    assert_eq!(
        request(
            server.addr,
            "HEAD",
            "/v1.0/backups/inside.txt",
            &[ADMIN],
            b""
        )
        .status,
        200,
        "and after"
    );
}

#[test]
fn the_cli_reports_a_misbehaving_policy_in_one_line() {
    let deployment = bait();
    let component = deployment.root.path().join("hostile.wasm");
    fs::write(&component, HOSTILE).expect("write the fixture");
    let component = component.to_string_lossy().into_owned();
    // A policy that fails is "any other failure" (6); one whose escapes the host refused
    // answers with that refusal (2, refused as given).
    for (behaviour, code) in [("loop", 6), ("bomb", 6), ("panic", 6), ("escape", 2)] {
        let output = deployment.run(&[
            "--policy-component",
            &component,
            "--guest-timeout-ms",
            "300",
            "--guest-memory-mib",
            "32",
            "create",
            behaviour,
        ]);
        assert_eq!(output.status.code(), Some(code), "{behaviour}");
        let message = stderr(&output);
        assert_eq!(message.lines().count(), 1, "{behaviour}: {message}");
        assert!(message.starts_with("error: "), "{behaviour}: {message}");
    }
    let not_a_component = deployment.run(&["--policy-component", "/etc/passwd", "list"]);
    assert_eq!(not_a_component.status.code(), Some(2));
    assert!(stderr(&not_a_component).contains("not a usable policy component"));
}

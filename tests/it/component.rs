//! The policy component and the host's capabilities, called in-process through the real
//! wasmtime runtime: backups, metadata, listing, deletion.

use std::fs;
use std::time::{Duration, SystemTime};

use litegraph_backup::{Error, GUEST_COMPONENT};
use litegraph_backup_tests::{content_digest, file_sha256, integrity, row_counts};
use rusqlite::Connection;

use crate::support::{Deployment, checksum_tool, ignoring_access};

#[test]
fn backup_of_litegraph_database_is_complete_and_intact() {
    let deployment = Deployment::with_nodes(2_000);
    let backup = deployment.runtime().create(Some("x.db")).expect("create");

    let copy = deployment.backup("x.db");
    assert_eq!(backup.filename, "x.db");
    assert_eq!(backup.length, fs::metadata(&copy).expect("stat").len());
    assert_eq!(integrity(&copy, true).expect("check"), "ok");
    let counts = row_counts(&copy).expect("count");
    assert_eq!(counts, row_counts(&deployment.database).expect("count"));
    assert_eq!(counts["nodes"], 2_000);
    assert_eq!(counts["tenants"], 2);
    assert_eq!(
        content_digest(&copy).expect("digest"),
        content_digest(&deployment.database).expect("digest")
    );
}

#[test]
fn backup_is_one_self_contained_file() {
    let deployment = Deployment::with_nodes(100);
    deployment.runtime().create(Some("x.db")).expect("create");
    let copy = deployment.backup("x.db");
    let journal_mode: String = Connection::open(&copy)
        .expect("open")
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("query");
    // A WAL-mode copy would spawn -wal/-shm files in the backup directory when opened.
    assert_eq!(journal_mode, "delete");
    let entries = deployment.backup_dir_entries();
    assert_eq!(
        entries.len(),
        2,
        "the backup and its sidecar only: {entries:?}"
    );
    assert!(entries.contains(&"x.db".to_owned()));
}

#[test]
fn recorded_digests_match_independent_tools() {
    let deployment = Deployment::with_nodes(300);
    let backup = deployment.runtime().create(Some("x.db")).expect("create");
    let copy = deployment.backup("x.db");
    assert_eq!(backup.sha256_hash, checksum_tool("sha256sum", &copy));
    assert_eq!(backup.sha1_hash, checksum_tool("sha1sum", &copy));
    assert_eq!(backup.md5_hash, checksum_tool("md5sum", &copy));
}

#[test]
fn list_read_exists_delete_round_trip() {
    let deployment = Deployment::with_nodes(50);
    let runtime = deployment.runtime();
    assert_eq!(runtime.list(), Ok(vec![]));
    let b = runtime.create(Some("b.db")).expect("create b");
    let a = runtime.create(Some("a.db")).expect("create a");

    assert_eq!(
        runtime.list(),
        Ok(vec![b.clone(), a.clone()]),
        "oldest first"
    );
    assert_eq!(runtime.read("a.db"), Ok(a));
    assert_eq!(runtime.exists("b.db"), Ok(true));
    assert_eq!(runtime.exists("c.db"), Ok(false));

    assert_eq!(runtime.delete("a.db"), Ok(()));
    assert_eq!(runtime.exists("a.db"), Ok(false));
    assert_eq!(runtime.read("a.db"), Err(Error::NotFound));
    assert_eq!(runtime.delete("a.db"), Err(Error::NotFound));
    assert_eq!(runtime.list(), Ok(vec![b]));
    assert_eq!(
        deployment.backup_dir_entries().len(),
        2,
        "b.db and its sidecar"
    );
}

#[test]
fn create_refuses_existing_name_and_keeps_the_original() {
    let deployment = Deployment::with_nodes(50);
    let runtime = deployment.runtime();
    let original = runtime.create(Some("x.db")).expect("create");
    let before = file_sha256(&deployment.backup("x.db")).expect("hash");
    // The database changes, so a second backup would differ.
    litegraph_backup_tests::create_litegraph_database(&deployment.database, 10).expect("grow");
    let entries = deployment.backup_dir_entries();

    assert_eq!(runtime.create(Some("x.db")), Err(Error::Exist));
    assert_eq!(
        file_sha256(&deployment.backup("x.db")).expect("hash"),
        before
    );
    let read = runtime.read("x.db").expect("read");
    assert_eq!(ignoring_access(&read), ignoring_access(&original));
    assert_eq!(deployment.backup_dir_entries(), entries);
}

#[test]
fn default_names_follow_litegraph_and_never_collide() {
    let deployment = Deployment::with_nodes(10);
    let runtime = deployment.runtime();
    let names: Vec<String> = (0..3)
        .map(|_| runtime.create(None).expect("create").filename)
        .collect();
    for name in &names {
        let stamp = name
            .strip_prefix("litegraph-backup-")
            .and_then(|rest| rest.strip_suffix(".db"))
            .expect("litegraph-backup-*.db");
        let digits: String = stamp.chars().filter(char::is_ascii_digit).collect();
        assert!(digits.len() >= 14, "{name}");
        assert_eq!(&stamp[8..9], "-", "{name}");
    }
    let mut unique = names.clone();
    unique.dedup();
    assert_eq!(unique, names, "three distinct names");
}

#[test]
fn missing_database_is_an_error_and_creates_nothing() {
    let deployment = Deployment::without_database();
    let before = deployment.tree();
    let result = deployment.runtime().create(Some("x.db"));
    let path = deployment.database.display().to_string();
    assert!(
        matches!(&result, Err(Error::NoDatabase(why)) if why.contains(&path)),
        "names the database: {result:?}"
    );
    assert!(
        !deployment.database.exists(),
        "no empty database was created"
    );
    assert_eq!(deployment.tree(), before);
}

#[test]
fn hand_copied_backup_is_listed_and_hashed_once() {
    let deployment = Deployment::with_nodes(20);
    let copied = deployment.backup("copied.db");
    fs::copy(&deployment.database, &copied).expect("copy by hand");
    let runtime = deployment.runtime();

    let listed = runtime.list().expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].sha256_hash, file_sha256(&copied).expect("hash"));

    // Changed in place after its digests were recorded: the record stands (verify's job to
    // notice), which shows the listing did not hash the file again.
    let mut bytes = fs::read(&copied).expect("read");
    bytes[100] ^= 0xff;
    fs::write(&copied, &bytes).expect("write in place");
    let relisted = deployment.runtime().list().expect("list again");
    assert_eq!(relisted[0].sha256_hash, listed[0].sha256_hash);
    assert_ne!(relisted[0].sha256_hash, file_sha256(&copied).expect("hash"));
}

#[test]
fn a_backup_replaced_under_its_name_keeps_its_record_and_fails_verify() {
    let deployment = Deployment::with_nodes(20);
    let runtime = deployment.runtime();
    let made = runtime.create(Some("x.db")).expect("create");
    // Replaced the way most tools rewrite a file: a new file renamed over the old one.
    let stand_in = deployment.root.path().join("stand-in.db");
    fs::copy(&deployment.database, &stand_in).expect("copy");
    litegraph_backup_tests::create_litegraph_database(&stand_in, 5).expect("change it");
    fs::rename(&stand_in, deployment.backup("x.db")).expect("rename over the backup");

    let read = runtime.read("x.db").expect("read");
    assert_eq!(
        read.sha256_hash, made.sha256_hash,
        "the record of what was backed up stands"
    );
    let verdict = runtime.verify("x.db", false).expect("a verdict");
    assert!(!verdict.verified);
    let problems = verdict.problems.join("\n");
    assert!(problems.contains("SHA-256 differs"), "{problems}");
    if fs::metadata(deployment.backup("x.db"))
        .and_then(|m| m.created())
        .is_ok()
    {
        assert!(
            problems.contains("replaced since its digests were recorded"),
            "{problems}"
        );
    }
    assert!(matches!(runtime.restore("x.db"), Err(Error::Corrupt(_))));
}

#[test]
fn a_backup_deleted_by_hand_and_copied_in_again_gets_a_record_of_its_own() {
    let deployment = Deployment::with_nodes(20);
    let runtime = deployment.runtime();
    runtime.create(Some("x.db")).expect("create");
    fs::remove_file(deployment.backup("x.db")).expect("delete by hand");
    assert_eq!(
        runtime.list(),
        Ok(vec![]),
        "the listing forgets it, sidecar and all"
    );
    assert!(
        deployment.backup_dir_entries().is_empty(),
        "{:?}",
        deployment.backup_dir_entries()
    );
    fs::write(deployment.backup("x.db"), b"not the same bytes").expect("copy in");
    let read = runtime.read("x.db").expect("read");
    assert_eq!(
        read.sha256_hash,
        file_sha256(&deployment.backup("x.db")).expect("hash")
    );
    assert_eq!(read.length, 18);
}

#[test]
fn temporaries_and_sidecars_never_appear_in_list() {
    let deployment = Deployment::with_nodes(20);
    let runtime = deployment.runtime();
    runtime.create(Some("x.db")).expect("create");
    fs::write(deployment.backup(".lgb-1-2-3.tmp"), b"partial copy").expect("plant");
    fs::write(deployment.backup(".lgb-1-2-3.tmp-journal"), b"journal").expect("plant");
    fs::create_dir(deployment.backup("subdirectory")).expect("plant");
    let names: Vec<String> = runtime
        .list()
        .expect("list")
        .into_iter()
        .map(|b| b.filename)
        .collect();
    assert_eq!(names, ["x.db"]);
}

#[test]
fn stale_temporaries_are_swept_and_live_ones_kept() {
    let deployment = Deployment::with_nodes(20);
    let stale = deployment.backup(".lgb-99999-0-000000000.tmp");
    let stale_journal = deployment.backup(".lgb-99999-0-000000000.tmp-journal");
    let fresh = deployment.backup(".lgb-99999-1-000000000.tmp");
    let locked = deployment.backup(".lgb-99999-2-000000000.tmp");
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    for path in [&stale, &stale_journal, &locked] {
        let file = fs::File::create(path).expect("plant");
        file.set_modified(an_hour_ago).expect("age it");
    }
    fs::write(&fresh, b"just made").expect("plant");
    // A live owner holds its temporary's lock (here, this test stands in for it).
    let owner = fs::File::open(&locked).expect("open");
    owner.lock().expect("lock");

    deployment.runtime().create(Some("x.db")).expect("create");

    assert!(!stale.exists(), "an abandoned snapshot is removed");
    assert!(!stale_journal.exists(), "and its journal");
    assert!(
        fresh.exists(),
        "a temporary that may still be starting is kept"
    );
    assert!(locked.exists(), "a temporary whose owner lives is kept");
}

#[test]
fn symlinks_in_the_backup_directory_are_never_followed() {
    let deployment = Deployment::with_nodes(20);
    let outside = deployment.root.path().join("outside.db");
    fs::write(&outside, b"precious").expect("write");
    std::os::unix::fs::symlink(&outside, deployment.backup("link.db")).expect("symlink");
    std::os::unix::fs::symlink(deployment.root.path(), deployment.backup("dirlink"))
        .expect("symlink");
    let runtime = deployment.runtime();

    assert_eq!(runtime.list(), Ok(vec![]));
    assert_eq!(runtime.read("link.db"), Err(Error::NotFound));
    assert_eq!(runtime.exists("link.db"), Ok(false));
    assert_eq!(runtime.delete("link.db"), Err(Error::NotFound));
    assert_eq!(runtime.create(Some("link.db")), Err(Error::Exist));
    assert_eq!(fs::read(&outside).expect("read"), b"precious");
    assert!(
        fs::symlink_metadata(deployment.backup("link.db"))
            .expect("stat")
            .is_symlink()
    );
}

#[test]
fn embedded_guest_is_a_component_exporting_backup() {
    let engine = wasmtime::Engine::default();
    let component = wasmtime::component::Component::new(&engine, GUEST_COMPONENT)
        .expect("the embedded guest is a component");
    let ty = component.component_type();
    let exports: Vec<String> = ty
        .exports(&engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    assert_eq!(exports, ["litegraph:backup/backup@0.2.0"]);
    let imports: Vec<String> = ty
        .imports(&engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let ours = [
        "litegraph:backup/types@0.2.0",
        "litegraph:backup/store@0.2.0",
        "litegraph:backup/snapshot@0.2.0",
        "litegraph:backup/remote@0.2.0",
    ];
    for interface in ours {
        assert!(
            imports.iter().any(|i| i == interface),
            "{interface} in {imports:?}"
        );
    }
    // Beyond our own interfaces, only what Rust's wasm32-wasip2 std imports by itself.
    for import in &imports {
        assert!(
            ours.contains(&import.as_str()) || import.starts_with("wasi:"),
            "unexpected import {import} in {imports:?}"
        );
    }
}

// Regression: nested call hooks (the guest's allocator called while a host function
// returns) once made the clock lose the host's time, and a large backup hit the deadline.
#[test]
fn guest_deadline_does_not_count_host_work() {
    let deployment = Deployment::with_nodes(5_000);
    let limit = Duration::from_millis(20);
    let policy = litegraph_backup::Policy::embedded(litegraph_backup::Limits {
        guest_time: limit,
        ..litegraph_backup::Limits::default()
    })
    .expect("compile");
    let runtime = litegraph_backup::Runtime::from_policy(
        &policy,
        deployment.runtime().capabilities().clone(),
    );
    let started = std::time::Instant::now();
    runtime
        .create(Some("x.db"))
        .expect("the host's copying and hashing is not guest time");
    assert!(
        started.elapsed() > limit,
        "the host work took longer than the guest's limit"
    );
}

/// The hidden file that holds a backup's record: `.lgb-<SHA-256 of the name, hex>.meta`.
fn sidecar_of(name: &str) -> String {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(name.as_bytes());
    format!(
        ".lgb-{}.meta",
        litegraph_backup_tests::upper_hex(&hash).to_lowercase()
    )
}

// Item 24: one sidecar over 64 KiB, or a directory with a sidecar's name, failed every
// listing.
#[test]
fn one_bad_sidecar_does_not_break_the_listing() {
    let deployment = Deployment::with_nodes(20);
    let runtime = deployment.runtime();
    for name in ["a.db", "b.db", "c.db"] {
        runtime.create(Some(name)).expect("create");
    }
    let oversized = deployment.backup(&sidecar_of("a.db"));
    assert!(oversized.exists(), "the sidecar is where this test thinks");
    fs::write(&oversized, vec![b'x'; 65 * 1024]).expect("bloat a sidecar");
    let in_the_way = deployment.backup(&sidecar_of("b.db"));
    fs::remove_file(&in_the_way).expect("remove a sidecar");
    fs::create_dir(&in_the_way).expect("a directory in its place");

    let listed = runtime.list().expect("the listing still works");
    let names: Vec<&str> = listed.iter().map(|b| b.filename.as_str()).collect();
    assert_eq!(names, ["a.db", "b.db", "c.db"]);
    for backup in &listed {
        let file = deployment.backup(&backup.filename);
        assert_eq!(backup.sha256_hash, file_sha256(&file).expect("hash"));
    }
    assert!(
        fs::metadata(&oversized).expect("stat").len() < 1024,
        "the bloated record was written again"
    );

    let verdict = runtime.verify("b.db", false).expect("a verdict");
    assert!(!verdict.verified);
    let problems = verdict.problems.join("\n");
    assert!(problems.contains("could not be recorded"), "{problems}");
}

/// `component --output` writes the exact bytes this build runs, for another host, and
/// `--wit` the package they implement; a file in the way is replaced whole, and a
/// directory that is not there is an error that leaves nothing.
#[test]
fn the_component_command_writes_the_bytes_the_host_runs_and_their_wit() {
    use std::os::unix::fs::PermissionsExt;
    let deployment = Deployment::without_database();
    let dir = deployment.root.path().join("out");
    fs::create_dir(&dir).expect("out");
    let output = dir.join("policy.wasm");
    fs::write(&output, b"an older component").expect("a file in the way");
    let written = deployment
        .cli()
        .args(["--json", "component", "--output"])
        .arg(&output)
        .arg("--wit")
        .arg(dir.join("wit"))
        .output()
        .expect("run");
    assert!(
        written.status.success(),
        "{}",
        crate::support::stderr(&written)
    );
    assert_eq!(fs::read(&output).expect("read"), GUEST_COMPONENT);
    let mode = fs::metadata(&output).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o644);
    let answer: serde_json::Value =
        serde_json::from_slice(&written.stdout).expect("the answer is JSON");
    assert_eq!(answer["Bytes"], GUEST_COMPONENT.len());
    assert_eq!(
        answer["Sha256"],
        file_sha256(&output).expect("hash").to_uppercase()
    );
    let repository_wit = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
    let sorted_names = |dir: &std::path::Path| {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("a WIT directory")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    };
    let names = sorted_names(&dir.join("wit"));
    let expected = sorted_names(&repository_wit);
    assert_eq!(names, expected);
    for name in &names {
        assert_eq!(
            fs::read_to_string(dir.join("wit").join(name)).expect("written"),
            fs::read_to_string(repository_wit.join(name)).expect("repository"),
            "{name}"
        );
    }
    let listed_before: Vec<_> = fs::read_dir(&dir).expect("out").collect();
    assert_eq!(
        listed_before.len(),
        2,
        "the component and wit/, no temporary"
    );

    let nowhere = deployment.root.path().join("missing").join("policy.wasm");
    let refused = deployment
        .cli()
        .args(["component", "--output"])
        .arg(&nowhere)
        .output()
        .expect("run");
    assert!(!refused.status.success());
    let message = crate::support::stderr(&refused);
    assert!(message.contains("does not exist"), "{message}");
    assert!(!nowhere.parent().expect("parent").exists());
}

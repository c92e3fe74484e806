//! Verification and restore: a restore brings back exactly the backup's content, keeps a
//! safety backup of what it replaced, refuses damaged backups, and never shows a reader a
//! mix of old and new.

use std::fs;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

use litegraph_backup::Error;
use litegraph_backup_tests::{
    content_digest, create_litegraph_database, file_sha256, integrity, row_counts,
};
use rusqlite::Connection;
use serde_json::Value;

use crate::support::{Deployment, stderr, stdout};

/// Changes the live database: more nodes, fewer tenants.
fn change(deployment: &Deployment) {
    create_litegraph_database(&deployment.database, 300).expect("add nodes");
    Connection::open(&deployment.database)
        .expect("open")
        .execute("DELETE FROM tenants WHERE rowid = 1", [])
        .expect("delete");
}

fn journal_mode(path: &std::path::Path) -> String {
    Connection::open(path)
        .expect("open")
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("query")
}

#[test]
fn restore_brings_back_the_backup_and_keeps_a_verified_safety_backup() {
    let deployment = Deployment::with_nodes(1_000);
    assert!(deployment.run(&["create", "a.db"]).status.success());
    let backed_up = content_digest(&deployment.backup("a.db")).expect("digest");
    change(&deployment);
    let changed = content_digest(&deployment.database).expect("digest");
    let changed_counts = row_counts(&deployment.database).expect("counts");
    assert_ne!(changed, backed_up);

    let output = deployment.run(&["restore", "a.db", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let restoration: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    assert_eq!(restoration["Restored"]["Filename"], "a.db");

    assert_eq!(
        content_digest(&deployment.database).expect("digest"),
        backed_up
    );
    // In the file itself, not only in its WAL: a copy of litegraph.db alone has it.
    let file_alone = deployment.root.path().join("file-alone.db");
    fs::copy(&deployment.database, &file_alone).expect("copy the file alone");
    assert_eq!(content_digest(&file_alone).expect("digest"), backed_up);
    assert_eq!(
        row_counts(&deployment.database).expect("counts"),
        row_counts(&deployment.backup("a.db")).expect("counts")
    );
    assert_eq!(integrity(&deployment.database, true).expect("check"), "ok");
    assert_eq!(
        journal_mode(&deployment.database),
        "wal",
        "the live database stays in WAL mode"
    );

    let safety = restoration["SafetyBackup"]["Filename"]
        .as_str()
        .expect("a name");
    assert!(
        safety.starts_with("pre-restore-") && safety.ends_with(".db"),
        "{safety}"
    );
    assert_eq!(
        content_digest(&deployment.backup(safety)).expect("digest"),
        changed
    );
    assert_eq!(
        row_counts(&deployment.backup(safety)).expect("counts"),
        changed_counts
    );
    let verified = deployment.run(&["verify", safety, "--full"]);
    assert_eq!(verified.status.code(), Some(0), "{}", stdout(&verified));
    let listed = stdout(&deployment.run(&["list"]));
    assert!(
        listed.contains(safety),
        "the safety backup is listed like any backup"
    );
}

#[test]
fn one_flipped_byte_is_reported_by_verify_and_refused_by_restore() {
    let deployment = Deployment::with_nodes(500);
    assert!(deployment.run(&["create", "a.db"]).status.success());
    assert_eq!(deployment.run(&["verify", "a.db"]).status.code(), Some(0));
    let copy = deployment.backup("a.db");
    let mut bytes = fs::read(&copy).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(&copy, &bytes).expect("tamper in place");
    change(&deployment);
    let live_before = file_sha256(&deployment.database).expect("hash");
    let entries_before = deployment.backup_dir_entries();

    let verified = deployment.run(&["verify", "a.db"]);
    assert_eq!(verified.status.code(), Some(4), "damaged");
    assert!(
        stdout(&verified).contains("SHA-256 differs"),
        "{}",
        stdout(&verified)
    );

    let restored = deployment.run(&["restore", "a.db"]);
    assert_eq!(restored.status.code(), Some(4), "damaged");
    let message = stderr(&restored);
    assert!(
        message.contains("failed verification") && message.contains("SHA-256 differs"),
        "{message}"
    );
    assert_eq!(
        file_sha256(&deployment.database).expect("hash"),
        live_before
    );
    assert_eq!(
        deployment.backup_dir_entries(),
        entries_before,
        "no safety backup either"
    );
}

#[test]
fn truncated_backup_is_reported_and_refused() {
    let deployment = Deployment::with_nodes(500);
    let runtime = deployment.runtime();
    runtime.create(Some("a.db")).expect("create");
    let copy = deployment.backup("a.db");
    let length = fs::metadata(&copy).expect("stat").len();
    fs::OpenOptions::new()
        .write(true)
        .open(&copy)
        .and_then(|f| f.set_len(length / 2))
        .expect("truncate");
    let verdict = runtime.verify("a.db", true).expect("a verdict");
    assert!(!verdict.verified);
    assert_eq!(verdict.check, "integrity_check");
    let problems = verdict.problems.join("\n");
    assert!(problems.contains("length differs"), "{problems}");
    assert!(
        problems.contains("integrity_check:"),
        "SQLite notices too: {problems}"
    );
    let live = file_sha256(&deployment.database).expect("hash");
    assert!(matches!(runtime.restore("a.db"), Err(Error::Corrupt(_))));
    assert_eq!(file_sha256(&deployment.database).expect("hash"), live);
}

#[test]
fn verify_of_a_sound_backup_passes_both_checks() {
    let deployment = Deployment::with_nodes(200);
    let runtime = deployment.runtime();
    let backup = runtime.create(Some("a.db")).expect("create");
    for full in [false, true] {
        let verdict = runtime.verify("a.db", full).expect("a verdict");
        assert!(verdict.verified, "{:?}", verdict.problems);
        assert_eq!(verdict.actual.sha256_hash, backup.sha256_hash);
    }
    assert_eq!(
        runtime.verify("missing.db", false).map(|_| ()),
        Err(Error::NotFound)
    );
}

#[test]
fn restore_while_readers_read_shows_old_or_new_never_a_mix() {
    let deployment = Deployment::with_nodes(20_000);
    let marker = |db: &Connection, value: &str| {
        db.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS marker (state TEXT); DELETE FROM marker; INSERT INTO marker VALUES ('{value}');"
        ))
        .expect("mark");
    };
    let live = Connection::open(&deployment.database).expect("open");
    marker(&live, "new");
    deployment.runtime().create(Some("new.db")).expect("create");
    // The old state: different marker, different node count.
    marker(&live, "old");
    live.execute("DELETE FROM nodes WHERE rowid % 3 = 0", [])
        .expect("delete");
    drop(live);
    let states = |path: &std::path::Path| -> (String, i64) {
        let db = Connection::open(path).expect("open");
        let state = db
            .query_row("SELECT state FROM marker", [], |r| r.get(0))
            .expect("marker");
        let count = db
            .query_row("SELECT count(*) FROM nodes", [], |r| r.get(0))
            .expect("count");
        (state, count)
    };
    let old = states(&deployment.database);
    let new = states(&deployment.backup("new.db"));
    assert_ne!(old, new);

    let done = AtomicBool::new(false);
    let reads = AtomicUsize::new(0);
    thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                let mut db = Connection::open(&deployment.database).expect("open");
                db.busy_timeout(std::time::Duration::from_secs(30))
                    .expect("timeout");
                while !done.load(Ordering::SeqCst) {
                    let tx = db.transaction().expect("begin");
                    let state: String = tx
                        .query_row("SELECT state FROM marker", [], |r| r.get(0))
                        .expect("marker");
                    let count: i64 = tx
                        .query_row("SELECT count(*) FROM nodes", [], |r| r.get(0))
                        .expect("count");
                    drop(tx);
                    let seen = (state, count);
                    assert!(seen == old || seen == new, "a reader saw a mix: {seen:?}");
                    reads.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        while reads.load(Ordering::SeqCst) < 4 {
            thread::yield_now();
        }
        let restored = deployment.runtime().restore("new.db");
        done.store(true, Ordering::SeqCst);
        restored.expect("restore with readers attached");
    });
    assert_eq!(states(&deployment.database), new);
    assert_eq!(integrity(&deployment.database, true).expect("check"), "ok");
}

#[test]
fn restore_needs_an_existing_database() {
    let deployment = Deployment::with_nodes(50);
    deployment.runtime().create(Some("a.db")).expect("create");
    fs::remove_file(&deployment.database).expect("remove");
    let _ = fs::remove_file(deployment.database.with_extension("db-wal"));
    let _ = fs::remove_file(deployment.database.with_extension("db-shm"));
    let output = deployment.run(&["restore", "a.db"]);
    assert_eq!(output.status.code(), Some(3), "not found");
    assert!(
        stderr(&output).contains("does not exist"),
        "{}",
        stderr(&output)
    );
    assert!(
        !deployment.database.exists(),
        "nothing was created in its place"
    );
}

/// Sets its flag when dropped, so that a panicking test still stops its helper threads.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The acknowledged values of a `commits` table in a database file.
fn committed(path: &std::path::Path) -> std::collections::BTreeSet<i64> {
    let db = Connection::open(path).expect("open");
    let mut statement = db.prepare("SELECT n FROM commits").expect("prepare");
    statement
        .query_map([], |row| row.get(0))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("read")
}

// Regression: commits that landed between the safety backup and the replacement were in
// neither (2-3 rows lost per restore with a writer every 5 ms).
#[test]
fn restore_under_a_fast_writer_loses_no_acknowledged_commit() {
    let deployment = Deployment::with_nodes(2_000);
    Connection::open(&deployment.database)
        .expect("open")
        .execute_batch("CREATE TABLE commits (n INTEGER PRIMARY KEY)")
        .expect("create the table");
    let runtime = deployment.runtime();
    runtime.create(Some("base.db")).expect("create");

    let done = AtomicBool::new(false);
    let failures = std::sync::Mutex::new(Vec::<String>::new());
    let acknowledged = thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let db = Connection::open(&deployment.database).expect("open");
            db.busy_timeout(std::time::Duration::from_secs(30))
                .expect("timeout");
            let mut acknowledged = Vec::new();
            let mut n = 0;
            while !done.load(Ordering::SeqCst) {
                n += 1;
                // A commit that fails (busy) is not acknowledged: only successes count.
                match db.execute("INSERT INTO commits VALUES (?1)", [n]) {
                    Ok(_) => acknowledged.push(n),
                    Err(e) => failures.lock().expect("lock").push(e.to_string()),
                }
            }
            acknowledged
        });
        // Stops the writer however this thread leaves the scope, a failed assertion too.
        let _stop = StopOnDrop(&done);
        for _ in 0..10 {
            // Each restore runs while the writer is committing: wait for a fresh commit.
            let before = committed(&deployment.database).len();
            let waiting = std::time::Instant::now();
            while committed(&deployment.database).len() == before {
                assert!(
                    waiting.elapsed() < std::time::Duration::from_secs(60),
                    "the writer stopped committing: {:?}",
                    failures.lock().expect("lock").last()
                );
                thread::yield_now();
            }
            runtime.restore("base.db").expect("restore");
        }
        done.store(true, Ordering::SeqCst);
        writer.join().expect("the writer")
    });

    let mut kept = committed(&deployment.database);
    let safety_backups: Vec<String> = runtime
        .list()
        .expect("list")
        .into_iter()
        .map(|b| b.filename)
        .filter(|name| name.starts_with("pre-restore-"))
        .collect();
    assert_eq!(safety_backups.len(), 10);
    for safety in &safety_backups {
        kept.extend(committed(&deployment.backup(safety)));
    }
    let lost: Vec<i64> = acknowledged
        .iter()
        .copied()
        .filter(|n| !kept.contains(n))
        .collect();
    assert!(acknowledged.len() > 10, "the writer committed throughout");
    assert_eq!(lost, Vec::<i64>::new(), "acknowledged commits lost");
    assert_eq!(integrity(&deployment.database, true).expect("check"), "ok");
}

// Regression: a backup with 65,536-byte pages passed verify, then its restore into a
// 4,096-byte WAL database failed with an opaque 500 and left a full-size safety backup
// behind on each attempt.
#[test]
fn restore_refuses_another_page_size_before_any_safety_copy() {
    let deployment = Deployment::with_nodes(200);
    let large = deployment.root.path().join("large-pages.db");
    {
        let db = Connection::open(&large).expect("open");
        db.execute_batch("PRAGMA page_size = 65536; CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .expect("create");
    }
    fs::copy(&large, deployment.backup("large.db")).expect("copy in by hand");
    let runtime = deployment.runtime();
    assert!(runtime.verify("large.db", false).expect("verdict").verified);
    let entries = deployment.backup_dir_entries();
    let live = content_digest(&deployment.database).expect("digest");

    let refused = runtime.restore("large.db");
    let Err(Error::NotPermitted(why)) = &refused else {
        panic!("refused with a reason: {refused:?}");
    };
    assert!(
        why.contains("page size is 65536 bytes") && why.contains("4096 bytes"),
        "{why}"
    );
    assert_eq!(deployment.backup_dir_entries(), entries, "no safety copy");
    assert_eq!(content_digest(&deployment.database).expect("digest"), live);
}

// Regression: verify hashed the file through the directory handle while restore reopened
// it by path, so a file swapped in between was restored unverified.
#[test]
fn restore_writes_only_the_bytes_that_were_verified() {
    let deployment = Deployment::with_nodes(3_000);
    let runtime = deployment.runtime();
    runtime.create(Some("a.db")).expect("create");
    let verified_content = content_digest(&deployment.backup("a.db")).expect("digest");
    // Another sound database, never verified, and a copy of the verified one.
    let other = deployment.root.path().join("other.db");
    create_litegraph_database(&other, 10).expect("create");
    Connection::open(&other)
        .expect("open")
        .execute_batch("PRAGMA journal_mode = DELETE")
        .expect("rollback journal");
    let other_content = content_digest(&other).expect("digest");
    let original = deployment.root.path().join("a-original.db");
    fs::copy(deployment.backup("a.db"), &original).expect("keep the original");

    let done = AtomicBool::new(false);
    thread::scope(|scope| {
        scope.spawn(|| {
            // Swaps the unverified file in under the backup's name and back, atomically.
            let staging = deployment.root.path().join("staging.db");
            while !done.load(Ordering::SeqCst) {
                for source in [&other, &original] {
                    fs::copy(source, &staging).expect("stage");
                    fs::rename(&staging, deployment.backup("a.db")).expect("swap");
                }
            }
        });
        for _ in 0..10 {
            let before = content_digest(&deployment.database).expect("digest");
            let outcome = runtime.restore("a.db");
            let after = content_digest(&deployment.database).expect("digest");
            assert_ne!(after, other_content, "an unverified file was restored");
            match outcome {
                Ok(_) => assert_eq!(after, verified_content),
                Err(_) => assert_eq!(after, before, "a refused restore changed nothing"),
            }
        }
        done.store(true, Ordering::SeqCst);
    });
}

/// Makes a backup of a database holding `before_backup`, then changes its schema with
/// `after_backup`, restores the backup and checks that the live database, and a
/// connection that stayed open throughout, now see the backup's schema and rows.
fn restore_across_a_schema_change(before_backup: &str, after_backup: &str) {
    let deployment = Deployment::with_nodes(500);
    let open = Connection::open(&deployment.database).expect("open");
    open.execute_batch(before_backup).expect("schema before");
    let runtime = deployment.runtime();
    runtime.create(Some("a.db")).expect("create");
    let backed_up = content_digest(&deployment.backup("a.db")).expect("digest");
    open.execute_batch(after_backup).expect("schema after");
    let tables = |db: &Connection| -> Vec<String> {
        db.prepare("SELECT name FROM sqlite_schema ORDER BY name")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .expect("schema")
    };
    let expected = tables(&Connection::open(deployment.backup("a.db")).expect("open"));
    let restoration = runtime
        .restore("a.db")
        .expect("restore across a schema change");
    assert_eq!(restoration.restored.filename, "a.db");
    assert_eq!(
        content_digest(&deployment.database).expect("digest"),
        backed_up
    );
    assert_eq!(integrity(&deployment.database, true).expect("check"), "ok");
    assert_eq!(
        tables(&open),
        expected,
        "an open connection re-read the schema"
    );
    let nodes: i64 = open
        .query_row("SELECT count(*) FROM nodes", [], |r| r.get(0))
        .expect("an open connection reads the restored rows");
    assert!(nodes > 0);
}

// Regression: a backup with fewer tables than the live database failed to restore with
// "database disk image is malformed" (the transaction re-read the schema mid-way).
#[test]
fn restore_works_when_tables_were_added_since_the_backup() {
    restore_across_a_schema_change(
        "CREATE TABLE kept (x)",
        "CREATE TABLE added (x); CREATE INDEX added_x ON added (x); INSERT INTO added VALUES (1);",
    );
}

// Regression: a backup with more tables than the live database was restored, yet the
// restore reported a failed check and "the live database was not changed".
#[test]
fn restore_works_when_tables_were_dropped_since_the_backup() {
    restore_across_a_schema_change(
        "CREATE TABLE dropped (x); INSERT INTO dropped VALUES (1);",
        "DROP TABLE dropped",
    );
}

// Found by the operator review: each restore left a WAL one database larger than before,
// for good (four restores of 204 MiB left an 859 MB WAL).
#[test]
fn restores_do_not_grow_the_wal_without_end() {
    let deployment = Deployment::with_nodes(2_000);
    assert!(deployment.run(&["create", "a.db"]).status.success());
    let database_bytes = fs::metadata(&deployment.database).expect("stat").len();
    let wal = deployment.database.with_extension("db-wal");
    for round in 1..=3 {
        let output = deployment.run(&["restore", "a.db"]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let wal_bytes = fs::metadata(&wal).map_or(0, |m| m.len());
        assert!(
            wal_bytes < database_bytes,
            "after restore {round}, the WAL holds {wal_bytes} bytes for a database of \
             {database_bytes}"
        );
    }
    assert_eq!(journal_mode(&deployment.database), "wal");
}

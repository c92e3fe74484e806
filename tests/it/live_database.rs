//! The live database is never a backup: with `--backups` pointing at the database's own
//! directory, no command can list, read, delete or restore `litegraph.db` or SQLite's files
//! beside it.

use litegraph_backup::Error;
use litegraph_backup::snapshot::{DEFAULT_BUSY_TIMEOUT, LiveDatabase};
use litegraph_backup::store::BackupDir;
use litegraph_backup::{Capabilities, Runtime};
use litegraph_backup_tests::{content_digest, create_litegraph_database};
use rusqlite::Connection;

use crate::support::{cli_command, policy, stderr, stdout};

// Regression: `--backups` at the database's directory listed litegraph.db, -wal and -shm
// as backups; `delete litegraph.db` deleted the live database and `restore litegraph.db`
// restored it into itself.
#[test]
fn the_live_database_in_the_backup_directory_is_out_of_reach() {
    let root = tempfile::tempdir().expect("scratch");
    let database = root.path().join("litegraph.db");
    create_litegraph_database(&database, 100).expect("create");
    // Keep a connection open so that -wal and -shm exist, as beside a running LiteGraph.
    let holder = Connection::open(&database).expect("open");
    holder
        .execute_batch("CREATE TABLE IF NOT EXISTS kept (x); INSERT INTO kept VALUES (1);")
        .expect("write");
    std::fs::write(root.path().join("litegraph.db-journal"), b"").expect("a journal");
    assert!(root.path().join("litegraph.db-wal").exists());

    let backups = BackupDir::open(root.path()).expect("open");
    let database_handle = LiveDatabase::new(&database, DEFAULT_BUSY_TIMEOUT);
    let runtime = Runtime::from_policy(policy(), Capabilities::new(database_handle, backups));
    runtime
        .create(Some("real.db"))
        .expect("a real backup next to it");
    let live_files = [
        "litegraph.db",
        "litegraph.db-wal",
        "litegraph.db-shm",
        "litegraph.db-journal",
    ];
    let listed: Vec<String> = runtime
        .list()
        .expect("list")
        .into_iter()
        .map(|b| b.filename)
        .collect();
    assert_eq!(listed, ["real.db"]);
    for name in live_files {
        assert!(
            matches!(runtime.read(name), Err(Error::NotPermitted(_))),
            "{name}"
        );
        assert!(
            matches!(runtime.delete(name), Err(Error::NotPermitted(_))),
            "{name}"
        );
        assert!(
            matches!(runtime.verify(name, false), Err(Error::NotPermitted(_))),
            "{name}"
        );
        assert!(runtime.restore(name).is_err(), "{name}");
        assert!(root.path().join(name).exists(), "{name} is still there");
    }

    // The same through the command line, and a raw download's open.
    let before = content_digest(&database).expect("digest");
    let run = |args: &[&str]| {
        cli_command()
            .arg("--database")
            .arg(&database)
            .arg("--backups")
            .arg(root.path())
            .args(args)
            .output()
            .expect("run the CLI")
    };
    let listed = run(&["list", "--json"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert!(
        !stdout(&listed).contains("litegraph.db"),
        "{}",
        stdout(&listed)
    );
    for command in ["delete", "restore", "show", "verify"] {
        let output = run(&[command, "litegraph.db"]);
        assert!(!output.status.success(), "{command} was refused");
        assert!(
            stderr(&output).contains("live database"),
            "{command}: {}",
            stderr(&output)
        );
    }
    let reopened = BackupDir::open(root.path()).map(|mut dir| {
        assert!(dir.protect_live_database(&database));
        dir
    });
    assert!(
        reopened
            .expect("open")
            .open_for_reading("litegraph.db")
            .is_err()
    );
    drop(holder);
    assert_eq!(content_digest(&database).expect("digest"), before);
}

// Regression: with `--database` spelt through a symbolic link (or a hard link), the live
// database's files in the backup directory were listed, restored and deleted as backups.
#[test]
fn the_live_database_is_recognised_through_links() {
    let root = tempfile::tempdir().expect("scratch");
    let data = root.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    let database = data.join("litegraph.db");
    create_litegraph_database(&database, 50).expect("create");
    let holder = Connection::open(&database).expect("open");
    holder
        .execute_batch("CREATE TABLE IF NOT EXISTS kept (x); INSERT INTO kept VALUES (1);")
        .expect("write");
    let elsewhere = root.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).expect("mkdir");
    let symlink = elsewhere.join("link.db");
    std::os::unix::fs::symlink(&database, &symlink).expect("symlink");
    std::fs::hard_link(&database, data.join("hard-link.db")).expect("hard link");

    let backups = BackupDir::open(&data).expect("open");
    let runtime = Runtime::from_policy(
        policy(),
        Capabilities::new(LiveDatabase::new(&symlink, DEFAULT_BUSY_TIMEOUT), backups),
    );
    runtime.create(Some("real.db")).expect("a real backup");
    let listed: Vec<String> = runtime
        .list()
        .expect("list")
        .into_iter()
        .map(|b| b.filename)
        .collect();
    assert_eq!(listed, ["real.db"]);
    for name in ["litegraph.db", "litegraph.db-wal", "hard-link.db"] {
        assert!(
            matches!(runtime.delete(name), Err(Error::NotPermitted(_))),
            "{name}"
        );
        assert!(runtime.restore(name).is_err(), "{name}");
        assert!(data.join(name).exists(), "{name} is still there");
    }
    drop(holder);
}

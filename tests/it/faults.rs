//! Faults: a disk that fills up, a database locked too long, a backup directory that is not
//! usable. Each is one clear error, and nothing that existed is lost.

use std::fs;
use std::process::Command;

use litegraph_backup_tests::{create_litegraph_database_of_size, file_sha256};
use rusqlite::Connection;

use crate::support::{Deployment, cli_binary, stderr};

#[test]
fn disk_full_during_create_is_a_clear_error_and_leaves_nothing_behind() {
    let deployment = Deployment::without_database();
    create_litegraph_database_of_size(&deployment.database, 24 << 20).expect("database");
    assert!(deployment.run(&["create", "earlier.db"]).status.success());
    let earlier = file_sha256(&deployment.backup("earlier.db")).expect("hash");
    let entries = deployment.backup_dir_entries();

    // RLIMIT_FSIZE below the database's size: the copy's writes fail with EFBIG, as a full
    // disk fails them with ENOSPC, well after the copy has begun. SIGXFSZ is left as it
    // comes (its default action kills): the CLI must catch it and report the failed write
    // (regression: it died with status 153 and said nothing).
    let limit_kib = fs::metadata(&deployment.database).expect("stat").len() / 1024 / 2;
    let script = format!(
        "ulimit -f {limit_kib}; exec \"$0\" --database \"$1\" --backups \"$2\" create full.db"
    );
    let create_under_limit = |backups: &std::path::Path| {
        Command::new("bash")
            .env(
                "LITEGRAPH_COMPILE_CACHE",
                crate::support::shared_compile_cache(),
            )
            .args(["-c", &script])
            .arg(cli_binary())
            .arg(&deployment.database)
            .arg(backups)
            .output()
            .expect("run under a file size limit")
    };
    let output = create_under_limit(&deployment.backups);

    assert_eq!(output.status.code(), Some(6), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains("could not write the copy into the backup directory"),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "cannot create backup \"full.db\" of {}",
            deployment.database.display()
        )),
        "names the operation and the paths: {message}"
    );
    assert_eq!(message.lines().count(), 1, "{message}");
    assert_eq!(
        deployment.backup_dir_entries(),
        entries,
        "the partial copy is gone"
    );
    assert_eq!(
        file_sha256(&deployment.backup("earlier.db")).expect("hash"),
        earlier
    );

    // Into directories the command makes: they go again, operation lock and all
    // (regression: `.lgb-operation.lock` kept the whole chain).
    let fresh = deployment.root.path().join("new");
    let output = create_under_limit(&fresh.join("nested").join("backups"));
    assert_eq!(output.status.code(), Some(6), "{}", stderr(&output));
    assert!(!fresh.exists(), "the directories it made are gone");
}

#[test]
fn database_locked_beyond_the_busy_timeout_is_a_clear_error() {
    let deployment = Deployment::with_nodes(100);
    let holder = Connection::open(&deployment.database).expect("open");
    let mode: String = holder
        .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
        .expect("rollback journal");
    assert_eq!(mode, "delete");
    // Picture the tree before locking: closing any descriptor of the database file in this
    // process would drop the holder's POSIX locks.
    let before = deployment.tree();
    holder
        .execute_batch("BEGIN EXCLUSIVE")
        .expect("hold the lock");

    let output = deployment.run(&["--busy-timeout-ms", "200", "create", "x.db"]);

    assert_eq!(output.status.code(), Some(5), "busy");
    assert!(stderr(&output).contains("locked"), "{}", stderr(&output));
    holder.execute_batch("COMMIT").expect("release");
    drop(holder);
    assert_eq!(deployment.tree(), before);
    assert!(
        deployment.run(&["create", "x.db"]).status.success(),
        "fine once released"
    );
}

#[test]
fn backup_directory_that_is_a_file_is_a_clear_error() {
    let deployment = Deployment::with_nodes(10);
    fs::remove_dir(&deployment.backups).expect("remove");
    fs::write(&deployment.backups, b"not a directory").expect("a file in its place");
    for args in [&["create", "x.db"][..], &["list"], &["restore", "x.db"]] {
        let output = deployment.run(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&output).contains("backup directory"),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    assert_eq!(
        fs::read(&deployment.backups).expect("read"),
        b"not a directory"
    );
}

#[test]
fn every_command_names_a_missing_database() {
    let deployment = Deployment::without_database();
    let binary = cli_binary();
    assert!(binary.is_file());
    for args in [&["create"][..], &["restore", "x.db"]] {
        let output = deployment.run(args);
        assert_eq!(output.status.code(), Some(3), "{args:?}");
        let message = stderr(&output);
        assert!(
            message.contains("does not exist") || message.contains("no backup named"),
            "{message}"
        );
    }
    assert!(!deployment.database.exists());
}

#[test]
fn a_second_create_or_restore_waits_for_the_first_then_gives_up() {
    let deployment = Deployment::with_nodes(100);
    assert!(deployment.run(&["create", "a.db"]).status.success());
    // Stand in for another create or restore, in this or another process.
    let lock = fs::File::options()
        .write(true)
        .open(deployment.backup(".lgb-operation.lock"))
        .expect("the lock file exists after a create");
    lock.lock().expect("take it");
    let before = deployment.tree();
    for args in [
        &["--busy-timeout-ms", "200", "create", "b.db"][..],
        &["--busy-timeout-ms", "200", "restore", "a.db"],
    ] {
        let output = deployment.run(args);
        assert_eq!(output.status.code(), Some(5), "{args:?}");
        assert!(
            stderr(&output).contains("another create or restore"),
            "{}",
            stderr(&output)
        );
    }
    assert_eq!(
        deployment.tree(),
        before,
        "nothing was done while it waited"
    );
    drop(lock);
    assert!(deployment.run(&["create", "b.db"]).status.success());
}

#[test]
fn simultaneous_creates_of_different_names_take_turns() {
    let deployment = Deployment::with_nodes(2_000);
    let runtime = deployment.runtime();
    let results: Vec<_> = std::thread::scope(|scope| {
        let creates: Vec<_> = (0..3)
            .map(|i| {
                let runtime = &runtime;
                scope.spawn(move || runtime.create(Some(&format!("turn-{i}.db"))))
            })
            .collect();
        creates
            .into_iter()
            .map(|c| c.join().expect("join"))
            .collect()
    });
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(runtime.list().expect("list").len(), 3);
}

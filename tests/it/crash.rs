//! Crash safety, for real: the CLI is killed with SIGKILL at several points of a create and
//! of a restore. No final backup name ever holds an incomplete file, the live database is
//! wholly old or wholly new and sound, and the next run ignores or cleans what was left.

use std::fs;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant, SystemTime};

use litegraph_backup_tests::{content_digest, create_litegraph_database_of_size, integrity};
use rusqlite::Connection;

use crate::support::{Deployment, stdout};

/// How big the database is: big enough that a debug build takes a good fraction of a second
/// to copy and hash it, so that every kill point is reached while work is under way.
const DATABASE_BYTES: u64 = 80 << 20;

/// Polls until `reached` holds or the child exits; kills it (SIGKILL) if it is still running.
/// Returns whether the kill interrupted it (false: it had already finished).
fn kill_when(child: &mut Child, reached: impl Fn() -> bool) -> bool {
    let started = Instant::now();
    loop {
        if child.try_wait().expect("poll the child").is_some() {
            return false;
        }
        if reached() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");
            return true;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the kill point was never reached"
        );
        std::thread::yield_now();
    }
}

fn temporaries(dir: &Path) -> Vec<(String, u64)> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let length = e.metadata().ok()?.len();
                    name.ends_with(".tmp").then_some((name, length))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn file_length(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Every file under a final (listable) name is a complete, sound backup; and the listing
/// shows no internal file.
fn assert_every_backup_is_whole(deployment: &Deployment) {
    for entry in fs::read_dir(&deployment.backups).expect("read") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.starts_with('.') {
            continue;
        }
        let output = deployment.run(&["verify", &name]);
        assert_eq!(output.status.code(), Some(0), "{name}: {}", stdout(&output));
    }
    let listed = stdout(&deployment.run(&["list", "--json"]));
    assert!(!listed.contains("\"Filename\":\"."), "{listed}");
}

/// Makes every leftover look old, as if the next run came a while later.
fn age_leftovers(dir: &Path) {
    let long_ago = SystemTime::now() - Duration::from_secs(3600);
    for entry in fs::read_dir(dir).expect("read") {
        let path = entry.expect("entry").path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(".lgb-"))
        {
            let file = fs::File::options().append(true).open(&path).expect("open");
            file.set_modified(long_ago).expect("age");
        }
    }
}

#[test]
fn create_killed_at_any_point_leaves_no_partial_backup() {
    let deployment = Deployment::without_database();
    create_litegraph_database_of_size(&deployment.database, DATABASE_BYTES).expect("database");
    let database_length = file_length(&deployment.database);
    let backups = deployment.backups.clone();

    type Point = Box<dyn Fn() -> bool>;
    let points: Vec<(&str, Point)> = vec![
        ("snapshot started", {
            let backups = backups.clone();
            Box::new(move || !temporaries(&backups).is_empty())
        }),
        ("snapshot half copied", {
            let backups = backups.clone();
            Box::new(move || {
                temporaries(&backups)
                    .iter()
                    .any(|(_, n)| *n > database_length / 2)
            })
        }),
        ("backup published", {
            let backups = backups.clone();
            Box::new(move || backups.join("killed-2.db").exists())
        }),
    ];
    let mut interrupted = 0;
    for (i, (point, reached)) in points.iter().enumerate() {
        let mut child = deployment
            .cli()
            .args(["create", &format!("killed-{i}.db")])
            .spawn()
            .expect("spawn");
        let killed = kill_when(&mut child, reached);
        interrupted += usize::from(killed);
        eprintln!("create killed at {point:?}: {killed}");
        assert_every_backup_is_whole(&deployment);
    }
    assert!(
        interrupted >= 2,
        "the kills landed while the create was working"
    );

    // The next run: leftovers are ignored by list, and removed once they are stale.
    age_leftovers(&deployment.backups);
    let next = deployment.run(&["create", "after.db"]);
    assert_eq!(next.status.code(), Some(0));
    let leftovers: Vec<String> = deployment
        .backup_dir_entries()
        .into_iter()
        .filter(|n| n.ends_with(".tmp") || n.contains(".tmp-"))
        .collect();
    assert_eq!(
        leftovers,
        Vec::<String>::new(),
        "stale temporaries were cleaned"
    );
    assert_every_backup_is_whole(&deployment);
}

/// Kills a restore once `reached` holds; the live database must then be the old content or
/// the new, and sound.
fn restore_killed_when(journal: &str, reached: fn(&Deployment) -> bool) -> bool {
    let deployment = Deployment::without_database();
    create_litegraph_database_of_size(&deployment.database, DATABASE_BYTES).expect("database");
    Connection::open(&deployment.database)
        .expect("open")
        .query_row(&format!("PRAGMA journal_mode = {journal}"), [], |_| Ok(()))
        .expect("journal mode");
    assert!(deployment.run(&["create", "new.db"]).status.success());
    let new = content_digest(&deployment.backup("new.db")).expect("digest");
    {
        let db = Connection::open(&deployment.database).expect("open");
        db.execute("DELETE FROM nodes WHERE rowid % 2 = 0", [])
            .expect("change");
        db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .expect("checkpoint");
    }
    let old = content_digest(&deployment.database).expect("digest");
    assert_ne!(old, new);

    let mut child = deployment
        .cli()
        .args(["restore", "new.db"])
        .spawn()
        .expect("spawn");
    let killed = kill_when(&mut child, || reached(&deployment));

    // The next connection that opens it read-write recovers it: rolls back a hot journal,
    // ignores WAL frames that were never committed.
    Connection::open(&deployment.database)
        .and_then(|db| db.query_row("SELECT count(*) FROM nodes", [], |_| Ok(())))
        .expect("recover");
    assert_eq!(integrity(&deployment.database, true).expect("check"), "ok");
    let now = content_digest(&deployment.database).expect("digest");
    assert!(
        now == old || now == new,
        "the live database is a mix of old and new"
    );
    assert_every_backup_is_whole(&deployment);
    killed
}

fn wal_grew(deployment: &Deployment) -> bool {
    file_length(&deployment.database.with_extension("db-wal")) > 4 << 20
}

fn journal_grew(deployment: &Deployment) -> bool {
    file_length(&deployment.database.with_extension("db-journal")) > 4 << 20
}

fn safety_backup_started(deployment: &Deployment) -> bool {
    !temporaries(&deployment.backups).is_empty()
}

#[test]
fn restore_killed_while_writing_a_wal_database_leaves_old_or_new() {
    assert!(restore_killed_when("WAL", wal_grew), "killed mid-restore");
}

#[test]
fn restore_killed_while_writing_a_rollback_database_leaves_old_or_new() {
    assert!(
        restore_killed_when("DELETE", journal_grew),
        "killed mid-restore"
    );
}

#[test]
fn restore_killed_while_taking_its_safety_backup_leaves_the_database_alone() {
    assert!(
        restore_killed_when("WAL", safety_backup_started),
        "killed mid-safety-backup"
    );
}

/// Sends `signal` to a CLI once its temporary exists; returns its output, or None if it
/// finished before the temporary was seen.
fn signal_when_temporary_exists(
    deployment: &Deployment,
    args: &[&str],
    signal: &str,
) -> Option<std::process::Output> {
    signal_when(deployment, args, signal, || {
        !temporaries(&deployment.backups).is_empty()
    })
}

/// Sends `signal` to a CLI once `reached` holds; returns its output, or None if it
/// finished first.
fn signal_when(
    deployment: &Deployment,
    args: &[&str],
    signal: &str,
    reached: impl Fn() -> bool,
) -> Option<std::process::Output> {
    let mut child = deployment
        .cli()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let started = Instant::now();
    while !reached() {
        if child.try_wait().expect("poll").is_some() {
            return None;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the awaited state never came"
        );
        std::thread::yield_now();
    }
    let status = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    Some(child.wait_with_output().expect("wait"))
}

/// The safety backups in a backup directory.
fn safety_backups(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .expect("read the backup directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("pre-restore-"))
        .collect()
}

// Regression: an interrupted restore said "the live database was not changed" whatever
// its phase (also after it had committed) and never named its safety backup.
#[test]
fn interrupted_restore_tells_truly_whether_it_committed_and_names_its_safety_backup() {
    let deployment = Deployment::without_database();
    create_litegraph_database_of_size(&deployment.database, DATABASE_BYTES).expect("database");
    assert!(deployment.run(&["create", "new.db"]).status.success());
    let restored = content_digest(&deployment.backup("new.db")).expect("digest");
    let interrupted = (0..3).find_map(|_| {
        Connection::open(&deployment.database)
            .and_then(|db| db.execute("DELETE FROM nodes WHERE rowid % 7 = 0", []))
            .expect("change the live database");
        let before = content_digest(&deployment.database).expect("digest");
        let safety_before = safety_backups(&deployment.backups).len();
        // Once its safety backup is published, the restore is writing or committing.
        signal_when(&deployment, &["restore", "new.db"], "-INT", || {
            safety_backups(&deployment.backups).len() > safety_before
        })
        .map(|output| (output, before))
    });
    let Some((output, before)) = interrupted else {
        panic!("three restores finished before their safety backups were seen");
    };
    let message = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{message}");
    let safety = safety_backups(&deployment.backups);
    let newest_safety = safety.iter().max().expect("a safety backup");
    assert!(
        message.contains(newest_safety.as_str()),
        "names it: {message}"
    );
    let live = content_digest(&deployment.database).expect("digest");
    if message.contains("had committed") {
        assert_eq!(live, restored, "{message}");
    } else {
        assert!(
            message.contains("had not committed: the live database was not changed"),
            "{message}"
        );
        assert_eq!(live, before, "{message}");
    }
    assert!(temporaries(&deployment.backups).is_empty());
}

#[test]
fn interrupted_create_removes_its_temporary_and_exits_130() {
    // Before: Ctrl-C left a partial `.lgb-*.tmp` of up to the database's size behind.
    let deployment = Deployment::without_database();
    create_litegraph_database_of_size(&deployment.database, DATABASE_BYTES).expect("database");
    let interrupted = (0..3)
        .find_map(|i| {
            signal_when_temporary_exists(&deployment, &["create", &format!("i{i}.db")], "-INT")
        })
        .expect("a create was interrupted while copying");
    let message = String::from_utf8_lossy(&interrupted.stderr);
    assert_eq!(interrupted.status.code(), Some(130), "{message}");
    assert!(
        message.contains("interrupted: no backup was made"),
        "{message}"
    );
    assert!(
        temporaries(&deployment.backups).is_empty(),
        "temporary removed"
    );
    assert!(
        deployment
            .backup_dir_entries()
            .iter()
            .all(|name| !name.starts_with(".lgb-") || name.ends_with(".meta")),
        "{:?}",
        deployment.backup_dir_entries()
    );
}

#[test]
fn terminated_restore_says_the_database_was_not_changed() {
    let deployment = Deployment::without_database();
    create_litegraph_database_of_size(&deployment.database, DATABASE_BYTES).expect("database");
    assert!(deployment.run(&["create", "new.db"]).status.success());
    Connection::open(&deployment.database)
        .and_then(|db| db.execute("DELETE FROM nodes WHERE rowid % 2 = 0", []))
        .expect("change the live database");
    let before = content_digest(&deployment.database).expect("digest");
    let Some(terminated) =
        signal_when_temporary_exists(&deployment, &["restore", "new.db"], "-TERM")
    else {
        panic!("the restore finished before its safety copy was seen");
    };
    let message = String::from_utf8_lossy(&terminated.stderr);
    assert_eq!(terminated.status.code(), Some(143), "{message}");
    assert!(
        message.contains("had not committed: the live database was not changed")
            && message.contains("no safety backup had been published"),
        "{message}"
    );
    assert!(
        temporaries(&deployment.backups).is_empty(),
        "temporary removed"
    );
    assert_eq!(
        content_digest(&deployment.database).expect("digest"),
        before
    );
}

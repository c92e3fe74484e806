//! Restore drills through the binary: a backup restored into a scratch database in a private
//! temporary directory, checked and removed; the live database is never touched, a damaged
//! backup fails with the exit status of damage, and `show` tells the last drill.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use litegraph_backup_tests::{
    TABLES, create_litegraph_database, create_litegraph_database_of_size, file_sha256, row_counts,
};
use rusqlite::Connection;
use serde_json::Value;

use crate::support::{Deployment, stderr, stdout};

/// A deployment with `nodes` nodes, one backup `x.db` of it, and an empty directory for
/// TMPDIR.
fn with_backup(nodes: u64) -> (Deployment, PathBuf) {
    let deployment = Deployment::with_nodes(nodes);
    made(&deployment);
    let tmp = tmp(&deployment);
    (deployment, tmp)
}

fn made(deployment: &Deployment) {
    let created = deployment.run(&["create", "x.db"]);
    assert_eq!(created.status.code(), Some(0), "{}", stderr(&created));
}

/// An empty directory for the drill's TMPDIR, beside (not inside) the backup directory.
fn tmp(deployment: &Deployment) -> PathBuf {
    let tmp = deployment.root.path().join("tmp");
    fs::create_dir_all(&tmp).expect("create the TMPDIR");
    tmp
}

/// Runs the CLI with `args` and TMPDIR set to `tmp`.
fn run_in(deployment: &Deployment, tmp: &Path, args: &[&str]) -> Output {
    deployment
        .cli()
        .env("TMPDIR", tmp)
        .args(args)
        .output()
        .expect("run the CLI")
}

/// The SHA-256 of each of the live database's files (the database, its -wal and -shm).
fn live_files(deployment: &Deployment) -> BTreeMap<String, String> {
    let name = deployment
        .database
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a file name")
        .to_owned();
    fs::read_dir(deployment.root.path())
        .expect("read the deployment")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&name))
        })
        .map(|path| {
            let digest = file_sha256(&path).expect("hash a live file");
            (path.display().to_string(), digest)
        })
        .collect()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read a directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn drill_json(output: &Output) -> Value {
    serde_json::from_str(&stdout(output)).expect("the drill as JSON")
}

/// The tables of a drill's JSON: name, rows in the backup, rows once restored.
fn tables(drill: &Value) -> BTreeMap<String, (i64, Option<i64>)> {
    drill["Tables"]
        .as_array()
        .expect("Tables")
        .iter()
        .map(|t| {
            (
                t["Name"].as_str().expect("Name").to_owned(),
                (
                    t["InBackup"].as_i64().expect("InBackup"),
                    t["Restored"].as_i64(),
                ),
            )
        })
        .collect()
}

/// Overwrites `length` bytes in the middle of `path` with other bytes; its length stays.
fn damage_in_the_middle(path: &Path, length: usize) {
    let mut bytes = fs::read(path).expect("read the backup");
    let before = bytes.len();
    let middle = (bytes.len() / 2) & !4095;
    for byte in &mut bytes[middle..middle + length] {
        *byte ^= 0x5A;
    }
    fs::write(path, &bytes).expect("write the backup");
    assert_eq!(fs::metadata(path).expect("stat").len() as usize, before);
}

#[test]
fn a_sound_backup_passes_its_drill_and_the_live_database_is_untouched() {
    let (deployment, tmp) = with_backup(400);
    let live_before = live_files(&deployment);
    let backups_before = deployment.backup_dir_entries();
    let expected: BTreeMap<String, (i64, Option<i64>)> = row_counts(&deployment.backup("x.db"))
        .expect("counts")
        .into_iter()
        .map(|(table, rows)| (table, (rows, Some(rows))))
        .collect();
    assert_eq!(expected.len(), TABLES.len());

    let output = run_in(&deployment, &tmp, &["drill", "x.db"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.starts_with("x.db: drill PASSED in "), "{text}");
    assert!(text.contains("LiteGraph    present"), "{text}");
    assert!(
        text.contains("9 tables, ") && text.contains("every count the same once restored"),
        "{text}"
    );
    let nodes = expected["nodes"].0;
    assert!(
        text.lines()
            .any(|line| line.trim_start().starts_with("nodes")
                && line.trim_end().ends_with(&nodes.to_string())),
        "the nodes table and its {nodes} rows: {text}"
    );
    assert!(!text.contains("Problems"), "{text}");

    let json = run_in(&deployment, &tmp, &["drill", "latest", "--json"]);
    assert_eq!(json.status.code(), Some(0), "{}", stderr(&json));
    let drill = drill_json(&json);
    assert_eq!(drill["Passed"], true);
    assert_eq!(drill["Backup"]["Filename"], "x.db");
    assert_eq!(drill["LiteGraphSchema"], true);
    assert_eq!(tables(&drill), expected, "every table, its rows in both");

    assert_eq!(
        entries(&tmp),
        Vec::<String>::new(),
        "the scratch copy is gone"
    );
    assert_eq!(
        live_files(&deployment),
        live_before,
        "the live database's bytes"
    );
    assert_eq!(
        deployment.backup_dir_entries(),
        backups_before,
        "nothing new in the backup directory"
    );

    let shown = deployment.run(&["show", "x.db"]);
    assert_eq!(shown.status.code(), Some(0), "{}", stderr(&shown));
    let shown = stdout(&shown);
    assert!(shown.contains("Origin       named by a person"), "{shown}");
    assert!(shown.contains("Last verify  "), "{shown}");
    let last = shown
        .lines()
        .find(|line| line.starts_with("Last drill"))
        .expect("a last drill line");
    assert!(last.contains(", passed in "), "{last}");
    assert!(
        last.contains(drill["StartedUtc"].as_str().expect("StartedUtc")),
        "the last drill is the one just run: {last}"
    );
}

#[test]
fn a_backup_damaged_on_purpose_fails_its_drill_with_exit_4_and_show_tells() {
    let (deployment, tmp) = with_backup(1_000);
    let live_before = live_files(&deployment);
    damage_in_the_middle(&deployment.backup("x.db"), 8192);

    let output = run_in(&deployment, &tmp, &["drill", "x.db", "--json"]);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("x.db in ")
            && stderr(&output).contains("failed its restore drill"),
        "{}",
        stderr(&output)
    );
    let drill = drill_json(&output);
    assert_eq!(drill["Passed"], false);
    let problems: Vec<&str> = drill["Problems"]
        .as_array()
        .expect("Problems")
        .iter()
        .map(|p| p.as_str().expect("a sentence"))
        .collect();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("not those recorded") && p.contains("SHA-256")),
        "the digest mismatch: {problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("integrity_check of the restored database: ")),
        "SQLite's findings: {problems:?}"
    );

    let text = run_in(&deployment, &tmp, &["drill", "x.db"]);
    assert_eq!(text.status.code(), Some(4));
    let text = stdout(&text);
    assert!(text.starts_with("x.db: drill FAILED in "), "{text}");
    assert!(text.contains("Problems\n  - "), "{text}");

    assert_eq!(
        entries(&tmp),
        Vec::<String>::new(),
        "the scratch copy is gone"
    );
    assert_eq!(
        live_files(&deployment),
        live_before,
        "the live database's bytes"
    );

    let shown = stdout(&deployment.run(&["show", "x.db"]));
    let last = shown
        .lines()
        .find(|line| line.starts_with("Last drill"))
        .expect("a last drill line");
    assert!(
        last.contains(", FAILED in ") && last.contains("not those recorded"),
        "{last}"
    );
    // `show --json` stays LiteGraph's BackupFile, nothing added.
    let json = deployment.run(&["show", "x.db", "--json"]);
    let object: Value = serde_json::from_str(&stdout(&json)).expect("JSON");
    crate::support::assert_backup_file(&object, &stdout(&json));
}

#[test]
fn a_file_that_is_not_a_database_fails_its_drill_not_an_error() {
    let deployment = Deployment::with_nodes(10);
    let tmp = tmp(&deployment);
    fs::write(deployment.backup("junk.db"), vec![b'j'; 10_000]).expect("write junk");
    let output = run_in(&deployment, &tmp, &["drill", "junk.db"]);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.starts_with("junk.db: drill FAILED"), "{text}");
    assert!(
        text.contains("the backup could not be restored: not a database"),
        "{text}"
    );
    assert_eq!(entries(&tmp), Vec::<String>::new());
}

#[test]
fn a_drill_needs_a_backup_and_a_valid_name() {
    let deployment = Deployment::with_nodes(10);
    let tmp = tmp(&deployment);
    for args in [&["drill"][..], &["drill", "latest"]] {
        let output = run_in(&deployment, &tmp, args);
        assert_eq!(
            output.status.code(),
            Some(3),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains("no backups in"),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    let missing = run_in(&deployment, &tmp, &["drill", "missing.db"]);
    assert_eq!(missing.status.code(), Some(3));
    assert!(
        stderr(&missing).contains("no backup named \"missing.db\""),
        "{}",
        stderr(&missing)
    );
    for name in ["../x.db", ".hidden.db", "a/b.db"] {
        let invalid = run_in(&deployment, &tmp, &["drill", name]);
        assert_eq!(
            invalid.status.code(),
            Some(2),
            "{name}: {}",
            stderr(&invalid)
        );
        assert!(
            stderr(&invalid).contains("invalid backup name"),
            "{name}: {}",
            stderr(&invalid)
        );
    }
    assert_eq!(entries(&tmp), Vec::<String>::new());
}

/// A live database whose layout is set by `pragmas` before LiteGraph's tables are made;
/// its backup's `pragma` then answers `value`.
fn drill_of_a_database_made_with(pragmas: &str, (pragma, value): (&str, i64)) {
    let deployment = Deployment::without_database();
    let db = Connection::open(&deployment.database).expect("create the database");
    db.execute_batch(pragmas).expect("set the layout");
    // A table made and dropped writes the header with the layout set.
    db.execute_batch("CREATE TABLE seed(x); DROP TABLE seed;")
        .expect("write the header");
    drop(db);
    create_litegraph_database(&deployment.database, 300).expect("fill the database");
    made(&deployment);
    let layout: i64 = Connection::open(deployment.backup("x.db"))
        .and_then(|db| db.query_row(&format!("PRAGMA {pragma}"), [], |r| r.get(0)))
        .expect("read the backup's layout");
    assert_eq!(layout, value, "the backup has the layout under test");
    let tmp = tmp(&deployment);
    let live_before = live_files(&deployment);
    let output = run_in(&deployment, &tmp, &["drill", "--json"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{pragmas}: {}",
        stderr(&output)
    );
    let drill = drill_json(&output);
    assert_eq!(drill["Passed"], true, "{pragmas}: {drill}");
    assert_eq!(tables(&drill).len(), TABLES.len(), "{pragmas}");
    assert_eq!(
        tables(&drill)["nodes"],
        (300, Some(300)),
        "{pragmas}: {drill}"
    );
    assert_eq!(entries(&tmp), Vec::<String>::new(), "{pragmas}");
    assert_eq!(live_files(&deployment), live_before, "{pragmas}");
}

#[test]
fn a_database_of_512_byte_pages_drills() {
    drill_of_a_database_made_with("PRAGMA page_size = 512;", ("page_size", 512));
}

#[test]
fn a_database_of_65536_byte_pages_drills() {
    drill_of_a_database_made_with("PRAGMA page_size = 65536;", ("page_size", 65_536));
}

#[test]
fn a_database_with_full_auto_vacuum_drills() {
    drill_of_a_database_made_with("PRAGMA auto_vacuum = FULL;", ("auto_vacuum", 1));
}

#[test]
fn drill_json_has_the_documented_shape() {
    let (deployment, tmp) = with_backup(20);
    let output = run_in(&deployment, &tmp, &["drill", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let raw = stdout(&output);
    assert_eq!(raw.lines().count(), 1, "one line: {raw}");
    let drill = drill_json(&output);
    let keys: Vec<&str> = drill
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = vec![
        "Passed",
        "Problems",
        "Backup",
        "StartedUtc",
        "Milliseconds",
        "LiteGraphSchema",
        "Tables",
    ];
    expected.sort();
    let mut keys = keys;
    keys.sort();
    assert_eq!(keys, expected);
    assert!(drill["Passed"].is_boolean());
    assert_eq!(drill["Problems"], Value::Array(vec![]));
    assert!(drill["Milliseconds"].is_u64());
    assert!(drill["LiteGraphSchema"].is_boolean());
    let started = drill["StartedUtc"].as_str().expect("a string");
    assert!(started.ends_with('Z') && started.len() == 27, "{started}");
    // The first BackupFile properties of the text are the backup's (no problem precedes).
    crate::support::assert_backup_file(&drill["Backup"], &raw);
    for table in drill["Tables"].as_array().expect("Tables") {
        let mut keys: Vec<&str> = table
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort();
        assert_eq!(keys, ["InBackup", "Name", "Restored"]);
    }
    // Quiet: nothing on stdout, the verdict in the exit status.
    let quiet = run_in(&deployment, &tmp, &["--quiet", "drill"]);
    assert_eq!(quiet.status.code(), Some(0), "{}", stderr(&quiet));
    assert_eq!(stdout(&quiet), "");
}

/// The scratch databases under `tmp` and their lengths.
fn scratch_databases(tmp: &Path) -> Vec<u64> {
    fs::read_dir(tmp)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| fs::metadata(entry.path().join("drill.db")).ok())
                .map(|metadata| metadata.len())
                .collect()
        })
        .unwrap_or_default()
}

/// A drill of `x.db` with TMPDIR `tmp` (stderr piped), once its restore has written a few
/// MiB into its scratch database.
fn drill_under_way(deployment: &Deployment, tmp: &Path) -> std::process::Child {
    let mut child = deployment
        .cli()
        .env("TMPDIR", tmp)
        .args(["drill", "x.db"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start a drill");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(
            child.try_wait().expect("poll the drill").is_none(),
            "the drill ended before its restore was seen under way"
        );
        if scratch_databases(tmp)
            .iter()
            .any(|&length| length > 4 << 20)
        {
            return child;
        }
        assert!(Instant::now() < deadline, "no scratch database grew");
        std::thread::yield_now();
    }
}

#[test]
fn a_drill_killed_midway_leaves_its_scratch_copy_to_the_next_drill_which_removes_it() {
    let deployment = Deployment::without_database();
    create_litegraph_database_of_size(&deployment.database, 80 << 20).expect("a database");
    made(&deployment);
    let tmp = tmp(&deployment);
    // Killed (SIGKILL: no destructor runs) once its restore has written a few MiB.
    let mut child = drill_under_way(&deployment, &tmp);
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    assert_eq!(
        entries(&tmp).len(),
        1,
        "the killed drill's directory is left"
    );

    let output = run_in(&deployment, &tmp, &["drill", "x.db"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        entries(&tmp),
        Vec::<String>::new(),
        "both scratch copies are gone"
    );
}

// Found by the operator review: SIGTERM during a drill left its scratch copy (a whole
// backup) in TMPDIR until the next drill, and said nothing.
#[test]
fn a_drill_stopped_by_sigterm_removes_its_scratch_copy_and_says_so() {
    let deployment = Deployment::without_database();
    create_litegraph_database_of_size(&deployment.database, 80 << 20).expect("a database");
    made(&deployment);
    let before = live_files(&deployment);
    let tmp = tmp(&deployment);
    let child = drill_under_way(&deployment, &tmp);
    // kill(1), as the serve tests send it: the tests use no unsafe code.
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
    let output = child.wait_with_output().expect("reap the drill");
    let said = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(143), "{said}");
    assert!(
        said.contains("interrupted: the drill stopped before its end"),
        "{said}"
    );
    assert_eq!(
        entries(&tmp),
        Vec::<String>::new(),
        "the scratch copy is gone"
    );
    assert_eq!(
        live_files(&deployment),
        before,
        "the live database is untouched"
    );
}

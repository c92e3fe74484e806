//! The snapshot's copy, page for page in one read transaction (issue 13): whatever the
//! source's page size, journal mode, auto-vacuum or size, a backup passes
//! `integrity_check`, opens without leaving `-wal`/`-shm` and equals a `step(-1)` copy
//! table by table.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

use litegraph_backup::{BackupFile, Error};
use litegraph_backup_tests::{create_litegraph_database, integrity, row_counts, upper_hex};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::config::DbConfig;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, params};
use sha2::{Digest, Sha256};

use crate::support::Deployment;

/// What a database holds, as a `step(-1)` copy of it holds it too: the header values a
/// page-for-page copy keeps, the schema with its root pages, and every table's rows in
/// rowid order (a count and a digest per table).
#[derive(Debug, PartialEq, Eq)]
struct Contents {
    header: BTreeMap<&'static str, i64>,
    /// `type`, `name`, `tbl_name`, `rootpage` and `sql` of every schema entry.
    schema: Vec<[String; 5]>,
    tables: BTreeMap<String, TableDigest>,
}

#[derive(Debug, PartialEq, Eq)]
struct TableDigest {
    rows: u64,
    sha256: String,
}

/// Not `schema_version`: `step(-1)` sets the copy's to its own previous value plus one.
const HEADER_PRAGMAS: [&str; 6] = [
    "page_size",
    "page_count",
    "freelist_count",
    "auto_vacuum",
    "user_version",
    "application_id",
];

impl Contents {
    fn of(path: &Path) -> Contents {
        let db = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open a copy read-only");
        // One read transaction: the header values and the rows are of one moment.
        db.execute_batch("BEGIN").expect("begin");
        let header = HEADER_PRAGMAS
            .into_iter()
            .map(|pragma| (pragma, pragma_value(&db, pragma)))
            .collect();
        let mut statement = db
            .prepare(
                "SELECT type, name, tbl_name, rootpage, ifnull(sql, '') FROM sqlite_schema \
                 ORDER BY type, name",
            )
            .expect("read the schema");
        let schema: Vec<[String; 5]> = statement
            .query_map([], |row| {
                Ok([
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get::<_, i64>(3)?.to_string(),
                    row.get(4)?,
                ])
            })
            .expect("query the schema")
            .collect::<rusqlite::Result<_>>()
            .expect("read the schema");
        let tables = schema
            .iter()
            .filter(|[kind, ..]| kind == "table")
            .map(|[_, name, ..]| (name.clone(), table_digest(&db, name)))
            .collect();
        drop(statement);
        db.execute_batch("COMMIT").expect("end the read");
        Contents {
            header,
            schema,
            tables,
        }
    }

    fn header(&self, pragma: &str) -> i64 {
        self.header[pragma]
    }
}

fn pragma_value(db: &Connection, pragma: &str) -> i64 {
    db.query_row(&format!("PRAGMA {pragma}"), [], |r| r.get(0))
        .expect("a pragma")
}

/// Every row of `table`, rowid first, in rowid order: each value with its type.
fn table_digest(db: &Connection, table: &str) -> TableDigest {
    let quoted = table.replace('"', "\"\"");
    let mut statement = db
        .prepare(&format!("SELECT rowid, * FROM \"{quoted}\" ORDER BY rowid"))
        .expect("select a table's rows");
    let columns = statement.column_count();
    let mut rows = statement.query([]).expect("query");
    let (mut count, mut hasher) = (0, Sha256::new());
    while let Some(row) = rows.next().expect("a row") {
        for column in 0..columns {
            match row.get_ref(column).expect("a value") {
                ValueRef::Null => hasher.update([0]),
                ValueRef::Integer(i) => {
                    hasher.update([1]);
                    hasher.update(i.to_le_bytes());
                }
                ValueRef::Real(r) => {
                    hasher.update([2]);
                    hasher.update(r.to_bits().to_le_bytes());
                }
                ValueRef::Text(bytes) => hash_bytes(&mut hasher, 3, bytes),
                ValueRef::Blob(bytes) => hash_bytes(&mut hasher, 4, bytes),
            }
        }
        count += 1;
    }
    TableDigest {
        rows: count,
        sha256: upper_hex(&hasher.finalize()),
    }
}

fn hash_bytes(hasher: &mut Sha256, kind: u8, bytes: &[u8]) {
    hasher.update([kind]);
    hasher.update((bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

/// The contents of a `step(-1)` copy of `source` made now: the reference any copy path must
/// equal. Made in a scratch directory of its own and removed before returning (the copy of
/// the biggest source here is over 1 GiB).
fn step_copy_contents(source: &Path) -> Contents {
    let scratch = tempfile::tempdir().expect("scratch");
    let path = scratch.path().join("step.db");
    let live = Connection::open(source).expect("open the source");
    // Like the host: closing this connection must not checkpoint the source's WAL.
    live.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
        .expect("no checkpoint on close");
    let mut copy = Connection::open(&path).expect("create the reference copy");
    copy.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")
        .expect("an unjournalled copy");
    {
        let backup = Backup::new(&live, &mut copy).expect("start the online backup");
        let step = backup.step(-1).expect("step(-1)");
        assert!(matches!(step, StepResult::Done), "step(-1): {step:?}");
    }
    // A copy of a WAL source says WAL in its header: make it one file, as a backup is.
    copy.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))
        .expect("rollback journal");
    drop(copy);
    Contents::of(&path)
}

/// Checks what every backup here must be, and returns its contents: the file its reported
/// SHA-256 and length describe, exactly its pages long, passing SQLite's full
/// `integrity_check`, and opening alone.
fn assert_sound(deployment: &Deployment, backup: &BackupFile) -> Contents {
    let path = deployment.backup(&backup.filename);
    let length = std::fs::metadata(&path).expect("stat the backup").len();
    assert_eq!(
        backup.length, length,
        "{}: reported length",
        backup.filename
    );
    assert_eq!(
        backup.sha256_hash,
        streamed_sha256(&path),
        "{}: the reported SHA-256 is the file's",
        backup.filename
    );
    assert_eq!(
        integrity(&path, true).expect("integrity_check"),
        "ok",
        "{}",
        backup.filename
    );
    assert_opens_alone(deployment, &backup.filename);
    let contents = Contents::of(&path);
    assert_eq!(
        length,
        (contents.header("page_count") * contents.header("page_size")) as u64,
        "{}: the file is its pages, no more, no less",
        backup.filename
    );
    contents
}

/// Opens a backup as anyone would (read-write, SQLite's defaults) and queries it: it says it
/// is a rollback-journal database (header bytes 18 and 19 are 1), and no `-wal`, `-shm` or
/// `-journal` appears beside it, while it is open or after.
fn assert_opens_alone(deployment: &Deployment, name: &str) {
    let path = deployment.backup(name);
    let header = read_at(&path, 0, 100);
    assert_eq!((header[18], header[19]), (1, 1), "{name}: rollback header");
    let before = deployment.backup_dir_entries();
    assert!(
        before.iter().all(|entry| !["-wal", "-shm", "-journal"]
            .iter()
            .any(|suffix| entry.ends_with(suffix))),
        "{before:?}"
    );
    let db = Connection::open(&path).expect("open the backup");
    let mode: String = db
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("journal mode");
    assert_eq!(mode, "delete", "{name}");
    let _: i64 = db
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .expect("query the backup");
    assert_eq!(deployment.backup_dir_entries(), before, "{name} while open");
    db.close().expect("close");
    assert_eq!(
        deployment.backup_dir_entries(),
        before,
        "{name} after close"
    );
}

/// The SHA-256 of a file read in pieces: the biggest backup here is over 1 GiB.
fn streamed_sha256(path: &Path) -> String {
    let mut file = File::open(path).expect("open");
    let (mut hasher, mut buffer) = (Sha256::new(), vec![0; 1 << 20]);
    loop {
        let read = file.read(&mut buffer).expect("read");
        if read == 0 {
            return upper_hex(&hasher.finalize());
        }
        hasher.update(&buffer[..read]);
    }
}

fn read_at(path: &Path, offset: u64, length: usize) -> Vec<u8> {
    let mut file = File::open(path).expect("open");
    file.seek(SeekFrom::Start(offset)).expect("seek");
    let mut bytes = vec![0; length];
    file.read_exact(&mut bytes).expect("read");
    bytes
}

/// Header bytes 18 and 19 of a database file: (1, 1) rollback journal, (2, 2) WAL.
fn journal_bytes(path: &Path) -> (u8, u8) {
    let header = read_at(path, 0, 20);
    (header[18], header[19])
}

/// The backup directory's files but for the backups' hidden records (`.*.meta`): the
/// backups, and any temporary left behind.
fn backup_files(deployment: &Deployment) -> Vec<String> {
    let mut entries = deployment.backup_dir_entries();
    entries.retain(|name| !(name.starts_with('.') && name.ends_with(".meta")));
    entries
}

/// Every regular file beside the live database (the backup directory aside), with its
/// SHA-256: the database and whatever journal SQLite keeps beside it.
fn live_files(deployment: &Deployment) -> BTreeMap<String, String> {
    std::fs::read_dir(deployment.root.path())
        .expect("read the live directory")
        .map(|entry| entry.expect("an entry"))
        .filter(|entry| entry.file_type().expect("a file type").is_file())
        .map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            (name, streamed_sha256(&entry.path()))
        })
        .collect()
}

/// A LiteGraph-like source with `page_size`-byte pages and the given `auto_vacuum`, in WAL
/// mode as LiteGraph keeps it, plus a `documents` table with an index and bodies of a few
/// bytes to over two pages, so that overflow chains cross pages at every page size. Every
/// connection is closed: the WAL is checkpointed into the file.
fn build_source(path: &Path, page_size: u32, auto_vacuum: &str, nodes: u64, documents: u32) {
    let db = Connection::open(path).expect("create the source");
    db.execute_batch(&format!(
        "PRAGMA page_size = {page_size};
         PRAGMA auto_vacuum = {auto_vacuum};
         CREATE TABLE documents (id INTEGER PRIMARY KEY, title TEXT NOT NULL, body BLOB NOT NULL);
         CREATE INDEX documents_title ON documents (title);"
    ))
    .expect("page size, auto-vacuum, first table");
    drop(db);
    create_litegraph_database(path, nodes).expect("LiteGraph's tables");
    let db = Connection::open(path).expect("open the source");
    db.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
         INSERT INTO documents (title, body)
         SELECT printf('document %05d', i), randomblob(?2 * (i % 5) / 2 + i) FROM n",
        params![documents, page_size],
    )
    .expect("documents");
    assert_eq!(
        pragma_value(&db, "page_size"),
        i64::from(page_size),
        "SQLite took the page size"
    );
}

#[test]
fn every_page_size_from_512_to_65536_backs_up_as_a_step_copy_would() {
    for page_size in [512, 1024, 4096, 8192, 16384, 32768, 65536] {
        let deployment = Deployment::without_database();
        build_source(&deployment.database, page_size, "NONE", 300, 60);
        let name = format!("pages-{page_size}.db");
        let backup = deployment.runtime().create(Some(&name)).expect("create");
        let contents = assert_sound(&deployment, &backup);
        assert_eq!(contents.header("page_size"), i64::from(page_size), "{name}");
        assert_eq!(contents, step_copy_contents(&deployment.database), "{name}");
        assert_eq!(
            journal_bytes(&deployment.database),
            (2, 2),
            "the live database is still in WAL mode"
        );
        assert_eq!(backup_files(&deployment), [name]);
    }
}

#[test]
fn a_rollback_journal_source_backs_up_and_is_left_as_it_was() {
    for mode in ["DELETE", "TRUNCATE", "PERSIST"] {
        let deployment = Deployment::without_database();
        build_source(&deployment.database, 4096, "NONE", 200, 40);
        let db = Connection::open(&deployment.database).expect("open the source");
        for set in ["DELETE", mode] {
            db.query_row(&format!("PRAGMA journal_mode = {set}"), [], |_| Ok(()))
                .expect("rollback journal");
        }
        // A write through the journal: TRUNCATE and PERSIST leave a -journal beside it.
        db.execute("DELETE FROM documents WHERE id % 4 = 0", [])
            .expect("a write");
        drop(db);
        assert_eq!(journal_bytes(&deployment.database), (1, 1), "{mode}");
        let live = live_files(&deployment);
        assert_eq!(
            live.contains_key("litegraph.db-journal"),
            mode != "DELETE",
            "{mode}: {live:?}"
        );

        let name = format!("{}.db", mode.to_lowercase());
        let backup = deployment.runtime().create(Some(&name)).expect("create");
        assert_eq!(
            live_files(&deployment),
            live,
            "{mode}: the live database and its journal are untouched, still rollback-journal"
        );
        let contents = assert_sound(&deployment, &backup);
        assert_eq!(contents, step_copy_contents(&deployment.database), "{mode}");
        assert_eq!(backup_files(&deployment), [name]);
    }
}

// Regression (operator review): SQLite before 3.7.0 leaves the header's page count (bytes
// 28-31) stale and marks it untrusted (bytes 92-95 differ from the change counter at
// 24-27); readers then take the file's size. A copy that marked the count trusted and kept
// the stale value claimed to be half its size: `create` exited 0 and `verify` found
// "invalid page number".
#[test]
fn a_stale_page_count_in_the_sources_header_is_not_carried_into_the_backup() {
    let deployment = Deployment::without_database();
    build_source(&deployment.database, 4096, "NONE", 200, 40);
    let db = Connection::open(&deployment.database).expect("open the source");
    db.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))
        .expect("rollback journal");
    drop(db);
    let mut header = read_at(&deployment.database, 0, 100);
    let pages = u32::from_be_bytes(header[28..32].try_into().expect("4 bytes"));
    let counter = u32::from_be_bytes(header[24..28].try_into().expect("4 bytes"));
    assert!(pages > 4, "a source of several pages: {pages}");
    header[28..32].copy_from_slice(&(pages / 2).to_be_bytes());
    header[92..96].copy_from_slice(&counter.wrapping_sub(1).to_be_bytes());
    {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&deployment.database)
            .expect("open for writing");
        file.write_all_at(&header, 0).expect("a legacy header");
    }
    assert_eq!(
        litegraph_backup_tests::integrity(&deployment.database, true).expect("check"),
        "ok",
        "SQLite reads the source whole, by its size"
    );

    let backup = deployment
        .runtime()
        .create(Some("legacy.db"))
        .expect("create");
    let contents = assert_sound(&deployment, &backup);
    assert_eq!(contents.header("page_count"), i64::from(pages));
    assert_eq!(contents, step_copy_contents(&deployment.database));
    let written = read_at(&deployment.backup("legacy.db"), 28, 4);
    assert_eq!(
        written,
        pages.to_be_bytes(),
        "the backup's header says its true size"
    );
}

#[test]
fn auto_vacuum_sources_keep_their_mode_and_pointer_maps() {
    for (mode, value) in [("FULL", 1), ("INCREMENTAL", 2)] {
        let deployment = Deployment::without_database();
        // 1 KiB pages: a pointer-map page every 205 pages, so there are many of them.
        build_source(&deployment.database, 1024, mode, 400, 600);
        let db = Connection::open(&deployment.database).expect("open the source");
        db.execute_batch(
            "DELETE FROM documents WHERE id % 3 != 0;
             DELETE FROM vectors WHERE rowid % 2 = 0;
             DELETE FROM nodes WHERE rowid % 5 = 0;",
        )
        .expect("deletes");
        assert_eq!(pragma_value(&db, "auto_vacuum"), value, "{mode}");
        let free = pragma_value(&db, "freelist_count");
        if mode == "INCREMENTAL" {
            db.execute_batch("PRAGMA incremental_vacuum(100)")
                .expect("an incremental vacuum");
            let left = pragma_value(&db, "freelist_count");
            assert!(
                0 < left && left < free,
                "{mode}: {free} free pages, then {left}"
            );
        } else {
            assert_eq!(free, 0, "{mode}: vacuumed at each commit");
        }
        assert!(
            pragma_value(&db, "page_count") > 4 * 205,
            "{mode}: several pointer-map pages"
        );
        drop(db);

        let name = format!("auto-vacuum-{}.db", mode.to_lowercase());
        let backup = deployment.runtime().create(Some(&name)).expect("create");
        let contents = assert_sound(&deployment, &backup);
        assert_eq!(contents.header("auto_vacuum"), value, "{mode}");
        assert_eq!(contents, step_copy_contents(&deployment.database), "{mode}");
        assert_eq!(backup_files(&deployment), [name]);
    }
}

// A snapshot copies pages, as `step(-1)` does: free pages stay, so the backup has the
// source's page count and root pages. Shrinking a database is VACUUM's job, not a backup's.
#[test]
fn free_pages_are_kept_page_for_page() {
    let deployment = Deployment::without_database();
    // 1 KiB pages: a free-list trunk page lists at most 254 leaves, so thousands of free
    // pages make a long chain of trunks.
    build_source(&deployment.database, 1024, "NONE", 100, 3000);
    let db = Connection::open(&deployment.database).expect("open the source");
    db.execute("DELETE FROM documents WHERE id % 10 != 0", [])
        .expect("delete most documents");
    drop(db);
    let db = Connection::open(&deployment.database).expect("open the source");
    db.execute_batch("BEGIN").expect("begin");
    let (pages, free) = (
        pragma_value(&db, "page_count"),
        pragma_value(&db, "freelist_count"),
    );
    db.execute_batch("COMMIT").expect("end the read");
    drop(db);
    assert!(
        free > 10 * 254 && 2 * free > pages,
        "most of the source is free: {free} of {pages} pages"
    );

    let backup = deployment
        .runtime()
        .create(Some("free.db"))
        .expect("create");
    let contents = assert_sound(&deployment, &backup);
    assert_eq!(
        contents.header("page_count"),
        pages,
        "every page, free or not"
    );
    assert_eq!(contents.header("freelist_count"), free);
    assert_eq!(contents, step_copy_contents(&deployment.database));
}

const ACCOUNTS: i64 = 40;
const OPENING_BALANCE: i64 = 1_000;

/// What the transfer writer has done: commits are counted once `commit` returns.
#[derive(Default)]
struct Ledger {
    stop: AtomicBool,
    commits: AtomicU64,
    failures: Mutex<Vec<String>>,
}

/// Sets `stop` when dropped, a panic included, so that a scoped writer always ends.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Two tables whose rows must agree at every commit: each account's balance is its opening
/// balance less what it sent plus what it received in `transfers`, and the balances sum to
/// what they opened with.
fn open_accounts(database: &Path) {
    let db = Connection::open(database).expect("open");
    db.execute_batch(&format!(
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
         CREATE TABLE transfers (id INTEGER PRIMARY KEY, from_id INTEGER NOT NULL,
           to_id INTEGER NOT NULL, amount INTEGER NOT NULL, memo TEXT NOT NULL);
         CREATE INDEX transfers_from ON transfers (from_id);
         CREATE INDEX transfers_to ON transfers (to_id);
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last})
         INSERT INTO accounts (id, balance) SELECT i, {OPENING_BALANCE} FROM n;",
        last = ACCOUNTS - 1
    ))
    .expect("accounts");
}

/// The `n`th transfer: two balances and one `transfers` row, in one transaction.
fn transfer(db: &mut Connection, n: i64) -> rusqlite::Result<()> {
    let from = n % ACCOUNTS;
    let to = (from + 1 + n / ACCOUNTS % (ACCOUNTS - 1)) % ACCOUNTS;
    let amount = n % 97 + 1;
    let tx = db.transaction()?;
    tx.execute(
        "UPDATE accounts SET balance = balance - ?2 WHERE id = ?1",
        params![from, amount],
    )?;
    tx.execute(
        "UPDATE accounts SET balance = balance + ?2 WHERE id = ?1",
        params![to, amount],
    )?;
    tx.execute(
        "INSERT INTO transfers (from_id, to_id, amount, memo) VALUES (?1, ?2, ?3, ?4)",
        params![
            from,
            to,
            amount,
            format!("transfer {n} {}", "memo ".repeat(40))
        ],
    )?;
    tx.commit()
}

/// Commits transfers until told to stop; a failure is recorded and ends it.
fn transfer_writer(database: &Path, ledger: &Ledger) {
    let written = (|| -> rusqlite::Result<()> {
        let mut db = Connection::open(database)?;
        db.busy_timeout(std::time::Duration::from_secs(10))?;
        let mut n = 0;
        while !ledger.stop.load(Ordering::Relaxed) {
            n += 1;
            transfer(&mut db, n)?;
            ledger.commits.fetch_add(1, Ordering::Release);
        }
        Ok(())
    })();
    if let Err(e) = written {
        ledger
            .failures
            .lock()
            .expect("the ledger's lock")
            .push(e.to_string());
    }
}

/// Waits until the writer has committed `count` transfers; fails if it failed.
fn wait_for_commits(ledger: &Ledger, count: u64) {
    while ledger.commits.load(Ordering::Acquire) < count {
        let failures = ledger.failures.lock().expect("the ledger's lock");
        assert!(failures.is_empty(), "the writer failed: {failures:?}");
        drop(failures);
        thread::yield_now();
    }
}

/// The cross-table invariant in a copy; returns how many transfers it holds.
fn assert_balanced(path: &Path) -> u64 {
    let db = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open");
    let total: i64 = db
        .query_row("SELECT sum(balance) FROM accounts", [], |r| r.get(0))
        .expect("total");
    assert_eq!(total, ACCOUNTS * OPENING_BALANCE, "{}", path.display());
    let unbalanced: i64 = db
        .query_row(
            "SELECT count(*) FROM accounts AS a WHERE a.balance != ?1
               - (SELECT ifnull(sum(amount), 0) FROM transfers WHERE from_id = a.id)
               + (SELECT ifnull(sum(amount), 0) FROM transfers WHERE to_id = a.id)",
            [OPENING_BALANCE],
            |r| r.get(0),
        )
        .expect("balances against transfers");
    assert_eq!(
        unbalanced,
        0,
        "{}: every balance is its transfers'",
        path.display()
    );
    let transfers: i64 = db
        .query_row("SELECT count(*) FROM transfers", [], |r| r.get(0))
        .expect("transfers");
    transfers as u64
}

#[test]
fn backups_under_a_committing_writer_are_each_one_consistent_moment() {
    // Tens of MiB, so that each copy spans many commits.
    let deployment = Deployment::with_nodes(15_000);
    open_accounts(&deployment.database);
    let litegraph_rows = row_counts(&deployment.database).expect("row counts");
    let ledger = Ledger::default();
    let runtime = deployment.runtime();
    let made = thread::scope(|scope| {
        let _stop = StopOnDrop(&ledger.stop);
        scope.spawn(|| transfer_writer(&deployment.database, &ledger));
        (0..3)
            .map(|i| {
                // A fresh moment for each backup.
                wait_for_commits(&ledger, ledger.commits.load(Ordering::Acquire) + 20);
                let before = ledger.commits.load(Ordering::Acquire);
                let backup = runtime
                    .create(Some(&format!("under-writer-{i}.db")))
                    .expect("create under a writer");
                let after = ledger.commits.load(Ordering::Acquire);
                assert!(
                    after > before,
                    "the writer committed during backup {i}: {before}..{after}"
                );
                (backup, before, after)
            })
            .collect::<Vec<_>>()
    });
    let failures = ledger.failures.lock().expect("the ledger's lock");
    assert!(failures.is_empty(), "every commit succeeded: {failures:?}");
    assert_eq!(journal_bytes(&deployment.database), (2, 2), "still WAL");

    for (backup, before, after) in &made {
        assert_sound(&deployment, backup);
        let path = deployment.backup(&backup.filename);
        let transfers = assert_balanced(&path);
        // Every commit counted before the create began is in; one the writer had made but
        // not yet counted when the create returned may be too.
        assert!(
            (*before..=after + 1).contains(&transfers),
            "{}: {transfers} transfers, the writer at {before}..{after}",
            backup.filename
        );
        assert_eq!(row_counts(&path).expect("row counts"), litegraph_rows);
    }
}

#[test]
fn pages_still_in_the_wal_are_in_the_backup() {
    let deployment = Deployment::with_nodes(500);
    // Keeps the WAL open and never checkpoints it: what follows lives in the WAL only.
    let holder = Connection::open(&deployment.database).expect("open");
    holder
        .execute_batch(
            "PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE late (id INTEGER PRIMARY KEY, body BLOB NOT NULL);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
             INSERT INTO late (body) SELECT randomblob(3000) FROM n;
             DELETE FROM nodes WHERE rowid % 2 = 0;",
        )
        .expect("write into the WAL");
    let scratch = tempfile::tempdir().expect("scratch");
    let file_alone = scratch.path().join("file-alone.db");
    std::fs::copy(&deployment.database, &file_alone).expect("copy the database file alone");
    let alone = Connection::open(&file_alone).expect("open the file alone");
    let (late, nodes): (i64, i64) = alone
        .query_row(
            "SELECT (SELECT count(*) FROM sqlite_schema WHERE name = 'late'),
                    (SELECT count(*) FROM nodes)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the file alone");
    assert_eq!((late, nodes), (0, 500), "the writes are in the WAL only");
    let database_file = streamed_sha256(&deployment.database);

    let backup = deployment.runtime().create(Some("wal.db")).expect("create");
    assert_eq!(
        streamed_sha256(&deployment.database),
        database_file,
        "the backup only read: nothing was checkpointed"
    );
    let contents = assert_sound(&deployment, &backup);
    assert_eq!(contents.tables["late"].rows, 500);
    assert_eq!(contents.tables["nodes"].rows, 250);
    assert_eq!(contents, step_copy_contents(&deployment.database));
    drop(holder);
}

/// Creates a backup of a live "database" holding `bytes`, which must fail: leaving nothing
/// in the backup directory and the file as it was. Returns the error and the file's path.
fn refused_create(what: &str, bytes: &[u8]) -> (Error, String) {
    let deployment = Deployment::without_database();
    std::fs::write(&deployment.database, bytes).expect("write the source");
    let result = deployment.runtime().create(Some("x.db"));
    assert_eq!(
        deployment.backup_dir_entries(),
        Vec::<String>::new(),
        "{what}: nothing in the backup directory"
    );
    assert_eq!(
        std::fs::read(&deployment.database).expect("read the source"),
        bytes,
        "{what}: untouched"
    );
    let error = result.expect_err(what);
    (error, deployment.database.display().to_string())
}

#[test]
fn a_source_that_is_not_a_database_is_refused_and_leaves_nothing() {
    let text = b"# LiteGraph settings\nport = 8701\n".repeat(200);
    let (error, shown) = refused_create("a text file", &text);
    assert_eq!(
        error,
        Error::NoDatabase(format!("{shown} is not a SQLite database"))
    );

    // SQLite tells a header whose pages are missing from a file without one: a malformed
    // database, which the host reports as a failure to read it (`io`).
    let scratch = tempfile::tempdir().expect("scratch");
    let real = scratch.path().join("real.db");
    create_litegraph_database(&real, 50).expect("a real database");
    let (error, shown) = refused_create("a database's first 100 bytes", &read_at(&real, 0, 100));
    assert_eq!(
        error,
        Error::Io(format!(
            "cannot read the live database {shown}: database disk image is malformed"
        ))
    );
}

// SQLite treats a 0-byte file as an empty database. Its backup is an empty database too,
// but a whole one, as `step(-1)` makes it: one page with SQLite's header, so that verify,
// drill and restore know it for a database (a 0-byte copy has no header to read).
#[test]
fn an_empty_source_backs_up_as_a_one_page_empty_database() {
    let deployment = Deployment::without_database();
    std::fs::write(&deployment.database, b"").expect("an empty source");
    let runtime = deployment.runtime();
    let backup = runtime.create(Some("empty.db")).expect("create");
    let contents = assert_sound(&deployment, &backup);
    assert_eq!(contents.header("page_count"), 1);
    assert!(contents.schema.is_empty(), "{contents:?}");
    assert_eq!(
        read_at(&deployment.backup("empty.db"), 0, 16),
        b"SQLite format 3\0"
    );
    assert_eq!(contents, step_copy_contents(&deployment.database));
    assert!(runtime.verify("empty.db", true).expect("verify").verified);
    assert_eq!(
        std::fs::metadata(&deployment.database)
            .expect("stat the source")
            .len(),
        0,
        "the source is still empty: a backup never writes to it"
    );
}

/// Free bytes on the filesystem that holds `dir`, as `df` reports them.
fn available_bytes(dir: &Path) -> u64 {
    let output = Command::new("df")
        .arg("-Pk")
        .arg(dir)
        .output()
        .expect("run df");
    let kib: u64 = String::from_utf8_lossy(&output.stdout)
        .lines()
        .nth(1)
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|kib| kib.parse().ok())
        .expect("df's available KiB");
    kib * 1024
}

fn read_page(path: &Path, page: u64, page_size: u64) -> Vec<u8> {
    read_at(path, (page - 1) * page_size, page_size as usize)
}

/// Fails unless the filesystem holding `dir` has `bytes` free and half a GiB to spare for
/// everything else on the machine: better than filling the disk halfway through.
fn assert_room(dir: &Path, bytes: u64) {
    let available = available_bytes(dir);
    assert!(
        available >= bytes + (512 << 20),
        "this test needs {bytes} bytes and 512 MiB to spare beside {}; {available} are free",
        dir.display()
    );
}

#[test]
fn a_database_over_1_gib_keeps_its_lock_byte_page_in_place() {
    const PAGE_SIZE: u64 = 65_536;
    /// The page holding byte 0x40000000 (SQLite's PENDING_BYTE): never used by SQLite, read
    /// by `sqlite_dbpage` as a zero page.
    const LOCK_BYTE_PAGE: u64 = 0x4000_0000 / PAGE_SIZE + 1;
    const FILLER_MIB: u64 = 1_030;
    let deployment = Deployment::without_database();
    // One dense copy at a time: the source until its zeros are dug out, then the
    // reference copy (removed when compared), then the backup.
    let dense = (FILLER_MIB + 16) << 20;
    assert_room(deployment.root.path(), dense);
    // Cheap to build: large zero blobs (overflow pages), no journal, no syncs. The second
    // table comes last, so its pages lie beyond the lock-byte page.
    let db = Connection::open(&deployment.database).expect("create the source");
    db.execute_batch(&format!(
        "PRAGMA page_size = {PAGE_SIZE};
         PRAGMA journal_mode = OFF;
         PRAGMA synchronous = OFF;
         BEGIN;
         CREATE TABLE filler (id INTEGER PRIMARY KEY, body BLOB NOT NULL);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {FILLER_MIB})
         INSERT INTO filler (body) SELECT zeroblob(1048576) FROM n;
         CREATE TABLE beyond (id INTEGER PRIMARY KEY, note TEXT NOT NULL, body BLOB NOT NULL);
         CREATE INDEX beyond_note ON beyond (note);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400)
         INSERT INTO beyond (note, body)
         SELECT printf('beyond the lock-byte page %d', i), randomblob(i * 100) FROM n;
         COMMIT;"
    ))
    .expect("fill the source");
    let beyond_root: i64 = db
        .query_row(
            "SELECT rootpage FROM sqlite_schema WHERE name = 'beyond'",
            [],
            |r| r.get(0),
        )
        .expect("the root page");
    let pages = pragma_value(&db, "page_count") as u64;
    drop(db);
    assert!(
        beyond_root as u64 > LOCK_BYTE_PAGE,
        "root page {beyond_root}"
    );
    assert!(pages > LOCK_BYTE_PAGE + 100, "{pages} pages");
    // The same bytes in a sixteenth of the disk: the source's zeros become holes.
    let dug = Command::new("fallocate")
        .arg("--dig-holes")
        .arg(&deployment.database)
        .status()
        .expect("run fallocate");
    assert!(dug.success(), "fallocate --dig-holes");
    assert_room(deployment.root.path(), dense);

    let reference = step_copy_contents(&deployment.database);
    let backup = deployment
        .runtime()
        .create(Some("over-1-gib.db"))
        .expect("create");
    assert!(backup.length > 1 << 30, "{} bytes", backup.length);
    let contents = assert_sound(&deployment, &backup);
    assert_eq!(contents, reference);
    // Page for page where a lost or added page would show first, and at the end.
    let copy = deployment.backup("over-1-gib.db");
    for page in [
        LOCK_BYTE_PAGE - 1,
        LOCK_BYTE_PAGE,
        LOCK_BYTE_PAGE + 1,
        pages,
    ] {
        assert!(
            read_page(&copy, page, PAGE_SIZE) == read_page(&deployment.database, page, PAGE_SIZE),
            "page {page} of {pages} is the source's"
        );
    }
    assert!(
        read_page(&copy, LOCK_BYTE_PAGE, PAGE_SIZE)
            .iter()
            .all(|&byte| byte == 0),
        "the lock-byte page is a zero page"
    );
    let db = Connection::open_with_flags(&copy, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open");
    let (note, length): (String, i64) = db
        .query_row(
            "SELECT note, length(body) FROM beyond WHERE id = 400",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the last row beyond the lock-byte page");
    assert_eq!(
        (note.as_str(), length),
        ("beyond the lock-byte page 400", 40_000)
    );
}

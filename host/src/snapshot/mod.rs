//! The `snapshot` capability: consistent copies of the live database, page for page in one
//! transaction ([`pass`]), into a host-named temporary inside the backup directory.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use wasmtime::component::{HasData, Linker};

use crate::bindings::litegraph::backup::snapshot::{self, SnapshotFile};
use crate::bindings::{Error, ScratchRestore};
use crate::budget::{Budget, Heavy};
use crate::monitor::progress::Pass;
use crate::store::{BackupDir, OperationLock, Temporary};

mod drill;
mod pages;
mod pass;

pub use drill::remove_live_scratch;

/// How long a snapshot waits for a lock on the live database by default, as LiteGraph's own
/// `busy_timeout`.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The live database, named by path (the operator's, not the guest's).
#[derive(Debug, Clone)]
pub struct LiveDatabase {
    path: PathBuf,
    busy_timeout: Duration,
}

impl LiveDatabase {
    pub fn new(path: impl Into<PathBuf>, busy_timeout: Duration) -> LiveDatabase {
        LiveDatabase {
            path: path.into(),
            busy_timeout,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates an empty database in WAL mode when there is none, as LiteGraph does on its
    /// first start; tells whether it did. Only `serve` does this: a backup never creates
    /// the database it was asked to copy.
    pub fn create_if_missing(&self) -> anyhow::Result<bool> {
        if self.path.exists() {
            return Ok(false);
        }
        let connection = Connection::open(&self.path)?;
        connection.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
        connection.close().map_err(|(_, e)| e)?;
        Ok(true)
    }

    /// Whether the live database file is still there: the error says what is wrong, for
    /// a person to act on (a server whose database was deleted or moved under it).
    pub fn check_present(&self) -> Result<(), String> {
        let shown = self.path.display();
        match std::fs::metadata(&self.path) {
            Ok(metadata) if metadata.is_file() => Ok(()),
            Ok(_) => Err(format!("the live database {shown} is not a regular file")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(format!("the live database {shown} does not exist"))
            }
            Err(e) => Err(format!("cannot stat the live database {shown}: {e}")),
        }
    }

    /// The copy of a snapshot alone, without its digests: every page as one read
    /// transaction sees it, written to the new file `destination`, flushed as it grows and
    /// at the end, as a snapshot is. What the benchmarks weigh a whole snapshot against; a
    /// backup is made by `create`.
    pub fn copy_pages_only(&self, destination: &Path) -> Result<(), Error> {
        let source = self.connect()?;
        source.execute_batch("BEGIN").map_err(sqlite_error)?;
        let file = std::fs::File::create_new(destination)
            .map_err(|e| Error::Io(format!("cannot create {}: {e}", destination.display())))?;
        std::thread::scope(|scope| {
            let (stop, stopped) = std::sync::mpsc::channel::<()>();
            let file = &file;
            scope.spawn(move || {
                let progress = crate::monitor::progress::NoProgress;
                let pass = Pass::start(&progress, "copying", 0);
                crate::store::flush_while_growing(file, &stopped, &pass);
            });
            let copied = pass::write_pages_only(&source, file);
            drop(stop);
            copied
        })?;
        source.execute_batch("COMMIT").map_err(sqlite_error)?;
        file.sync_all()
            .map_err(|e| Error::Io(format!("cannot flush {}: {e}", destination.display())))
    }

    /// A dedicated connection to the live database; never creates one.
    fn connect(&self) -> Result<Connection, Error> {
        let shown = self.path.display();
        self.check_present().map_err(Error::NoDatabase)?;
        let connection = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| Error::NoDatabase(format!("cannot open the live database {shown}: {e}")))?;
        connection
            .busy_timeout(self.busy_timeout)
            .map_err(sqlite_error)?;
        // Closing our connection must not checkpoint the live database's WAL: the backup
        // only reads.
        connection
            .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
            .map_err(sqlite_error)?;
        connection
            .query_row("PRAGMA schema_version", [], |_| Ok(()))
            .map_err(|e| match e.sqlite_error_code() {
                Some(ErrorCode::NotADatabase) => {
                    Error::NoDatabase(format!("{shown} is not a SQLite database"))
                }
                Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::Busy,
                _ => Error::Io(format!("cannot read the live database {shown}: {e}")),
            })?;
        Ok(connection)
    }
}

/// Opens a file of the backup directory read-only and `immutable` (no locks, no journal or
/// WAL files created beside it: a backup is a finished file).
fn open_backup(path: &Path) -> Result<Connection, Error> {
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from("file:");
    for &byte in path.as_os_str().as_bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            uri.push(char::from(byte));
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite_error)
}

/// Runs `quick_check` or `integrity_check`: `Ok` when SQLite says "ok", otherwise `corrupt`
/// with its first findings. A file that is not a database at all is `corrupt` too.
fn run_check(connection: &Connection, full: bool) -> Result<(), Error> {
    let pragma = if full {
        "integrity_check(20)"
    } else {
        "quick_check(20)"
    };
    let findings = first_column(connection, &format!("PRAGMA {pragma}")).map_err(|e| {
        match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
                Error::Corrupt(e.to_string())
            }
            _ => sqlite_error(e),
        }
    })?;
    if findings.len() == 1 && findings[0] == "ok" {
        Ok(())
    } else {
        Err(Error::Corrupt(one_per_line(findings).join("; ")))
    }
}

/// SQLite's `*** in database main ***` before a database's findings.
fn is_database_heading(line: &str) -> bool {
    line.starts_with("*** in database") && line.ends_with("***")
}

/// A check's findings one per line: SQLite puts several in one row, after a `*** in
/// database main ***` line that says nothing to a person reading one database's findings.
fn one_per_line(rows: Vec<String>) -> Vec<String> {
    rows.iter()
        .flat_map(|row| row.lines())
        .map(str::trim)
        .filter(|line| !line.is_empty() && !is_database_heading(line))
        .map(str::to_owned)
        .collect()
}

/// The first column of every row `sql` answers, as text: a check's findings, a schema's
/// table names.
fn first_column(connection: &Connection, sql: &str) -> rusqlite::Result<Vec<String>> {
    let mut statement = connection.prepare(sql)?;
    let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
    rows.collect()
}

pub(super) fn sqlite_error(e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::Busy,
        _ => Error::Io(format!("SQLite: {e}")),
    }
}

/// The `snapshot` capability's per-operation context: the temporaries it made live (and
/// are removed) with it.
pub struct SnapshotCtx {
    database: Arc<LiveDatabase>,
    backups: Arc<BackupDir>,
    budget: Budget,
    /// Where the copy, digest, check and restore passes report their progress.
    monitor: crate::monitor::Monitor,
    /// A restore prepared by `take-for-restore`, holding the live database's write
    /// transaction; rolled back if the operation ends without `restore`. Declared before the
    /// lock so that it is released first.
    pending: Option<PendingRestore>,
    temporaries: Vec<Temporary>,
    /// Held from this operation's first snapshot or restore until it ends.
    exclusive: Option<OperationLock>,
    /// Whether this operation's restore is the one [`interrupted_restore_report`] tells of.
    reports_restore: bool,
}

/// The live database inside a restore's write transaction, and what it is ready for.
struct PendingRestore {
    live: Connection,
    header: pages::LiveHeader,
    backup: String,
}

impl SnapshotCtx {
    pub(crate) fn new(
        database: Arc<LiveDatabase>,
        backups: Arc<BackupDir>,
        budget: Budget,
        monitor: crate::monitor::Monitor,
    ) -> SnapshotCtx {
        SnapshotCtx {
            database,
            backups,
            budget,
            monitor,
            pending: None,
            temporaries: Vec::new(),
            exclusive: None,
            reports_restore: false,
        }
    }

    /// One create or restore at a time, across threads and processes: the operation holds
    /// the backup directory's operation lock from its first `take` or `restore` until it
    /// ends. Another waits up to the busy timeout, then gets `busy`.
    fn hold_exclusive(&mut self, deadline: Instant) -> Result<(), Error> {
        if self.exclusive.is_none() {
            let lock = self
                .backups
                .operation_lock(deadline.saturating_duration_since(Instant::now()))
                .map_err(|e| {
                    Error::Io(format!(
                        "cannot take the operation lock in {}: {e}",
                        self.backups.path().display()
                    ))
                })?
                .ok_or(Error::Busy)?;
            self.exclusive = Some(lock);
        }
        Ok(())
    }

    /// A new temporary in the backup directory, owned by this operation from here on:
    /// removed when the operation ends unless renamed away.
    fn temporary(&mut self) -> Result<&Temporary, Error> {
        self.backups.sweep_stale_temporaries().map_err(|e| {
            Error::Io(format!(
                "cannot clean up the backup directory {}: {e}",
                self.backups.path().display()
            ))
        })?;
        let temporary = Temporary::create(&self.backups, "tmp").map_err(|e| {
            Error::Io(format!(
                "cannot create a file in the backup directory {}: {e}",
                self.backups.path().display()
            ))
        })?;
        self.temporaries.push(temporary);
        Ok(self.temporaries.last().expect("just pushed"))
    }

    /// Opens the live database for a restore from `backup`: checks that the backup's pages
    /// fit it (before anything is locked or copied), then begins the write transaction.
    fn begin_restore(&mut self, backup: &str) -> Result<PendingRestore, Error> {
        let mut source = self.backups.open_confined(backup)?;
        let mut header = [0u8; 100];
        let backup_layout = std::io::Read::read_exact(&mut source, &mut header)
            .ok()
            .and_then(|()| pages::Layout::of_header(&header))
            .ok_or_else(|| Error::Corrupt(format!("{backup} is not a SQLite database")))?;
        // One wait in all, not one per lock: the busy timeout bounds the whole preparation.
        let deadline = Instant::now() + self.database.busy_timeout;
        let live = self.database.connect()?;
        self.hold_exclusive(deadline)?;
        pages::begin_write(&live, deadline.saturating_duration_since(Instant::now()))?;
        // The commit, later, waits for readers on its own (rollback journal).
        live.busy_timeout(self.database.busy_timeout)
            .map_err(sqlite_error)?;
        let header = pages::live_header(&live)?;
        if let Some(why) = backup_layout.mismatch(&header.layout) {
            return Err(Error::NotPermitted(why));
        }
        Ok(PendingRestore {
            live,
            header,
            backup: backup.to_owned(),
        })
    }
}

impl Drop for SnapshotCtx {
    fn drop(&mut self) {
        // The operation is over (its restore committed or rolled back with `pending`).
        if self.reports_restore {
            *RESTORE_PROGRESS
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = None;
        }
    }
}

struct HasSnapshot;

impl HasData for HasSnapshot {
    type Data<'a> = &'a mut SnapshotCtx;
}

/// Links the `snapshot` imports, served by the `SnapshotCtx` that `get` finds.
pub(crate) fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut SnapshotCtx,
) -> wasmtime::Result<()> {
    snapshot::add_to_linker::<T, HasSnapshot>(linker, get)
}

impl snapshot::Host for SnapshotCtx {
    fn take(&mut self) -> Result<SnapshotFile, Error> {
        self.budget.snapshot()?;
        self.backups.in_place()?;
        // One wait in all, not one per lock (the operation lock, the connection's first
        // read, the transaction's): the busy timeout bounds the snapshot's waiting.
        let deadline = Instant::now() + self.database.busy_timeout;
        // Connect first: without a database, nothing at all is created.
        let source = self.database.connect()?;
        self.hold_exclusive(deadline)?;
        source
            .busy_timeout(deadline.saturating_duration_since(Instant::now()))
            .map_err(sqlite_error)?;
        let (backups, monitor) = (Arc::clone(&self.backups), self.monitor.clone());
        let temporary = self.temporary()?;
        // One read transaction: every page comes from the same commit. It ends as soon as
        // the last page is written; on a rollback-journal database it blocks writers.
        source.execute_batch("BEGIN").map_err(sqlite_error)?;
        let digests = pass::copy_pages(&source, &backups, temporary, monitor.progress(), || {
            source.execute_batch("COMMIT").map_err(sqlite_error)
        })?;
        Ok(SnapshotFile {
            name: temporary.name().to_owned(),
            digests,
        })
    }

    fn take_for_restore(&mut self, name: String) -> Result<SnapshotFile, Error> {
        self.budget.snapshot()?;
        self.backups.in_place()?;
        if self.pending.is_some() {
            return Err(Error::NotPermitted(
                "a restore is already prepared in this operation".into(),
            ));
        }
        let pending = self.begin_restore(&name)?;
        let (backups, monitor) = (Arc::clone(&self.backups), self.monitor.clone());
        self.reports_restore = true;
        let temporary = self.temporary()?;
        *RESTORE_PROGRESS
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(RestoreProgress {
            backup: name,
            safety_temporary: temporary.name().to_owned(),
            committed: false,
        });
        // The safety copy is of the pages the restore's write transaction sees: no commit
        // can land between the copy and the restore.
        let digests = pass::copy_pages(
            &pending.live,
            &backups,
            temporary,
            monitor.progress(),
            || Ok(()),
        )?;
        let temporary = temporary.name().to_owned();
        self.pending = Some(pending);
        Ok(SnapshotFile {
            name: temporary,
            digests,
        })
    }

    fn check(&mut self, name: String, full: bool) -> Result<(), Error> {
        self.budget.heavy(Heavy::Check, &name)?;
        self.backups.in_place()?;
        let path = self.backups.path_of_regular_file(&name)?;
        let _checking = Pass::start(self.monitor.progress(), "checking", 0);
        run_check(&open_backup(&path)?, full)
    }

    fn drill(&mut self, name: String) -> Result<ScratchRestore, Error> {
        self.budget.heavy(Heavy::Drill, &name)?;
        self.backups.in_place()?;
        drill::scratch_restore(&self.backups, &name, self.monitor.progress())
    }

    fn restore(&mut self, name: String, sha256: String) -> Result<(), Error> {
        self.budget.heavy(Heavy::Restore, &name)?;
        self.backups.in_place()?;
        let pending = match self.pending.take() {
            Some(pending) if pending.backup == name => pending,
            Some(pending) => {
                return Err(Error::NotPermitted(format!(
                    "this operation prepared the restore of {:?}, not {name:?}",
                    pending.backup
                )));
            }
            None => self.begin_restore(&name)?,
        };
        // Read through the directory's handle, once: exactly these bytes are written and
        // hashed, whatever happens to the name meanwhile.
        let mut source = self.backups.open_confined(&name)?;
        let written = pages::write_backup(
            &pending.live,
            &pending.header,
            &mut source,
            self.monitor.progress(),
        )?;
        if !written.eq_ignore_ascii_case(&sha256) {
            // Dropping the connection rolls the transaction back.
            return Err(Error::Corrupt(format!(
                "{name} changed since it was verified (SHA-256 now {written}, verified {sha256}); \
                 nothing was restored"
            )));
        }
        {
            // Held across the commit, so that a signal handler reporting on this restore
            // waits for the commit to land or not and then tells which.
            let mut progress = RESTORE_PROGRESS
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            pending
                .live
                .execute_batch("COMMIT")
                .map_err(|e| match sqlite_error(e) {
                    Error::Io(why) => Error::Io(format!("cannot commit the restore: {why}")),
                    other => other,
                })?;
            if let Some(progress) = progress.as_mut() {
                progress.committed = true;
            }
        }
        // The committed pages are exactly the verified bytes (their SHA-256 was checked
        // above), on which verification ran SQLite's check: no second check is needed, and
        // one on this connection would see the schema it cached before the commit.
        //
        // In WAL mode the restored pages are in the WAL: copy them into the database file
        // itself, so that the file alone holds the restored content. PASSIVE never waits;
        // pages an older reader still needs are copied by the next checkpoint. A no-op for
        // a rollback-journal database. The restore has committed: a failure here is only
        // the checkpoint's, and the next one does its work.
        if let Err(e) = pending
            .live
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        {
            tracing::warn!("checkpoint after a restore: {e}");
        }
        // The restore wrote a whole database into the WAL, and its write never restarts the
        // WAL from its beginning: each restore made it a database larger, for good (found by
        // the operator review: 4 restores of 204 MiB left an 859 MB WAL). When no reader
        // needs it, truncate it; without waiting (a reader's WAL is the next checkpoint's).
        let truncated = pending.live.busy_timeout(Duration::ZERO).and_then(|()| {
            pending
                .live
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                    row.get::<_, i64>(0)
                })
        });
        match truncated {
            Ok(0) => {}
            Ok(_) => tracing::debug!("the WAL is in use: it is truncated by a later checkpoint"),
            Err(e) => tracing::debug!("truncating the WAL after a restore: {e}"),
        }
        Ok(())
    }
}

/// Where this process's restore stands, for a signal handler about to end the process.
struct RestoreProgress {
    backup: String,
    safety_temporary: String,
    committed: bool,
}

static RESTORE_PROGRESS: Mutex<Option<RestoreProgress>> = Mutex::new(None);

/// What an interrupted restore of this process leaves behind, in one sentence for the
/// person who interrupted it; `None` when no restore is under way. Waits for a commit in
/// progress to land or fail first, so the sentence is true when the process then exits.
pub fn interrupted_restore_report(backups: &Path) -> Option<String> {
    let progress = RESTORE_PROGRESS
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let progress = progress.as_ref()?;
    let safety = crate::store::published_as(&progress.safety_temporary)
        .map(|name| format!("the safety backup {}", backups.join(name).display()));
    Some(if progress.committed {
        format!(
            "the restore of {} had committed: the live database holds its content; its previous content is in {}",
            progress.backup,
            safety.unwrap_or_else(|| "the safety backup".into())
        )
    } else {
        format!(
            "the restore of {} had not committed: the live database was not changed{}",
            progress.backup,
            safety
                .map(|s| format!("; {s} was kept"))
                .unwrap_or_else(|| "; no safety backup had been published".into())
        )
    })
}

//! The `store` capability: the backup directory, reached only through one `cap_std::fs::Dir`
//! opened at start-up. Every name the guest hands in is checked again here ([`confine`]) and
//! symbolic links are never followed, so a wrong or hostile policy still cannot reach a file
//! outside the directory.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, SystemTime};

use cap_std::fs::{Dir, File, Metadata, MetadataExt, OpenOptions, OpenOptionsExt};
use wasmtime::component::{HasData, Linker};

use crate::bindings::litegraph::backup::store;
use crate::bindings::{Datetime, Error, FileDigests, FileStat};
use crate::budget::{Budget, Heavy};
use crate::digests::digests;

/// The most `read` returns and `write` accepts: sidecar metadata, never a backup.
pub const SMALL_FILE_BYTES: u64 = 64 * 1024;

/// Temporaries older than this, and no longer locked by a live process, are leftovers of a
/// run that died; younger ones may still be between creation and locking.
const STALE_AFTER: Duration = Duration::from_secs(10);

/// The prefix of every file the host creates for itself in the backup directory.
const TEMPORARY_PREFIX: &str = ".lgb-";

/// How much of a snapshot may be written before it is written back to disk.
const FLUSH_STEP: u64 = 64 << 20;
/// How often a snapshot's growth is looked at.
const FLUSH_POLL: Duration = Duration::from_millis(20);

/// The lock file that admits one create or restore at a time.
const OPERATION_LOCK: &str = ".lgb-operation.lock";

/// What SQLite may leave beside a snapshot it was writing when its process died.
const SQLITE_SIDECARS: [&str; 3] = ["-journal", "-wal", "-shm"];

/// What SQLite keeps beside a database: never backups, whatever their names look like.
const LIVE_DATABASE_SUFFIXES: [&str; 4] = ["", "-wal", "-shm", "-journal"];

/// The backup directory.
#[derive(Debug)]
pub struct BackupDir {
    dir: Dir,
    path: PathBuf,
    /// The live database's own files, when they are within reach of this directory:
    /// never listed, read, written, restored or removed (see
    /// [`BackupDir::protect_live_database`]).
    live_database: LiveDatabaseFiles,
}

/// How the live database's files are recognised in the backup directory.
#[derive(Debug, Default)]
struct LiveDatabaseFiles {
    /// Its file name and SQLite's files beside it, when this is its directory.
    names: Vec<String>,
    /// Its device and inode, when it is on this directory's filesystem (a hard link).
    identity: Option<(u64, u64)>,
}

impl BackupDir {
    /// Opens an existing backup directory. This is the program's only use of ambient
    /// authority: everything else goes through the returned `Dir`.
    pub fn open(path: &Path) -> io::Result<BackupDir> {
        let dir = Dir::open_ambient_dir(path, cap_std::ambient_authority())?;
        Ok(BackupDir {
            dir,
            path: path.to_owned(),
            live_database: LiveDatabaseFiles::default(),
        })
    }

    /// Keeps the live database out of reach when it lives in this directory (`--backups`
    /// pointing at the database's own directory, however either path is spelt: symbolic
    /// links are resolved, and a hard link to the database is recognised by its inode):
    /// its file and SQLite's `-wal`, `-shm` and `-journal` files beside it are then refused
    /// by every operation and never listed, so no command or route can list, delete or
    /// restore the live database as a backup. Returns whether this is the database's own
    /// directory.
    pub fn protect_live_database(&mut self, database: &Path) -> bool {
        use std::os::unix::fs::MetadataExt as _;
        // The database as the filesystem resolves it: through symbolic links, to the file
        // SQLite will open (or, before it exists, the directory it will be made in).
        let resolved = std::fs::canonicalize(database).ok().or_else(|| {
            let parent = database.parent().filter(|p| !p.as_os_str().is_empty());
            let parent = std::fs::canonicalize(parent.unwrap_or(Path::new("."))).ok()?;
            Some(parent.join(database.file_name()?))
        });
        let Some(resolved) = resolved else {
            return false;
        };
        let ours = self.dir.dir_metadata().ok();
        let same_directory = match (resolved.parent().map(std::fs::metadata), &ours) {
            (Some(Ok(parent)), Some(ours)) => {
                parent.dev() == ours.dev() && parent.ino() == ours.ino()
            }
            _ => false,
        };
        let mut names = Vec::new();
        if same_directory && let Some(file_name) = resolved.file_name().and_then(|n| n.to_str()) {
            names = LIVE_DATABASE_SUFFIXES
                .iter()
                .map(|suffix| format!("{file_name}{suffix}"))
                .collect();
        }
        let identity = std::fs::metadata(&resolved)
            .ok()
            .filter(|m| ours.as_ref().is_some_and(|ours| ours.dev() == m.dev()))
            .map(|m| (m.dev(), m.ino()));
        let same_directory = !names.is_empty();
        self.live_database = LiveDatabaseFiles { names, identity };
        same_directory
    }

    /// The host's check of a name it is handed: [`confine`], and never one of the live
    /// database's files.
    pub(crate) fn confine<'a>(&self, name: &'a str) -> Result<&'a str, Error> {
        let name = confine(name)?;
        if self.is_live_database_file(name) {
            return Err(Error::NotPermitted(format!(
                "{name:?} is the live database's own file, never a backup"
            )));
        }
        Ok(name)
    }

    /// Whether `name` is the live database or one of SQLite's files beside it: by name in
    /// the database's own directory, or by inode (a hard link to the database).
    fn is_live_database_file(&self, name: &str) -> bool {
        let live = &self.live_database;
        if live.names.iter().any(|live| live == name) {
            return true;
        }
        live.identity.is_some_and(|(dev, ino)| {
            self.dir
                .symlink_metadata(name)
                .is_ok_and(|m| m.is_file() && m.dev() == dev && m.ino() == ino)
        })
    }

    /// Whether the directory this handle reaches is still the one at its path: a backup
    /// directory moved or deleted under a running server would otherwise go on answering
    /// from a handle nobody sees (an empty listing, creates that vanish). The error says
    /// what happened, for a person to act on.
    pub fn check_in_place(&self) -> Result<(), String> {
        let shown = self.path.display();
        let ours = self
            .dir
            .dir_metadata()
            .map_err(|e| format!("cannot stat the backup directory {shown}: {e}"))?;
        if ours.nlink() == 0 {
            return Err(format!(
                "the backup directory {shown} was deleted while in use; recreate it and restart"
            ));
        }
        match std::fs::metadata(&self.path) {
            Ok(now) => {
                use std::os::unix::fs::MetadataExt as _;
                if now.dev() == ours.dev() && now.ino() == ours.ino() {
                    Ok(())
                } else {
                    Err(format!(
                        "the backup directory {shown} was moved or replaced while in use; restart to use the directory now at that path"
                    ))
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(format!(
                "the backup directory {shown} was moved or deleted while in use; put it back or restart"
            )),
            Err(e) => Err(format!("cannot stat the backup directory {shown}: {e}")),
        }
    }

    /// [`BackupDir::check_in_place`], as the capabilities' error.
    pub(crate) fn in_place(&self) -> Result<(), Error> {
        self.check_in_place().map_err(Error::Io)
    }

    /// Host temporaries present in the directory (left by interrupted runs, or in use by
    /// another process right now): how many, and how many bytes they hold.
    pub fn leftovers(&self) -> io::Result<(usize, u64)> {
        let (mut count, mut bytes) = (0, 0);
        for entry in self.dir.entries()? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if is_temporary_name(&name) && entry.file_type()?.is_file() {
                count += 1;
                bytes += entry.metadata()?.len();
            }
        }
        Ok((count, bytes))
    }

    /// Creates the backup directory (and its parents) when missing, then opens it.
    pub fn create(path: &Path) -> io::Result<BackupDir> {
        std::fs::create_dir_all(path)?;
        BackupDir::open(path)
    }

    /// Opens a backup to stream it out, under the same rules as the `store` capability: a
    /// single name inside the directory, a regular file, no symbolic link followed.
    pub fn open_for_reading(&self, name: &str) -> Result<std::fs::File, crate::Error> {
        Ok(self.open_regular(self.confine(name)?)?.into_std())
    }

    /// The path SQLite should open for a regular file of the directory (SQLite opens by
    /// path): checked through the `Dir` first, so that it is a confined name of a regular
    /// file, not a link.
    pub(crate) fn path_of_regular_file(&self, name: &str) -> Result<PathBuf, Error> {
        self.regular_file(self.confine(name)?)?;
        Ok(self.path.join(name))
    }

    /// Opens one of the host's own temporaries for writing.
    pub(crate) fn open_for_writing(&self, temporary: &str) -> Result<std::fs::File, Error> {
        let mut options = OpenOptions::new();
        options.write(true).custom_flags(libc::O_NOFOLLOW);
        self.dir
            .open_with(confine(temporary)?, &options)
            .map(File::into_std)
            .map_err(|e| failed("open", temporary, e))
    }

    /// Opens a regular file of the directory for reading, under the capability's rules.
    pub(crate) fn open_confined(&self, name: &str) -> Result<std::fs::File, Error> {
        Ok(self.open_regular(self.confine(name)?)?.into_std())
    }

    /// The path the directory was opened at. Only SQLite gets it, to open a temporary that
    /// this module created (SQLite opens files by path).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Metadata of a regular file, without following links; anything else is `not-found`.
    fn regular_file(&self, name: &str) -> Result<Metadata, Error> {
        let metadata = self
            .dir
            .symlink_metadata(name)
            .map_err(|e| failed("stat", name, e))?;
        if metadata.is_file() {
            Ok(metadata)
        } else {
            Err(Error::NotFound)
        }
    }

    /// Opens a regular file for reading; a symbolic link is refused, not followed.
    fn open_regular(&self, name: &str) -> Result<File, Error> {
        let mut options = OpenOptions::new();
        options.read(true).custom_flags(libc::O_NOFOLLOW);
        let file = self.dir.open_with(name, &options).map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                Error::NotFound
            } else {
                failed("open", name, e)
            }
        })?;
        let is_file = file
            .metadata()
            .map_err(|e| failed("stat", name, e))?
            .is_file();
        if is_file {
            Ok(file)
        } else {
            Err(Error::NotFound)
        }
    }

    /// Makes a rename or removal durable.
    fn sync(&self) -> Result<(), Error> {
        // `Dir` holds an `O_PATH` descriptor, which cannot be synced: open the directory
        // itself for reading.
        self.dir
            .open_with(".", OpenOptions::new().read(true))
            .and_then(|dir| dir.sync_all())
            .map_err(|e| {
                Error::Io(format!(
                    "cannot sync the backup directory {}: {e}",
                    self.path.display()
                ))
            })
    }

    /// Renames without ever replacing: a hard link fails when the target exists, and only
    /// then is the source's name removed.
    fn rename_noreplace(&self, source: &str, target: &str) -> Result<(), Error> {
        self.regular_file(source)?;
        self.dir
            .hard_link(source, &self.dir, target)
            .map_err(|e| failed("rename", source, e))?;
        self.dir
            .remove_file(source)
            .map_err(|e| failed("remove", source, e))?;
        if is_temporary_name(source) {
            remember_published(source, target);
        }
        self.sync()
    }

    /// Replaces `name`'s content atomically: a locked temporary, fsync, rename, fsync.
    fn write_atomically(self: &Arc<Self>, name: &str, contents: &[u8]) -> Result<(), Error> {
        let temporary = Temporary::create(self, "part").map_err(|e| failed("create", name, e))?;
        let mut file = &temporary.file;
        file.write_all(contents)
            .and_then(|()| file.sync_all())
            .map_err(|e| failed("write", name, e))?;
        self.dir
            .rename(&temporary.name, &self.dir, name)
            .map_err(|e| failed("rename", name, e))?;
        self.sync()
    }

    /// Removes host temporaries left by a process that died (kill -9, power loss): a live
    /// owner holds its temporary's lock, a dead one's lock is gone.
    pub fn sweep_stale_temporaries(&self) -> io::Result<usize> {
        let mut removed = 0;
        for entry in self.dir.entries()? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if !name.starts_with(TEMPORARY_PREFIX) || !entry.file_type()?.is_file() {
                continue;
            }
            if is_temporary_name(&name) {
                removed += usize::from(self.remove_if_abandoned(&name)?);
            } else if let Some(owner) = SQLITE_SIDECARS
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
            {
                // SQLite's journal files beside a snapshot: orphans once their owner is gone.
                if owner.ends_with(".tmp") && !self.dir.exists(owner) {
                    removed += usize::from(self.remove_if_old(&name)?);
                }
            }
        }
        Ok(removed)
    }

    fn remove_if_abandoned(&self, name: &str) -> io::Result<bool> {
        let file = match self.open_regular(name) {
            Ok(file) => file.into_std(),
            Err(_) => return Ok(false),
        };
        if file.try_lock().is_err() {
            return Ok(false);
        }
        self.remove_if_old(name)
    }

    fn remove_if_old(&self, name: &str) -> io::Result<bool> {
        let age = self
            .dir
            .symlink_metadata(name)?
            .modified()?
            .into_std()
            .elapsed()
            .unwrap_or(Duration::ZERO);
        if age < STALE_AFTER {
            return Ok(false);
        }
        match self.dir.remove_file(name) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The right to copy or change the live database, held by one operation at a time (an
/// exclusive `flock` on `.lgb-operation.lock`, released when dropped or when its process
/// dies).
#[derive(Debug)]
pub(crate) struct OperationLock {
    _file: std::fs::File,
}

impl BackupDir {
    /// Takes the operation lock, waiting up to `patience`; `None` if it stayed taken.
    pub(crate) fn operation_lock(&self, patience: Duration) -> io::Result<Option<OperationLock>> {
        let mut options = OpenOptions::new();
        options
            .read(true)
            .write(true)
            .create(true)
            .custom_flags(libc::O_NOFOLLOW);
        let file = self.dir.open_with(OPERATION_LOCK, &options)?.into_std();
        let deadline = std::time::Instant::now() + patience;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Some(OperationLock { _file: file })),
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => return Err(e),
            }
            if std::time::Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Whether a name is one of the host's temporaries.
fn is_temporary_name(name: &str) -> bool {
    name.starts_with(TEMPORARY_PREFIX) && (name.ends_with(".tmp") || name.ends_with(".part"))
}

/// The names the last few temporaries of this process were published under (a signal
/// handler names the safety backup of an interrupted restore with it).
static PUBLISHED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

fn remember_published(temporary: &str, name: &str) {
    let mut published = PUBLISHED.lock().unwrap_or_else(PoisonError::into_inner);
    if published.len() >= 8 {
        published.remove(0);
    }
    published.push((temporary.to_owned(), name.to_owned()));
}

/// The name a temporary of this process was published under, if it was.
pub(crate) fn published_as(temporary: &str) -> Option<String> {
    PUBLISHED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .rev()
        .find(|(t, _)| t == temporary)
        .map(|(_, name)| name.clone())
}

/// Set when this process is about to exit on a signal: nothing is removed any more.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The paths of the temporaries this process holds, so that a signal handler can remove
/// them before the process exits (a `Drop` never runs when a signal ends the process).
static LIVE_TEMPORARIES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes every temporary this process has open (and SQLite's journal files beside
/// them), for a command interrupted by SIGINT or SIGTERM that is about to exit; returns how
/// many it removed. An unfinished copy is never published, so nothing else needs undoing:
/// an open write transaction on the live database rolls back when the process ends.
pub fn remove_live_temporaries() -> usize {
    // First, so that an operation still running cannot take a failure caused by this
    // (a metadata temporary removed under it) for its own and undo what it published.
    INTERRUPTED.store(true, Ordering::SeqCst);
    let live = LIVE_TEMPORARIES
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let mut removed = 0;
    for path in live.iter() {
        if std::fs::remove_file(path).is_ok() {
            removed += 1;
        }
        for suffix in SQLITE_SIDECARS {
            let mut sidecar = path.clone().into_os_string();
            sidecar.push(suffix);
            let _ = std::fs::remove_file(sidecar);
        }
    }
    removed
}

/// A file the host creates for itself in the backup directory: a hidden, unique name, locked
/// for as long as this value lives (so a sweeper in another process leaves it alone), and
/// removed when it is dropped unless it has been renamed away by then.
#[derive(Debug)]
pub(crate) struct Temporary {
    backups: Arc<BackupDir>,
    name: String,
    file: std::fs::File,
}

impl Temporary {
    pub(crate) fn create(backups: &Arc<BackupDir>, suffix: &str) -> io::Result<Temporary> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        loop {
            let nanos = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .subsec_nanos();
            let name = format!(
                "{TEMPORARY_PREFIX}{}-{}-{nanos:09}.{suffix}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed),
            );
            let mut options = OpenOptions::new();
            options
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW);
            match backups.dir.open_with(&name, &options) {
                Ok(file) => {
                    let file = file.into_std();
                    file.try_lock().map_err(io::Error::other)?;
                    LIVE_TEMPORARIES
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(backups.path.join(&name));
                    let backups = Arc::clone(backups);
                    return Ok(Temporary {
                        backups,
                        name,
                        file,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Flushes the file's content to disk, whoever wrote it.
    pub(crate) fn sync(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    /// While someone else writes the file, writes it back to disk every [`FLUSH_STEP`]
    /// bytes, until `stop` is dropped or sent to: the final flush is then short, and other
    /// processes' fsyncs (a LiteGraph commit) never queue behind a whole database's worth of
    /// dirty pages.
    pub(crate) fn flush_while_written(&self, stop: &mpsc::Receiver<()>) {
        let mut flushed = 0;
        while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(FLUSH_POLL) {
            let Ok(length) = self.file.metadata().map(|m| m.len()) else {
                return;
            };
            if length >= flushed + FLUSH_STEP {
                // A failure here resurfaces in the final, checked flush.
                let _ = self.file.sync_data();
                flushed = length;
            }
        }
    }
}

impl Drop for Temporary {
    fn drop(&mut self) {
        let path = self.backups.path.join(&self.name);
        LIVE_TEMPORARIES
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|live| *live != path);
        match self.backups.dir.remove_file(&self.name) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(
                "could not remove the temporary {}: {e}",
                self.backups.path.join(&self.name).display()
            ),
        }
    }
}

/// The host's own check of every name it is handed, whatever the guest decided: one
/// ordinary file name, so that no name can address anything but an entry of the directory.
/// (The guest's rules are stricter; this is the line the host holds even if they are wrong.)
pub(crate) fn confine(name: &str) -> Result<&str, Error> {
    let refused = |why: &str| Err(Error::NotPermitted(format!("{name:?}: {why}")));
    if name.is_empty() {
        return refused("empty name");
    }
    if name.len() > 255 {
        return refused("longer than 255 bytes");
    }
    if name == "." || name == ".." {
        return refused("not a file name");
    }
    if name.contains(['/', '\0']) {
        return refused("not a single file name");
    }
    Ok(name)
}

/// Maps an I/O failure on `name` to the WIT error, with text a person can act on.
fn failed(action: &str, name: &str, error: io::Error) -> Error {
    match error.kind() {
        io::ErrorKind::NotFound => Error::NotFound,
        io::ErrorKind::AlreadyExists => Error::Exist,
        _ => Error::Io(format!("cannot {action} {name}: {error}")),
    }
}

pub(crate) fn datetime(time: SystemTime) -> Datetime {
    let since_epoch = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Datetime {
        seconds: since_epoch.as_secs(),
        nanoseconds: since_epoch.subsec_nanos(),
    }
}

fn file_stat(metadata: &Metadata) -> FileStat {
    let time = |t: io::Result<cap_std::time::SystemTime>| t.ok().map(|t| datetime(t.into_std()));
    let modified = time(metadata.modified()).unwrap_or(Datetime {
        seconds: 0,
        nanoseconds: 0,
    });
    FileStat {
        length: metadata.len(),
        created: time(metadata.created()),
        modified,
        accessed: time(metadata.accessed()).unwrap_or(modified),
    }
}

/// The `store` capability's per-operation context.
pub struct StoreCtx {
    backups: Arc<BackupDir>,
    budget: Budget,
    /// Whether this operation has made sure the directory is still at its path.
    in_place: bool,
}

impl StoreCtx {
    pub(crate) fn new(backups: Arc<BackupDir>, budget: Budget) -> StoreCtx {
        StoreCtx {
            backups,
            budget,
            in_place: false,
        }
    }

    /// Charges one call, and once per operation makes sure that the directory is still
    /// where the operator put it.
    fn call(&mut self) -> Result<(), Error> {
        self.budget.call()?;
        self.check_in_place()
    }

    /// Once per operation, makes sure that the directory is still where the operator put it.
    fn check_in_place(&mut self) -> Result<(), Error> {
        if !self.in_place {
            self.backups.in_place()?;
            self.in_place = true;
        }
        Ok(())
    }

    /// `failed`, naming the file by its full path.
    fn failed(&self, action: &str, name: &str, error: io::Error) -> Error {
        failed(
            action,
            &self.backups.path.join(name).display().to_string(),
            error,
        )
    }
}

struct HasStore;

impl HasData for HasStore {
    type Data<'a> = &'a mut StoreCtx;
}

/// Links the `store` imports, served by the `StoreCtx` that `get` finds in the store's data.
pub(crate) fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut StoreCtx,
) -> wasmtime::Result<()> {
    store::add_to_linker::<T, HasStore>(linker, get)
}

impl store::Host for StoreCtx {
    fn now(&mut self) -> Datetime {
        // Refused or not, the time is harmless; the call still counts.
        let _ = self.budget.call();
        datetime(SystemTime::now())
    }

    fn list(&mut self) -> Result<Vec<String>, Error> {
        self.call()?;
        let shown = self.backups.path.display();
        let listing =
            |e: io::Error| Error::Io(format!("cannot list the backup directory {shown}: {e}"));
        let mut names = Vec::new();
        for entry in self.backups.dir.entries().map_err(listing)? {
            let entry = entry.map_err(listing)?;
            let is_file = entry.file_type().map_err(listing)?.is_file();
            // A name that is not UTF-8 cannot be a backup name: leave it out.
            if let (true, Ok(name)) = (is_file, entry.file_name().into_string())
                && !self.backups.is_live_database_file(&name)
            {
                names.push(name);
            }
        }
        self.budget.listed(names.len());
        Ok(names)
    }

    fn stat(&mut self, name: String) -> Result<FileStat, Error> {
        self.call()?;
        let metadata = self.backups.regular_file(self.backups.confine(&name)?)?;
        Ok(file_stat(&metadata))
    }

    fn digests(&mut self, name: String) -> Result<FileDigests, Error> {
        // One call, counted by the heavy budget.
        self.budget.heavy(Heavy::Digests, &name)?;
        self.check_in_place()?;
        let file = self.backups.open_regular(self.backups.confine(&name)?)?;
        let d = digests(file).map_err(|e| self.failed("read", &name, e))?;
        Ok(FileDigests {
            md5: d.md5,
            sha1: d.sha1,
            sha256: d.sha256,
        })
    }

    fn read(&mut self, name: String) -> Result<Vec<u8>, Error> {
        self.call()?;
        let file = self.backups.open_regular(self.backups.confine(&name)?)?;
        let mut contents = Vec::new();
        file.take(SMALL_FILE_BYTES + 1)
            .read_to_end(&mut contents)
            .map_err(|e| self.failed("read", &name, e))?;
        if contents.len() as u64 > SMALL_FILE_BYTES {
            // Only metadata is read this way: an oversized one is damaged or planted.
            let path = self.backups.path.join(&name);
            tracing::warn!(
                "{} is larger than {SMALL_FILE_BYTES} bytes: not a metadata record; ignored",
                path.display()
            );
            return Err(Error::Io(format!(
                "cannot read {}: larger than {SMALL_FILE_BYTES} bytes",
                path.display()
            )));
        }
        Ok(contents)
    }

    fn write(&mut self, name: String, contents: Vec<u8>) -> Result<(), Error> {
        // One call, counted by the write budget.
        self.budget.write(contents.len())?;
        self.check_in_place()?;
        self.backups.confine(&name)?;
        if !(name.starts_with('.') && name.ends_with(".meta")) {
            return Err(Error::NotPermitted(format!(
                "{name:?}: write is for metadata files (.*.meta) only"
            )));
        }
        if contents.len() as u64 > SMALL_FILE_BYTES {
            return Err(Error::Io(format!(
                "write {name}: larger than {SMALL_FILE_BYTES} bytes"
            )));
        }
        self.backups
            .write_atomically(&name, &contents)
            .inspect_err(|e| tracing::warn!("cannot record metadata: {e:?}"))
    }

    fn rename_noreplace(&mut self, source: String, target: String) -> Result<(), Error> {
        self.call()?;
        self.backups.rename_noreplace(
            self.backups.confine(&source)?,
            self.backups.confine(&target)?,
        )
    }

    fn remove(&mut self, name: String) -> Result<(), Error> {
        self.call()?;
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Err(Error::Io(
                "interrupted: the process is exiting, nothing more is removed".into(),
            ));
        }
        self.backups.regular_file(self.backups.confine(&name)?)?;
        self.backups
            .dir
            .remove_file(&name)
            .map_err(|e| self.failed("remove", &name, e))?;
        self.backups.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confine_refuses_every_escape() {
        for name in [
            "",
            ".",
            "..",
            "../x",
            "/etc/passwd",
            "a/b",
            "a\0b",
            &"x".repeat(256),
        ] {
            assert!(
                matches!(confine(name), Err(Error::NotPermitted(_))),
                "{name:?}"
            );
        }
        for name in ["x.db", ".lgb-1.tmp", "a\\b", "..x", &"x".repeat(255)] {
            assert!(matches!(confine(name), Ok(n) if n == name), "{name:?}");
        }
    }
}

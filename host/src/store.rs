//! The `store` capability: the backup directory, reached only through one `cap_std::fs::Dir`
//! opened at start-up. Every name the guest hands in is checked again here ([`confine`]) and
//! symbolic links are never followed, so a wrong or hostile policy still cannot reach a file
//! outside the directory.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, SystemTime};

use cap_std::fs::{Dir, File, Metadata, OpenOptions, OpenOptionsExt};
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

/// The backup directory.
#[derive(Debug)]
pub struct BackupDir {
    dir: Dir,
    path: PathBuf,
}

impl BackupDir {
    /// Opens an existing backup directory. This is the program's only use of ambient
    /// authority: everything else goes through the returned `Dir`.
    pub fn open(path: &Path) -> io::Result<BackupDir> {
        let dir = Dir::open_ambient_dir(path, cap_std::ambient_authority())?;
        Ok(BackupDir {
            dir,
            path: path.to_owned(),
        })
    }

    /// Creates the backup directory (and its parents) when missing, then opens it.
    pub fn create(path: &Path) -> io::Result<BackupDir> {
        std::fs::create_dir_all(path)?;
        BackupDir::open(path)
    }

    /// Opens a backup to stream it out, under the same rules as the `store` capability: a
    /// single name inside the directory, a regular file, no symbolic link followed.
    pub fn open_for_reading(&self, name: &str) -> Result<std::fs::File, crate::Error> {
        Ok(self.open_regular(confine(name)?)?.into_std())
    }

    /// The path SQLite should open for a regular file of the directory (SQLite opens by
    /// path): checked through the `Dir` first, so that it is a confined name of a regular
    /// file, not a link.
    pub(crate) fn path_of_regular_file(&self, name: &str) -> Result<PathBuf, Error> {
        self.regular_file(confine(name)?)?;
        Ok(self.path.join(name))
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
            .map_err(|e| Error::Io(format!("sync the backup directory: {e}")))
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
            if name.ends_with(".tmp") || name.ends_with(".part") {
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
        match self.backups.dir.remove_file(&self.name) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => eprintln!("warning: could not remove temporary {}: {e}", self.name),
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
        _ => Error::Io(format!("{action} {name}: {error}")),
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
}

impl StoreCtx {
    pub(crate) fn new(backups: Arc<BackupDir>, budget: Budget) -> StoreCtx {
        StoreCtx { backups, budget }
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
        self.budget.call()?;
        let listing = |e: io::Error| Error::Io(format!("list the backup directory: {e}"));
        let mut names = Vec::new();
        for entry in self.backups.dir.entries().map_err(listing)? {
            let entry = entry.map_err(listing)?;
            let is_file = entry.file_type().map_err(listing)?.is_file();
            // A name that is not UTF-8 cannot be a backup name: leave it out.
            if let (true, Ok(name)) = (is_file, entry.file_name().into_string()) {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn stat(&mut self, name: String) -> Result<FileStat, Error> {
        self.budget.call()?;
        let metadata = self.backups.regular_file(confine(&name)?)?;
        Ok(file_stat(&metadata))
    }

    fn digests(&mut self, name: String) -> Result<FileDigests, Error> {
        self.budget.heavy(Heavy::Digests, &name)?;
        let file = self.backups.open_regular(confine(&name)?)?;
        let d = digests(file).map_err(|e| failed("read", &name, e))?;
        Ok(FileDigests {
            md5: d.md5,
            sha1: d.sha1,
            sha256: d.sha256,
        })
    }

    fn read(&mut self, name: String) -> Result<Vec<u8>, Error> {
        self.budget.call()?;
        let file = self.backups.open_regular(confine(&name)?)?;
        let mut contents = Vec::new();
        file.take(SMALL_FILE_BYTES + 1)
            .read_to_end(&mut contents)
            .map_err(|e| failed("read", &name, e))?;
        if contents.len() as u64 > SMALL_FILE_BYTES {
            return Err(Error::Io(format!(
                "read {name}: larger than {SMALL_FILE_BYTES} bytes"
            )));
        }
        Ok(contents)
    }

    fn write(&mut self, name: String, contents: Vec<u8>) -> Result<(), Error> {
        self.budget.write(contents.len())?;
        confine(&name)?;
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
        self.backups.write_atomically(&name, &contents)
    }

    fn rename_noreplace(&mut self, source: String, target: String) -> Result<(), Error> {
        self.budget.call()?;
        self.backups
            .rename_noreplace(confine(&source)?, confine(&target)?)
    }

    fn remove(&mut self, name: String) -> Result<(), Error> {
        self.budget.call()?;
        self.backups.regular_file(confine(&name)?)?;
        self.backups
            .dir
            .remove_file(&name)
            .map_err(|e| failed("remove", &name, e))?;
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

//! The `store` capability: the backup directory, reached only through one `cap_std::fs::Dir`
//! opened at start-up. Every name the guest hands in is checked again here ([`confine`]) and
//! symbolic links are never followed, so a wrong or hostile policy still cannot reach a file
//! outside the directory.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use cap_std::fs::{Dir, File, Metadata, MetadataExt, OpenOptions, OpenOptionsExt};
use wasmtime::component::{HasData, Linker};

use crate::bindings::litegraph::backup::store;
use crate::bindings::{Datetime, Error, FileDigests, FileStat};
use crate::budget::{Budget, Heavy};
use crate::digests::digests;
use crate::monitor::progress::Pass;

mod live_database;
mod temporaries;

use live_database::LiveDatabaseFiles;
pub use temporaries::remove_live_temporaries;
use temporaries::{INTERRUPTED, is_temporary_name, remember_published};
pub(crate) use temporaries::{Temporary, flush_while_growing, published_as};

/// The most `read` returns and `write` accepts: sidecar metadata, never a backup.
pub const SMALL_FILE_BYTES: u64 = 64 * 1024;

/// The lock file that admits one create or restore at a time.
const OPERATION_LOCK: &str = ".lgb-operation.lock";

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

    /// The host's check of a name it is handed: [`confine`], and never one of the live
    /// database's files.
    pub(crate) fn confine<'a>(&self, name: &'a str) -> Result<&'a str, Error> {
        let name = confine(name)?;
        if self.is_live_database_file(name) {
            return Err(Error::NotPermitted(format!(
                "{name:?} is the live database's own file, never a backup"
            )));
        }
        // A file renamed into the journal's place would stop every multipart push.
        if name == crate::remote::JOURNAL_DIR {
            return Err(Error::NotPermitted(format!(
                "{name:?} is the host's upload journal"
            )));
        }
        if is_status_file(name) {
            return Err(Error::NotPermitted(format!(
                "{name:?} is the host's status record"
            )));
        }
        Ok(name)
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
}

/// Removes the operation lock file of a directory that this process made and is giving
/// up (a failed create leaves nothing behind); the operation that held it has ended.
pub fn forget_operation_lock(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(OPERATION_LOCK));
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

/// The host's own check of every name it is handed, whatever the guest decided: one
/// ordinary file name, so that no name can address anything but an entry of the directory.
/// (The guest's rules are stricter; this is the line the host holds even if they are wrong.)
/// How the names of the host's status record (see [`crate::monitor::status`]) and its
/// temporaries begin: the host's own files, out of the policy's reach and listing.
pub const STATUS_PREFIX: &str = ".lgb-status";

/// Whether `name` is the host's status record or one of its temporaries.
pub fn is_status_file(name: &str) -> bool {
    name.starts_with(STATUS_PREFIX)
}

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
    /// Where the digest passes report their progress.
    monitor: crate::monitor::Monitor,
    /// Whether this operation has made sure the directory is still at its path.
    in_place: bool,
}

impl StoreCtx {
    pub(crate) fn new(
        backups: Arc<BackupDir>,
        budget: Budget,
        monitor: crate::monitor::Monitor,
    ) -> StoreCtx {
        StoreCtx {
            backups,
            budget,
            monitor,
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
                && !is_status_file(&name)
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
        let length = file
            .metadata()
            .map_err(|e| self.failed("stat", &name, e))?
            .len();
        let hashing = Pass::start(self.monitor.progress(), "hashing", length);
        let d = digests(hashing.reader(file)).map_err(|e| self.failed("read", &name, e))?;
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

    /// Before: a policy could rename a file to `.lgb-uploads` before the journal existed,
    /// and every multipart push failed from then on.
    #[test]
    fn the_upload_journal_is_out_of_the_policys_reach() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backups = BackupDir::open(dir.path()).expect("open");
        assert!(matches!(
            backups.confine(".lgb-uploads"),
            Err(Error::NotPermitted(why)) if why.contains("upload journal")
        ));
        assert!(backups.confine(".lgb-uploads.x").is_ok());
    }
}

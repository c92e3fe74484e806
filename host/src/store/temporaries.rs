//! The host's own files in the backup directory: temporaries (hidden, locked while their
//! owner lives, swept once abandoned), and what a signal handler needs to clean up after
//! this process.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, SystemTime};

use cap_std::fs::{OpenOptions, OpenOptionsExt};

use super::BackupDir;
use crate::monitor::progress::Pass;

/// Temporaries older than this, and no longer locked by a live process, are leftovers of a
/// run that died; younger ones may still be between creation and locking.
const STALE_AFTER: Duration = Duration::from_secs(10);

/// The prefix of every file the host creates for itself in the backup directory.
const TEMPORARY_PREFIX: &str = ".lgb-";

/// How much of a snapshot may be written before it is written back to disk.
const FLUSH_STEP: u64 = 64 << 20;
/// How often a snapshot's growth is looked at.
const FLUSH_POLL: Duration = Duration::from_millis(20);

/// What SQLite may leave beside a snapshot it was writing when its process died.
const SQLITE_SIDECARS: [&str; 3] = ["-journal", "-wal", "-shm"];

impl BackupDir {
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

/// Whether a name is one of the host's temporaries.
pub(super) fn is_temporary_name(name: &str) -> bool {
    name.starts_with(TEMPORARY_PREFIX) && (name.ends_with(".tmp") || name.ends_with(".part"))
}

/// The names the last few temporaries of this process were published under (a signal
/// handler names the safety backup of an interrupted restore with it).
static PUBLISHED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

pub(super) fn remember_published(temporary: &str, name: &str) {
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
pub(super) static INTERRUPTED: AtomicBool = AtomicBool::new(false);

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
    pub(super) name: String,
    pub(super) file: std::fs::File,
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
    /// dirty pages. The length seen is the `writing` pass's progress.
    pub(crate) fn flush_while_written(&self, stop: &mpsc::Receiver<()>, writing: &Pass<'_>) {
        flush_while_growing(&self.file, stop, writing);
    }
}

/// [`Temporary::flush_while_written`] for any file being written.
pub(crate) fn flush_while_growing(
    file: &std::fs::File,
    stop: &mpsc::Receiver<()>,
    writing: &Pass<'_>,
) {
    let mut flushed = 0;
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(FLUSH_POLL) {
        let Ok(length) = file.metadata().map(|m| m.len()) else {
            return;
        };
        writing.update(length);
        if length >= flushed + FLUSH_STEP {
            // A failure here resurfaces in the final, checked flush.
            let _ = file.sync_data();
            flushed = length;
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

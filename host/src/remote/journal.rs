//! The journal of multipart uploads under way. object_store cannot list a bucket's
//! unfinished uploads, so a process killed mid-upload (SIGKILL, power loss) would leave its
//! parts on the target for ever: invisible, but stored and billed. Before the first part is
//! sent, the upload is recorded in a file of its own, locked (`flock`) by its process for the
//! upload's lifetime and removed once the upload is completed or aborted. An entry that no
//! process holds was left by a dead one: the next put-file to that target (or a prune) aborts
//! its upload and drops it ([`super::Targets::sweep_abandoned_uploads`]).
//!
//! The entries live in a directory of the backup directory, `.lgb-uploads/`, out of the
//! guest's reach: the `store` capability lists, reads, renames and removes only regular files
//! of the backup directory itself, and refuses names with a `/`. Its names never end in
//! `.tmp` or `.part`, so the temporaries' sweeper leaves them alone.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::store::BackupDir;

/// The journal's directory, in the backup directory.
pub(crate) const JOURNAL_DIR: &str = ".lgb-uploads";
/// The ending of an entry's name.
const ENTRY_SUFFIX: &str = ".upload";
/// An entry still empty or unreadable at this age was left by a process that died while
/// writing it; a younger one may be between its creation and its first write.
const STALE_AFTER: Duration = Duration::from_secs(10);

/// One upload under way: what is needed to abort it from another process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// The target's name in the configuration.
    pub(crate) target: String,
    /// The object's full path on the store: within the bucket, the target's prefix
    /// included (S3); relative to the directory (a directory target).
    pub(crate) path: String,
    /// S3's upload id; `None` for a directory target, whose store names its staging file.
    pub(crate) upload_id: Option<String>,
}

/// The journal of one backup directory.
#[derive(Debug, Clone)]
pub(crate) struct Journal {
    dir: PathBuf,
}

/// An entry locked by this process: one it is writing the upload of, or one it found
/// abandoned and is cleaning up. Dropping it releases the lock and leaves the entry (the
/// upload then counts as abandoned); [`Entry::close`] removes it.
#[derive(Debug)]
pub(crate) struct Entry {
    record: Record,
    path: PathBuf,
    journal: Journal,
    /// Holds the lock.
    _file: File,
}

impl Journal {
    pub(crate) fn of(backups: &BackupDir) -> Journal {
        Journal {
            dir: backups.path().join(JOURNAL_DIR),
        }
    }

    /// Records an upload durably (flushed, and its name too) and keeps it locked.
    pub(crate) fn record(&self, record: Record) -> io::Result<Entry> {
        self.create_dir()?;
        let (path, mut file) = self.new_entry_file()?;
        // Locked before anything is written: an entry with content is always held by its
        // owner while the owner lives. A sweeper may hold the empty file for an instant
        // (it leaves young, empty entries alone), hence the blocking lock.
        file.lock()?;
        let written = serde_json::to_vec(&record)
            .map_err(io::Error::other)
            .and_then(|json| file.write_all(&json))
            .and_then(|()| file.sync_all())
            .and_then(|()| self.sync());
        if let Err(e) = written {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok(Entry {
            record,
            path,
            journal: self.clone(),
            _file: file,
        })
    }

    /// The entries for `target` that no live process holds, each now locked by this one.
    pub(crate) fn abandoned(&self, target: &str) -> io::Result<Vec<Entry>> {
        let listing = match std::fs::read_dir(&self.dir) {
            Ok(listing) => listing,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut abandoned = Vec::new();
        for found in listing {
            let found = found?;
            let name = found.file_name();
            if !name.to_string_lossy().ends_with(ENTRY_SUFFIX) || !found.file_type()?.is_file() {
                continue;
            }
            if let Some(entry) = self.take_if_abandoned(found.path())?
                && entry.record.target == target
            {
                abandoned.push(entry);
            }
        }
        Ok(abandoned)
    }

    /// Locks the entry at `path` if its owner is gone; `None` when it is held, already
    /// removed, or being written. An unreadable entry left long ago is removed.
    fn take_if_abandoned(&self, path: PathBuf) -> io::Result<Option<Entry>> {
        let mut file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if file.try_lock().is_err() {
            return Ok(None);
        }
        let metadata = file.metadata()?;
        if metadata.nlink() == 0 {
            // Closed by its owner, or cleaned up by another sweeper, since it was listed.
            return Ok(None);
        }
        let mut contents = Vec::new();
        file.read_to_end(&mut contents)?;
        match serde_json::from_slice::<Record>(&contents) {
            Ok(record) => Ok(Some(Entry {
                record,
                path,
                journal: self.clone(),
                _file: file,
            })),
            Err(_) => {
                let age = metadata.modified()?.elapsed().unwrap_or(Duration::ZERO);
                if age >= STALE_AFTER {
                    // Killed before its upload began: there is nothing to abort.
                    remove_if_present(&path)?;
                }
                Ok(None)
            }
        }
    }

    fn create_dir(&self) -> io::Result<()> {
        match std::fs::create_dir(&self.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        if std::fs::symlink_metadata(&self.dir)?.is_dir() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "{} is not a directory: the upload journal needs that name",
                self.dir.display()
            )))
        }
    }

    /// A new, empty entry file with a name unique to this process and moment.
    fn new_entry_file(&self) -> io::Result<(PathBuf, File)> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        loop {
            let nanos = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            let path = self.dir.join(format!(
                "{}-{}-{nanos}{ENTRY_SUFFIX}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed),
            ));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
            {
                Ok(file) => return Ok((path, file)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Makes an entry's creation or removal durable.
    fn sync(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

impl Entry {
    pub(crate) fn record(&self) -> &Record {
        &self.record
    }

    /// The upload is completed or aborted: its entry goes.
    pub(crate) fn close(self) -> io::Result<()> {
        remove_if_present(&self.path)?;
        self.journal.sync()
    }
}

fn remove_if_present(path: &std::path::Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

//! A snapshot in one pass: the pages a transaction of the live database sees are read in
//! order through SQLite's `sqlite_dbpage` table and written to the temporary, while the
//! digests follow the written file on the other core and the file is flushed as it grows.
//!
//! Why not SQLite's backup API: it rewrites page 1 of the copy at its end, so the digests
//! (MD5 is sequential) could only start once the copy was done, and the copy itself costs
//! twice a read of the pages (the destination is a database with its own pager). Here page
//! 1 is final when written (a rollback-journal header, [`pages::mark_self_contained`]), the
//! hashers start with it, and the copy ends when the hashers are where the copy was, not
//! after them: the caller's transaction (a read lock that blocks writers of a
//! rollback-journal database) is released as soon as the last page is written.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::sync::{Condvar, Mutex, PoisonError, mpsc};

use rusqlite::Connection;

use super::{pages, sqlite_error};
use crate::bindings::{Error, FileDigests};
use crate::digests::digests;
use crate::monitor::Progress;
use crate::monitor::progress::Pass;
use crate::store::{BackupDir, Temporary};

/// Pages are gathered into writes of about this many bytes: one system call per page (4 KiB)
/// cost more system time than the copy itself.
const WRITE_BYTES: usize = 1 << 20;

/// Copies every page that `connection`'s open transaction sees into `temporary` (empty),
/// as a self-contained rollback-journal database, and returns the file's digests once it is
/// on disk. `copied` runs as soon as the last page is written, before the digests and the
/// final flush are done: `take` ends its read transaction there, a restore keeps its write
/// transaction.
pub(super) fn copy_pages(
    connection: &Connection,
    backups: &BackupDir,
    temporary: &Temporary,
    progress: &dyn Progress,
    copied: impl FnOnce() -> Result<(), Error>,
) -> Result<FileDigests, Error> {
    let io = |action: &str, e: io::Error| {
        Error::Io(format!(
            "cannot {action} in the backup directory {}: {e}",
            backups.path().display()
        ))
    };
    let (page_size, page_count) = page_size_and_count(connection)?;
    let length = u64::from(page_count) * u64::from(page_size);
    let output = backups.open_for_writing(temporary.name())?;
    let input = backups
        .open_for_reading(temporary.name())
        .map_err(|e| io("reopen the snapshot", io::Error::other(e)))?;
    let written = Written::default();
    std::thread::scope(|scope| {
        let copying = Pass::start(progress, "copying", length);
        let (stop_flushing, stopped) = mpsc::channel::<()>();
        // The flusher reports the copy's progress (the file's length) and hands the pass
        // back, to be ended here.
        let flusher = scope.spawn(move || {
            temporary.flush_while_written(&stopped, &copying);
            copying
        });
        let hashers = scope.spawn(|| {
            digests(Following {
                file: input,
                at: 0,
                written: &written,
                progress,
            })
        });
        let outcome = write_pages(connection, &output, page_size, page_count, &written)
            .and_then(|()| copied());
        drop(stop_flushing);
        drop(flusher.join().expect("flushing never panics"));
        // The rest of the digests (the hashers trail the copy), while the last of the
        // copy goes to disk.
        let _hashing = outcome
            .is_ok()
            .then(|| Pass::start(progress, "hashing", length));
        written.end(outcome.is_ok());
        let synced = outcome.as_ref().ok().map(|()| temporary.sync());
        let digests = hashers.join().expect("hashing never panics");
        outcome?;
        if let Some(Err(e)) = synced {
            return Err(io("flush the snapshot to disk", e));
        }
        let d = digests.map_err(|e| io("read the snapshot", e))?;
        Ok(FileDigests {
            md5: d.md5,
            sha1: d.sha1,
            sha256: d.sha256,
        })
    })
}

/// The pages alone, as [`copy_pages`] writes them: no digests, no flushes.
pub(super) fn write_pages_only(connection: &Connection, file: &File) -> Result<(), Error> {
    let (page_size, page_count) = page_size_and_count(connection)?;
    write_pages(connection, file, page_size, page_count, &Written::default())
}

/// The page size, and the page count of the snapshot the connection's transaction sees.
fn page_size_and_count(connection: &Connection) -> Result<(u32, u32), Error> {
    let pragma = |name: &str| {
        connection
            .query_row(&format!("PRAGMA {name}"), [], |row| row.get::<_, u32>(0))
            .map_err(sqlite_error)
    };
    Ok((pragma("page_size")?, pragma("page_count")?))
}

/// Writes pages 1 to `page_count` as the connection's transaction sees them, in order, to
/// `file` (page 1 made self-contained), and tells `written` how far the file is complete.
fn write_pages(
    connection: &Connection,
    file: &File,
    page_size: u32,
    page_count: u32,
    written: &Written,
) -> Result<(), Error> {
    let write = |e: io::Error| {
        Error::Io(format!(
            "could not write the copy into the backup directory (disk full or file size limit?): {e}"
        ))
    };
    let page_bytes = page_size as usize;
    if page_count == 0 {
        // An empty (0-byte) database: the copy is an empty database all the same, one page
        // that SQLite reads, verifies and restores (a 0-byte backup could not be restored).
        let mut page = empty_page_one(page_size)?;
        pages::mark_self_contained(&mut page, 1);
        file.write_all_at(&page, 0).map_err(write)?;
        written.advance(page.len() as u64);
        return Ok(());
    }
    let mut statement = connection
        .prepare("SELECT pgno, data FROM sqlite_dbpage")
        .map_err(sqlite_error)?;
    let mut rows = statement.query([]).map_err(sqlite_error)?;
    let mut batch: Vec<u8> = Vec::with_capacity(WRITE_BYTES.max(page_bytes));
    // The file's complete length: the batch goes at this offset.
    let mut complete = 0u64;
    let mut expected = 1u32;
    while let Some(row) = rows.next().map_err(sqlite_error)? {
        let pgno: u32 = row.get(0).map_err(sqlite_error)?;
        let data = row.get_ref(1).map_err(sqlite_error)?;
        let data = data
            .as_blob()
            .map_err(|e| Error::Io(format!("SQLite: {e}")))?;
        // The table gives every page, the lock-byte page too (as zeros, which keeps every
        // later page at its offset); anything else would make a wrong copy.
        if pgno != expected || data.len() != page_bytes {
            return Err(Error::Io(format!(
                "SQLite gave page {pgno} of {} bytes where page {expected} of {page_size} \
                 was expected: the copy was abandoned",
                data.len()
            )));
        }
        let start = batch.len();
        batch.extend_from_slice(data);
        if pgno == 1 {
            pages::mark_self_contained(&mut batch[start..], page_count);
        }
        expected += 1;
        if batch.len() >= WRITE_BYTES {
            file.write_all_at(&batch, complete).map_err(write)?;
            complete += batch.len() as u64;
            written.advance(complete);
            batch.clear();
        }
    }
    file.write_all_at(&batch, complete).map_err(write)?;
    complete += batch.len() as u64;
    written.advance(complete);
    if expected - 1 != page_count {
        return Err(Error::Io(format!(
            "SQLite gave {} of the database's {page_count} pages: the copy was abandoned",
            expected - 1
        )));
    }
    Ok(())
}

/// Page 1 of an empty database of `page_size` bytes a page, as SQLite writes it.
fn empty_page_one(page_size: u32) -> Result<Vec<u8>, Error> {
    let empty = Connection::open_in_memory().map_err(sqlite_error)?;
    empty
        .execute_batch(&format!(
            "PRAGMA page_size = {page_size}; PRAGMA user_version = 0;"
        ))
        .map_err(sqlite_error)?;
    empty
        .query_row("SELECT data FROM sqlite_dbpage WHERE pgno = 1", [], |row| {
            row.get(0)
        })
        .map_err(sqlite_error)
}

/// How much of the copy is in the file, for the hashers that follow it.
#[derive(Default)]
struct Written {
    state: Mutex<WrittenState>,
    grew: Condvar,
}

#[derive(Default)]
struct WrittenState {
    /// Bytes from the start of the file that are final.
    complete: u64,
    /// `None` while the copy goes on; then whether it succeeded.
    ended: Option<bool>,
}

impl Written {
    fn advance(&self, complete: u64) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .complete = complete;
        self.grew.notify_all();
    }

    fn end(&self, succeeded: bool) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ended = Some(succeeded);
        self.grew.notify_all();
    }

    /// Waits until the file is complete beyond `at` or the copy has ended; returns how far
    /// it is complete and whether the copy is over, or an error when it failed.
    fn beyond(&self, at: u64) -> io::Result<(u64, bool)> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            match state.ended {
                Some(false) => return Err(io::Error::other("the copy failed")),
                Some(true) => return Ok((state.complete, true)),
                None if state.complete > at => return Ok((state.complete, false)),
                None => {
                    state = self
                        .grew
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }
}

/// The copy as it is written: reads wait for the bytes to be complete, and end with the
/// copy. Once the copy is over, the bytes read are the "hashing" pass's progress.
struct Following<'a> {
    file: File,
    at: u64,
    written: &'a Written,
    progress: &'a dyn Progress,
}

impl Read for Following<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let (complete, over) = self.written.beyond(self.at)?;
        let wanted = usize::try_from(complete.saturating_sub(self.at))
            .unwrap_or(usize::MAX)
            .min(buffer.len());
        if wanted == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buffer[..wanted], self.at)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the copy is shorter than it was written",
            ));
        }
        self.at += n as u64;
        if over {
            self.progress.update(self.at);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::progress::NoProgress;

    #[test]
    fn an_empty_databases_page_one_opens_as_an_empty_database() {
        for page_size in [512, 4096, 65_536] {
            let page = empty_page_one(page_size).expect("page 1");
            assert_eq!(page.len(), page_size as usize);
            let dir = tempfile::tempdir().expect("scratch");
            let path = dir.path().join("empty.db");
            std::fs::write(&path, &page).expect("write");
            let db = Connection::open(&path).expect("open");
            let check: String = db
                .query_row("PRAGMA integrity_check", [], |row| row.get(0))
                .expect("check");
            assert_eq!(check, "ok");
            let size: u32 = db
                .query_row("PRAGMA page_size", [], |row| row.get(0))
                .expect("page size");
            assert_eq!(size, page_size);
        }
    }

    #[test]
    fn the_follower_reads_what_was_written_as_it_is_written_then_ends() {
        let dir = tempfile::tempdir().expect("scratch");
        let path = dir.path().join("copy");
        let file = File::create(&path).expect("create");
        let written = Written::default();
        let bytes: Vec<u8> = (0..(3 << 20) + 17).map(|i| (i % 251) as u8).collect();
        let read = std::thread::scope(|scope| {
            let follower = scope.spawn(|| {
                let mut read = Vec::new();
                Following {
                    file: File::open(&path).expect("open"),
                    at: 0,
                    written: &written,
                    progress: &NoProgress,
                }
                .read_to_end(&mut read)
                .map(|_| read)
            });
            for (i, chunk) in bytes.chunks(1 << 20).enumerate() {
                file.write_all_at(chunk, (i << 20) as u64).expect("write");
                written.advance(((i << 20) + chunk.len()) as u64);
            }
            written.end(true);
            follower.join().expect("no panic")
        });
        assert_eq!(read.expect("read"), bytes);
    }

    #[test]
    fn the_follower_fails_when_the_copy_fails() {
        let dir = tempfile::tempdir().expect("scratch");
        let path = dir.path().join("copy");
        std::fs::write(&path, [0u8; 10]).expect("write");
        let written = Written::default();
        written.advance(10);
        written.end(false);
        let mut following = Following {
            file: File::open(&path).expect("open"),
            at: 0,
            written: &written,
            progress: &NoProgress,
        };
        assert!(following.read_to_end(&mut Vec::new()).is_err());
    }
}

//! A restore page for page, in one write transaction on the live database: the safety copy
//! reads the live database's pages and the backup's pages are written in their place through
//! SQLite's `sqlite_dbpage` table (as SQLite's own `sqlite3_rsync` applies pages), so that
//! no commit can land between the copy and the replacement. The backup API cannot do this:
//! its copy and its restore are two transactions, and the commits in between were lost.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use sha2::{Digest, Sha256};

use super::sqlite_error;
use crate::bindings::Error;
use crate::monitor::Progress;
use crate::monitor::progress::Pass;

/// The first bytes of every SQLite database file.
const MAGIC: &[u8; 16] = b"SQLite format 3\0";
/// The length of the database header at the start of page 1.
const HEADER_BYTES: usize = 100;
/// The byte SQLite locks, whose page is never used for content (`PENDING_BYTE`).
const PENDING_BYTE: u64 = 0x4000_0000;

/// What must agree between a backup and the live database for the backup's pages to be
/// written into it as they are: a page-for-page copy cannot convert any of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Layout {
    pub page_size: u32,
    pub reserved_bytes: u8,
    /// 1 UTF-8, 2 UTF-16le, 3 UTF-16be.
    pub encoding: u32,
    /// 0 none, 1 full, 2 incremental.
    pub auto_vacuum: u32,
}

impl Layout {
    /// The layout a database header describes; `None` when it is not one.
    pub fn of_header(header: &[u8]) -> Option<Layout> {
        if header.len() < HEADER_BYTES || &header[..16] != MAGIC {
            return None;
        }
        let page_size = match u16::from_be_bytes([header[16], header[17]]) {
            1 => 65_536,
            n if n >= 512 && n.is_power_of_two() => u32::from(n),
            _ => return None,
        };
        let auto_vacuum = match (be32(header, 52), be32(header, 64)) {
            (0, _) => 0,
            (_, 0) => 1,
            _ => 2,
        };
        Some(Layout {
            page_size,
            reserved_bytes: header[20],
            encoding: be32(header, 56).max(1),
            auto_vacuum,
        })
    }

    /// Why a backup of layout `self` cannot be written into a database of layout `live`.
    pub fn mismatch(&self, live: &Layout) -> Option<String> {
        let encoding = |e: u32| match e {
            2 => "UTF-16le",
            3 => "UTF-16be",
            _ => "UTF-8",
        };
        let vacuum = |v: u32| match v {
            1 => "full",
            2 => "incremental",
            _ => "none",
        };
        let (what, backup, ours) = if self.page_size != live.page_size {
            (
                "page size",
                format!("{} bytes", self.page_size),
                format!("{} bytes", live.page_size),
            )
        } else if self.reserved_bytes != live.reserved_bytes {
            (
                "reserved bytes per page",
                self.reserved_bytes.to_string(),
                live.reserved_bytes.to_string(),
            )
        } else if self.encoding != live.encoding {
            (
                "text encoding",
                encoding(self.encoding).into(),
                encoding(live.encoding).into(),
            )
        } else if self.auto_vacuum != live.auto_vacuum {
            (
                "auto_vacuum mode",
                vacuum(self.auto_vacuum).into(),
                vacuum(live.auto_vacuum).into(),
            )
        } else {
            return None;
        };
        Some(format!(
            "the backup's {what} is {backup} and the live database's {ours}: an online restore \
             writes pages as they are and cannot convert them; stop the server and copy the \
             backup over the database file instead (the README's manual procedure)"
        ))
    }
}

fn be32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn put_be32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

/// The live database's layout and header facts, as its write transaction sees them.
pub(super) struct LiveHeader {
    pub layout: Layout,
    /// Whether it is in WAL mode (header bytes 18 and 19 are 2).
    pub wal: bool,
    pub change_counter: u32,
    pub schema_cookie: u32,
    pub page_count: u32,
}

/// How long a restore waits between two tries for the write lock.
const WRITE_LOCK_RETRY: Duration = Duration::from_micros(100);

/// Begins the write transaction a restore holds, within `patience`: `busy` when writers
/// keep the lock that long. SQLite's own busy handler sleeps up to 100 ms between tries,
/// and a writer that commits back to back takes the lock again in the microseconds between
/// two of its transactions, every time: the restore would never get its turn. Trying
/// every [`WRITE_LOCK_RETRY`] finds those gaps.
pub(super) fn begin_write(live: &Connection, patience: Duration) -> Result<(), Error> {
    let deadline = Instant::now() + patience;
    live.busy_timeout(Duration::ZERO).map_err(sqlite_error)?;
    let begun = loop {
        match live.execute_batch("BEGIN IMMEDIATE").map_err(sqlite_error) {
            Err(Error::Busy) if Instant::now() < deadline => std::thread::sleep(WRITE_LOCK_RETRY),
            outcome => break outcome,
        }
    };
    // The commit may still wait for readers (rollback journal): SQLite's handler again.
    live.busy_timeout(patience).map_err(sqlite_error)?;
    begun
}

/// Reads the live database's header inside its write transaction.
pub(super) fn live_header(live: &Connection) -> Result<LiveHeader, Error> {
    let pragma = |name: &str| -> Result<String, Error> {
        live.query_row(&format!("PRAGMA {name}"), [], |row| {
            row.get::<_, rusqlite::types::Value>(0)
        })
        .map(|value| match value {
            rusqlite::types::Value::Integer(n) => n.to_string(),
            rusqlite::types::Value::Text(t) => t,
            other => format!("{other:?}"),
        })
        .map_err(sqlite_error)
    };
    let page_count: u32 = pragma("page_count")?.parse().unwrap_or(0);
    let page_one: Option<Vec<u8>> = if page_count > 0 {
        Some(
            live.query_row("SELECT data FROM sqlite_dbpage WHERE pgno = 1", [], |row| {
                row.get(0)
            })
            .map_err(sqlite_error)?,
        )
    } else {
        None
    };
    let layout = match page_one.as_deref().and_then(Layout::of_header) {
        Some(layout) => layout,
        // An empty database (no page yet): what SQLite will give it.
        None => Layout {
            page_size: pragma("page_size")?.parse().unwrap_or(4096),
            reserved_bytes: 0,
            encoding: match pragma("encoding")?.as_str() {
                "UTF-16le" => 2,
                "UTF-16be" => 3,
                _ => 1,
            },
            auto_vacuum: pragma("auto_vacuum")?.parse().unwrap_or(0),
        },
    };
    let header = page_one.as_deref().unwrap_or(&[0; HEADER_BYTES]);
    Ok(LiveHeader {
        layout,
        wal: pragma("journal_mode")?.eq_ignore_ascii_case("wal"),
        change_counter: be32(header, 24),
        schema_cookie: be32(header, 40),
        page_count,
    })
}

/// The page that holds the lock byte: SQLite never stores content there, and refuses to
/// write it.
fn lock_byte_page(page_size: u32) -> u64 {
    PENDING_BYTE / u64::from(page_size) + 1
}

/// Page 1 of a copy of `pages` pages that stands on its own: a rollback-journal database
/// (opening it never makes `-wal`/`-shm` files) whose header says its true page count
/// (bytes 28-31), marked as trusted (bytes 92-95 equal to the change counter at 24-27).
/// The source's own count may be stale: a file written by SQLite before 3.7.0 leaves it so,
/// marked untrusted, and readers then take the file's size; trusting it unchanged made a
/// copy that claimed to be half its size (found by the operator review).
pub(super) fn mark_self_contained(page_one: &mut [u8], pages: u32) {
    if page_one.len() >= HEADER_BYTES && &page_one[..16] == MAGIC {
        page_one[18] = 1;
        page_one[19] = 1;
        put_be32(page_one, 28, pages);
        let counter = be32(page_one, 24);
        put_be32(page_one, 92, counter);
    }
}

/// Writes the backup in `source` over the live database's pages, inside the live
/// connection's open write transaction, and returns the SHA-256 of the bytes read (page
/// 1 as it was in the file, before its header was adjusted). Pages past the backup's end
/// are truncated at commit.
///
/// The connection's cached schema stays the live one until the commit: page 1 keeps the
/// live schema cookie while pages are written, so no statement of this transaction
/// re-reads the schema from half-written pages (it would, and find them "malformed");
/// only the last statement bumps the cookie, so that every connection, this one included,
/// re-reads the schema after the commit.
pub(super) fn write_backup(
    live: &Connection,
    live_header: &LiveHeader,
    source: &mut std::fs::File,
    progress: &dyn Progress,
) -> Result<String, Error> {
    let page_size = live_header.layout.page_size as usize;
    let mut insert = live
        .prepare("INSERT INTO sqlite_dbpage(pgno, data) VALUES (?1, ?2)")
        .map_err(sqlite_error)?;
    let mut sha256 = Sha256::new();
    let mut page = vec![0u8; page_size];
    let mut pgno: u32 = 0;
    let length = source
        .metadata()
        .map(|m| m.len())
        .map_err(|e| Error::Io(format!("cannot stat the backup: {e}")))?;
    let restoring = Pass::start(progress, "restoring", length);
    let pages = length / page_size as u64;
    let pages = u32::try_from(pages)
        .map_err(|_| Error::Corrupt("the backup has more pages than SQLite allows".into()))?;
    let lock_byte = lock_byte_page(live_header.layout.page_size);
    loop {
        let read = read_page(source, &mut page)
            .map_err(|e| Error::Io(format!("cannot read the backup: {e}")))?;
        if read == 0 {
            break;
        }
        if read < page_size {
            return Err(Error::Corrupt(format!(
                "the backup's length is not a whole number of {page_size}-byte pages"
            )));
        }
        sha256.update(&page);
        pgno += 1;
        restoring.update(u64::from(pgno) * page_size as u64);
        if u64::from(pgno) == lock_byte {
            continue;
        }
        if pgno == 1 {
            adopt_live_header(&mut page, live_header, pages);
        }
        insert
            .execute(rusqlite::params![pgno, &page])
            .map_err(sqlite_error)?;
    }
    if pgno == 0 {
        return Err(Error::Corrupt("the backup is empty".into()));
    }
    if pgno < live_header.page_count {
        // The live database is longer: its pages from here on go at commit. This must be
        // the transaction's last write through the table.
        insert
            .execute(rusqlite::params![pgno + 1, rusqlite::types::Null])
            .map_err(sqlite_error)?;
    }
    live.execute_batch(&format!(
        "PRAGMA schema_version = {}",
        live_header.schema_cookie.wrapping_add(1)
    ))
    .map_err(sqlite_error)?;
    Ok(hex_upper(&sha256.finalize()))
}

/// Page 1 of the backup, made to fit the live database it goes into: the live journal mode
/// (bytes 18 and 19: a WAL database stays WAL), the live schema cookie (bumped at the end
/// of the transaction, see [`write_backup`]), a change counter past the live one so that
/// every open connection notices the change (as the backup API does), and a page count the
/// header's readers trust.
fn adopt_live_header(page_one: &mut [u8], live: &LiveHeader, pages: u32) {
    let mode = if live.wal { 2 } else { 1 };
    page_one[18] = mode;
    page_one[19] = mode;
    let counter = live.change_counter.wrapping_add(1);
    put_be32(page_one, 24, counter);
    put_be32(page_one, 28, pages);
    put_be32(page_one, 92, counter);
    put_be32(page_one, 40, live.schema_cookie);
}

/// Fills `page` from `source`; returns how many bytes it read (less than a page only at
/// the end of the file).
fn read_page(source: &mut std::fs::File, page: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < page.len() {
        match source.read(&mut page[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(page_size: u16) -> Vec<u8> {
        let mut header = vec![0; HEADER_BYTES];
        header[..16].copy_from_slice(MAGIC);
        header[16..18].copy_from_slice(&page_size.to_be_bytes());
        put_be32(&mut header, 56, 1);
        header
    }

    #[test]
    fn layouts_read_from_headers() {
        let layout = Layout::of_header(&header(4096)).expect("a header");
        assert_eq!(layout.page_size, 4096);
        assert_eq!(
            Layout::of_header(&header(1)).map(|l| l.page_size),
            Some(65_536)
        );
        assert_eq!(Layout::of_header(&header(1000)), None);
        assert_eq!(Layout::of_header(b"not a database"), None);
        let mut full = header(4096);
        put_be32(&mut full, 52, 3);
        assert_eq!(Layout::of_header(&full).map(|l| l.auto_vacuum), Some(1));
        put_be32(&mut full, 64, 1);
        assert_eq!(Layout::of_header(&full).map(|l| l.auto_vacuum), Some(2));
    }

    #[test]
    fn a_mismatch_names_what_differs() {
        let small = Layout::of_header(&header(4096)).expect("a header");
        let large = Layout::of_header(&header(1)).expect("a header");
        assert_eq!(small.mismatch(&small), None);
        let why = large.mismatch(&small).expect("page sizes differ");
        assert!(why.contains("page size is 65536 bytes"), "{why}");
        assert!(why.contains("live database's 4096 bytes"), "{why}");
    }

    #[test]
    fn the_lock_byte_page_is_where_sqlite_puts_it() {
        assert_eq!(lock_byte_page(4096), 262_145);
        assert_eq!(lock_byte_page(65_536), 16_385);
        assert_eq!(lock_byte_page(512), 2_097_153);
    }
}

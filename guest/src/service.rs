//! The backup service's decisions, written against the host's capabilities as a trait so that
//! they run natively in tests as well as in the component.

use crate::litegraph::backup::types::{BackupFile, Datetime, Error, FileDigests, FileStat};
use crate::metadata::{Metadata, sidecar_name};
use crate::names;

/// How many numbered variants of the default name are tried before giving up.
const DEFAULT_NAME_ATTEMPTS: u32 = 100;

/// The host's capabilities, one method per imported function (see `wit/store.wit` and
/// `wit/snapshot.wit` for what each promises).
pub trait Host {
    fn now(&self) -> Datetime;
    fn list(&self) -> Result<Vec<String>, Error>;
    fn stat(&self, name: &str) -> Result<FileStat, Error>;
    fn digests(&self, name: &str) -> Result<FileDigests, Error>;
    fn read(&self, name: &str) -> Result<Vec<u8>, Error>;
    fn write(&self, name: &str, contents: &[u8]) -> Result<(), Error>;
    fn rename_noreplace(&self, source: &str, target: &str) -> Result<(), Error>;
    fn remove(&self, name: &str) -> Result<(), Error>;
    fn take_snapshot(&self) -> Result<String, Error>;
}

/// The `backup` interface, over any host.
pub struct Service<H> {
    host: H,
}

/// The name a create asked for, or the default one.
enum Requested {
    Explicit(String),
    Default(Datetime),
}

impl<H: Host> Service<H> {
    pub fn new(host: H) -> Self {
        Service { host }
    }

    /// Makes a backup. The order is what keeps every outcome safe:
    /// 1. the name is checked and, when given, must be free: no snapshot is taken for a
    ///    request that would be refused;
    /// 2. the snapshot goes to a temporary file and is hashed there;
    /// 3. it is published under its name by a rename that never replaces (a concurrent
    ///    create of the same name loses here, and its temporary is discarded by the host);
    /// 4. the metadata is written; if that fails the backup is removed again, so a failed
    ///    create leaves nothing behind.
    pub fn create(&self, name: Option<String>) -> Result<BackupFile, Error> {
        let now = self.host.now();
        let requested = match name {
            Some(name) => {
                check(&name)?;
                if self.exists_on_disk(&name)? {
                    return Err(Error::Exist);
                }
                Requested::Explicit(name)
            }
            None => Requested::Default(now),
        };
        let temporary = self.host.take_snapshot()?;
        let digests = self.host.digests(&temporary)?;
        let name = self.publish(&temporary, requested)?;
        let recorded = self.host.stat(&name).and_then(|stat| {
            let metadata = Metadata {
                filename: name.clone(),
                length: stat.length,
                digests,
                created: now,
                birth: stat.created,
            };
            self.host.write(&sidecar_name(&name), &metadata.encode())?;
            Ok(backup_file(metadata, &stat))
        });
        if recorded.is_err() {
            // Best effort: the error worth reporting is the one that made us undo.
            let _ = self.host.remove(&name);
        }
        recorded
    }

    /// Every backup, sorted by name. A file is a backup when its name passes the rules, so
    /// temporaries and sidecars (leading `.`) never show. A backup that vanishes while the
    /// list is being made (a concurrent delete) is left out rather than failing the list.
    pub fn list(&self) -> Result<Vec<BackupFile>, Error> {
        let mut candidates: Vec<String> = self
            .host
            .list()?
            .into_iter()
            .filter(|name| names::check(name).is_ok())
            .collect();
        candidates.sort();
        let mut backups = Vec::with_capacity(candidates.len());
        for name in candidates {
            match self.describe(&name) {
                Ok(backup) => backups.push(backup),
                Err(Error::NotFound) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(backups)
    }

    /// One backup's metadata.
    pub fn read(&self, name: &str) -> Result<BackupFile, Error> {
        check(name)?;
        self.describe(name)
    }

    /// Whether a backup of that name exists.
    pub fn exists(&self, name: &str) -> Result<bool, Error> {
        check(name)?;
        self.exists_on_disk(name)
    }

    /// Removes a backup: its sidecar first, so that an interrupted delete leaves at worst a
    /// backup without metadata (which is recomputed), never metadata that outlives its file.
    pub fn delete(&self, name: &str) -> Result<(), Error> {
        check(name)?;
        self.host.stat(name)?;
        match self.host.remove(&sidecar_name(name)) {
            Ok(()) | Err(Error::NotFound) => {}
            Err(error) => return Err(error),
        }
        self.host.remove(name)
    }

    fn exists_on_disk(&self, name: &str) -> Result<bool, Error> {
        match self.host.stat(name) {
            Ok(_) => Ok(true),
            Err(Error::NotFound) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Renames the snapshot to its final name. For the default name, a name already taken
    /// (two backups in the same second) moves on to the next numbered variant; for an
    /// explicit name it is a conflict.
    fn publish(&self, temporary: &str, requested: Requested) -> Result<String, Error> {
        match requested {
            Requested::Explicit(name) => {
                self.host.rename_noreplace(temporary, &name)?;
                Ok(name)
            }
            Requested::Default(now) => {
                for attempt in 1..=DEFAULT_NAME_ATTEMPTS {
                    let name = names::default_name(now, attempt);
                    match self.host.rename_noreplace(temporary, &name) {
                        Ok(()) => return Ok(name),
                        Err(Error::Exist) => continue,
                        Err(error) => return Err(error),
                    }
                }
                Err(Error::Exist)
            }
        }
    }

    /// A backup's metadata from its sidecar; computed and recorded once when there is no
    /// sidecar that applies to this file (a backup copied in by hand, or an interrupted
    /// create). Never reads the backup itself when the record applies.
    fn describe(&self, name: &str) -> Result<BackupFile, Error> {
        let stat = self.host.stat(name)?;
        let sidecar = sidecar_name(name);
        let recorded = match self.host.read(&sidecar) {
            Ok(bytes) => Metadata::decode(&bytes)
                .filter(|m| m.filename == name && (m.birth.is_none() || m.birth == stat.created)),
            Err(Error::NotFound) => None,
            Err(error) => return Err(error),
        };
        let metadata = match recorded {
            Some(metadata) => metadata,
            None => {
                let metadata = Metadata {
                    filename: name.to_owned(),
                    length: stat.length,
                    digests: self.host.digests(name)?,
                    created: stat.created.unwrap_or(stat.modified),
                    birth: stat.created,
                };
                self.host.write(&sidecar, &metadata.encode())?;
                metadata
            }
        };
        Ok(backup_file(metadata, &stat))
    }
}

fn check(name: &str) -> Result<(), Error> {
    names::check(name).map_err(|rule| Error::InvalidName(rule.to_string()))
}

/// LiteGraph's view of a backup: recorded digests and creation time, current size and
/// timestamps (as its `FileInfo` reports them).
fn backup_file(metadata: Metadata, stat: &FileStat) -> BackupFile {
    BackupFile {
        filename: metadata.filename,
        length: stat.length,
        md5_hash: metadata.digests.md5,
        sha1_hash: metadata.digests.sha1,
        sha256_hash: metadata.digests.sha256,
        created_utc: metadata.created,
        last_update_utc: stat.modified,
        last_access_utc: stat.accessed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};
    use std::collections::BTreeMap;

    /// An in-memory backup directory that counts how often file contents are hashed.
    #[derive(Default)]
    struct FakeHost {
        files: RefCell<BTreeMap<String, FakeFile>>,
        clock: Cell<u64>,
        hashed: Cell<usize>,
        database: RefCell<Vec<u8>>,
        fail_writes: Cell<bool>,
    }

    #[derive(Clone)]
    struct FakeFile {
        bytes: Vec<u8>,
        birth: u64,
    }

    fn at(seconds: u64) -> Datetime {
        Datetime {
            seconds,
            nanoseconds: 0,
        }
    }

    impl FakeHost {
        fn with_database(bytes: &[u8]) -> FakeHost {
            let host = FakeHost::default();
            host.clock.set(1_748_316_670);
            *host.database.borrow_mut() = bytes.to_vec();
            host
        }

        fn put(&self, name: &str, bytes: &[u8]) {
            self.clock.set(self.clock.get() + 1);
            let file = FakeFile {
                bytes: bytes.to_vec(),
                birth: self.clock.get(),
            };
            self.files.borrow_mut().insert(name.to_owned(), file);
        }

        fn names(&self) -> Vec<String> {
            self.files.borrow().keys().cloned().collect()
        }
    }

    impl Host for &FakeHost {
        fn now(&self) -> Datetime {
            at(self.clock.get())
        }
        fn list(&self) -> Result<Vec<String>, Error> {
            Ok(self.names())
        }
        fn stat(&self, name: &str) -> Result<FileStat, Error> {
            let files = self.files.borrow();
            let file = files.get(name).ok_or(Error::NotFound)?;
            Ok(FileStat {
                length: file.bytes.len() as u64,
                created: Some(at(file.birth)),
                modified: at(file.birth),
                accessed: at(file.birth),
            })
        }
        fn digests(&self, name: &str) -> Result<FileDigests, Error> {
            self.hashed.set(self.hashed.get() + 1);
            let files = self.files.borrow();
            let file = files.get(name).ok_or(Error::NotFound)?;
            let hex = |len: usize| {
                let byte = file.bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b));
                format!("{byte:02X}").repeat(len / 2)
            };
            Ok(FileDigests {
                md5: hex(32),
                sha1: hex(40),
                sha256: hex(64),
            })
        }
        fn read(&self, name: &str) -> Result<Vec<u8>, Error> {
            let files = self.files.borrow();
            Ok(files.get(name).ok_or(Error::NotFound)?.bytes.clone())
        }
        fn write(&self, name: &str, contents: &[u8]) -> Result<(), Error> {
            if self.fail_writes.get() {
                return Err(Error::Io("disk full".into()));
            }
            self.put(name, contents);
            Ok(())
        }
        fn rename_noreplace(&self, source: &str, target: &str) -> Result<(), Error> {
            let mut files = self.files.borrow_mut();
            if files.contains_key(target) {
                return Err(Error::Exist);
            }
            let file = files.remove(source).ok_or(Error::NotFound)?;
            files.insert(target.to_owned(), file);
            Ok(())
        }
        fn remove(&self, name: &str) -> Result<(), Error> {
            self.files
                .borrow_mut()
                .remove(name)
                .map(drop)
                .ok_or(Error::NotFound)
        }
        fn take_snapshot(&self) -> Result<String, Error> {
            let name = format!(".lgb-{}.tmp", self.clock.get());
            let database = self.database.borrow().clone();
            self.put(&name, &database);
            Ok(name)
        }
    }

    #[test]
    fn create_publishes_the_snapshot_with_metadata() {
        let host = FakeHost::with_database(b"SQLite format 3\0 pages");
        let service = Service::new(&host);
        let backup = service.create(Some("x.db".into())).unwrap();
        assert_eq!(backup.filename, "x.db");
        assert_eq!(backup.length, 22);
        assert_eq!(
            host.files.borrow()["x.db"].bytes,
            b"SQLite format 3\0 pages"
        );
        assert_eq!(host.names(), vec![sidecar_name("x.db"), "x.db".to_owned()]);
        assert_eq!(service.read("x.db").unwrap(), backup);
    }

    #[test]
    fn create_refuses_existing_name_without_taking_a_snapshot() {
        let host = FakeHost::with_database(b"new");
        host.put("x.db", b"old");
        let service = Service::new(&host);
        assert_eq!(service.create(Some("x.db".into())), Err(Error::Exist));
        assert_eq!(host.names(), vec!["x.db".to_owned()]);
        assert_eq!(host.files.borrow()["x.db"].bytes, b"old");
    }

    #[test]
    fn create_refuses_invalid_names_and_touches_nothing() {
        let host = FakeHost::with_database(b"db");
        let service = Service::new(&host);
        for name in [
            "../x.db",
            "..",
            "/etc/passwd",
            "a/b.db",
            "a\\b.db",
            "a\0",
            "a\n",
            ".x",
        ] {
            let result = service.create(Some(name.into()));
            assert!(matches!(result, Err(Error::InvalidName(_))), "{name:?}");
        }
        assert!(host.names().is_empty());
    }

    #[test]
    fn default_names_never_collide() {
        let host = FakeHost::with_database(b"db");
        let service = Service::new(&host);
        let first = service.create(None).unwrap();
        host.clock.set(1_748_316_670);
        let second = service.create(None).unwrap();
        assert_eq!(first.filename, "litegraph-backup-20250527-033110.db");
        assert_eq!(second.filename, "litegraph-backup-20250527-033110-2.db");
    }

    #[test]
    fn failed_metadata_write_leaves_nothing_behind() {
        let host = FakeHost::with_database(b"db");
        host.fail_writes.set(true);
        let service = Service::new(&host);
        assert!(matches!(
            service.create(Some("x.db".into())),
            Err(Error::Io(_))
        ));
        // The temporary is the host's to discard; no backup or sidecar remains.
        assert!(host.names().iter().all(|n| n.ends_with(".tmp")));
    }

    #[test]
    fn list_hides_internal_files_and_never_rehashes() {
        let host = FakeHost::with_database(b"db");
        let service = Service::new(&host);
        service.create(Some("b.db".into())).unwrap();
        service.create(Some("a.db".into())).unwrap();
        host.put(".lgb-123.tmp", b"partial");
        host.put("bad\nname", b"?");
        let hashed = host.hashed.get();
        for _ in 0..3 {
            let names: Vec<_> = service
                .list()
                .unwrap()
                .into_iter()
                .map(|b| b.filename)
                .collect();
            assert_eq!(names, ["a.db", "b.db"]);
        }
        assert_eq!(host.hashed.get(), hashed);
    }

    #[test]
    fn hand_copied_backup_is_hashed_once() {
        let host = FakeHost::with_database(b"db");
        host.put("copied.db", b"bytes from elsewhere");
        let service = Service::new(&host);
        let first = service.list().unwrap();
        assert_eq!(host.hashed.get(), 1);
        assert_eq!(service.list().unwrap(), first);
        assert_eq!(service.read("copied.db").unwrap(), first[0]);
        assert_eq!(host.hashed.get(), 1);
        assert!(host.names().contains(&sidecar_name("copied.db")));
    }

    #[test]
    fn replaced_file_gets_fresh_metadata_but_edited_file_keeps_its_record() {
        let host = FakeHost::with_database(b"original");
        let service = Service::new(&host);
        let made = service.create(Some("x.db".into())).unwrap();
        // Edited in place: same birth time, so the recorded digests stand (verify's job).
        host.files.borrow_mut().get_mut("x.db").unwrap().bytes = b"tampered".to_vec();
        assert_eq!(service.read("x.db").unwrap().sha256_hash, made.sha256_hash);
        // Deleted and copied in again by hand: a new file, so it is hashed afresh.
        host.put("x.db", b"another file entirely");
        assert_ne!(service.read("x.db").unwrap().sha256_hash, made.sha256_hash);
    }

    #[test]
    fn exists_and_delete_round_trip() {
        let host = FakeHost::with_database(b"db");
        let service = Service::new(&host);
        assert_eq!(service.exists("x.db"), Ok(false));
        service.create(Some("x.db".into())).unwrap();
        assert_eq!(service.exists("x.db"), Ok(true));
        assert_eq!(service.delete("x.db"), Ok(()));
        assert_eq!(service.exists("x.db"), Ok(false));
        assert!(host.names().is_empty(), "sidecar removed too");
        assert_eq!(service.delete("x.db"), Err(Error::NotFound));
        assert_eq!(service.read("x.db"), Err(Error::NotFound));
    }

    #[test]
    fn reads_of_invalid_names_are_refused_not_missing() {
        let host = FakeHost::with_database(b"db");
        let service = Service::new(&host);
        let sidecar = sidecar_name("x.db");
        service.create(Some("x.db".into())).unwrap();
        for name in ["..", sidecar.as_str(), "a/b"] {
            assert!(matches!(service.exists(name), Err(Error::InvalidName(_))));
            assert!(matches!(service.read(name), Err(Error::InvalidName(_))));
            assert!(matches!(service.delete(name), Err(Error::InvalidName(_))));
        }
        assert_eq!(host.names().len(), 2);
    }
}

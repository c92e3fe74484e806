//! The backup service's decisions, written against the host's capabilities as a trait so that
//! they run natively in tests as well as in the component.

use std::collections::BTreeSet;

use crate::litegraph::backup::snapshot::SnapshotFile;
use crate::litegraph::backup::types::{
    BackupFile, Datetime, Error, FileDigests, FileStat, Restoration, Verification,
};
use crate::metadata::{Metadata, is_sidecar, sidecar_name};
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
    fn take_snapshot(&self) -> Result<SnapshotFile, Error>;
    fn check(&self, name: &str, full: bool) -> Result<(), Error>;
    fn restore(&self, name: &str) -> Result<(), Error>;
}

/// The `backup` interface, over any host.
pub struct Service<H> {
    host: H,
}

/// The name a create asked for, or a timestamped one the policy chooses.
enum Requested {
    Explicit(String),
    Timestamped(&'static str, Datetime),
}

impl<H: Host> Service<H> {
    pub fn new(host: H) -> Self {
        Service { host }
    }

    /// Makes a backup. The order is what keeps every outcome safe:
    /// 1. the name is checked and, when given, must be free: no snapshot is taken for a
    ///    request that would be refused;
    /// 2. the snapshot goes to a temporary file, hashed by the host as it is flushed;
    /// 3. it is published under its name by a rename that never replaces (a concurrent
    ///    create of the same name loses here, and its temporary is discarded by the host);
    /// 4. the metadata is written; if that fails the backup is removed again, so a failed
    ///    create leaves nothing behind.
    pub fn create(&self, name: Option<String>) -> Result<BackupFile, Error> {
        let requested = match name {
            Some(name) => {
                check(&name)?;
                if self.exists_on_disk(&name)? {
                    return Err(Error::Exist);
                }
                Requested::Explicit(name)
            }
            None => Requested::Timestamped(names::BACKUP_PREFIX, self.host.now()),
        };
        self.make(requested)
    }

    fn make(&self, requested: Requested) -> Result<BackupFile, Error> {
        let now = self.host.now();
        let SnapshotFile {
            name: temporary,
            digests,
        } = self.host.take_snapshot()?;
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
        let entries = self.host.list()?;
        let mut candidates: Vec<String> = entries
            .iter()
            .filter(|name| names::check(name).is_ok())
            .cloned()
            .collect();
        candidates.sort();
        self.forget_orphans(&entries, &candidates)?;
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

    /// Removes the sidecars of backups that are gone (deleted by hand), so that a file
    /// copied in later under the same name starts with a record of its own. A sidecar is
    /// written only after its backup is published and removed before it, so one without its
    /// backup in the same listing is an orphan.
    fn forget_orphans(&self, entries: &[String], backups: &[String]) -> Result<(), Error> {
        let owned: BTreeSet<String> = backups.iter().map(|name| sidecar_name(name)).collect();
        for orphan in entries
            .iter()
            .filter(|name| is_sidecar(name) && !owned.contains(name.as_str()))
        {
            match self.host.remove(orphan) {
                Ok(()) | Err(Error::NotFound) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
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

    /// Checks a backup against what was recorded when it was made, and SQLite's own check.
    /// What fails is reported in the verdict, not as an error.
    pub fn verify(&self, name: &str, full: bool) -> Result<Verification, Error> {
        check(name)?;
        let (metadata, stat, recorded_now) = self.record(name)?;
        let actual = if recorded_now {
            metadata.digests.clone()
        } else {
            self.host.digests(name)?
        };
        let mut problems = Vec::new();
        if !recorded_now
            && stat.created.is_some()
            && metadata.birth.is_some()
            && stat.created != metadata.birth
        {
            problems.push(
                "the file was replaced since its digests were recorded (its birth time changed)"
                    .to_owned(),
            );
        }
        if stat.length != metadata.length {
            problems.push(format!(
                "length differs: recorded {} bytes, now {} bytes",
                metadata.length, stat.length
            ));
        }
        let recorded = &metadata.digests;
        for (digest, then, now) in [
            ("MD5", &recorded.md5, &actual.md5),
            ("SHA-1", &recorded.sha1, &actual.sha1),
            ("SHA-256", &recorded.sha256, &actual.sha256),
        ] {
            if then != now {
                problems.push(format!("{digest} differs: recorded {then}, now {now}"));
            }
        }
        let sqlite_check = if full {
            "integrity_check"
        } else {
            "quick_check"
        };
        match self.host.check(name, full) {
            Ok(()) => {}
            Err(Error::Corrupt(finding)) => problems.push(format!("{sqlite_check}: {finding}")),
            Err(error) => return Err(error),
        }
        Ok(Verification {
            backup: backup_file(metadata, &stat),
            actual,
            full,
            recorded_now,
            problems,
        })
    }

    /// Replaces the live database's content with a backup's. Nothing is touched unless the
    /// backup verifies; the live content is backed up first; a result that fails its check
    /// is undone from that safety backup.
    pub fn restore(&self, name: &str) -> Result<Restoration, Error> {
        let verification = self.verify(name, false)?;
        if !verification.problems.is_empty() {
            return Err(Error::Corrupt(format!(
                "{name} failed verification, the database was not touched: {}",
                verification.problems.join("; ")
            )));
        }
        let safety = self.make(Requested::Timestamped(
            names::SAFETY_PREFIX,
            self.host.now(),
        ))?;
        match self.host.restore(name) {
            Ok(()) => Ok(Restoration {
                restored: verification.backup,
                safety_backup: safety,
            }),
            Err(Error::Corrupt(finding)) => {
                let undo = match self.host.restore(&safety.filename) {
                    Ok(()) => format!("the previous content was put back from {}", safety.filename),
                    Err(error) => format!(
                        "putting the previous content back failed too ({error:?}); it is in {}",
                        safety.filename
                    ),
                };
                Err(Error::Corrupt(format!(
                    "the restored database failed its check ({finding}); {undo}"
                )))
            }
            Err(error) => Err(error),
        }
    }

    fn exists_on_disk(&self, name: &str) -> Result<bool, Error> {
        match self.host.stat(name) {
            Ok(_) => Ok(true),
            Err(Error::NotFound) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Renames the snapshot to its final name. For a timestamped name, a name already taken
    /// (two backups in the same second) moves on to the next numbered variant; for an
    /// explicit name it is a conflict.
    fn publish(&self, temporary: &str, requested: Requested) -> Result<String, Error> {
        match requested {
            Requested::Explicit(name) => {
                self.host.rename_noreplace(temporary, &name)?;
                Ok(name)
            }
            Requested::Timestamped(prefix, now) => {
                for attempt in 1..=DEFAULT_NAME_ATTEMPTS {
                    let name = names::timestamped_name(prefix, now, attempt);
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

    /// A backup's metadata, as LiteGraph shows it.
    fn describe(&self, name: &str) -> Result<BackupFile, Error> {
        let (metadata, stat, _) = self.record(name)?;
        Ok(backup_file(metadata, &stat))
    }

    /// A backup's record from its sidecar, with the file's current stat, and whether the
    /// record was made just now: it is computed and recorded once, when there is none (a
    /// backup copied in by hand, or an interrupted create). Never reads the backup when
    /// there is a record. A record, once made, stands until the backup is deleted: a file
    /// changed or replaced under its name keeps the record of what was backed up, which is
    /// what lets `verify` notice.
    fn record(&self, name: &str) -> Result<(Metadata, FileStat, bool), Error> {
        let stat = self.host.stat(name)?;
        let sidecar = sidecar_name(name);
        let recorded = match self.host.read(&sidecar) {
            Ok(bytes) => Metadata::decode(&bytes).filter(|m| m.filename == name),
            Err(Error::NotFound) => None,
            Err(error) => return Err(error),
        };
        let metadata = match recorded {
            Some(metadata) => return Ok((metadata, stat, false)),
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
        Ok((metadata, stat, true))
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
        /// How many restores still fail their final check.
        failing_restores: Cell<u32>,
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
        fn take_snapshot(&self) -> Result<SnapshotFile, Error> {
            let name = format!(".lgb-{}.tmp", self.clock.get());
            let database = self.database.borrow().clone();
            self.put(&name, &database);
            let digests = self.digests(&name)?;
            // Hashing a fresh copy is the snapshot's, not a re-read: not counted.
            self.hashed.set(self.hashed.get() - 1);
            Ok(SnapshotFile { name, digests })
        }
        fn check(&self, name: &str, _full: bool) -> Result<(), Error> {
            let files = self.files.borrow();
            let file = files.get(name).ok_or(Error::NotFound)?;
            if file.bytes.starts_with(b"SQLite") {
                Ok(())
            } else {
                Err(Error::Corrupt("file is not a database".into()))
            }
        }
        fn restore(&self, name: &str) -> Result<(), Error> {
            let bytes = self.read(name)?;
            *self.database.borrow_mut() = bytes;
            if self.failing_restores.get() > 0 {
                self.failing_restores.set(self.failing_restores.get() - 1);
                return Err(Error::Corrupt("quick_check: page 3 is never used".into()));
            }
            Ok(())
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
    fn verify_of_a_never_seen_file_records_it_and_hashes_once() {
        let host = FakeHost::with_database(b"db");
        host.put("copied.db", b"SQLite from elsewhere");
        let service = Service::new(&host);
        let verdict = service.verify("copied.db", false).unwrap();
        assert!(verdict.recorded_now);
        assert_eq!(verdict.problems, Vec::<String>::new());
        assert_eq!(host.hashed.get(), 1, "recorded, not hashed twice");
        let again = service.verify("copied.db", false).unwrap();
        assert!(!again.recorded_now);
        assert_eq!(again.problems, Vec::<String>::new());
    }

    #[test]
    fn a_record_stands_until_the_backup_is_deleted() {
        let host = FakeHost::with_database(b"SQLite original");
        let service = Service::new(&host);
        let made = service.create(Some("x.db".into())).unwrap();
        // Edited in place, or replaced by another file under the same name: the record of
        // what was backed up stands, and verify says what happened.
        host.files.borrow_mut().get_mut("x.db").unwrap().bytes = b"SQLite tampered".to_vec();
        assert_eq!(service.read("x.db").unwrap().sha256_hash, made.sha256_hash);
        host.put("x.db", b"SQLite another file entirely");
        assert_eq!(service.read("x.db").unwrap().sha256_hash, made.sha256_hash);
        let verdict = service.verify("x.db", false).unwrap();
        let problems = verdict.problems.join("\n");
        assert!(
            problems.contains("replaced since its digests were recorded"),
            "{problems}"
        );
        assert!(problems.contains("SHA-256 differs"), "{problems}");
        assert!(!verdict.recorded_now);
    }

    #[test]
    fn a_backup_deleted_by_hand_leaves_no_record_behind() {
        let host = FakeHost::with_database(b"SQLite original");
        let service = Service::new(&host);
        let made = service.create(Some("x.db".into())).unwrap();
        host.files.borrow_mut().remove("x.db");
        assert_eq!(service.list().unwrap(), vec![]);
        assert!(host.names().is_empty(), "the orphaned sidecar is gone");
        host.put("x.db", b"SQLite copied in later");
        let verdict = service.verify("x.db", false).unwrap();
        assert!(verdict.recorded_now);
        assert_eq!(verdict.problems, Vec::<String>::new());
        assert_ne!(verdict.backup.sha256_hash, made.sha256_hash);
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

    #[test]
    fn verify_passes_a_sound_backup_and_names_every_failed_check() {
        let host = FakeHost::with_database(b"SQLite format 3 content");
        let service = Service::new(&host);
        service.create(Some("x.db".into())).unwrap();
        let sound = service.verify("x.db", false).unwrap();
        assert_eq!(sound.problems, Vec::<String>::new());
        assert!(!sound.full);

        host.files.borrow_mut().get_mut("x.db").unwrap().bytes = b"tampered".to_vec();
        let verdict = service.verify("x.db", true).unwrap();
        assert!(verdict.full);
        let problems = verdict.problems.join("\n");
        assert!(
            problems.contains("length differs: recorded 23 bytes, now 8 bytes"),
            "{problems}"
        );
        assert!(problems.contains("SHA-256 differs"), "{problems}");
        assert!(
            problems.contains("integrity_check: file is not a database"),
            "{problems}"
        );
        assert_eq!(
            verdict.backup.sha256_hash, sound.backup.sha256_hash,
            "the recorded digest"
        );
        assert_ne!(verdict.actual.sha256, sound.actual.sha256, "the digest now");
    }

    #[test]
    fn restore_refuses_a_tampered_backup_and_touches_nothing() {
        let host = FakeHost::with_database(b"SQLite format 3 old");
        let service = Service::new(&host);
        service.create(Some("x.db".into())).unwrap();
        host.files.borrow_mut().get_mut("x.db").unwrap().bytes[0] ^= 1;
        *host.database.borrow_mut() = b"SQLite format 3 live".to_vec();
        let names = host.names();
        let refused = service.restore("x.db");
        assert!(
            matches!(&refused, Err(Error::Corrupt(why)) if why.contains("SHA-256 differs") && why.contains("not touched")),
            "{refused:?}"
        );
        assert_eq!(*host.database.borrow(), b"SQLite format 3 live");
        assert_eq!(host.names(), names, "no safety backup was taken");
    }

    #[test]
    fn restore_takes_a_safety_backup_then_replaces_the_content() {
        let host = FakeHost::with_database(b"SQLite format 3 then");
        let service = Service::new(&host);
        service.create(Some("x.db".into())).unwrap();
        *host.database.borrow_mut() = b"SQLite format 3 now".to_vec();
        let restoration = service.restore("x.db").unwrap();
        assert_eq!(*host.database.borrow(), b"SQLite format 3 then");
        assert_eq!(restoration.restored.filename, "x.db");
        let safety = &restoration.safety_backup.filename;
        assert!(
            safety.starts_with("pre-restore-") && safety.ends_with(".db"),
            "{safety}"
        );
        assert_eq!(
            host.files.borrow()[safety.as_str()].bytes,
            b"SQLite format 3 now"
        );
        assert!(
            service
                .list()
                .unwrap()
                .iter()
                .any(|b| &b.filename == safety)
        );
        assert!(service.verify(safety, false).unwrap().problems.is_empty());
    }

    #[test]
    fn restore_whose_result_fails_its_check_is_undone() {
        let host = FakeHost::with_database(b"SQLite format 3 then");
        let service = Service::new(&host);
        service.create(Some("x.db".into())).unwrap();
        *host.database.borrow_mut() = b"SQLite format 3 now".to_vec();
        host.failing_restores.set(1);
        let failed = service.restore("x.db");
        assert!(
            matches!(&failed, Err(Error::Corrupt(why)) if why.contains("put back from pre-restore-")),
            "{failed:?}"
        );
        assert_eq!(*host.database.borrow(), b"SQLite format 3 now");
    }

    #[test]
    fn restore_of_a_missing_or_invalid_backup_is_refused() {
        let host = FakeHost::with_database(b"SQLite format 3");
        let service = Service::new(&host);
        assert_eq!(service.restore("nope.db").unwrap_err(), Error::NotFound);
        assert!(matches!(
            service.restore("../x"),
            Err(Error::InvalidName(_))
        ));
        assert!(host.names().is_empty());
    }
}

//! The backup service's decisions, written against the host's capabilities as a trait so that
//! they run natively in tests as well as in the component.

use std::collections::BTreeSet;

use crate::litegraph::backup::remote::{Download, Object, Target, Upload};
use crate::litegraph::backup::snapshot::SnapshotFile;
use crate::litegraph::backup::types::{
    BackupFile, Datetime, Error, FileDigests, FileStat, Restoration, ScratchRestore, Verification,
};
use crate::metadata::{LastVerification, Metadata, Origin, is_sidecar, sidecar_name};
use crate::names;
use records::{Fresh, Record};

mod drill;
mod prune;
mod records;
mod remote;

/// How many numbered variants of the default name are tried before giving up.
const DEFAULT_NAME_ATTEMPTS: u32 = 100;

/// The host's capabilities, one method per imported function (see `wit/store.wit`,
/// `wit/snapshot.wit` and `wit/remote.wit` for what each promises).
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
    fn take_for_restore(&self, name: &str) -> Result<SnapshotFile, Error>;
    fn check(&self, name: &str, full: bool) -> Result<(), Error>;
    fn restore(&self, name: &str, sha256: &str) -> Result<(), Error>;
    fn drill(&self, name: &str) -> Result<ScratchRestore, Error>;
    fn remote_targets(&self) -> Vec<Target>;
    fn remote_put_file(&self, target: &str, key: &str, name: &str) -> Result<Upload, Error>;
    fn remote_put(&self, target: &str, key: &str, contents: &[u8]) -> Result<(), Error>;
    fn remote_list(&self, target: &str, prefix: &str) -> Result<Vec<Object>, Error>;
    fn remote_get(&self, target: &str, key: &str) -> Result<Vec<u8>, Error>;
    fn remote_get_file(
        &self,
        target: &str,
        key: &str,
        encoding: &[String],
    ) -> Result<Download, Error>;
    fn remote_delete(&self, target: &str, key: &str) -> Result<(), Error>;
}

/// The `backup` interface, over any host.
pub struct Service<H> {
    host: H,
}

/// The name a create asked for, or a timestamped one the policy chooses (stamped with the
/// time the snapshot was taken).
enum Requested {
    Explicit(String),
    Timestamped(&'static str),
}

impl Requested {
    fn origin(&self) -> Origin {
        match self {
            Requested::Explicit(_) => Origin::Named,
            Requested::Timestamped(names::SAFETY_PREFIX) => Origin::SafetyBackup,
            Requested::Timestamped(_) => Origin::DefaultName,
        }
    }
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
            None => Requested::Timestamped(names::BACKUP_PREFIX),
        };
        let taken = self.host.now();
        let snapshot = self.host.take_snapshot()?;
        self.make(snapshot, taken, requested)
    }

    /// Publishes a snapshot taken at `taken` as a backup, with its record: the one path by
    /// which both a create and a restore's safety copy become backups.
    fn make(
        &self,
        snapshot: SnapshotFile,
        taken: Datetime,
        requested: Requested,
    ) -> Result<BackupFile, Error> {
        let SnapshotFile {
            name: temporary,
            digests,
        } = snapshot;
        let origin = requested.origin();
        let name = self.publish(&temporary, taken, requested)?;
        let recorded = self.host.stat(&name).and_then(|stat| {
            let metadata = Metadata {
                filename: name.clone(),
                length: stat.length,
                digests,
                created: taken,
                birth: stat.created,
                origin,
                last_verification: None,
                last_drill: None,
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

    /// Every backup, oldest first (see [`oldest_first`]). A file is a backup when its name
    /// passes the rules, so temporaries and sidecars (leading `.`) never show. A backup that
    /// vanishes while the list is being made (a concurrent delete) is left out rather than
    /// failing the list.
    pub fn list(&self) -> Result<Vec<BackupFile>, Error> {
        Ok(self
            .catalogue()?
            .into_iter()
            .map(|record| backup_file(record.metadata, &record.stat))
            .collect())
    }

    /// Every backup's record, in the order of [`Service::list`].
    fn catalogue(&self) -> Result<Vec<Record>, Error> {
        let entries = self.host.list()?;
        let candidates: Vec<String> = entries
            .iter()
            .filter(|name| names::check(name).is_ok())
            .cloned()
            .collect();
        self.forget_orphans(&entries, &candidates);
        let mut records = Vec::with_capacity(candidates.len());
        for name in candidates {
            match self.record(&name) {
                Ok(record) => records.push(record),
                Err(Error::NotFound) => {}
                Err(error) => return Err(error),
            }
        }
        records.sort_by(|a, b| made_before(&a.metadata, &b.metadata));
        Ok(records)
    }

    /// Removes the sidecars of backups that are gone (deleted by hand), so that a file
    /// copied in later under the same name starts with a record of its own. A sidecar is
    /// written only after its backup is published and removed before it, so one without its
    /// backup in the same listing is an orphan.
    ///
    /// Best effort: an orphan that cannot be removed now is tried again by the next listing,
    /// and is no reason to fail this one.
    fn forget_orphans(&self, entries: &[String], backups: &[String]) {
        let owned: BTreeSet<String> = backups.iter().map(|name| sidecar_name(name)).collect();
        for orphan in entries
            .iter()
            .filter(|name| is_sidecar(name) && !owned.contains(name.as_str()))
        {
            let _ = self.host.remove(orphan);
        }
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
    /// What fails is reported in the verdict, not as an error. The outcome and its time are
    /// recorded, so that retention can tell which backups passed.
    pub fn verify(&self, name: &str, full: bool) -> Result<Verification, Error> {
        let (verification, mut metadata) = self.examine(name, full)?;
        metadata.last_verification = Some(LastVerification {
            at: self.host.now(),
            passed: verification.problems.is_empty(),
        });
        // Best effort: the verdict stands either way; an outcome not recorded only means
        // that retention does not know this backup passed.
        let _ = self.host.write(&sidecar_name(name), &metadata.encode());
        Ok(verification)
    }

    /// `verify`'s checks, recording nothing but digests that were missing; with the record.
    fn examine(&self, name: &str, full: bool) -> Result<(Verification, Metadata), Error> {
        check(name)?;
        let Record {
            metadata,
            stat,
            fresh,
        } = self.record(name)?;
        let recorded_now = fresh.is_some();
        let actual = if recorded_now {
            metadata.digests.clone()
        } else {
            self.host.digests(name)?
        };
        let mut problems: Vec<String> = fresh.iter().filter_map(Fresh::problem).collect();
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
        let verification = Verification {
            backup: backup_file(metadata.clone(), &stat),
            actual,
            full,
            recorded_now,
            problems,
        };
        Ok((verification, metadata))
    }

    /// Replaces the live database's content with a backup's:
    /// 1. the backup is verified (its outcome is not recorded: a restore changes nothing in
    ///    the backup directory before it has the right to); nothing is touched unless it
    ///    passes;
    /// 2. the host copies the live content inside the write transaction that will replace
    ///    it (`take-for-restore`), so no commit lands between the copy and the replacement;
    ///    the copy is published as the safety backup;
    /// 3. the host replaces the content with exactly the bytes that were verified (their
    ///    SHA-256), checks it and commits, or rolls back and leaves the live database as it
    ///    was. Putting the safety backup back after a failure would undo nothing and could
    ///    lose commits made since, so a failure only says where the safety backup is.
    pub fn restore(&self, name: &str) -> Result<Restoration, Error> {
        let (verification, _) = self.examine(name, false)?;
        if !verification.problems.is_empty() {
            return Err(Error::Corrupt(format!(
                "{name} failed verification, the database was not touched: {}",
                verification.problems.join("; ")
            )));
        }
        let taken = self.host.now();
        let copy = self.host.take_for_restore(name)?;
        let safety = self.make(copy, taken, Requested::Timestamped(names::SAFETY_PREFIX))?;
        match self.host.restore(name, &verification.backup.sha256_hash) {
            Ok(()) => Ok(Restoration {
                restored: verification.backup,
                safety_backup: safety,
            }),
            Err(error) => Err(not_restored(name, error, &safety.filename)),
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
    fn publish(
        &self,
        temporary: &str,
        taken: Datetime,
        requested: Requested,
    ) -> Result<String, Error> {
        match requested {
            Requested::Explicit(name) => {
                self.host.rename_noreplace(temporary, &name)?;
                Ok(name)
            }
            Requested::Timestamped(prefix) => {
                for attempt in 1..=DEFAULT_NAME_ATTEMPTS {
                    let name = names::timestamped_name(prefix, taken, attempt);
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
        let record = self.record(name)?;
        Ok(backup_file(record.metadata, &record.stat))
    }
}

/// The order backups were made in: by recorded creation time, then by name for those made
/// in the same instant. Names are no guide to age (`...-10.db` sorts before `...-2.db`, and
/// a person names backups as they like).
fn made_before(a: &Metadata, b: &Metadata) -> std::cmp::Ordering {
    let key = |m: &Metadata| (m.created.seconds, m.created.nanoseconds);
    key(a)
        .cmp(&key(b))
        .then_with(|| a.filename.cmp(&b.filename))
}

/// A restore that failed once its safety backup existed: the host rolled the replacement
/// back, and the person needs to know that, and where the safety backup is.
fn not_restored(name: &str, error: Error, safety: &str) -> Error {
    let outcome = format!("the live database was not changed; the safety backup {safety} was kept");
    match error {
        Error::Corrupt(finding) => {
            Error::Corrupt(format!("{name} was not restored: {finding}; {outcome}"))
        }
        other => Error::Io(format!(
            "{name} was not restored: {}; {outcome}",
            describe_error(&other)
        )),
    }
}

/// An error's sentence, for wrapping into another error's text.
pub(crate) fn describe_error(error: &Error) -> String {
    match error {
        Error::InvalidName(why) => format!("invalid name: {why}"),
        Error::NotFound => "not found".to_owned(),
        Error::Exist => "a file of that name exists already".to_owned(),
        Error::NotPermitted(why) => format!("not permitted: {why}"),
        Error::NoDatabase(why) => format!("no database: {why}"),
        Error::Busy => "the live database stayed busy too long".to_owned(),
        Error::Corrupt(why) | Error::Io(why) | Error::InvalidArgument(why) => why.clone(),
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
mod fake;
#[cfg(test)]
mod tests;

//! An in-memory host for the policy's unit tests: a backup directory, a live database, a
//! clock that ticks at every write, a log of the calls the policy makes, and switches that
//! make chosen calls fail.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};

use super::Host;
use crate::litegraph::backup::remote::{Download, Object, Target, Upload};
use crate::litegraph::backup::snapshot::SnapshotFile;
use crate::litegraph::backup::types::{
    Datetime, Error, FileDigests, FileStat, ScratchRestore, TableRows,
};

#[derive(Default)]
pub struct FakeHost {
    pub files: RefCell<BTreeMap<String, FakeFile>>,
    pub clock: Cell<u64>,
    /// Nanoseconds past `clock`: every reading of the clock is later than the one before,
    /// even within one second.
    pub ticks: Cell<u32>,
    /// How often a file's content was hashed outside a snapshot.
    pub hashed: Cell<usize>,
    pub database: RefCell<Vec<u8>>,
    /// Every call the policy made, as `"<function> <arguments>"`.
    pub calls: RefCell<Vec<String>>,
    pub fail_writes: Cell<bool>,
    /// Names whose `read` fails with `io` (a sidecar over 64 KiB, or a directory).
    pub unreadable: RefCell<BTreeSet<String>>,
    /// Names whose `remove` fails with `io` (a read-only directory, an immutable file).
    pub unremovable: RefCell<BTreeSet<String>>,
    /// What `take-for-restore` answers instead of copying (a page size that differs).
    pub refuse_take_for_restore: RefCell<Option<Error>>,
    /// What the next `restore` answers after rolling back (a failed check, a lost disk).
    pub failing_restore: RefCell<Option<Error>>,
    /// The remote targets lent, and what they hold: `(target, key)` to the stored bytes
    /// and the clock's second they were written. The fake encodes a step by prefixing
    /// the bytes with its name and `:`.
    pub targets: RefCell<Vec<Target>>,
    pub objects: RefCell<BTreeMap<(String, String), FakeObject>>,
    /// The tables `drill` reports (each restored as in the backup), and what its integrity
    /// check finds.
    pub drill_tables: RefCell<Vec<TableRows>>,
    pub drill_integrity: RefCell<Vec<String>>,
}

/// A stored object: its bytes, and the clock's second it was written.
pub type FakeObject = (Vec<u8>, u64);

#[derive(Clone)]
pub struct FakeFile {
    pub bytes: Vec<u8>,
    pub birth: u64,
}

pub fn at(seconds: u64) -> Datetime {
    Datetime {
        seconds,
        nanoseconds: 0,
    }
}

impl FakeHost {
    pub fn with_database(bytes: &[u8]) -> FakeHost {
        let host = FakeHost::default();
        host.clock.set(1_748_316_670);
        *host.database.borrow_mut() = bytes.to_vec();
        host
    }

    /// Writes a file, as a person copying it in would: it is born now.
    pub fn put(&self, name: &str, bytes: &[u8]) {
        self.clock.set(self.clock.get() + 1);
        let file = FakeFile {
            bytes: bytes.to_vec(),
            birth: self.clock.get(),
        };
        self.files.borrow_mut().insert(name.to_owned(), file);
    }

    pub fn names(&self) -> Vec<String> {
        self.files.borrow().keys().cloned().collect()
    }

    /// The calls made since the last time this was asked.
    pub fn take_calls(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.borrow_mut())
    }

    fn log(&self, call: String) {
        self.calls.borrow_mut().push(call);
    }

    fn digests_of(&self, name: &str) -> Result<FileDigests, Error> {
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

    /// Lends a target that encodes as `encoding` says.
    pub fn add_target(&self, name: &str, encoding: &[&str]) {
        self.targets.borrow_mut().push(Target {
            name: name.to_owned(),
            encoding: encoding.iter().map(|step| (*step).to_owned()).collect(),
        });
    }

    /// The keys `target` holds.
    pub fn keys(&self, target: &str) -> Vec<String> {
        self.objects
            .borrow()
            .keys()
            .filter(|(t, _)| t == target)
            .map(|(_, key)| key.clone())
            .collect()
    }

    fn known_target(&self, target: &str) -> Result<Target, Error> {
        self.targets
            .borrow()
            .iter()
            .find(|t| t.name == target)
            .cloned()
            .ok_or_else(|| Error::NotPermitted(format!("no target {target}")))
    }

    fn store_object(&self, target: &str, key: &str, bytes: Vec<u8>) -> Result<(), Error> {
        self.known_target(target)?;
        let mut objects = self.objects.borrow_mut();
        let slot = (target.to_owned(), key.to_owned());
        if objects.contains_key(&slot) {
            return Err(Error::Exist);
        }
        objects.insert(slot, (bytes, self.clock.get()));
        Ok(())
    }

    fn stored(&self, target: &str, key: &str) -> Result<Vec<u8>, Error> {
        self.known_target(target)?;
        let objects = self.objects.borrow();
        let slot = (target.to_owned(), key.to_owned());
        Ok(objects.get(&slot).ok_or(Error::NotFound)?.0.clone())
    }

    /// A copy of the live database in a new temporary, as both snapshots make it.
    fn copy_database(&self) -> Result<SnapshotFile, Error> {
        let name = format!(".lgb-{}.tmp", self.clock.get());
        let database = self.database.borrow().clone();
        self.put(&name, &database);
        let digests = self.digests_of(&name)?;
        Ok(SnapshotFile { name, digests })
    }
}

impl Host for &FakeHost {
    fn now(&self) -> Datetime {
        self.ticks.set(self.ticks.get() + 1);
        Datetime {
            seconds: self.clock.get(),
            nanoseconds: self.ticks.get(),
        }
    }
    fn list(&self) -> Result<Vec<String>, Error> {
        self.log("list".into());
        Ok(self.names())
    }
    fn stat(&self, name: &str) -> Result<FileStat, Error> {
        self.log(format!("stat {name}"));
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
        self.log(format!("digests {name}"));
        self.hashed.set(self.hashed.get() + 1);
        self.digests_of(name)
    }
    fn read(&self, name: &str) -> Result<Vec<u8>, Error> {
        self.log(format!("read {name}"));
        if self.unreadable.borrow().contains(name) {
            return Err(Error::Io("the file is over 64 KiB".into()));
        }
        let files = self.files.borrow();
        Ok(files.get(name).ok_or(Error::NotFound)?.bytes.clone())
    }
    fn write(&self, name: &str, contents: &[u8]) -> Result<(), Error> {
        self.log(format!("write {name}"));
        if self.fail_writes.get() {
            return Err(Error::Io("disk full".into()));
        }
        self.put(name, contents);
        // A fresh record replaces whatever made the old one unreadable.
        self.unreadable.borrow_mut().remove(name);
        Ok(())
    }
    fn rename_noreplace(&self, source: &str, target: &str) -> Result<(), Error> {
        self.log(format!("rename-noreplace {source} {target}"));
        let mut files = self.files.borrow_mut();
        if files.contains_key(target) {
            return Err(Error::Exist);
        }
        let file = files.remove(source).ok_or(Error::NotFound)?;
        files.insert(target.to_owned(), file);
        Ok(())
    }
    fn remove(&self, name: &str) -> Result<(), Error> {
        self.log(format!("remove {name}"));
        if self.unremovable.borrow().contains(name) {
            return Err(Error::Io(format!("{name}: permission denied")));
        }
        self.files
            .borrow_mut()
            .remove(name)
            .map(drop)
            .ok_or(Error::NotFound)
    }
    fn take_snapshot(&self) -> Result<SnapshotFile, Error> {
        self.log("take".into());
        self.copy_database()
    }
    fn take_for_restore(&self, name: &str) -> Result<SnapshotFile, Error> {
        self.log(format!("take-for-restore {name}"));
        if !self.files.borrow().contains_key(name) {
            return Err(Error::NotFound);
        }
        if let Some(refusal) = self.refuse_take_for_restore.borrow().clone() {
            return Err(refusal);
        }
        self.copy_database()
    }
    fn check(&self, name: &str, full: bool) -> Result<(), Error> {
        self.log(format!("check {name} {full}"));
        let files = self.files.borrow();
        let file = files.get(name).ok_or(Error::NotFound)?;
        if file.bytes.starts_with(b"SQLite") {
            Ok(())
        } else {
            Err(Error::Corrupt("file is not a database".into()))
        }
    }
    /// Like the real host: the SHA-256 of the bytes restored; a file that is not a database
    /// cannot be restored (`corrupt`).
    fn drill(&self, name: &str) -> Result<ScratchRestore, Error> {
        self.log(format!("drill {name}"));
        let sha256 = self.digests_of(name)?.sha256;
        if !self.files.borrow()[name].bytes.starts_with(b"SQLite") {
            return Err(Error::Corrupt(
                "not a database: its header is not SQLite's".into(),
            ));
        }
        Ok(ScratchRestore {
            sha256,
            integrity: self.drill_integrity.borrow().clone(),
            tables: self.drill_tables.borrow().clone(),
        })
    }
    /// Like the real host: exactly the bytes whose SHA-256 is given, or nothing at all.
    fn restore(&self, name: &str, sha256: &str) -> Result<(), Error> {
        self.log(format!("restore {name} {sha256}"));
        let actual = self.digests_of(name)?.sha256;
        if actual != sha256 {
            return Err(Error::Corrupt(format!(
                "SHA-256 differs: expected {sha256}, read {actual}"
            )));
        }
        if let Some(failure) = self.failing_restore.borrow_mut().take() {
            return Err(failure);
        }
        let bytes = self.files.borrow()[name].bytes.clone();
        *self.database.borrow_mut() = bytes;
        Ok(())
    }
    fn remote_targets(&self) -> Vec<Target> {
        self.targets.borrow().clone()
    }
    fn remote_put_file(&self, target: &str, key: &str, name: &str) -> Result<Upload, Error> {
        self.log(format!("remote-put-file {target} {key} {name}"));
        let encoding = self.known_target(target)?.encoding;
        let source = self
            .files
            .borrow()
            .get(name)
            .ok_or(Error::NotFound)?
            .bytes
            .clone();
        let source_sha256 = self.digests_of(name)?.sha256;
        let mut stored = source.clone();
        for step in &encoding {
            stored = [format!("{step}:").into_bytes(), stored].concat();
        }
        let length = stored.len() as u64;
        let sha256 = format!("{:064X}", stored.len());
        self.store_object(target, key, stored)?;
        Ok(Upload {
            source_length: source.len() as u64,
            source_sha256,
            encoding,
            length,
            sha256,
        })
    }
    fn remote_put(&self, target: &str, key: &str, contents: &[u8]) -> Result<(), Error> {
        self.log(format!("remote-put {target} {key}"));
        self.store_object(target, key, contents.to_vec())
    }
    fn remote_list(&self, target: &str, prefix: &str) -> Result<Vec<Object>, Error> {
        self.log(format!("remote-list {target} {prefix}"));
        self.known_target(target)?;
        Ok(self
            .objects
            .borrow()
            .iter()
            .filter(|((t, key), _)| t == target && key.starts_with(prefix))
            .map(|((_, key), (bytes, written))| Object {
                key: key.clone(),
                length: bytes.len() as u64,
                last_modified: at(*written),
            })
            .collect())
    }
    fn remote_get(&self, target: &str, key: &str) -> Result<Vec<u8>, Error> {
        self.log(format!("remote-get {target} {key}"));
        self.stored(target, key)
    }
    fn remote_get_file(
        &self,
        target: &str,
        key: &str,
        encoding: &[String],
    ) -> Result<Download, Error> {
        self.log(format!("remote-get-file {target} {key}"));
        let stored = self.stored(target, key)?;
        let mut bytes = stored.clone();
        for step in encoding.iter().rev() {
            let tag = format!("{step}:").into_bytes();
            if !bytes.starts_with(&tag) {
                return Err(Error::Corrupt(format!("not {step}-encoded")));
            }
            bytes.drain(..tag.len());
        }
        let name = format!(".lgb-download-{}.tmp", self.clock.get());
        self.put(&name, &bytes);
        Ok(Download {
            digests: self.digests_of(&name)?,
            name,
            length: bytes.len() as u64,
            stored_length: stored.len() as u64,
            stored_sha256: format!("{:064X}", stored.len()),
        })
    }
    fn remote_delete(&self, target: &str, key: &str) -> Result<(), Error> {
        self.log(format!("remote-delete {target} {key}"));
        self.known_target(target)?;
        self.objects
            .borrow_mut()
            .remove(&(target.to_owned(), key.to_owned()))
            .map(drop)
            .ok_or(Error::NotFound)
    }
}

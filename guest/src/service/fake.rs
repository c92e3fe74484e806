//! An in-memory host for the policy's unit tests: a backup directory, a live database, a
//! clock that ticks at every write, a log of the calls the policy makes, and switches that
//! make chosen calls fail.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};

use super::Host;
use crate::litegraph::backup::snapshot::SnapshotFile;
use crate::litegraph::backup::types::{Datetime, Error, FileDigests, FileStat};

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
}

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
}

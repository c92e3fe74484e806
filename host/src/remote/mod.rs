//! The `remote` capability: offsite targets (an S3-compatible bucket, another directory)
//! that hold encoded copies of backups. The host holds the credentials and the age keys,
//! encodes on the way out (zstd, then age) and decodes on the way in; the guest names the
//! objects and decides what moves. Every key and name is checked again here, whatever the
//! guest decided.

use std::sync::Arc;
use std::time::SystemTime;

use futures_util::TryStreamExt;
use object_store::ObjectStoreExt;
use wasmtime::component::{HasData, Linker};

mod config;
mod download;
mod encoding;
mod errors;
mod journal;
mod keys;
mod multipart;
mod targets;
mod upload;

pub use config::{Location, S3Credentials, Secret, TargetConfig};
pub(crate) use journal::JOURNAL_DIR;
pub use targets::Targets;

use crate::bindings::Error;
use crate::bindings::litegraph::backup::remote::{self, Download, Object, Target, Upload};
use crate::budget::Budget;
use crate::monitor::progress::Pass;
use crate::store::{BackupDir, SMALL_FILE_BYTES, Temporary, datetime};
use keys::{listing_path, object_path};
use targets::Target as OpenTarget;
use upload::not_configured;

/// The `remote` capability's per-operation context.
pub struct RemoteCtx {
    targets: Arc<Targets>,
    backups: Arc<BackupDir>,
    budget: Budget,
    /// Where uploads and downloads report their progress.
    monitor: crate::monitor::Monitor,
    /// The downloads of this operation: removed when it ends unless renamed away.
    temporaries: Vec<Temporary>,
}

impl RemoteCtx {
    pub(crate) fn new(
        targets: Arc<Targets>,
        backups: Arc<BackupDir>,
        budget: Budget,
        monitor: crate::monitor::Monitor,
    ) -> RemoteCtx {
        RemoteCtx {
            targets,
            backups,
            budget,
            monitor,
            temporaries: Vec::new(),
        }
    }

    /// Charges one call and finds the target; an unknown name is refused.
    fn target(&self, name: &str) -> Result<&OpenTarget, Error> {
        self.budget.call()?;
        if self.targets.is_empty() {
            return Err(not_configured());
        }
        self.targets
            .find(name)
            .ok_or_else(|| Error::NotPermitted(format!("no remote target is named {name:?}")))
    }

    /// A new temporary in the backup directory, owned by this operation from here on.
    fn temporary(&mut self) -> Result<&Temporary, Error> {
        let shown = self.backups.path().display().to_string();
        self.backups
            .sweep_stale_temporaries()
            .map_err(|e| Error::Io(format!("cannot clean up the backup directory {shown}: {e}")))?;
        let temporary = Temporary::create(&self.backups, "tmp").map_err(|e| {
            Error::Io(format!(
                "cannot create a file in the backup directory {shown}: {e}"
            ))
        })?;
        self.temporaries.push(temporary);
        Ok(self.temporaries.last().expect("just pushed"))
    }
}

struct HasRemote;

impl HasData for HasRemote {
    type Data<'a> = &'a mut RemoteCtx;
}

/// Links the `remote` imports, served by the `RemoteCtx` that `get` finds.
pub(crate) fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut RemoteCtx,
) -> wasmtime::Result<()> {
    remote::add_to_linker::<T, HasRemote>(linker, get)
}

impl remote::Host for RemoteCtx {
    fn targets(&mut self) -> Vec<Target> {
        // Refused or not, the list is harmless; the call still counts.
        let _ = self.budget.call();
        self.targets
            .iter()
            .map(|t| Target {
                name: t.config.name.clone(),
                encoding: t.config.encoding(),
            })
            .collect()
    }

    fn put_file(&mut self, target: String, key: String, name: String) -> Result<Upload, Error> {
        let remote = self.target(&target)?;
        let path = object_path(&key)?;
        self.backups.in_place()?;
        let source = self.backups.open_confined(&name)?;
        // What an interrupted run left on this target goes first; failing that is no reason
        // not to push.
        if let Err(e) = self.targets.sweep_abandoned_uploads(&self.backups, &target) {
            tracing::warn!(
                "{}: cannot read the upload journal of {}: {e}",
                remote.shown,
                self.backups.path().display()
            );
        }
        let journal = journal::Journal::of(&self.backups);
        let length = source
            .metadata()
            .map_err(|e| Error::Io(format!("cannot stat {name}: {e}")))?
            .len();
        // What the encoder has read: the upload trails it by the parts in flight.
        let uploading = Pass::start(self.monitor.progress(), "uploading", length);
        self.targets.put_file(
            remote,
            &key,
            path,
            journal,
            (&name, uploading.reader(source)),
        )
    }

    fn put(&mut self, target: String, key: String, contents: Vec<u8>) -> Result<(), Error> {
        let remote = self.target(&target)?;
        let path = object_path(&key)?;
        if contents.len() as u64 > SMALL_FILE_BYTES {
            return Err(Error::Io(format!(
                "put {key:?}: larger than {SMALL_FILE_BYTES} bytes (put-file is for files)"
            )));
        }
        self.targets.put_small(remote, &key, path, contents)
    }

    fn list(&mut self, target: String, prefix: String) -> Result<Vec<Object>, Error> {
        let remote = self.target(&target)?;
        let directory = listing_path(&prefix)?;
        let listed = self
            .targets
            .block_on(remote.store.list(Some(&directory)).try_collect::<Vec<_>>())
            .ok_or_else(not_configured)?
            .map_err(|e| remote.failed("list", &prefix, e))?;
        let objects: Vec<Object> = listed
            .into_iter()
            .filter(|meta| meta.location.as_ref().starts_with(prefix.as_str()))
            .map(|meta| Object {
                key: meta.location.to_string(),
                length: meta.size,
                last_modified: datetime(SystemTime::from(meta.last_modified)),
            })
            .collect();
        self.budget.listed(objects.len());
        Ok(objects)
    }

    fn get(&mut self, target: String, key: String) -> Result<Vec<u8>, Error> {
        let remote = self.target(&target)?;
        let path = object_path(&key)?;
        self.targets.get_small(remote, &key, path)
    }

    fn get_file(
        &mut self,
        target: String,
        key: String,
        encoding: Vec<String>,
    ) -> Result<Download, Error> {
        self.target(&target)?;
        let path = object_path(&key)?;
        encoding::check_known(&encoding)?;
        self.backups.in_place()?;
        let (targets, backups) = (Arc::clone(&self.targets), Arc::clone(&self.backups));
        let monitor = self.monitor.clone();
        let temporary = self.temporary()?;
        let remote = targets.find(&target).ok_or_else(not_configured)?;
        let local = download::LocalCopy {
            backups: &backups,
            temporary,
            progress: monitor.progress(),
        };
        targets.get_file(remote, &key, path, &encoding, local)
    }

    fn delete(&mut self, target: String, key: String) -> Result<(), Error> {
        let remote = self.target(&target)?;
        let path = object_path(&key)?;
        // object_store's delete succeeds on a missing object: look first.
        let store = Arc::clone(&remote.store);
        self.targets
            .block_on(async move {
                store.head(&path).await?;
                store.delete(&path).await
            })
            .ok_or_else(not_configured)?
            .map_err(|e| remote.failed("delete", &key, e))
    }
}

#[cfg(test)]
mod journal_tests;
#[cfg(test)]
mod tests;

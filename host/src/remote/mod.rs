//! The `remote` capability: offsite targets (an S3-compatible bucket, another directory)
//! that hold encoded copies of backups. The host holds the credentials and the age keys,
//! encodes on the way out (zstd, then age) and decodes on the way in; the guest names the
//! objects and decides what moves.
//!
//! SKELETON: the lead's placeholder so that the world links; helper "remote" replaces it
//! with the real mechanism. Every call answers `not-permitted` until then.

use std::sync::Arc;

mod config;
mod targets;

pub use config::{Location, S3Credentials, Secret, TargetConfig};
pub use targets::Targets;

use wasmtime::component::{HasData, Linker};

use crate::bindings::Error;
use crate::bindings::litegraph::backup::remote::{self, Download, Object, Target, Upload};
use crate::budget::Budget;
use crate::store::BackupDir;

/// The `remote` capability's per-operation context.
pub struct RemoteCtx {
    #[allow(dead_code)]
    targets: Arc<Targets>,
    #[allow(dead_code)]
    backups: Arc<BackupDir>,
    budget: Budget,
}

impl RemoteCtx {
    pub(crate) fn new(targets: Arc<Targets>, backups: Arc<BackupDir>, budget: Budget) -> RemoteCtx {
        RemoteCtx {
            targets,
            backups,
            budget,
        }
    }

    fn refuse(&self) -> Error {
        let _ = self.budget.call();
        Error::NotPermitted("no remote target is configured".into())
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
        let _ = self.budget.call();
        Vec::new()
    }
    fn put_file(&mut self, _target: String, _key: String, _name: String) -> Result<Upload, Error> {
        Err(self.refuse())
    }
    fn put(&mut self, _target: String, _key: String, _contents: Vec<u8>) -> Result<(), Error> {
        Err(self.refuse())
    }
    fn list(&mut self, _target: String, _prefix: String) -> Result<Vec<Object>, Error> {
        Err(self.refuse())
    }
    fn get(&mut self, _target: String, _key: String) -> Result<Vec<u8>, Error> {
        Err(self.refuse())
    }
    fn get_file(
        &mut self,
        _target: String,
        _key: String,
        _encoding: Vec<String>,
    ) -> Result<Download, Error> {
        Err(self.refuse())
    }
    fn delete(&mut self, _target: String, _key: String) -> Result<(), Error> {
        Err(self.refuse())
    }
}

//! The component's shim: the `backup` export calls the policy, whose capabilities are the
//! host's imported `store` and `snapshot` functions.

use crate::exports::litegraph::backup::backup::Guest;
use crate::litegraph::backup::remote::{Download, Object, Target, Upload};
use crate::litegraph::backup::snapshot::SnapshotFile;
use crate::litegraph::backup::types::{
    BackupDetails, BackupFile, Datetime, DrillReport, Error, FileDigests, FileStat, PruneDecision,
    PushOutcome, RemoteBackup, RemoteVerification, Restoration, Retention, ScratchRestore,
    Verification,
};
use crate::litegraph::backup::{remote, snapshot, store};
use crate::service::{Host, Service};

struct Component;

/// The host, reached through the component's imports.
struct Imports;

impl Host for Imports {
    fn now(&self) -> Datetime {
        store::now()
    }
    fn list(&self) -> Result<Vec<String>, Error> {
        store::list()
    }
    fn stat(&self, name: &str) -> Result<FileStat, Error> {
        store::stat(name)
    }
    fn digests(&self, name: &str) -> Result<FileDigests, Error> {
        store::digests(name)
    }
    fn read(&self, name: &str) -> Result<Vec<u8>, Error> {
        store::read(name)
    }
    fn write(&self, name: &str, contents: &[u8]) -> Result<(), Error> {
        store::write(name, contents)
    }
    fn rename_noreplace(&self, source: &str, target: &str) -> Result<(), Error> {
        store::rename_noreplace(source, target)
    }
    fn remove(&self, name: &str) -> Result<(), Error> {
        store::remove(name)
    }
    fn take_snapshot(&self) -> Result<SnapshotFile, Error> {
        snapshot::take()
    }
    fn take_for_restore(&self, name: &str) -> Result<SnapshotFile, Error> {
        snapshot::take_for_restore(name)
    }
    fn check(&self, name: &str, full: bool) -> Result<(), Error> {
        snapshot::check(name, full)
    }
    fn restore(&self, name: &str, sha256: &str) -> Result<(), Error> {
        snapshot::restore(name, sha256)
    }
    fn drill(&self, name: &str) -> Result<ScratchRestore, Error> {
        snapshot::drill(name)
    }
    fn remote_targets(&self) -> Vec<Target> {
        remote::targets()
    }
    fn remote_put_file(&self, target: &str, key: &str, name: &str) -> Result<Upload, Error> {
        remote::put_file(target, key, name)
    }
    fn remote_put(&self, target: &str, key: &str, contents: &[u8]) -> Result<(), Error> {
        remote::put(target, key, contents)
    }
    fn remote_list(&self, target: &str, prefix: &str) -> Result<Vec<Object>, Error> {
        remote::list(target, prefix)
    }
    fn remote_get(&self, target: &str, key: &str) -> Result<Vec<u8>, Error> {
        remote::get(target, key)
    }
    fn remote_get_file(
        &self,
        target: &str,
        key: &str,
        encoding: &[String],
    ) -> Result<Download, Error> {
        remote::get_file(target, key, encoding)
    }
    fn remote_delete(&self, target: &str, key: &str) -> Result<(), Error> {
        remote::delete(target, key)
    }
}

impl Guest for Component {
    fn create(name: Option<String>) -> Result<BackupFile, Error> {
        Service::new(Imports).create(name)
    }
    fn list() -> Result<Vec<BackupFile>, Error> {
        Service::new(Imports).list()
    }
    fn read(name: String) -> Result<BackupFile, Error> {
        Service::new(Imports).read(&name)
    }
    fn exists(name: String) -> Result<bool, Error> {
        Service::new(Imports).exists(&name)
    }
    fn delete(name: String) -> Result<(), Error> {
        Service::new(Imports).delete(&name)
    }
    fn verify(name: String, full: bool) -> Result<Verification, Error> {
        Service::new(Imports).verify(&name, full)
    }
    fn restore(name: String) -> Result<Restoration, Error> {
        Service::new(Imports).restore(&name)
    }
    fn drill(name: Option<String>) -> Result<DrillReport, Error> {
        Service::new(Imports).drill(name.as_deref())
    }
    fn details(name: String) -> Result<BackupDetails, Error> {
        Service::new(Imports).details(&name)
    }
    fn prune(rules: Retention, dry_run: bool) -> Result<Vec<PruneDecision>, Error> {
        Service::new(Imports).prune(&rules, dry_run)
    }
    fn push(name: String, target: Option<String>) -> Result<Vec<PushOutcome>, Error> {
        Service::new(Imports).push(&name, target.as_deref())
    }
    fn unpushed(target: String) -> Result<Vec<String>, Error> {
        Service::new(Imports).unpushed(&target)
    }
    fn remote_list(target: String) -> Result<Vec<RemoteBackup>, Error> {
        Service::new(Imports).remote_list(&target)
    }
    fn pull(target: String, name: String) -> Result<BackupFile, Error> {
        Service::new(Imports).pull(&target, &name)
    }
    fn remote_verify(target: String, name: String) -> Result<RemoteVerification, Error> {
        Service::new(Imports).remote_verify(&target, &name)
    }
    fn remote_prune(
        target: String,
        rules: Retention,
        dry_run: bool,
    ) -> Result<Vec<PruneDecision>, Error> {
        Service::new(Imports).remote_prune(&target, &rules, dry_run)
    }
}

// The export glue is generated unsafe code, like the bindings.
#[allow(unsafe_code)]
mod glue {
    use super::Component;
    crate::export!(Component with_types_in crate);
}

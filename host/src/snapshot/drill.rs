//! Restore drills: a backup restored into a scratch database in a private temporary
//! directory (never the live database, never the backup directory), checked, and removed.

use crate::bindings::{Error, ScratchRestore};
use crate::monitor::Progress;
use crate::store::BackupDir;

/// Restores backup `name` of `backups` into a scratch database and checks it: see
/// `snapshot.drill` in wit/snapshot.wit.
pub(super) fn scratch_restore(
    _backups: &BackupDir,
    _name: &str,
    _progress: &dyn Progress,
) -> Result<ScratchRestore, Error> {
    Err(Error::Io("drills are not built yet".into()))
}

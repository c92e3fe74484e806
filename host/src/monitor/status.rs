//! The last run of each operation and its outcome, kept with the backups so that `status`
//! in another process can tell it.

use std::sync::Arc;

use super::OperationRecord;
use crate::store::BackupDir;

/// The status record of one backup directory.
#[derive(Debug)]
pub struct StatusBook {
    #[allow(dead_code)]
    backups: Arc<BackupDir>,
}

impl StatusBook {
    pub fn new(backups: Arc<BackupDir>) -> StatusBook {
        StatusBook { backups }
    }

    pub fn observe(&self, _record: &OperationRecord) {}
}

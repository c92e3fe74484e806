//! A backup's record: read from its sidecar, or computed and recorded when there is no
//! usable one. One bad sidecar (too large to read, a directory in its place, a foreign or
//! damaged file) costs that backup a fresh digest; it never fails a listing.

use super::{Host, Service, describe_error};
use crate::litegraph::backup::types::{Error, FileStat};
use crate::metadata::{Metadata, Origin, sidecar_name};

/// A backup's recorded facts, with the file's current stat.
pub struct Record {
    pub metadata: Metadata,
    pub stat: FileStat,
    /// `Some` when the metadata was computed now, rather than read from the sidecar.
    pub fresh: Option<Fresh>,
}

/// Metadata computed now, because there was no usable record.
pub struct Fresh {
    /// Why the sidecar that was there could not be used; `None` when there was none.
    pub unusable: Option<String>,
    /// Why the new record could not be written; `None` when it was.
    pub unsaved: Option<String>,
}

impl Fresh {
    /// What `verify` reports about it: a backup that had no record is no problem (it was
    /// copied in by hand, or a create was interrupted), but a record that could not be read
    /// may have held digests the file no longer matches, and digests that could not be
    /// recorded will be computed again next time.
    pub fn problem(&self) -> Option<String> {
        let unreadable = self
            .unusable
            .as_ref()
            .map(|why| format!("its metadata record could not be read ({why}); "));
        match (unreadable, &self.unsaved) {
            (None, None) => None,
            (Some(unreadable), None) => Some(format!("{unreadable}digests recorded now")),
            (unreadable, Some(why)) => Some(format!(
                "{}digests, computed now, could not be recorded ({why})",
                unreadable.unwrap_or_else(|| "its ".to_owned())
            )),
        }
    }
}

impl<H: Host> Service<H> {
    /// A backup's record from its sidecar, with the file's current stat: it is computed and
    /// recorded once, when there is no usable record (a backup copied in by hand, an
    /// interrupted create, a damaged sidecar). Never reads the backup when there is a
    /// record. A record, once made, stands until the backup is deleted: a file changed or
    /// replaced under its name keeps the record of what was backed up, which is what lets
    /// `verify` notice.
    pub(super) fn record(&self, name: &str) -> Result<Record, Error> {
        let stat = self.host.stat(name)?;
        let sidecar = sidecar_name(name);
        let unusable = match self.host.read(&sidecar) {
            Ok(bytes) => match Metadata::decode(&bytes).filter(|m| m.filename == name) {
                Some(metadata) => {
                    return Ok(Record {
                        metadata,
                        stat,
                        fresh: None,
                    });
                }
                None => Some("it is damaged or not a record of this backup".to_owned()),
            },
            Err(Error::NotFound) => None,
            Err(error) => Some(describe_error(&error)),
        };
        let metadata = Metadata {
            filename: name.to_owned(),
            length: stat.length,
            digests: self.host.digests(name)?,
            created: stat.created.unwrap_or(stat.modified),
            birth: stat.created,
            origin: Origin::of_name(name),
            last_verification: None,
            last_drill: None,
        };
        // Best effort: the digests are right either way, and the next look tries again.
        let unsaved = self
            .host
            .write(&sidecar, &metadata.encode())
            .err()
            .map(|error| describe_error(&error));
        Ok(Record {
            metadata,
            stat,
            fresh: Some(Fresh { unusable, unsaved }),
        })
    }
}

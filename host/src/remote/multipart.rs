//! Multipart uploads that can be cleaned up after their process dies: each is recorded in
//! the journal before its first part is sent, and the uploads a dead process left are
//! aborted later ([`Targets::sweep_abandoned_uploads`]).
//!
//! S3: object_store's own `put_multipart` keeps the upload id to itself, so the upload is
//! driven through `MultipartStore` (create, then parts, then complete or abort), which
//! hands the id out; [`S3Upload`] puts that back behind `MultipartUpload`, so that
//! `WriteMultipart` still bounds the parts in flight. A directory: object_store writes the
//! object to a staging file `KEY#N` beside it (hidden from listings) and renames it into
//! place when complete; a killed upload leaves that file, which the sweep removes.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use object_store::aws::AmazonS3;
use object_store::local::LocalFileSystem;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{MultipartId, MultipartUpload, PutPayload, PutResult, UploadPart};

use super::journal::{Entry, Journal, Record};
use super::targets::{Parts, Target, Targets};
use crate::store::BackupDir;

/// Why an upload could not begin.
pub(crate) enum BeginFailure {
    Store(object_store::Error),
    /// The journal could not record it: nothing was sent, or the upload was aborted.
    Journal(io::Error),
}

/// A multipart upload begun and recorded, ready for `WriteMultipart`.
pub(crate) struct Begun {
    pub(crate) upload: Box<dyn MultipartUpload>,
    /// A directory upload's entry, closed by the caller when the upload ends however it
    /// ends: object_store removes its own staging file then, unless the process dies. An S3
    /// upload's entry lives in [`S3Upload`], closed only once S3 has completed or aborted.
    pub(crate) entry: Option<Entry>,
}

/// Begins a multipart upload of `path` (relative to the target's root) and records it.
pub(crate) async fn begin(
    parts: &Parts,
    journal: Journal,
    target: String,
    path: &Path,
) -> Result<Begun, BeginFailure> {
    let full = parts.full_path(path);
    match parts {
        Parts::S3 { bucket, .. } => {
            let id = bucket
                .create_multipart(&full)
                .await
                .map_err(BeginFailure::Store)?;
            let record = Record {
                target,
                path: full.to_string(),
                upload_id: Some(id.clone()),
            };
            let entry = match record_off_thread(journal, record).await {
                Ok(entry) => entry,
                Err(e) => {
                    // Nothing sent yet; the upload itself holds no storage, but tidy up.
                    let _ = bucket.abort_multipart(&full, &id).await;
                    return Err(BeginFailure::Journal(e));
                }
            };
            let upload = S3Upload::new(Arc::clone(bucket), full, id, entry);
            Ok(Begun {
                upload: Box::new(upload),
                entry: None,
            })
        }
        Parts::Directory(directory) => {
            let record = Record {
                target,
                path: full.to_string(),
                upload_id: None,
            };
            let entry = record_off_thread(journal, record)
                .await
                .map_err(BeginFailure::Journal)?;
            match object_store::ObjectStore::put_multipart_opts(
                directory.as_ref(),
                &full,
                Default::default(),
            )
            .await
            {
                Ok(upload) => Ok(Begun {
                    upload,
                    entry: Some(entry),
                }),
                Err(e) => {
                    close_off_thread(entry).await;
                    Err(BeginFailure::Store(e))
                }
            }
        }
    }
}

async fn record_off_thread(journal: Journal, record: Record) -> io::Result<Entry> {
    tokio::task::spawn_blocking(move || journal.record(record))
        .await
        .map_err(io::Error::other)?
}

/// Removes an entry whose upload is over; a failure leaves it for a later sweep, which
/// finds nothing to abort and drops it.
pub(crate) async fn close_off_thread(entry: Entry) {
    let closed = tokio::task::spawn_blocking(move || entry.close()).await;
    if let Ok(Err(e)) | Err(e) = closed.map_err(io::Error::other) {
        tracing::warn!("could not remove an upload's journal entry: {e}");
    }
}

/// An S3 multipart upload whose id is known (and journaled), behind `MultipartUpload`.
pub(crate) struct S3Upload {
    bucket: Arc<AmazonS3>,
    path: Path,
    id: MultipartId,
    /// The index the next part gets.
    next: usize,
    /// The parts uploaded so far, in the order they finished.
    done: Arc<Mutex<Vec<(usize, PartId)>>>,
    /// Present until the upload is completed or aborted.
    entry: Option<Entry>,
}

impl fmt::Debug for S3Upload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the bucket: its client holds the credentials.
        f.debug_struct("S3Upload")
            .field("path", &self.path)
            .field("id", &self.id)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl S3Upload {
    fn new(bucket: Arc<AmazonS3>, path: Path, id: MultipartId, entry: Entry) -> S3Upload {
        S3Upload {
            bucket,
            path,
            id,
            next: 0,
            done: Arc::default(),
            entry: Some(entry),
        }
    }

    /// The parts in index order, all of them.
    fn parts(&self) -> object_store::Result<Vec<PartId>> {
        let mut done =
            std::mem::take(&mut *self.done.lock().unwrap_or_else(PoisonError::into_inner));
        done.sort_by_key(|(index, _)| *index);
        let complete =
            done.len() == self.next && done.iter().enumerate().all(|(i, (n, _))| i == *n);
        if !complete {
            return Err(object_store::Error::Generic {
                store: "S3",
                source: format!("{}: a part is missing at completion", self.path).into(),
            });
        }
        Ok(done.into_iter().map(|(_, part)| part).collect())
    }

    async fn close_entry(&mut self) {
        if let Some(entry) = self.entry.take() {
            close_off_thread(entry).await;
        }
    }
}

/// The future type `async_trait` gives `MultipartUpload`'s `complete` and `abort`.
type Pinned<'a, T> = Pin<Box<dyn Future<Output = object_store::Result<T>> + Send + 'a>>;

// `MultipartUpload` is declared with `async_trait`; these are its methods as that macro
// expands them (the host does not depend on `async_trait` for one impl).
impl MultipartUpload for S3Upload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let index = self.next;
        self.next += 1;
        let (bucket, path, id) = (Arc::clone(&self.bucket), self.path.clone(), self.id.clone());
        let done = Arc::clone(&self.done);
        Box::pin(async move {
            let part = bucket.put_part(&path, &id, index, data).await?;
            done.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((index, part));
            Ok(())
        })
    }

    fn complete<'life0, 'async_trait>(&'life0 mut self) -> Pinned<'async_trait, PutResult>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let parts = self.parts()?;
            let result = self
                .bucket
                .complete_multipart(&self.path, &self.id, parts)
                .await?;
            self.close_entry().await;
            Ok(result)
        })
    }

    fn abort<'life0, 'async_trait>(&'life0 mut self) -> Pinned<'async_trait, ()>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            match self.bucket.abort_multipart(&self.path, &self.id).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                    self.close_entry().await;
                    Ok(())
                }
                // The entry stays: a later sweep tries again.
                Err(e) => Err(e),
            }
        })
    }
}

impl Targets {
    /// Cleans up the multipart uploads to `target` that a dead process left (killed, or the
    /// machine lost power, mid-upload): aborts each one the journal of `backups` lists and no
    /// live process holds, then drops its entry. Returns how many were cleaned up. Best
    /// effort: an upload that cannot be aborted now stays listed for the next time. Called
    /// at the start of every put-file to `target`; a prune may call it too. Call it from a
    /// plain or `spawn_blocking` thread, never an async task.
    pub fn sweep_abandoned_uploads(&self, backups: &BackupDir, target: &str) -> io::Result<usize> {
        let Some(target) = self.find(target) else {
            return Ok(0);
        };
        let mut cleaned = 0;
        for entry in Journal::of(backups).abandoned(&target.config.name)? {
            match self.abort_abandoned(target, entry.record()) {
                Ok(()) => {
                    entry.close()?;
                    cleaned += 1;
                }
                Err(e) => tracing::warn!(
                    "{}: could not abort an interrupted upload of {:?}; will try again: {e}",
                    target.shown,
                    entry.record().path
                ),
            }
        }
        if cleaned > 0 {
            tracing::info!(
                "{}: cleaned up {cleaned} upload(s) left by an interrupted run",
                target.shown
            );
        }
        Ok(cleaned)
    }

    fn abort_abandoned(&self, target: &Target, record: &Record) -> Result<(), String> {
        let path = Path::parse(&record.path).map_err(|e| e.to_string())?;
        match (&target.parts, &record.upload_id) {
            (Parts::S3 { bucket, .. }, Some(id)) => self
                .block_on(abort_s3_upload(bucket, &path, id))
                .ok_or("no remote target is configured")?,
            (Parts::Directory(directory), None) => {
                remove_staging_files(directory, &path).map_err(|e| e.to_string())
            }
            // The target was reconfigured (S3 to a directory or back): the upload is out of
            // reach. Said once, with what an operator needs to remove it by hand.
            (_, id) => {
                tracing::warn!(
                    "{}: an interrupted upload of {:?} (upload id {id:?}) was to another kind of target; remove it by hand if it is still there",
                    target.shown,
                    record.path
                );
                Ok(())
            }
        }
    }
}

/// Aborts an upload by its id. One the server no longer knows is done with: S3 answers
/// NoSuchUpload (404); s3s-fs answers AccessDenied, as for a wrong key, so there the
/// object's presence tells that the upload was completed (a multipart upload only begins
/// when its key names nothing, and keys are unique to their attempt).
async fn abort_s3_upload(bucket: &AmazonS3, path: &Path, id: &MultipartId) -> Result<(), String> {
    match bucket.abort_multipart(path, id).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => match object_store::ObjectStoreExt::head(bucket, path).await {
            Ok(_) => Ok(()),
            Err(_) => Err(e.to_string()),
        },
    }
}

/// Removes the staging files object_store's directory store writes `path` to while
/// uploading: `NAME#N` beside it, `N` a number. The guest makes each data key unique to its
/// attempt, so no live upload writes to one whose entry is abandoned.
fn remove_staging_files(directory: &LocalFileSystem, path: &Path) -> io::Result<()> {
    let object = directory
        .path_to_filesystem(path)
        .map_err(io::Error::other)?;
    let (Some(parent), Some(name)) = (object.parent(), object.file_name()) else {
        return Ok(());
    };
    let staging = format!("{}#", name.to_string_lossy());
    let listing = match std::fs::read_dir(parent) {
        Ok(listing) => listing,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for found in listing {
        let found = found?;
        let found_name = found.file_name();
        let is_staging = found_name
            .to_str()
            .and_then(|n| n.strip_prefix(&staging))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if is_staging && found.file_type()?.is_file() {
            match std::fs::remove_file(found.path()) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

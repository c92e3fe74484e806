//! `put-file` and `put`: a file of the backup directory encoded on the calling thread
//! (SHA-256 of the source, zstd, age, SHA-256 of what is stored) and handed in bounded
//! parts to an upload task on the targets' runtime. Memory stays at a few parts whatever
//! the file's size.

use std::io::{self, Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, WriteMultipart};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::encoding::encode;
use super::journal::Journal;
use super::multipart::{BeginFailure, begin, close_off_thread};
use super::targets::{Parts, Target, Targets};
use crate::bindings::Error;
use crate::bindings::litegraph::backup::remote::Upload;
use crate::digests::upper_hex;

/// The size of a multipart upload's parts; an object smaller than one part is a single
/// create-only `put`.
pub(crate) const PART_BYTES: usize = 8 << 20;
/// Parts being uploaded at once, and parts waiting for them: memory is about
/// (2 + 2) x [`PART_BYTES`].
const PARTS_IN_FLIGHT: usize = 2;

/// What the encoder hands the upload task.
enum Piece {
    /// A full part; more follow.
    Part(Vec<u8>),
    /// The end of the object (perhaps all of it, when it is small).
    Last(Vec<u8>),
}

/// Why the upload task stopped.
enum UploadFailure {
    /// `key` names an object already.
    Taken,
    Store(object_store::Error),
    /// The upload could not be recorded in the journal: nothing was sent.
    Journal(std::io::Error),
    /// The encoder stopped before the end (a read error): nothing was completed.
    Abandoned,
}

/// Where an upload goes, and the journal that records it while it is under way.
struct Destination {
    store: Arc<dyn ObjectStore>,
    parts: Parts,
    target: String,
    path: Path,
    journal: Journal,
}

impl Targets {
    /// Encodes and uploads `source` (the file `name`) to `key`; a multipart upload is
    /// recorded in `journal` while under way.
    pub(crate) fn put_file(
        &self,
        target: &Target,
        key: &str,
        path: Path,
        journal: Journal,
        (name, source): (&str, impl Read),
    ) -> Result<Upload, Error> {
        let handle = self.handle().ok_or_else(not_configured)?;
        let (pieces, received) = mpsc::channel(PARTS_IN_FLIGHT);
        let destination = Destination {
            store: Arc::clone(&target.store),
            parts: target.parts.clone(),
            target: target.config.name.clone(),
            path,
            journal,
        };
        let uploader = handle.spawn(upload(destination, received));
        let encoded = encode(target, source, PartSink::new(pieces));
        let uploaded = self
            .block_on(uploader)
            .ok_or_else(not_configured)?
            .map_err(|e| Error::Io(format!("{}: the upload task failed: {e}", target.shown)))?;
        match (uploaded, encoded) {
            (Err(UploadFailure::Taken), _) => Err(Error::Exist),
            (Err(UploadFailure::Store(e)), _) => Err(target.failed("upload", key, e)),
            (Err(UploadFailure::Journal(e)), _) => Err(Error::Io(format!(
                "{}: cannot record the upload of {key:?} in the backup directory's upload journal: {e}",
                target.shown
            ))),
            (_, Err(e)) => Err(Error::Io(format!(
                "cannot upload {name} to {}: {e}",
                target.shown
            ))),
            (Err(UploadFailure::Abandoned), Ok(_)) => Err(Error::Io(format!(
                "{}: the upload of {key:?} stopped early",
                target.shown
            ))),
            (Ok(()), Ok(encoded)) => Ok(Upload {
                source_length: encoded.source_length,
                source_sha256: encoded.source_sha256,
                encoding: target.config.encoding(),
                length: encoded.stored.length,
                sha256: encoded.stored.sha256,
            }),
        }
    }

    /// Stores a small object as it is, create-only.
    pub(crate) fn put_small(
        &self,
        target: &Target,
        key: &str,
        path: Path,
        contents: Vec<u8>,
    ) -> Result<(), Error> {
        let put = target
            .store
            .put_opts(&path, contents.into(), PutMode::Create.into());
        self.block_on(put)
            .ok_or_else(not_configured)?
            .map(drop)
            .map_err(|e| target.failed("store", key, e))
    }
}

pub(crate) fn not_configured() -> Error {
    Error::NotPermitted("no remote target is configured".into())
}

/// Receives the encoded object and stores it: one create-only `put` when it is smaller
/// than a part, else a multipart upload, aborted on any failure.
async fn upload(
    destination: Destination,
    mut pieces: mpsc::Receiver<Piece>,
) -> Result<(), UploadFailure> {
    match pieces.recv().await {
        None => Err(UploadFailure::Abandoned),
        Some(Piece::Last(whole)) => destination
            .store
            .put_opts(&destination.path, whole.into(), PutMode::Create.into())
            .await
            .map(drop)
            .map_err(UploadFailure::Store),
        Some(Piece::Part(first)) => multipart(destination, first, pieces).await,
    }
}

async fn multipart(
    destination: Destination,
    first: Vec<u8>,
    pieces: mpsc::Receiver<Piece>,
) -> Result<(), UploadFailure> {
    let Destination {
        store,
        parts,
        target,
        path,
        journal,
    } = destination;
    // Completing a multipart upload cannot be made create-only (S3 has no conditional
    // complete that every server honours). The guest makes every data key unique to the
    // attempt (its time to the nanosecond), so a key that exists now is the only way to
    // replace an object: refuse it here. What makes a backup exist on the target is its
    // manifest, which is always a small `put` with `PutMode::Create`.
    match store.head(&path).await {
        Ok(_) => return Err(UploadFailure::Taken),
        Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(UploadFailure::Store(e)),
    }
    let begun = begin(&parts, journal, target, &path)
        .await
        .map_err(|e| match e {
            BeginFailure::Store(e) => UploadFailure::Store(e),
            BeginFailure::Journal(e) => UploadFailure::Journal(e),
        })?;
    let writer = WriteMultipart::new_with_chunk_size(begun.upload, PART_BYTES);
    let sent = send_parts(writer, &path, first, pieces).await;
    if let Some(entry) = begun.entry {
        close_off_thread(entry).await;
    }
    sent
}

/// Hands the parts to `writer`, at most [`PARTS_IN_FLIGHT`] being sent at once.
async fn send_parts(
    mut writer: WriteMultipart,
    path: &Path,
    first: Vec<u8>,
    mut pieces: mpsc::Receiver<Piece>,
) -> Result<(), UploadFailure> {
    writer.put(Bytes::from(first));
    loop {
        if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
            abort(writer, path).await;
            return Err(UploadFailure::Store(e));
        }
        match pieces.recv().await {
            Some(Piece::Part(part)) => writer.put(Bytes::from(part)),
            Some(Piece::Last(last)) => {
                writer.put(Bytes::from(last));
                // `finish` aborts the upload itself when it fails.
                return writer
                    .finish()
                    .await
                    .map(drop)
                    .map_err(UploadFailure::Store);
            }
            None => {
                abort(writer, path).await;
                return Err(UploadFailure::Abandoned);
            }
        }
    }
}

/// Best effort: the parts of an abandoned upload cost storage until aborted.
async fn abort(writer: WriteMultipart, path: &Path) {
    if let Err(e) = writer.abort().await {
        tracing::warn!("could not abort the multipart upload of {path}: {e}");
    }
}

/// The stored object's size and SHA-256.
pub(crate) struct Stored {
    pub(crate) length: u64,
    pub(crate) sha256: String,
}

/// The end of the encoding chain: hashes what is stored and hands it on in parts.
pub(crate) struct PartSink {
    buffer: Vec<u8>,
    sha256: Sha256,
    length: u64,
    pieces: mpsc::Sender<Piece>,
}

impl PartSink {
    fn new(pieces: mpsc::Sender<Piece>) -> PartSink {
        PartSink {
            buffer: Vec::with_capacity(PART_BYTES),
            sha256: Sha256::new(),
            length: 0,
            pieces,
        }
    }

    fn send(&mut self, piece: Piece) -> io::Result<()> {
        // The calling thread is never one of the runtime's: blocking here is the
        // back-pressure that bounds memory.
        self.pieces
            .blocking_send(piece)
            .map_err(|_| io::Error::other("the upload stopped"))
    }

    /// Sends the last piece; the object is complete.
    pub(crate) fn finish(mut self) -> io::Result<Stored> {
        let last = std::mem::take(&mut self.buffer);
        self.send(Piece::Last(last))?;
        Ok(Stored {
            length: self.length,
            sha256: upper_hex(&self.sha256.finalize()),
        })
    }
}

impl Write for PartSink {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let room = PART_BYTES - self.buffer.len();
        let taken = &bytes[..bytes.len().min(room)];
        self.sha256.update(taken);
        self.length += taken.len() as u64;
        self.buffer.extend_from_slice(taken);
        if self.buffer.len() == PART_BYTES {
            let part = std::mem::replace(&mut self.buffer, Vec::with_capacity(PART_BYTES));
            self.send(Piece::Part(part))?;
        }
        Ok(taken.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Targets {
    /// The floor for the benchmarks: `path` uploaded to `key` as it is, a plain object_store
    /// multipart upload in the same parts, with no hashing, encoding or create-only check.
    /// Returns the bytes sent.
    pub fn plain_upload(
        &self,
        target: &str,
        key: &str,
        path: &std::path::Path,
    ) -> anyhow::Result<u64> {
        let target = self
            .find(target)
            .ok_or_else(|| anyhow::anyhow!("no remote target is named {target:?}"))?;
        let location = super::keys::object_path(key).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let mut file = std::fs::File::open(path)?;
        let store = Arc::clone(&target.store);
        let sent = self.block_on(async move {
            let upload = store.put_multipart(&location).await?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
            let mut sent = 0;
            loop {
                writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
                let mut part = Vec::with_capacity(PART_BYTES);
                // A blocking read on a runtime thread: acceptable for a measurement only.
                let n = (&mut file).take(PART_BYTES as u64).read_to_end(&mut part)?;
                if n == 0 {
                    writer.finish().await?;
                    return anyhow::Ok(sent);
                }
                sent += n as u64;
                writer.put(Bytes::from(part));
            }
        });
        sent.ok_or_else(|| anyhow::anyhow!("no remote target is configured"))?
    }
}

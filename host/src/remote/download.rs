//! `get` and `get-file`: objects streamed from the target's runtime to the calling thread
//! through a bounded channel, hashed as received, decoded, and written to a temporary of
//! the backup directory while its digests are computed.

use std::io::{self, Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::sync::{mpsc, oneshot};

use super::encoding::{HashingReader, Transport, decoder, read_failure};
use super::targets::{Target, Targets};
use super::upload::not_configured;
use crate::bindings::litegraph::backup::remote::Download;
use crate::bindings::{Error, FileDigests};
use crate::digests::digests;
use crate::monitor::Progress;
use crate::monitor::progress::Pass;
use crate::store::{BackupDir, SMALL_FILE_BYTES, Temporary};

/// Received chunks waiting for the decoder: bounds memory to a few network chunks.
const CHUNKS_WAITING: usize = 8;

impl Targets {
    /// A small object's whole content.
    pub(crate) fn get_small(
        &self,
        target: &Target,
        key: &str,
        path: Path,
    ) -> Result<Vec<u8>, Error> {
        let store = Arc::clone(&target.store);
        let fetched = self
            .block_on(async move {
                let object = store.get(&path).await?;
                if object.meta.size > SMALL_FILE_BYTES {
                    return Ok(None);
                }
                object.bytes().await.map(Some)
            })
            .ok_or_else(not_configured)?
            .map_err(|e| target.failed("download", key, e))?;
        match fetched {
            Some(bytes) if bytes.len() as u64 <= SMALL_FILE_BYTES => Ok(bytes.to_vec()),
            _ => Err(Error::Io(format!(
                "{}: {:?} is larger than {SMALL_FILE_BYTES} bytes: not a small object",
                target.shown,
                target.full_key(key)
            ))),
        }
    }

    /// Downloads `key`, decodes it into the local copy's temporary and reports what was
    /// received.
    pub(crate) fn get_file(
        &self,
        target: &Target,
        key: &str,
        path: Path,
        encoding: &[String],
        LocalCopy {
            backups,
            temporary,
            progress,
        }: LocalCopy<'_>,
    ) -> Result<Download, Error> {
        let handle = self.handle().ok_or_else(not_configured)?;
        let (chunks, received) = mpsc::channel(CHUNKS_WAITING);
        let (length, stored_length) = oneshot::channel();
        let receiving = handle.spawn(receive(Arc::clone(&target.store), path, length, chunks));
        // The first answer says whether there is such an object at all.
        let opened = ChunkReader::open(received, target, key)?;
        // Sent before the first answer; 0 (a pass of unknown size) if the task is gone.
        let total = stored_length.blocking_recv().unwrap_or(0);
        let downloading = Pass::start(progress, "downloading", total);
        let mut stored = HashingReader::new(downloading.reader(opened));
        let file = backups.open_for_writing(temporary.name())?;
        let decoded = digest_into(decoder(target, encoding, &mut stored)?, file)?;
        // Whatever the decoders left unread (nothing, for a sound object) is still part of
        // what was stored and hashed.
        io::copy(&mut stored, &mut io::sink()).map_err(read_failure)?;
        let (stored_length, stored_sha256) = stored.finish();
        receiving.abort();
        temporary.sync().map_err(|e| {
            Error::Io(format!(
                "cannot write {}: {e}",
                backups.path().join(temporary.name()).display()
            ))
        })?;
        Ok(Download {
            name: temporary.name().to_owned(),
            length: decoded.0,
            digests: decoded.1,
            stored_length,
            stored_sha256,
        })
    }
}

/// Where a download goes: a temporary of the backup directory, and where its progress is
/// shown.
pub(crate) struct LocalCopy<'a> {
    pub(crate) backups: &'a BackupDir,
    pub(crate) temporary: &'a Temporary,
    pub(crate) progress: &'a dyn Progress,
}

/// Writes the decoded bytes to `file` while digesting them in one pass.
fn digest_into(decoded: impl Read, file: std::fs::File) -> Result<(u64, FileDigests), Error> {
    let mut writing = WritingReader {
        inner: decoded,
        file,
        length: 0,
    };
    let d = digests(&mut writing).map_err(read_failure)?;
    Ok((
        writing.length,
        FileDigests {
            md5: d.md5,
            sha1: d.sha1,
            sha256: d.sha256,
        },
    ))
}

/// Sends the object's length into `length`, then streams its bytes into `chunks`; stops
/// when the reader is gone.
async fn receive(
    store: Arc<dyn ObjectStore>,
    path: Path,
    length: oneshot::Sender<u64>,
    chunks: mpsc::Sender<Result<Bytes, object_store::Error>>,
) {
    let mut stream = match store.get(&path).await {
        Ok(object) => {
            let _ = length.send(object.meta.size);
            object.into_stream()
        }
        Err(e) => {
            let _ = chunks.send(Err(e)).await;
            return;
        }
    };
    while let Some(chunk) = stream.next().await {
        let failed = chunk.is_err();
        if chunks.send(chunk).await.is_err() || failed {
            return;
        }
    }
}

/// The received chunks as a `Read`; a transport failure is marked as such.
struct ChunkReader<'a> {
    received: mpsc::Receiver<Result<Bytes, object_store::Error>>,
    current: Bytes,
    target: &'a Target,
    key: &'a str,
}

impl<'a> ChunkReader<'a> {
    /// Waits for the first answer: `not-found`, a refusal, or the first bytes.
    fn open(
        mut received: mpsc::Receiver<Result<Bytes, object_store::Error>>,
        target: &'a Target,
        key: &'a str,
    ) -> Result<ChunkReader<'a>, Error> {
        let current = match received.blocking_recv() {
            None => Bytes::new(),
            Some(first) => first.map_err(|e| target.failed("download", key, e))?,
        };
        Ok(ChunkReader {
            received,
            current,
            target,
            key,
        })
    }
}

impl Read for ChunkReader<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.received.blocking_recv() {
                None => return Ok(0),
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => {
                    return Err(Transport::into_io(
                        self.target.failed("download", self.key, e),
                    ));
                }
            }
        }
        let n = buffer.len().min(self.current.len());
        buffer[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Writes what it reads to a file: the decoded content lands on disk as it is digested.
struct WritingReader<R> {
    inner: R,
    file: std::fs::File,
    length: u64,
}

impl<R: Read> Read for WritingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buffer)?;
        self.file.write_all(&buffer[..n]).map_err(|e| {
            Transport::into_io(Error::Io(format!("cannot write the download: {e}")))
        })?;
        self.length += n as u64;
        Ok(n)
    }
}

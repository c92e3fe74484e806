//! The encodings a target applies on the way out (zstd, then age) and their undoing on the
//! way in, as streaming `Write`/`Read` chains: constant memory whatever the file's size.

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

use super::targets::Target;
use super::upload::{PartSink, Stored};
use crate::bindings::Error;
use crate::digests::upper_hex;

/// Bytes read from the source at a time.
const READ_BYTES: usize = 1 << 20;

/// What an encoding pass read and stored.
pub(crate) struct Encoded {
    pub(crate) source_length: u64,
    pub(crate) source_sha256: String,
    pub(crate) stored: Stored,
}

/// Reads `source` to its end, hashing it, and writes it encoded as the target says into
/// `sink`, which is finished (its last piece sent) only when everything succeeded.
pub(crate) fn encode(
    target: &Target,
    mut source: impl Read,
    sink: PartSink,
) -> io::Result<Encoded> {
    let level = target.config.zstd_level;
    if level.is_none() && target.recipients.is_empty() {
        // Stored as it is: the sink's digest is the source's, and one SHA-256 pass is
        // enough.
        let stored = copy(&mut source, sink)?.finish()?;
        return Ok(Encoded {
            source_length: stored.length,
            source_sha256: stored.sha256.clone(),
            stored,
        });
    }
    let mut source = HashingReader::new(source);
    let recipients = || target.recipients.iter().map(|r| r as &dyn age::Recipient);
    let encrypt = |sink: PartSink| {
        age::Encryptor::with_recipients(recipients())
            .map_err(io::Error::other)?
            .wrap_output(sink)
    };
    let sink = match (level, target.recipients.is_empty()) {
        (Some(level), true) => copy(&mut source, zstd::Encoder::new(sink, level)?)?.finish()?,
        // Encrypted only (the plain case returned above).
        (None, _) => copy(&mut source, encrypt(sink)?)?.finish()?,
        (Some(level), false) => copy(&mut source, zstd::Encoder::new(encrypt(sink)?, level)?)?
            .finish()?
            .finish()?,
    };
    let (source_length, source_sha256) = source.finish();
    Ok(Encoded {
        source_length,
        source_sha256,
        stored: sink.finish()?,
    })
}

/// Copies everything, handing the writer back to be finished.
fn copy<W: Write>(source: &mut impl Read, mut sink: W) -> io::Result<W> {
    let mut buffer = vec![0; READ_BYTES];
    loop {
        match source.read(&mut buffer) {
            Ok(0) => return Ok(sink),
            Ok(n) => sink.write_all(&buffer[..n])?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// A reader that counts and hashes what passes through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    sha256: Sha256,
    length: u64,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> HashingReader<R> {
        HashingReader {
            inner,
            sha256: Sha256::new(),
            length: 0,
        }
    }

    /// The length and SHA-256 (uppercase hex) of what was read.
    pub(crate) fn finish(self) -> (u64, String) {
        (self.length, upper_hex(&self.sha256.finalize()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buffer)?;
        self.sha256.update(&buffer[..n]);
        self.length += n as u64;
        Ok(n)
    }
}

/// The chain that undoes `encoding` (applied in order on the way out, so undone in
/// reverse), reading the stored bytes from `stored`.
pub(crate) fn decoder<'a>(
    target: &'a Target,
    encoding: &[String],
    stored: impl Read + 'a,
) -> Result<Box<dyn Read + 'a>, Error> {
    let mut chain: Box<dyn Read + 'a> = Box::new(stored);
    for name in encoding.iter().rev() {
        chain = match name.as_str() {
            "zstd" => Box::new(
                zstd::Decoder::new(chain)
                    .map_err(|e| Error::Io(format!("cannot start zstd: {e}")))?,
            ),
            "age" => decrypt(target, chain)?,
            other => {
                return Err(Error::NotPermitted(format!(
                    "the host does not know the encoding {other:?}"
                )));
            }
        };
    }
    Ok(chain)
}

/// Refuses an encoding the host does not know, before anything is downloaded.
pub(crate) fn check_known(encoding: &[String]) -> Result<(), Error> {
    match encoding.iter().find(|e| !KNOWN.contains(&e.as_str())) {
        Some(other) => Err(Error::NotPermitted(format!(
            "the host does not know the encoding {other:?}"
        ))),
        None => Ok(()),
    }
}

/// The encodings [`decoder`] undoes.
const KNOWN: [&str; 2] = ["zstd", "age"];

/// Opens the age stream with the target's identities.
fn decrypt<'a>(
    target: &'a Target,
    stored: Box<dyn Read + 'a>,
) -> Result<Box<dyn Read + 'a>, Error> {
    let name = &target.config.name;
    if target.identities.is_empty() {
        return Err(Error::NotPermitted(format!(
            "no age identity configured for target {name}: set age_identity_file in its \
             [[remote]] table (or --age-identity)"
        )));
    }
    let identities = target
        .identities
        .iter()
        .map(|i| i.as_ref() as &dyn age::Identity);
    age::Decryptor::new(stored)
        .and_then(|decryptor| decryptor.decrypt(identities))
        .map(|reader| Box::new(reader) as Box<dyn Read + 'a>)
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => Error::NotPermitted(format!(
                "none of the identities configured for target {name} decrypts it"
            )),
            age::DecryptError::Io(e) => read_failure(e),
            other => Error::Corrupt(format!("not a readable age file: {other}")),
        })
}

/// A failure while reading through a decoding chain: the transport's or the disk's own
/// (marked by [`Transport`]), else the bytes themselves (a failed authentication, a
/// truncated or garbled stream).
pub(crate) fn read_failure(error: io::Error) -> Error {
    match error.get_ref().and_then(|e| e.downcast_ref::<Transport>()) {
        Some(Transport(failure)) => failure.clone(),
        None => Error::Corrupt(format!("cannot decode it: {error}")),
    }
}

/// A failure that is not the stored bytes' fault, carried through `io::Error` so that the
/// decoders pass it up unchanged.
#[derive(Debug)]
pub(crate) struct Transport(pub(crate) Error);

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl std::error::Error for Transport {}

impl Transport {
    pub(crate) fn into_io(error: Error) -> io::Error {
        io::Error::other(Transport(error))
    }
}

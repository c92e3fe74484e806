//! MD5, SHA-1 and SHA-256 of a file in a single read pass. MD5 (the slowest of the three)
//! has a thread to itself, SHA-1 and SHA-256 share another, and the caller's thread reads:
//! the three together take about as long as MD5 alone.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::thread;

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Bytes read at a time; each chunk is shared by both hashing threads.
const CHUNK_BYTES: usize = 1 << 20;
/// Buffers in circulation: memory stays at a few MiB whatever the file size, and buffers are
/// reused rather than allocated (and faulted in) for every chunk.
const BUFFERS: usize = 8;

type Chunk = Arc<Vec<u8>>;

/// The three digests of some bytes, uppercase hexadecimal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub md5: String,
    pub sha1: String,
    pub sha256: String,
}

/// Reads `source` to its end once and digests it.
pub fn digests(mut source: impl Read) -> io::Result<Digests> {
    thread::scope(|scope| {
        let (returned_tx, returned) = channel::<Chunk>();
        let (md5_tx, md5_rx) = sync_channel::<Chunk>(BUFFERS);
        let (sha_tx, sha_rx) = sync_channel::<Chunk>(BUFFERS);
        let md5 = {
            let returned_tx = returned_tx.clone();
            scope.spawn(move || {
                let mut md5 = Md5::new();
                consume(md5_rx, &returned_tx, |bytes| md5.update(bytes));
                upper_hex(&md5.finalize())
            })
        };
        let shas = scope.spawn(move || {
            let (mut sha1, mut sha256) = (Sha1::new(), Sha256::new());
            consume(sha_rx, &returned_tx, |bytes| {
                sha1.update(bytes);
                sha256.update(bytes);
            });
            (upper_hex(&sha1.finalize()), upper_hex(&sha256.finalize()))
        });
        let read = feed(&mut source, [md5_tx, sha_tx], &returned);
        let md5 = md5.join().expect("hashing never panics");
        let (sha1, sha256) = shas.join().expect("hashing never panics");
        read?;
        Ok(Digests { md5, sha1, sha256 })
    })
}

/// Hashes every chunk it receives, then hands the chunk back for reuse.
fn consume(chunks: Receiver<Chunk>, returned: &Sender<Chunk>, mut hash: impl FnMut(&[u8])) {
    for chunk in chunks {
        hash(&chunk);
        // The reader may be gone (a read error); the chunk is then simply dropped.
        let _ = returned.send(chunk);
    }
}

/// Sends every chunk of `source` to both hashers; dropping the senders ends them.
fn feed(
    source: &mut impl Read,
    hashers: [SyncSender<Chunk>; 2],
    returned: &Receiver<Chunk>,
) -> io::Result<()> {
    let mut allocated = 0;
    loop {
        let mut buffer = next_buffer(returned, &mut allocated);
        buffer.clear();
        if source.take(CHUNK_BYTES as u64).read_to_end(&mut buffer)? == 0 {
            return Ok(());
        }
        let chunk = Arc::new(buffer);
        for hasher in &hashers {
            hasher
                .send(Arc::clone(&chunk))
                .expect("hashers live until their sender is dropped");
        }
    }
}

/// A buffer to read into: one both hashers are done with, or a new one while fewer than
/// [`BUFFERS`] exist. Each chunk comes back once from each hasher; the second return finds
/// it no longer shared.
fn next_buffer(returned: &Receiver<Chunk>, allocated: &mut usize) -> Vec<u8> {
    loop {
        let chunk = if *allocated < BUFFERS {
            match returned.try_recv() {
                Ok(chunk) => chunk,
                Err(_) => {
                    *allocated += 1;
                    return Vec::with_capacity(CHUNK_BYTES);
                }
            }
        } else {
            returned
                .recv()
                .expect("every buffer is out with a hasher, which will return it")
        };
        if let Ok(buffer) = Arc::try_unwrap(chunk) {
            return buffer;
        }
    }
}

/// Uppercase hexadecimal without separators, as LiteGraph's `Convert.ToHexString`.
pub fn upper_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        let empty = digests(&b""[..]).expect("in memory");
        assert_eq!(empty.md5, "D41D8CD98F00B204E9800998ECF8427E");
        assert_eq!(empty.sha1, "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709");
        assert_eq!(
            empty.sha256,
            "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
        );
        let abc = digests(&b"abc"[..]).expect("in memory");
        assert_eq!(abc.md5, "900150983CD24FB0D6963F7D28E17F72");
        assert_eq!(abc.sha1, "A9993E364706816ABA3E25717850C26C9CD0D89D");
        assert_eq!(
            abc.sha256,
            "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
        );
    }

    #[test]
    fn chunking_does_not_change_the_result() {
        let bytes: Vec<u8> = (0..(3 * CHUNK_BYTES + 12_345))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let streamed = digests(&bytes[..]).expect("in memory");
        assert_eq!(streamed.sha256, upper_hex(&Sha256::digest(&bytes)));
        assert_eq!(streamed.md5, upper_hex(&Md5::digest(&bytes)));
        assert_eq!(streamed.sha1, upper_hex(&Sha1::digest(&bytes)));
    }

    #[test]
    fn read_errors_are_reported() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let error = digests(Failing).expect_err("the read fails");
        assert_eq!(error.to_string(), "disk on fire");
    }
}

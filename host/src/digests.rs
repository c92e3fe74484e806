//! MD5, SHA-1 and SHA-256 of a file in a single read pass, each digest on its own thread, so
//! that the three together take about as long as the slowest one alone.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread;

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Bytes read at a time; each chunk is shared by the three hashing threads.
const CHUNK_BYTES: usize = 1 << 20;
/// Chunks in flight per hashing thread: bounds memory to a few MiB whatever the file size.
const CHUNKS_IN_FLIGHT: usize = 4;

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
        let (md5_tx, md5_rx) = sync_channel(CHUNKS_IN_FLIGHT);
        let (sha1_tx, sha1_rx) = sync_channel(CHUNKS_IN_FLIGHT);
        let (sha256_tx, sha256_rx) = sync_channel(CHUNKS_IN_FLIGHT);
        let md5 = scope.spawn(move || hash::<Md5>(md5_rx));
        let sha1 = scope.spawn(move || hash::<Sha1>(sha1_rx));
        let sha256 = scope.spawn(move || hash::<Sha256>(sha256_rx));
        let read = feed(&mut source, [md5_tx, sha1_tx, sha256_tx]);
        let joined = [md5, sha1, sha256].map(|hasher| hasher.join().expect("hashing never panics"));
        read?;
        let [md5, sha1, sha256] = joined;
        Ok(Digests { md5, sha1, sha256 })
    })
}

/// Sends every chunk of `source` to each hasher; dropping the senders ends them.
fn feed(source: &mut impl Read, hashers: [SyncSender<Arc<Vec<u8>>>; 3]) -> io::Result<()> {
    loop {
        let mut chunk = Vec::with_capacity(CHUNK_BYTES);
        let n = source.take(CHUNK_BYTES as u64).read_to_end(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        let chunk = Arc::new(chunk);
        for hasher in &hashers {
            hasher
                .send(Arc::clone(&chunk))
                .expect("hashers live until their sender is dropped");
        }
    }
}

fn hash<D: Digest>(chunks: Receiver<Arc<Vec<u8>>>) -> String {
    let mut digest = D::new();
    for chunk in chunks {
        digest.update(chunk.as_slice());
    }
    upper_hex(&digest.finalize())
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

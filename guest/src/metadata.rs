//! What we record about a backup, and where.
//!
//! Each backup `name` has a sidecar file, `.lgb-<SHA-256 of name, hex>.meta`, written once
//! when the backup is made (or when a backup copied in by hand is first seen, or when its
//! sidecar could not be read or decoded: then it is written again). The sidecar's
//! name has a fixed length whatever the backup's name, and its leading `.` keeps it out of
//! listings. It is a few lines of text:
//!
//! ```text
//! litegraph-backup-metadata 1
//! filename<TAB>nightly.db
//! length<TAB>352256
//! md5<TAB>EF2A...
//! sha1<TAB>7462...
//! sha256<TAB>584F...
//! created<TAB>1748316670.904886000
//! birth<TAB>1748316670.909897123      (or `-` when the filesystem keeps no birth time)
//! end
//! ```
//!
//! `birth` is the file's birth time when the record was written. A file that was deleted and
//! replaced by hand has a new birth time, so its old record no longer applies to it; a file
//! changed in place keeps its birth time, so its record keeps the digests it had when the
//! backup was made, which is what lets tampering be detected.

use crate::litegraph::backup::types::{Datetime, FileDigests};
use sha2::{Digest, Sha256};

const MAGIC: &str = "litegraph-backup-metadata 1";

/// The recorded facts about one backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub filename: String,
    pub length: u64,
    pub digests: FileDigests,
    pub created: Datetime,
    pub birth: Option<Datetime>,
}

/// The sidecar file that holds the metadata of backup `name`.
pub fn sidecar_name(name: &str) -> String {
    let hash = Sha256::digest(name.as_bytes());
    let mut sidecar = String::with_capacity(6 + 64 + 5);
    sidecar.push_str(".lgb-");
    for byte in hash {
        sidecar.push_str(&format!("{byte:02x}"));
    }
    sidecar.push_str(".meta");
    sidecar
}

/// Whether `name` is a sidecar's name (of some backup).
pub fn is_sidecar(name: &str) -> bool {
    name.len() == SIDECAR_LENGTH
        && name.starts_with(".lgb-")
        && name.ends_with(".meta")
        && name[5..69].bytes().all(|b| b.is_ascii_hexdigit())
}

const SIDECAR_LENGTH: usize = 5 + 64 + 5;

impl Metadata {
    /// The sidecar's content.
    pub fn encode(&self) -> Vec<u8> {
        let birth = self.birth.map_or_else(|| "-".to_owned(), format_datetime);
        format!(
            "{MAGIC}\nfilename\t{}\nlength\t{}\nmd5\t{}\nsha1\t{}\nsha256\t{}\ncreated\t{}\nbirth\t{}\nend\n",
            self.filename,
            self.length,
            self.digests.md5,
            self.digests.sha1,
            self.digests.sha256,
            format_datetime(self.created),
            birth,
        )
        .into_bytes()
    }

    /// Parses a sidecar; `None` for anything that is not a complete, well-formed record
    /// (a torn or foreign file is treated as no record at all).
    pub fn decode(bytes: &[u8]) -> Option<Metadata> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut lines = text.lines();
        if lines.next()? != MAGIC {
            return None;
        }
        let mut field = |key: &str| -> Option<&str> {
            let (k, v) = lines.next()?.split_once('\t')?;
            (k == key).then_some(v)
        };
        let filename = field("filename")?.to_owned();
        let length = field("length")?.parse().ok()?;
        let md5 = hex_digest(field("md5")?, 32)?;
        let sha1 = hex_digest(field("sha1")?, 40)?;
        let sha256 = hex_digest(field("sha256")?, 64)?;
        let created = parse_datetime(field("created")?)?;
        let birth = match field("birth")? {
            "-" => None,
            value => Some(parse_datetime(value)?),
        };
        (lines.next()? == "end").then_some(())?;
        Some(Metadata {
            filename,
            length,
            digests: FileDigests { md5, sha1, sha256 },
            created,
            birth,
        })
    }
}

fn hex_digest(value: &str, digits: usize) -> Option<String> {
    let well_formed = value.len() == digits
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b));
    well_formed.then(|| value.to_owned())
}

fn format_datetime(t: Datetime) -> String {
    format!("{}.{:09}", t.seconds, t.nanoseconds)
}

fn parse_datetime(value: &str) -> Option<Datetime> {
    let (seconds, nanoseconds) = value.split_once('.')?;
    let nanoseconds: u32 = nanoseconds.parse().ok()?;
    (nanoseconds < 1_000_000_000).then_some(())?;
    Some(Datetime {
        seconds: seconds.parse().ok()?,
        nanoseconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Metadata {
        Metadata {
            filename: "my backup.db".into(),
            length: 352_256,
            digests: FileDigests {
                md5: "EF2A390E654BCFE3052DAF7364037DBE".into(),
                sha1: "74625881C00FEF2E654AB9B800A0C8E23CC7CBB0".into(),
                sha256: "584F2D85362F7E7B9755DF7A363120E6FF8F93A162E918E7085C795021D14DCF".into(),
            },
            created: Datetime {
                seconds: 1_748_316_670,
                nanoseconds: 904_886_000,
            },
            birth: None,
        }
    }

    #[test]
    fn round_trips() {
        let with_birth = Metadata {
            birth: Some(Datetime {
                seconds: 5,
                nanoseconds: 7,
            }),
            ..sample()
        };
        for metadata in [sample(), with_birth] {
            assert_eq!(Metadata::decode(&metadata.encode()), Some(metadata));
        }
    }

    #[test]
    fn torn_or_foreign_records_are_ignored() {
        let full = sample().encode();
        for cut in 0..full.len() - 1 {
            // Every cut short of the final newline loses part of the `end` line at least.
            assert_eq!(Metadata::decode(&full[..cut]), None, "cut at {cut}");
        }
        let lowercase = String::from_utf8(full.clone())
            .unwrap()
            .replace("EF2A", "ef2a");
        assert_eq!(Metadata::decode(lowercase.as_bytes()), None);
        assert_eq!(Metadata::decode(b"\xff\xfe"), None);
    }

    #[test]
    fn sidecar_names_are_internal_fixed_length_and_distinct() {
        let a = sidecar_name("a.db");
        let long = sidecar_name(&"x".repeat(255));
        assert!(a.starts_with(".lgb-") && a.ends_with(".meta"));
        assert_eq!(a.len(), long.len());
        assert!(a.len() < 255);
        assert_ne!(a, sidecar_name("b.db"));
        assert!(crate::names::check(&a).is_err());
        assert!(is_sidecar(&a) && is_sidecar(&long));
        for other in [
            "x.db",
            ".lgb-1-2-3.tmp",
            ".lgb-operation.lock",
            ".lgb-.meta",
        ] {
            assert!(!is_sidecar(other), "{other}");
        }
    }
}

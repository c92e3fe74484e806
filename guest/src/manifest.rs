//! Where a backup lives on a remote target, and the manifest that says it is complete.
//!
//! A target holds, for each backup `name`:
//! - `data/<name>/<pushed>.db[.zst][.age]`: its bytes, encoded as the target encodes them,
//!   in a fresh object per push attempt (`<pushed>` is the attempt's UTC time to the
//!   nanosecond, `20261130T211714.123456789Z`), so that an attempt never meets the object
//!   of another;
//! - `manifests/<name>.manifest`: written last, create-only. A backup exists on the target
//!   when, and only when, its manifest does; objects no manifest names are leftovers of
//!   interrupted attempts.
//!
//! The manifest is a few lines of text, like the local sidecar (see `metadata`):
//!
//! ```text
//! litegraph-backup-manifest 1
//! filename<TAB>nightly.db
//! length<TAB>352256
//! md5<TAB>EF2A...
//! sha1<TAB>7462...
//! sha256<TAB>584F...
//! created<TAB>1748316670.904886000
//! origin<TAB>default-name
//! key<TAB>data/nightly.db/20261130T211714.123456789Z.db.zst.age
//! encoding<TAB>zstd age                (or `-`)
//! stored-length<TAB>120034
//! stored-sha256<TAB>9A1B...
//! pushed<TAB>1764537434.123456789
//! end
//! ```

use crate::clock::Civil;
use crate::litegraph::backup::types::{Datetime, FileDigests};
use crate::metadata::{Fields, Origin, Recorded, format_datetime, hex_digest, parse_datetime};

const MAGIC: &str = "litegraph-backup-manifest";
const VERSION: u32 = 1;
/// Where manifests are kept, and how their keys end.
pub const MANIFESTS: &str = "manifests/";
const MANIFEST_SUFFIX: &str = ".manifest";
/// Where the backups' bytes are kept.
pub const DATA: &str = "data/";

/// What a target's manifest records about one backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub filename: String,
    pub length: u64,
    pub digests: FileDigests,
    pub created: Datetime,
    pub origin: Origin,
    pub key: String,
    pub encoding: Vec<String>,
    pub stored_length: u64,
    pub stored_sha256: String,
    pub pushed: Datetime,
}

/// The manifest's key of backup `name`.
pub fn manifest_key(name: &str) -> String {
    format!("{MANIFESTS}{name}{MANIFEST_SUFFIX}")
}

/// The backup a manifest key names, for keys that are manifests' keys.
pub fn named_by_manifest_key(key: &str) -> Option<&str> {
    key.strip_prefix(MANIFESTS)?
        .strip_suffix(MANIFEST_SUFFIX)
        .filter(|name| !name.is_empty() && !name.contains('/'))
}

/// The prefix under which every attempt at pushing `name` puts its bytes.
pub fn data_prefix(name: &str) -> String {
    format!("{DATA}{name}/")
}

/// A fresh key for one attempt at pushing `name`, begun at `pushed`, encoded as
/// `encoding` says (the extensions tell a person what to run: `.zst` zstd, `.age` age).
pub fn data_key(name: &str, pushed: Datetime, encoding: &[String]) -> String {
    let civil = Civil::from_unix_seconds(pushed.seconds);
    let mut key = format!(
        "{}{:04}{:02}{:02}T{:02}{:02}{:02}.{:09}Z.db",
        data_prefix(name),
        civil.year,
        civil.month,
        civil.day,
        civil.hour,
        civil.minute,
        civil.second,
        pushed.nanoseconds
    );
    for step in encoding {
        key.push('.');
        key.push_str(match step.as_str() {
            "zstd" => "zst",
            other => other,
        });
    }
    key
}

impl Manifest {
    pub fn encode(&self) -> Vec<u8> {
        let encoding = match self.encoding.is_empty() {
            true => "-".to_owned(),
            false => self.encoding.join(" "),
        };
        format!(
            "{MAGIC} {VERSION}\nfilename\t{}\nlength\t{}\nmd5\t{}\nsha1\t{}\nsha256\t{}\ncreated\t{}\norigin\t{}\nkey\t{}\nencoding\t{}\nstored-length\t{}\nstored-sha256\t{}\npushed\t{}\nend\n",
            self.filename,
            self.length,
            self.digests.md5,
            self.digests.sha1,
            self.digests.sha256,
            format_datetime(self.created),
            self.origin.label(),
            self.key,
            encoding,
            self.stored_length,
            self.stored_sha256,
            format_datetime(self.pushed),
        )
        .into_bytes()
    }

    /// Parses a manifest; `None` for anything that is not a complete, well-formed one.
    pub fn decode(bytes: &[u8]) -> Option<Manifest> {
        let (version, mut fields) = Fields::open(bytes, MAGIC)?;
        (version == VERSION.to_string()).then_some(())?;
        let Recorded {
            filename,
            length,
            digests,
            created,
        } = Recorded::read(&mut fields)?;
        let origin = Origin::parse(fields.next("origin")?)?;
        let key = fields.next("key")?.to_owned();
        let encoding = match fields.next("encoding")? {
            "-" => Vec::new(),
            steps => steps.split(' ').map(str::to_owned).collect(),
        };
        let stored_length = fields.next("stored-length")?.parse().ok()?;
        let stored_sha256 = hex_digest(fields.next("stored-sha256")?, 64)?;
        let pushed = parse_datetime(fields.next("pushed")?)?;
        fields.end()?;
        // A manifest names its own backup's data, nothing else on the target.
        key.starts_with(&data_prefix(&filename)).then_some(())?;
        Some(Manifest {
            filename,
            length,
            digests,
            created,
            origin,
            key,
            encoding,
            stored_length,
            stored_sha256,
            pushed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        let pushed = Datetime {
            seconds: 1_764_537_434,
            nanoseconds: 123_456_789,
        };
        let encoding = vec!["zstd".to_owned(), "age".to_owned()];
        Manifest {
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
            origin: Origin::Named,
            key: data_key("my backup.db", pushed, &encoding),
            encoding,
            stored_length: 120_034,
            stored_sha256: "9A1B2D85362F7E7B9755DF7A363120E6FF8F93A162E918E7085C795021D14DCF"
                .into(),
            pushed,
        }
    }

    #[test]
    fn a_manifest_reads_back_as_written() {
        let manifest = sample();
        assert_eq!(Manifest::decode(&manifest.encode()), Some(manifest));
    }

    #[test]
    fn data_keys_say_when_and_how_they_were_encoded() {
        assert_eq!(
            sample().key,
            "data/my backup.db/20251130T211714.123456789Z.db.zst.age"
        );
        assert_eq!(
            data_key(
                "a.db",
                Datetime {
                    seconds: 0,
                    nanoseconds: 5
                },
                &[]
            ),
            "data/a.db/19700101T000000.000000005Z.db"
        );
    }

    #[test]
    fn a_torn_or_foreign_manifest_is_no_manifest() {
        let bytes = sample().encode();
        for cut in [0, 10, bytes.len() / 2, bytes.len() - 4] {
            assert_eq!(Manifest::decode(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut elsewhere = sample();
        elsewhere.key = "data/other.db/x.db".into();
        assert_eq!(Manifest::decode(&elsewhere.encode()), None);
    }

    #[test]
    fn manifest_keys_name_their_backup() {
        assert_eq!(manifest_key("a b.db"), "manifests/a b.db.manifest");
        assert_eq!(
            named_by_manifest_key("manifests/a b.db.manifest"),
            Some("a b.db")
        );
        assert_eq!(named_by_manifest_key("manifests/x/a.db.manifest"), None);
        assert_eq!(named_by_manifest_key("data/a.db.manifest"), None);
    }
}

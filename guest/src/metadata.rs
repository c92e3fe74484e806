//! What we record about a backup, and where.
//!
//! Each backup `name` has a sidecar file, `.lgb-<SHA-256 of name, hex>.meta`, written when
//! the backup is made (or when a backup copied in by hand is first seen, or when its sidecar
//! could not be read or decoded: then it is written again), and again by each `verify`.
//! The sidecar's name has a fixed length whatever the backup's name, and its leading `.`
//! keeps it out of listings.
//!
//! It is a few lines of text (version 3; the host's `read` and `write` cap it at 64 KiB):
//!
//! ```text
//! litegraph-backup-metadata 3
//! filename<TAB>nightly.db
//! length<TAB>352256
//! md5<TAB>EF2A...
//! sha1<TAB>7462...
//! sha256<TAB>584F...
//! created<TAB>1748316670.904886000
//! birth<TAB>1748316670.909897123      (or `-` when the filesystem keeps no birth time)
//! origin<TAB>default-name             (or `safety-backup`, `named`)
//! verified<TAB>1748320000.000000000 passed   (or `... failed`, or `-` when never verified)
//! drilled<TAB>1748330000.000000000 failed 1234 table nodes: 10 rows in the backup, 9 restored
//! end
//! ```
//!
//! `drilled` is the last drill: when, its outcome, how long it took in milliseconds and, for
//! a failed one, what failed (on one line, shortened); `-` when never drilled. Version 2
//! records have no `drilled` line (never drilled).
//!
//! Version 1 records (written by earlier releases, read still) have no `origin` and
//! `verified` lines: a version 1 record's origin is read from its name (a default or safety
//! backup's timestamped name, or else a person's), and it was never verified.
//!
//! Hand-written rather than serde JSON: serde_json made the component 30% larger (273 ->
//! 354 KB, measured), which every CLI run and test pays in compile time, for a record only
//! this policy reads.
//!
//! `birth` is the file's birth time when the record was written. A file that was deleted and
//! replaced by hand has a new birth time, so its old record no longer applies to it; a file
//! changed in place keeps its birth time, so its record keeps the digests it had when the
//! backup was made, which is what lets tampering be detected.

use crate::litegraph::backup::types::{Datetime, FileDigests};
use crate::names;
use sha2::{Digest, Sha256};

/// The first line of a record, before its version.
const MAGIC: &str = "litegraph-backup-metadata";
/// The version written.
const VERSION: u32 = 3;
/// The longest failure summary a record keeps of a drill, in bytes.
const SUMMARY_BYTES: usize = 1000;

/// The recorded facts about one backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub filename: String,
    pub length: u64,
    pub digests: FileDigests,
    pub created: Datetime,
    pub birth: Option<Datetime>,
    pub origin: Origin,
    pub last_verification: Option<LastVerification>,
    pub last_drill: Option<LastDrill>,
}

/// How a backup came to be: whether its name was the policy's choice (and so whether
/// retention rules apply to it by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Made without a name: `litegraph-backup-YYYYMMDD-HHMMSS[-n].db`.
    DefaultName,
    /// The copy of the live database a restore took first: `pre-restore-...`.
    SafetyBackup,
    /// Named by a person.
    Named,
}

impl Origin {
    /// The origin a name tells of, for a backup with no record of it: a timestamped name
    /// is taken for the policy's, anything else for a person's.
    pub fn of_name(name: &str) -> Origin {
        match names::timestamped_prefix(name) {
            Some(names::BACKUP_PREFIX) => Origin::DefaultName,
            Some(_) => Origin::SafetyBackup,
            None => Origin::Named,
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Origin::DefaultName => "default-name",
            Origin::SafetyBackup => "safety-backup",
            Origin::Named => "named",
        }
    }

    pub(crate) fn parse(label: &str) -> Option<Origin> {
        [Origin::DefaultName, Origin::SafetyBackup, Origin::Named]
            .into_iter()
            .find(|origin| origin.label() == label)
    }

    /// Whether retention rules apply to the backup without `include-named`.
    pub fn chosen_by_policy(self) -> bool {
        self != Origin::Named
    }
}

/// The outcome of the last `verify` of a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastVerification {
    pub at: Datetime,
    pub passed: bool,
}

/// The outcome of the last `drill` of a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastDrill {
    pub at: Datetime,
    pub passed: bool,
    pub milliseconds: u64,
    /// What failed, on one line and shortened; empty when it passed.
    pub summary: String,
}

impl LastDrill {
    /// A drill's record: `problems` in one line of at most [`SUMMARY_BYTES`], control
    /// characters (a line break would end the field) made spaces.
    pub fn new(at: Datetime, milliseconds: u64, problems: &[String]) -> LastDrill {
        let joined = problems.join("; ");
        let mut summary = String::with_capacity(joined.len().min(SUMMARY_BYTES));
        for c in joined.chars() {
            if summary.len() + c.len_utf8() > SUMMARY_BYTES {
                break;
            }
            summary.push(if c.is_control() { ' ' } else { c });
        }
        LastDrill {
            at,
            passed: problems.is_empty(),
            milliseconds,
            summary,
        }
    }

    fn encode(&self) -> String {
        let outcome = if self.passed { "passed" } else { "failed" };
        let mut line = format!(
            "{} {outcome} {}",
            format_datetime(self.at),
            self.milliseconds
        );
        if !self.summary.is_empty() {
            line.push(' ');
            line.push_str(&self.summary);
        }
        line
    }

    fn parse(value: &str) -> Option<LastDrill> {
        let mut parts = value.splitn(4, ' ');
        let at = parse_datetime(parts.next()?)?;
        let passed = match parts.next()? {
            "passed" => true,
            "failed" => false,
            _ => return None,
        };
        let milliseconds = parts.next()?.parse().ok()?;
        let summary = parts.next().unwrap_or("").to_owned();
        Some(LastDrill {
            at,
            passed,
            milliseconds,
            summary,
        })
    }
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
    /// The sidecar's content (version 3).
    pub fn encode(&self) -> Vec<u8> {
        let birth = self.birth.map_or_else(|| "-".to_owned(), format_datetime);
        let verified = self.last_verification.map_or_else(
            || "-".to_owned(),
            |v| {
                let outcome = if v.passed { "passed" } else { "failed" };
                format!("{} {outcome}", format_datetime(v.at))
            },
        );
        let drilled = self
            .last_drill
            .as_ref()
            .map_or_else(|| "-".to_owned(), LastDrill::encode);
        format!(
            "{MAGIC} {VERSION}\nfilename\t{}\nlength\t{}\nmd5\t{}\nsha1\t{}\nsha256\t{}\ncreated\t{}\nbirth\t{}\norigin\t{}\nverified\t{}\ndrilled\t{}\nend\n",
            self.filename,
            self.length,
            self.digests.md5,
            self.digests.sha1,
            self.digests.sha256,
            format_datetime(self.created),
            birth,
            self.origin.label(),
            verified,
            drilled,
        )
        .into_bytes()
    }

    /// Parses a sidecar of version 1, 2 or 3; `None` for anything that is not a complete,
    /// well-formed record (a torn or foreign file, or one of a later version, is treated as
    /// no record at all).
    pub fn decode(bytes: &[u8]) -> Option<Metadata> {
        let (version, mut fields) = Fields::open(bytes, MAGIC)?;
        let version = match version {
            "1" => 1,
            "2" => 2,
            "3" => 3,
            _ => return None,
        };
        let Recorded {
            filename,
            length,
            digests,
            created,
        } = Recorded::read(&mut fields)?;
        let birth = match fields.next("birth")? {
            "-" => None,
            value => Some(parse_datetime(value)?),
        };
        let (origin, last_verification) = if version == 1 {
            (Origin::of_name(&filename), None)
        } else {
            let origin = Origin::parse(fields.next("origin")?)?;
            let verified = match fields.next("verified")? {
                "-" => None,
                value => Some(parse_verification(value)?),
            };
            (origin, verified)
        };
        let last_drill = if version >= 3 {
            match fields.next("drilled")? {
                "-" => None,
                value => Some(LastDrill::parse(value)?),
            }
        } else {
            None
        };
        fields.end()?;
        Some(Metadata {
            filename,
            length,
            digests,
            created,
            birth,
            origin,
            last_verification,
            last_drill,
        })
    }
}

/// A record's `key<TAB>value` lines after its `MAGIC VERSION` line, read in their fixed
/// order up to the closing `end` (the sidecar's and the manifest's format).
pub(crate) struct Fields<'a>(std::str::Lines<'a>);

impl<'a> Fields<'a> {
    /// The version a record of `magic` declares, and its fields; `None` for any other file.
    pub(crate) fn open(bytes: &'a [u8], magic: &str) -> Option<(&'a str, Fields<'a>)> {
        let mut lines = std::str::from_utf8(bytes).ok()?.lines();
        let version = lines.next()?.strip_prefix(magic)?.strip_prefix(' ')?;
        Some((version, Fields(lines)))
    }

    /// The next line's value, when its key is `key`.
    pub(crate) fn next(&mut self, key: &str) -> Option<&'a str> {
        let (k, v) = self.0.next()?.split_once('\t')?;
        (k == key).then_some(v)
    }

    /// The closing line: a record without it is torn.
    pub(crate) fn end(mut self) -> Option<()> {
        (self.0.next()? == "end").then_some(())
    }
}

/// What both records begin with: the backup's name, size, digests and creation time.
pub(crate) struct Recorded {
    pub(crate) filename: String,
    pub(crate) length: u64,
    pub(crate) digests: FileDigests,
    pub(crate) created: Datetime,
}

impl Recorded {
    pub(crate) fn read(fields: &mut Fields) -> Option<Recorded> {
        let filename = fields.next("filename")?.to_owned();
        let length = fields.next("length")?.parse().ok()?;
        let md5 = hex_digest(fields.next("md5")?, 32)?;
        let sha1 = hex_digest(fields.next("sha1")?, 40)?;
        let sha256 = hex_digest(fields.next("sha256")?, 64)?;
        let created = parse_datetime(fields.next("created")?)?;
        Some(Recorded {
            filename,
            length,
            digests: FileDigests { md5, sha1, sha256 },
            created,
        })
    }
}

fn parse_verification(value: &str) -> Option<LastVerification> {
    let (at, outcome) = value.split_once(' ')?;
    let passed = match outcome {
        "passed" => true,
        "failed" => false,
        _ => return None,
    };
    Some(LastVerification {
        at: parse_datetime(at)?,
        passed,
    })
}

pub(crate) fn hex_digest(value: &str, digits: usize) -> Option<String> {
    let well_formed = value.len() == digits
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b));
    well_formed.then(|| value.to_owned())
}

pub(crate) fn format_datetime(t: Datetime) -> String {
    format!("{}.{:09}", t.seconds, t.nanoseconds)
}

pub(crate) fn parse_datetime(value: &str) -> Option<Datetime> {
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
            origin: Origin::Named,
            last_verification: None,
            last_drill: None,
        }
    }

    /// A record as version 1 wrote it.
    fn version_1(m: &Metadata) -> Vec<u8> {
        let birth = m.birth.map_or_else(|| "-".to_owned(), format_datetime);
        format!(
            "{MAGIC} 1\nfilename\t{}\nlength\t{}\nmd5\t{}\nsha1\t{}\nsha256\t{}\ncreated\t{}\nbirth\t{}\nend\n",
            m.filename,
            m.length,
            m.digests.md5,
            m.digests.sha1,
            m.digests.sha256,
            format_datetime(m.created),
            birth,
        )
        .into_bytes()
    }

    #[test]
    fn round_trips() {
        let with_birth = Metadata {
            birth: Some(Datetime {
                seconds: 5,
                nanoseconds: 7,
            }),
            origin: Origin::SafetyBackup,
            ..sample()
        };
        let verified = Metadata {
            origin: Origin::DefaultName,
            last_verification: Some(LastVerification {
                at: Datetime {
                    seconds: 1_748_316_999,
                    nanoseconds: 1,
                },
                passed: false,
            }),
            ..sample()
        };
        let drilled = Metadata {
            last_drill: Some(LastDrill::new(
                Datetime {
                    seconds: 1_748_317_000,
                    nanoseconds: 2,
                },
                1234,
                &["table nodes: 10 rows in the backup, 9 restored".into()],
            )),
            ..sample()
        };
        let drill_passed = Metadata {
            last_drill: Some(LastDrill::new(at_second(1_748_317_001), 5, &[])),
            ..sample()
        };
        for metadata in [sample(), with_birth, verified, drilled, drill_passed] {
            assert_eq!(Metadata::decode(&metadata.encode()), Some(metadata));
        }
    }

    fn at_second(seconds: u64) -> Datetime {
        Datetime {
            seconds,
            nanoseconds: 0,
        }
    }

    #[test]
    fn version_3_adds_the_last_drill() {
        let drilled = Metadata {
            last_drill: Some(LastDrill::new(
                at_second(1_748_330_000),
                1234,
                &[
                    "integrity_check: row 3 missing\nfrom index".into(),
                    "b".into(),
                ],
            )),
            ..sample()
        };
        let text = String::from_utf8(drilled.encode()).unwrap();
        assert!(text.starts_with("litegraph-backup-metadata 3\n"), "{text}");
        assert!(
            text.ends_with(
                "verified\t-\ndrilled\t1748330000.000000000 failed 1234 integrity_check: row 3 missing from index; b\nend\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_drill_summary_is_one_shortened_line() {
        let long = "é".repeat(2000);
        let drill = LastDrill::new(at_second(1), 1, &[long, "x".into()]);
        assert!(drill.summary.len() <= SUMMARY_BYTES);
        assert!(!drill.passed);
        assert!(drill.summary.chars().all(|c| c == 'é'));
    }

    // A sidecar written by version 2 (the last release) must still be read, with its
    // verification outcome.
    #[test]
    fn version_2_records_are_still_read() {
        let written = b"litegraph-backup-metadata 2\nfilename\tmy backup.db\nlength\t352256\nmd5\tEF2A390E654BCFE3052DAF7364037DBE\nsha1\t74625881C00FEF2E654AB9B800A0C8E23CC7CBB0\nsha256\t584F2D85362F7E7B9755DF7A363120E6FF8F93A162E918E7085C795021D14DCF\ncreated\t1748316670.904886000\nbirth\t-\norigin\tnamed\nverified\t1748320000.000000005 passed\nend\n";
        let read = Metadata::decode(written).expect("a version 2 record");
        assert_eq!(read.last_drill, None);
        assert_eq!(
            read.last_verification,
            Some(LastVerification {
                at: Datetime {
                    seconds: 1_748_320_000,
                    nanoseconds: 5
                },
                passed: true
            })
        );
        assert_eq!(Metadata::decode(&read.encode()), Some(read));
    }

    #[test]
    fn version_2_added_origin_and_verification_lines() {
        let verified = Metadata {
            last_verification: Some(LastVerification {
                at: Datetime {
                    seconds: 1_748_320_000,
                    nanoseconds: 5,
                },
                passed: true,
            }),
            ..sample()
        };
        let text = String::from_utf8(verified.encode()).unwrap();
        assert!(text.starts_with("litegraph-backup-metadata 3\n"), "{text}");
        assert!(
            text.ends_with(
                "birth\t-\norigin\tnamed\nverified\t1748320000.000000005 passed\ndrilled\t-\nend\n"
            ),
            "{text}"
        );
    }

    // A sidecar written before version 2 must still be read, or every backup made by an
    // earlier release would lose its recorded digests (and tampering would go unnoticed).
    #[test]
    fn version_1_records_are_still_read() {
        let written = b"litegraph-backup-metadata 1\nfilename\tlitegraph-backup-20250527-033110.db\nlength\t352256\nmd5\tEF2A390E654BCFE3052DAF7364037DBE\nsha1\t74625881C00FEF2E654AB9B800A0C8E23CC7CBB0\nsha256\t584F2D85362F7E7B9755DF7A363120E6FF8F93A162E918E7085C795021D14DCF\ncreated\t1748316670.904886000\nbirth\t1748316670.909897123\nend\n";
        let read = Metadata::decode(written).expect("a version 1 record");
        assert_eq!(read.filename, "litegraph-backup-20250527-033110.db");
        assert_eq!(read.length, 352_256);
        assert_eq!(read.digests, sample().digests);
        assert_eq!(read.created, sample().created);
        assert_eq!(
            read.birth,
            Some(Datetime {
                seconds: 1_748_316_670,
                nanoseconds: 909_897_123
            })
        );
        assert_eq!(read.origin, Origin::DefaultName);
        assert_eq!(read.last_verification, None);
        // Written again (by `verify`), it becomes a version 2 record of the same facts.
        assert_eq!(Metadata::decode(&read.encode()), Some(read));
    }

    #[test]
    fn a_version_1_record_s_origin_comes_from_its_name() {
        for (name, origin) in [
            ("my backup.db", Origin::Named),
            ("litegraph-backup-20250527-033110-2.db", Origin::DefaultName),
            ("pre-restore-20250527-033110.db", Origin::SafetyBackup),
        ] {
            let written = version_1(&Metadata {
                filename: name.into(),
                ..sample()
            });
            assert_eq!(Metadata::decode(&written).map(|m| m.origin), Some(origin));
        }
    }

    #[test]
    fn torn_version_1_records_are_ignored() {
        let full = version_1(&sample());
        assert_eq!(Metadata::decode(&full), Some(sample()));
        for cut in 0..full.len() - 1 {
            assert_eq!(Metadata::decode(&full[..cut]), None, "cut at {cut}");
        }
    }

    #[test]
    fn records_of_another_version_or_with_unknown_values_are_not_taken_for_ours() {
        let text = String::from_utf8(sample().encode()).unwrap();
        for other in [
            text.replace("metadata 3", "metadata 4"),
            text.replace("metadata 3", "metadata"),
            // Older headers over version 3 lines.
            text.replace("metadata 3", "metadata 1"),
            text.replace("metadata 3", "metadata 2"),
            text.replace("drilled\t-", "drilled\t5.000000000 maybe 3"),
            text.replace("drilled\t-", "drilled\t5.000000000 passed"),
            text.replace("drilled\t-\n", ""),
            text.replace("origin\tnamed", "origin\tscheduled"),
            text.replace("verified\t-", "verified\t5.000000000 maybe"),
            text.replace("verified\t-", "verified\t5.000000000"),
            text.replace("origin\tnamed\n", ""),
            text.replace("904886000", "1000000000"),
        ] {
            assert_ne!(other, text);
            assert_eq!(Metadata::decode(other.as_bytes()), None, "{other}");
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

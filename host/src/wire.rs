//! LiteGraph's wire format for backups: the `BackupFile` JSON object, exactly as its server
//! writes it (PascalCase, this property order, uppercase hex, `yyyy-MM-ddTHH:mm:ss.ffffffZ`).

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Serialize, Serializer};

use crate::bindings;

/// One backup's metadata, as every edge shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupFile {
    #[serde(rename = "Filename")]
    pub filename: String,
    #[serde(rename = "Length")]
    pub length: u64,
    #[serde(rename = "MD5Hash")]
    pub md5_hash: String,
    #[serde(rename = "SHA1Hash")]
    pub sha1_hash: String,
    #[serde(rename = "SHA256Hash")]
    pub sha256_hash: String,
    #[serde(rename = "CreatedUtc")]
    pub created_utc: Timestamp,
    #[serde(rename = "LastUpdateUtc")]
    pub last_update_utc: Timestamp,
    #[serde(rename = "LastAccessUtc")]
    pub last_access_utc: Timestamp,
}

impl From<bindings::BackupFile> for BackupFile {
    fn from(b: bindings::BackupFile) -> Self {
        BackupFile {
            filename: b.filename,
            length: b.length,
            md5_hash: b.md5_hash,
            sha1_hash: b.sha1_hash,
            sha256_hash: b.sha256_hash,
            created_utc: b.created_utc.into(),
            last_update_utc: b.last_update_utc.into(),
            last_access_utc: b.last_access_utc.into(),
        }
    }
}

/// The verdict on one backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// True when every check passed.
    #[serde(rename = "Verified")]
    pub verified: bool,
    /// `quick_check` or `integrity_check`.
    #[serde(rename = "Check")]
    pub check: &'static str,
    /// No digests had been recorded for this file (copied in by hand, never listed): they
    /// were recorded now, so only SQLite's check speaks for it.
    #[serde(rename = "DigestsRecordedNow")]
    pub digests_recorded_now: bool,
    /// Each failed check, one sentence each.
    #[serde(rename = "Problems")]
    pub problems: Vec<String>,
    /// The backup, with the digests recorded when it was made.
    #[serde(rename = "Backup")]
    pub backup: BackupFile,
    /// The digests of the file as it is now.
    #[serde(rename = "Actual")]
    pub actual: ActualDigests,
}

/// Digests computed now, named as in a BackupFile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActualDigests {
    #[serde(rename = "MD5Hash")]
    pub md5_hash: String,
    #[serde(rename = "SHA1Hash")]
    pub sha1_hash: String,
    #[serde(rename = "SHA256Hash")]
    pub sha256_hash: String,
}

impl From<bindings::Verification> for Verification {
    fn from(v: bindings::Verification) -> Self {
        Verification {
            verified: v.problems.is_empty(),
            check: if v.full {
                "integrity_check"
            } else {
                "quick_check"
            },
            digests_recorded_now: v.recorded_now,
            problems: v.problems,
            backup: v.backup.into(),
            actual: ActualDigests {
                md5_hash: v.actual.md5,
                sha1_hash: v.actual.sha1,
                sha256_hash: v.actual.sha256,
            },
        }
    }
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Restoration {
    /// The backup whose content the live database now holds.
    #[serde(rename = "Restored")]
    pub restored: BackupFile,
    /// The backup of the live database taken just before it was replaced.
    #[serde(rename = "SafetyBackup")]
    pub safety_backup: BackupFile,
}

impl From<bindings::Restoration> for Restoration {
    fn from(r: bindings::Restoration) -> Self {
        Restoration {
            restored: r.restored.into(),
            safety_backup: r.safety_backup.into(),
        }
    }
}

/// Retention rules, with the semantics of restic's `forget` (see `wit/types.wit`): a backup
/// is kept when any rule keeps it. The default holds no rule at all, which `prune` refuses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    pub keep_last: Option<u32>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_yearly: Option<u32>,
    /// Keep every backup made within this long before the newest one (whole seconds).
    pub keep_within: Option<Duration>,
    /// Apply the rules to backups a person named too.
    pub include_named: bool,
}

impl Retention {
    /// Whether no keep rule is set at all (`include_named` is no rule). As in restic, a rule
    /// of 0 keeps nothing and counts as none: the policy refuses such rules as it refuses
    /// none, since they would remove every backup it does not protect.
    pub fn is_empty(&self) -> bool {
        self.counts().iter().all(|(_, n)| n.unwrap_or(0) == 0)
            && self.keep_within.is_none_or(|within| within.as_secs() == 0)
    }

    /// The counting rules, each with its flag's name, in the flags' order.
    pub fn counts(&self) -> [(&'static str, Option<u32>); 6] {
        [
            ("keep-last", self.keep_last),
            ("keep-hourly", self.keep_hourly),
            ("keep-daily", self.keep_daily),
            ("keep-weekly", self.keep_weekly),
            ("keep-monthly", self.keep_monthly),
            ("keep-yearly", self.keep_yearly),
        ]
    }
}

impl From<&Retention> for bindings::Retention {
    fn from(r: &Retention) -> Self {
        bindings::Retention {
            keep_last: r.keep_last,
            keep_hourly: r.keep_hourly,
            keep_daily: r.keep_daily,
            keep_weekly: r.keep_weekly,
            keep_monthly: r.keep_monthly,
            keep_yearly: r.keep_yearly,
            keep_within_seconds: r.keep_within.map(|within| within.as_secs()),
            include_named: r.include_named,
        }
    }
}

/// What a prune decided about one backup, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PruneDecision {
    #[serde(rename = "Backup")]
    pub backup: BackupFile,
    #[serde(rename = "Keep")]
    pub keep: bool,
    /// Every rule that kept it, or why it goes.
    #[serde(rename = "Reasons")]
    pub reasons: Vec<String>,
    /// Set when the backup was to be removed and its removal failed: the error.
    #[serde(rename = "RemovalFailed", skip_serializing_if = "Option::is_none")]
    pub removal_failed: Option<String>,
}

impl From<bindings::PruneDecision> for PruneDecision {
    fn from(d: bindings::PruneDecision) -> Self {
        PruneDecision {
            backup: d.backup.into(),
            keep: d.keep,
            reasons: d.reasons,
            removal_failed: d.removal_failed,
        }
    }
}

/// One backup as a remote target holds it (from its manifest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteBackup {
    /// The target's name, as configured.
    #[serde(rename = "Target")]
    pub target: String,
    /// The backup as it was pushed: name, size, plaintext digests, creation time.
    #[serde(rename = "Backup")]
    pub backup: BackupFile,
    /// The object that holds its (encoded) bytes.
    #[serde(rename = "Key")]
    pub key: String,
    /// The encoding applied on the way out, in order: `zstd`, `age`.
    #[serde(rename = "Encoding")]
    pub encoding: Vec<String>,
    #[serde(rename = "StoredLength")]
    pub stored_length: u64,
    #[serde(rename = "StoredSHA256Hash")]
    pub stored_sha256: String,
    #[serde(rename = "PushedUtc")]
    pub pushed_utc: Timestamp,
}

impl From<bindings::RemoteBackup> for RemoteBackup {
    fn from(r: bindings::RemoteBackup) -> Self {
        RemoteBackup {
            target: r.target,
            backup: r.backup.into(),
            key: r.key,
            encoding: r.encoding,
            stored_length: r.stored_length,
            stored_sha256: r.stored_sha256,
            pushed_utc: r.pushed_utc.into(),
        }
    }
}

/// What a push did on one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushOutcome {
    /// False when the target held the backup already: nothing was uploaded.
    #[serde(rename = "Uploaded")]
    pub uploaded: bool,
    #[serde(rename = "Remote")]
    pub remote: RemoteBackup,
}

impl From<bindings::PushOutcome> for PushOutcome {
    fn from(p: bindings::PushOutcome) -> Self {
        PushOutcome {
            uploaded: p.uploaded,
            remote: p.pushed.into(),
        }
    }
}

/// The verdict on one remote backup, downloaded, decoded and checked, then discarded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteVerification {
    /// True when every check passed.
    #[serde(rename = "Verified")]
    pub verified: bool,
    /// Each failed check, one sentence each.
    #[serde(rename = "Problems")]
    pub problems: Vec<String>,
    #[serde(rename = "Remote")]
    pub remote: RemoteBackup,
    /// The digests of the decoded content (empty when it could not be decoded).
    #[serde(rename = "Actual")]
    pub actual: ActualDigests,
}

impl From<bindings::RemoteVerification> for RemoteVerification {
    fn from(v: bindings::RemoteVerification) -> Self {
        RemoteVerification {
            verified: v.problems.is_empty(),
            problems: v.problems,
            remote: v.remote.into(),
            actual: ActualDigests {
                md5_hash: v.actual.md5,
                sha1_hash: v.actual.sha1,
                sha256_hash: v.actual.sha256,
            },
        }
    }
}

/// A restore drill's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drill {
    /// True when every check passed.
    #[serde(rename = "Passed")]
    pub passed: bool,
    /// Each failed check, one sentence each.
    #[serde(rename = "Problems")]
    pub problems: Vec<String>,
    /// The backup drilled, with the digests recorded when it was made.
    #[serde(rename = "Backup")]
    pub backup: BackupFile,
    /// When the drill started.
    #[serde(rename = "StartedUtc")]
    pub started_utc: Timestamp,
    /// How long it took, in milliseconds.
    #[serde(rename = "Milliseconds")]
    pub milliseconds: u64,
    /// Whether the backup holds LiteGraph's core tables (tenants, graphs, nodes, edges):
    /// then all of LiteGraph's tables must be there.
    #[serde(rename = "LiteGraphSchema")]
    pub litegraph: bool,
    /// Every table, with its rows in the backup and once restored.
    #[serde(rename = "Tables")]
    pub tables: Vec<TableRows>,
}

/// One table's rows, as a drill counted them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableRows {
    #[serde(rename = "Name")]
    pub name: String,
    /// `None` when they could not be counted in the backup (a damaged table).
    #[serde(rename = "InBackup")]
    pub in_backup: Option<u64>,
    /// `None` when they could not be counted once restored.
    #[serde(rename = "Restored")]
    pub restored: Option<u64>,
}

impl From<bindings::DrillReport> for Drill {
    fn from(d: bindings::DrillReport) -> Self {
        Drill {
            passed: d.problems.is_empty(),
            problems: d.problems,
            backup: d.backup.into(),
            started_utc: d.at.into(),
            milliseconds: d.milliseconds,
            litegraph: d.litegraph,
            tables: d
                .tables
                .into_iter()
                .map(|t| TableRows {
                    name: t.name,
                    in_backup: t.in_backup,
                    restored: t.restored,
                })
                .collect(),
        }
    }
}

/// A backup with what the policy records beside its `BackupFile` (not part of LiteGraph's
/// wire format, whose `BackupFile` stays exact).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupDetails {
    #[serde(rename = "Backup")]
    pub backup: BackupFile,
    /// `default-name`, `safety-backup` or `named`.
    #[serde(rename = "Origin")]
    pub origin: String,
    #[serde(rename = "LastVerify")]
    pub last_verify: Option<LastCheck>,
    #[serde(rename = "LastDrill")]
    pub last_drill: Option<LastCheck>,
}

/// The last check of one kind (a verify, a drill) of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastCheck {
    #[serde(rename = "At")]
    pub at: Timestamp,
    #[serde(rename = "Passed")]
    pub passed: bool,
    /// How long it took, when recorded (drills).
    #[serde(rename = "Milliseconds", skip_serializing_if = "Option::is_none")]
    pub milliseconds: Option<u64>,
    /// Why it failed, in short; empty when it passed or when only the verdict was
    /// recorded (verify).
    #[serde(rename = "Summary", skip_serializing_if = "String::is_empty")]
    pub summary: String,
}

impl From<bindings::LastCheck> for LastCheck {
    fn from(c: bindings::LastCheck) -> Self {
        LastCheck {
            at: c.at.into(),
            passed: c.passed,
            milliseconds: c.milliseconds,
            summary: c.summary,
        }
    }
}

impl From<bindings::BackupDetails> for BackupDetails {
    fn from(d: bindings::BackupDetails) -> Self {
        BackupDetails {
            backup: d.backup.into(),
            origin: d.origin,
            last_verify: d.last_verify.map(LastCheck::from),
            last_drill: d.last_drill.map(LastCheck::from),
        }
    }
}

/// A UTC instant with microsecond display, within the years 1970 to 9999 (LiteGraph's
/// `DateTime` range; anything later is shown as its last microsecond).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(SystemTime);

/// 9999-12-31T23:59:59.999999Z.
const LATEST_SECONDS: u64 = 253_402_300_799;

impl Timestamp {
    pub fn from_unix(seconds: u64, nanoseconds: u32) -> Timestamp {
        let (seconds, nanoseconds) = if seconds > LATEST_SECONDS {
            (LATEST_SECONDS, 999_999_999)
        } else {
            (seconds, nanoseconds.min(999_999_999))
        };
        Timestamp(SystemTime::UNIX_EPOCH + Duration::new(seconds, nanoseconds))
    }

    pub fn system_time(self) -> SystemTime {
        self.0
    }
}

impl From<bindings::Datetime> for Timestamp {
    fn from(t: bindings::Datetime) -> Self {
        Timestamp::from_unix(t.seconds, t.nanoseconds)
    }
}

impl fmt::Display for Timestamp {
    /// `2025-05-27T03:31:10.904886Z`: always six fractional digits and a `Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&humantime::format_rfc3339_micros(self.0), f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BackupFile {
        BackupFile {
            filename: "my-backup.db".into(),
            length: 352_256,
            md5_hash: "EF2A390E654BCFE3052DAF7364037DBE".into(),
            sha1_hash: "74625881C00FEF2E654AB9B800A0C8E23CC7CBB0".into(),
            sha256_hash: "584F2D85362F7E7B9755DF7A363120E6FF8F93A162E918E7085C795021D14DCF".into(),
            created_utc: Timestamp::from_unix(1_748_316_670, 904_886_000),
            last_update_utc: Timestamp::from_unix(1_748_316_670, 909_897_000),
            last_access_utc: Timestamp::from_unix(1_748_316_673, 634_489_999),
        }
    }

    #[test]
    fn matches_litegraph_documented_example() {
        let json = serde_json::to_string(&sample()).expect("serializable");
        assert_eq!(
            json,
            r#"{"Filename":"my-backup.db","Length":352256,"MD5Hash":"EF2A390E654BCFE3052DAF7364037DBE","SHA1Hash":"74625881C00FEF2E654AB9B800A0C8E23CC7CBB0","SHA256Hash":"584F2D85362F7E7B9755DF7A363120E6FF8F93A162E918E7085C795021D14DCF","CreatedUtc":"2025-05-27T03:31:10.904886Z","LastUpdateUtc":"2025-05-27T03:31:10.909897Z","LastAccessUtc":"2025-05-27T03:31:13.634489Z"}"#
        );
    }

    #[test]
    fn retention_without_a_rule_that_keeps_anything_is_empty() {
        assert!(Retention::default().is_empty());
        let zeros = Retention {
            keep_daily: Some(0),
            keep_within: Some(Duration::from_millis(500)),
            include_named: true,
            ..Retention::default()
        };
        assert!(zeros.is_empty());
        let weekly = Retention {
            keep_weekly: Some(4),
            ..Retention::default()
        };
        assert!(!weekly.is_empty());
        let within = Retention {
            keep_within: Some(Duration::from_secs(1)),
            ..Retention::default()
        };
        assert!(!within.is_empty());
    }

    #[test]
    fn prune_decisions_serialize_with_pascal_case_and_no_empty_failure() {
        let decision = PruneDecision {
            backup: sample(),
            keep: false,
            reasons: vec!["no rule keeps it".into()],
            removal_failed: None,
        };
        let json = serde_json::to_value(&decision).expect("serializable");
        assert_eq!(json["Keep"], false);
        assert_eq!(json["Reasons"][0], "no rule keeps it");
        assert_eq!(json["Backup"]["Filename"], "my-backup.db");
        assert!(json.get("RemovalFailed").is_none());
        let failed = PruneDecision {
            removal_failed: Some("permission denied".into()),
            ..decision
        };
        assert_eq!(
            serde_json::to_value(&failed).expect("serializable")["RemovalFailed"],
            "permission denied"
        );
    }

    #[test]
    fn timestamps_always_have_six_digits_and_stay_in_range() {
        assert_eq!(
            Timestamp::from_unix(0, 0).to_string(),
            "1970-01-01T00:00:00.000000Z"
        );
        assert_eq!(
            Timestamp::from_unix(u64::MAX, u32::MAX).to_string(),
            "9999-12-31T23:59:59.999999Z"
        );
    }
}

//! The last run of each operation and its outcome, kept with the backups so that `status`
//! in another process can tell it: in memory, and in the backup directory as
//! `.lgb-status.json` (versioned serde JSON). `serve` records its schedule there too.
//!
//! Each process merges its entries into the file under an exclusive `flock` on
//! `.lgb-status.lock` (read, change, write a temporary, rename), so two processes never
//! lose each other's entries. The record is a convenience, not a journal: a file that
//! cannot be written is a warning in the log, never a failed operation, and an unreadable
//! or foreign file is ignored and replaced. Both names begin with
//! [`STATUS_PREFIX`](crate::store::STATUS_PREFIX): out of the policy's reach and listing.

pub mod health;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Operation, OperationRecord, Outcome};
use crate::store::BackupDir;

/// The status record's name in the backup directory.
pub const STATUS_FILE: &str = ".lgb-status.json";
/// The lock file that admits one writer of the record at a time.
const LOCK_FILE: &str = ".lgb-status.lock";
/// How a writer's temporary is named: this, then its process id.
const TEMPORARY_PREFIX: &str = ".lgb-status.json.tmp-";
/// The record's format; a file of another version is replaced.
const VERSION: u32 = 1;
/// The longest a writer waits for another's lock (held for a few milliseconds each).
const LOCK_PATIENCE: Duration = Duration::from_secs(2);
/// The largest record read: a few kilobytes in practice; anything larger is not ours.
const MAX_RECORD_BYTES: u64 = 1 << 20;

/// The status record of one backup directory: what this process recorded (in memory),
/// merged into the file that every process shares.
#[derive(Debug)]
pub struct StatusBook {
    backups: Arc<BackupDir>,
    memory: Mutex<StatusRecord>,
}

impl StatusBook {
    pub fn new(backups: Arc<BackupDir>) -> StatusBook {
        StatusBook {
            backups,
            memory: Mutex::new(StatusRecord::default()),
        }
    }

    /// Records the end of an operation: its last success or last failure. A refusal (the
    /// caller's mistake) changes nothing, not even this record.
    pub fn observe(&self, record: &OperationRecord) {
        let Some(event) = Event::of(record) else {
            return;
        };
        let operation = record.operation;
        self.memory().note(operation, &event);
        self.persist(|file| file.note(operation, &event));
    }

    /// Records what `serve` runs on its own: the schedule, its next and last runs.
    pub fn schedule(&self, schedule: &ScheduleRecord) {
        self.memory().schedule = Some(schedule.clone());
        self.persist(|file| file.schedule = Some(schedule.clone()));
    }

    /// The record as every process left it, with this process's entries (newer wins):
    /// the file, or what this process knows when the file cannot be read.
    pub fn read(&self) -> StatusRecord {
        let mut record = match read_record(self.backups.path()) {
            Ok(Some(record)) => record,
            Ok(None) | Err(_) => StatusRecord::default(),
        };
        record.merge(&self.memory());
        record
    }

    fn memory(&self) -> MutexGuard<'_, StatusRecord> {
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `change` to the file under the lock; a failure is logged, never returned.
    fn persist(&self, change: impl FnOnce(&mut StatusRecord)) {
        if let Err(e) = update(self.backups.path(), change) {
            tracing::warn!(
                "cannot update the status record {}: {e}",
                self.backups.path().join(STATUS_FILE).display()
            );
        }
    }
}

/// Reads the status record of the backup directory at `dir`, as a process that records
/// nothing sees it: empty when there is none yet, or when it is unreadable or foreign.
pub fn read_status(dir: &Path) -> StatusRecord {
    match read_record(dir) {
        Ok(Some(record)) => record,
        Ok(None) | Err(_) => StatusRecord::default(),
    }
}

/// Removes the status record (and its lock) from `dir`: for a command that made the backup
/// directory and, failing, removes it again, so that the failure leaves nothing behind.
pub fn forget(dir: &Path) {
    sweep_temporaries(dir);
    for name in [STATUS_FILE, LOCK_FILE] {
        let _ = std::fs::remove_file(dir.join(name));
    }
}

/// What the status file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRecord {
    #[serde(rename = "Version")]
    version: u32,
    /// Each operation's last success and last failure, by its name (`create`,
    /// `remote_verify`); names this version does not know are kept.
    #[serde(rename = "Operations", default)]
    pub operations: BTreeMap<String, OperationStatus>,
    /// What `serve` runs on its own, as the last `serve` recorded it.
    #[serde(rename = "Schedule", default)]
    pub schedule: Option<ScheduleRecord>,
}

impl Default for StatusRecord {
    fn default() -> StatusRecord {
        StatusRecord {
            version: VERSION,
            operations: BTreeMap::new(),
            schedule: None,
        }
    }
}

impl StatusRecord {
    /// One operation's last success and failure.
    pub fn operation(&self, operation: Operation) -> Option<&OperationStatus> {
        self.operations.get(operation.as_str())
    }

    /// Keeps `event` as `operation`'s last success or failure, unless an entry started
    /// later is there already (another process's).
    fn note(&mut self, operation: Operation, event: &Event) {
        let status = self
            .operations
            .entry(operation.as_str().to_owned())
            .or_default();
        let slot = if event.reason.is_none() {
            &mut status.last_success
        } else {
            &mut status.last_failure
        };
        keep_newer(slot, event);
    }

    /// Takes whatever in `other` is newer than what this record holds.
    fn merge(&mut self, other: &StatusRecord) {
        for (name, theirs) in &other.operations {
            let ours = self.operations.entry(name.clone()).or_default();
            if let Some(event) = &theirs.last_success {
                keep_newer(&mut ours.last_success, event);
            }
            if let Some(event) = &theirs.last_failure {
                keep_newer(&mut ours.last_failure, event);
            }
        }
        if let Some(theirs) = &other.schedule
            && self
                .schedule
                .as_ref()
                .is_none_or(|ours| ours.recorded < theirs.recorded)
        {
            self.schedule = Some(theirs.clone());
        }
    }
}

fn keep_newer(slot: &mut Option<Event>, event: &Event) {
    if slot
        .as_ref()
        .is_none_or(|kept| kept.started <= event.started)
    {
        *slot = Some(event.clone());
    }
}

/// One operation's last success and last failure.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationStatus {
    #[serde(rename = "LastSuccess", default)]
    pub last_success: Option<Event>,
    #[serde(rename = "LastFailure", default)]
    pub last_failure: Option<Event>,
}

impl OperationStatus {
    /// The later of the last success and the last failure.
    pub fn last(&self) -> Option<&Event> {
        match (&self.last_success, &self.last_failure) {
            (Some(success), Some(failure)) if failure.started > success.started => Some(failure),
            (Some(success), _) => Some(success),
            (None, failure) => failure.as_ref(),
        }
    }
}

/// One operation that ended (a success or a failure).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    #[serde(rename = "StartedUtc")]
    pub started: Utc,
    #[serde(rename = "Milliseconds")]
    pub milliseconds: u64,
    #[serde(rename = "Bytes")]
    pub bytes: u64,
    #[serde(rename = "Backup", default)]
    pub backup: Option<String>,
    #[serde(rename = "Target", default)]
    pub target: Option<String>,
    /// Why it failed; `None` for a success.
    #[serde(rename = "Reason", default)]
    pub reason: Option<String>,
}

impl Event {
    /// The record's event; `None` for a refusal, which is never kept.
    fn of(record: &OperationRecord) -> Option<Event> {
        let reason = match &record.outcome {
            Outcome::Success => None,
            Outcome::Refused(_) => return None,
            Outcome::Failure(why) => Some(why.clone()),
        };
        Some(Event {
            started: Utc(record.started),
            milliseconds: u64::try_from(record.duration.as_millis()).unwrap_or(u64::MAX),
            bytes: record.bytes,
            backup: record.backup.clone(),
            target: record.target.clone(),
            reason,
        })
    }

    /// When it ended.
    pub fn ended(&self) -> SystemTime {
        self.started.0 + Duration::from_millis(self.milliseconds)
    }
}

/// What `serve` runs on its own, as it last recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleRecord {
    /// When `serve` wrote this.
    #[serde(rename = "RecordedUtc")]
    pub recorded: Utc,
    /// The backup schedule as `--schedule` takes it; `None`: no scheduled backups.
    #[serde(rename = "Schedule", default)]
    pub schedule: Option<String>,
    /// How often the newest backup is drilled (`--drill-every`), as a duration.
    #[serde(rename = "DrillEvery", default)]
    pub drill_every: Option<String>,
    #[serde(rename = "NextRunUtc", default)]
    pub next_run: Option<Utc>,
    #[serde(rename = "NextDrillUtc", default)]
    pub next_drill: Option<Utc>,
    /// When the scheduled run in progress started.
    #[serde(rename = "RunningSinceUtc", default)]
    pub running_since: Option<Utc>,
    #[serde(rename = "LastRun", default)]
    pub last_run: Option<ScheduledRun>,
    #[serde(rename = "LastDrill", default)]
    pub last_drill: Option<ScheduledRun>,
    /// When that `serve` stopped; `None` while it runs (or when it was killed).
    #[serde(rename = "StoppedUtc", default)]
    pub stopped: Option<Utc>,
}

/// One scheduled run (or drill), as the record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledRun {
    #[serde(rename = "StartedUtc")]
    pub started: Utc,
    #[serde(rename = "EndedUtc")]
    pub ended: Utc,
    /// The backup made (a run) or drilled (a drill).
    #[serde(rename = "Backup", default)]
    pub backup: Option<String>,
    /// What went wrong; `None` when it succeeded.
    #[serde(rename = "Error", default)]
    pub error: Option<String>,
}

impl ScheduledRun {
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }
}

/// A UTC instant, as text in the record: `2025-05-27T03:31:10.904886Z`, the format of the
/// `BackupFile` JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Utc(pub SystemTime);

impl Serialize for Utc {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_rfc3339_micros(self.0))
    }
}

impl<'de> Deserialize<'de> for Utc {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Utc, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_rfc3339(&text)
            .map(Utc)
            .map_err(serde::de::Error::custom)
    }
}

/// Reads the record: `None` when there is none, or when it is not ours (unparsable,
/// another version, too large), which the next write replaces.
fn read_record(dir: &Path) -> io::Result<Option<StatusRecord>> {
    let path = dir.join(STATUS_FILE);
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut text = Vec::new();
    file.take(MAX_RECORD_BYTES + 1).read_to_end(&mut text)?;
    if text.len() as u64 > MAX_RECORD_BYTES {
        return Ok(None);
    }
    Ok(serde_json::from_slice::<StatusRecord>(&text)
        .ok()
        .filter(|record| record.version == VERSION))
}

/// Read, change, write and rename, under the lock.
fn update(dir: &Path, change: impl FnOnce(&mut StatusRecord)) -> io::Result<()> {
    let _lock = lock(dir)?;
    sweep_temporaries(dir);
    let mut record = match read_record(dir) {
        Ok(Some(record)) => record,
        Ok(None) => StatusRecord::default(),
        Err(e) => {
            tracing::warn!(
                "cannot read the status record {}, replacing it: {e}",
                dir.join(STATUS_FILE).display()
            );
            StatusRecord::default()
        }
    };
    change(&mut record);
    let text = serde_json::to_vec_pretty(&record).map_err(io::Error::other)?;
    let temporary = dir.join(format!("{TEMPORARY_PREFIX}{}", std::process::id()));
    let written = write_new(&temporary, &text)
        .and_then(|()| std::fs::rename(&temporary, dir.join(STATUS_FILE)));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

fn write_new(path: &Path, text: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    file.write_all(text)
}

/// Takes the writers' lock, waiting up to [`LOCK_PATIENCE`]; released when dropped (or
/// when the process dies).
fn lock(dir: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dir.join(LOCK_FILE))?;
    let deadline = Instant::now() + LOCK_PATIENCE;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!("another process held {LOCK_FILE} for {LOCK_PATIENCE:?}"),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// Removes the temporaries of writers that died between writing and renaming: under the
/// lock, no live writer has one.
fn sweep_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let stale: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.starts_with(TEMPORARY_PREFIX))
        })
        .map(|entry| entry.path())
        .collect();
    for path in stale {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory() -> (tempfile::TempDir, Arc<BackupDir>) {
        let root = tempfile::tempdir().expect("a temporary directory");
        let backups = BackupDir::open(root.path()).expect("open");
        (root, Arc::new(backups))
    }

    fn record(operation: Operation, started: u64, outcome: Outcome) -> OperationRecord {
        OperationRecord {
            operation,
            backup: Some("a.db".into()),
            target: None,
            started: SystemTime::UNIX_EPOCH + Duration::from_secs(started),
            duration: Duration::from_millis(1500),
            bytes: 4096,
            outcome,
        }
    }

    #[test]
    fn a_success_and_a_failure_read_back_from_another_process() {
        let (root, backups) = directory();
        let book = StatusBook::new(backups);
        book.observe(&record(Operation::Create, 100, Outcome::Success));
        book.observe(&record(
            Operation::Create,
            200,
            Outcome::Failure("the database stayed locked".into()),
        ));
        let read = read_status(root.path());
        let create = read.operation(Operation::Create).expect("create");
        let success = create.last_success.as_ref().expect("a success");
        assert_eq!(success.milliseconds, 1500);
        assert_eq!(success.bytes, 4096);
        assert_eq!(success.backup.as_deref(), Some("a.db"));
        assert_eq!(success.reason, None);
        let failure = create.last_failure.as_ref().expect("a failure");
        assert_eq!(
            failure.reason.as_deref(),
            Some("the database stayed locked")
        );
        assert_eq!(create.last(), Some(failure));
        assert_eq!(read, book.read());
        let text = std::fs::read_to_string(root.path().join(STATUS_FILE)).expect("the file");
        assert!(text.contains("\"Version\": 1"), "{text}");
        assert!(
            text.contains("\"StartedUtc\": \"1970-01-01T00:01:40.000000Z\""),
            "{text}"
        );
    }

    #[test]
    fn a_refusal_is_never_recorded() {
        let (root, backups) = directory();
        let book = StatusBook::new(backups);
        book.observe(&record(
            Operation::Restore,
            100,
            Outcome::Refused("no such backup".into()),
        ));
        assert!(!root.path().join(STATUS_FILE).exists());
        assert_eq!(book.read(), StatusRecord::default());
    }

    #[test]
    fn concurrent_writers_keep_each_others_entries() {
        let (root, _) = directory();
        let writers: Vec<_> = Operation::ALL
            .into_iter()
            .map(|operation| {
                // A book of its own each: as many processes.
                let backups = Arc::new(BackupDir::open(root.path()).expect("open"));
                std::thread::spawn(move || {
                    let book = StatusBook::new(backups);
                    for started in 0..20 {
                        book.observe(&record(operation, started, Outcome::Success));
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().expect("a writer");
        }
        let read = read_status(root.path());
        for operation in Operation::ALL {
            let status = read.operation(operation).expect("kept");
            let last = status.last_success.as_ref().expect("a success");
            assert_eq!(
                last.started.0,
                SystemTime::UNIX_EPOCH + Duration::from_secs(19)
            );
        }
        let leftovers: Vec<_> = std::fs::read_dir(root.path())
            .expect("list")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(TEMPORARY_PREFIX))
            .collect();
        assert_eq!(leftovers, Vec::<String>::new());
    }

    #[test]
    fn a_corrupt_or_foreign_file_is_ignored_and_replaced() {
        for foreign in [
            &b"{ not json"[..],
            br#"{"Version": 2, "Operations": {}}"#,
            br#"[1, 2, 3]"#,
        ] {
            let (root, backups) = directory();
            std::fs::write(root.path().join(STATUS_FILE), foreign).expect("write");
            assert_eq!(read_status(root.path()), StatusRecord::default());
            StatusBook::new(backups).observe(&record(Operation::Prune, 5, Outcome::Success));
            let read = read_status(root.path());
            assert!(read.operation(Operation::Prune).is_some());
        }
    }

    #[test]
    fn a_temporary_left_by_a_dead_writer_is_swept() {
        let (root, backups) = directory();
        let left = root.path().join(format!("{TEMPORARY_PREFIX}999999"));
        std::fs::write(&left, b"half").expect("write");
        StatusBook::new(backups).observe(&record(Operation::Verify, 5, Outcome::Success));
        assert!(!left.exists());
    }

    #[test]
    fn an_unwritable_directory_costs_only_a_warning() {
        let (root, backups) = directory();
        let book = StatusBook::new(backups);
        std::fs::remove_dir(root.path()).expect("remove the directory");
        book.observe(&record(Operation::Create, 7, Outcome::Success));
        let kept = book.read();
        assert!(kept.operation(Operation::Create).is_some(), "in memory");
    }

    #[test]
    fn a_forgotten_record_leaves_the_directory_empty() {
        let (root, backups) = directory();
        StatusBook::new(backups).observe(&record(
            Operation::Create,
            5,
            Outcome::Failure("no database".into()),
        ));
        forget(root.path());
        assert_eq!(std::fs::read_dir(root.path()).expect("list").count(), 0);
    }

    #[test]
    fn the_newest_schedule_record_wins() {
        let (root, backups) = directory();
        let book = StatusBook::new(backups);
        let at = |seconds| Utc(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds));
        let schedule = ScheduleRecord {
            recorded: at(10),
            schedule: Some("2s".into()),
            drill_every: None,
            next_run: Some(at(12)),
            next_drill: None,
            running_since: None,
            last_run: Some(ScheduledRun {
                started: at(9),
                ended: at(10),
                backup: None,
                error: Some("no backup was made".into()),
            }),
            last_drill: None,
            stopped: None,
        };
        book.schedule(&schedule);
        assert_eq!(read_status(root.path()).schedule.as_ref(), Some(&schedule));
        let mut later = schedule.clone();
        later.recorded = at(20);
        later.schedule = None;
        book.schedule(&later);
        assert_eq!(book.read().schedule, Some(later));
    }
}

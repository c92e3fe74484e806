//! What the schedule is doing and did, as the API, `status` and the status record show it.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use super::drills::DrillRun;
use super::offsite::RemoteStatus;
use crate::Retention;
use crate::monitor::Operation;
use crate::monitor::status::{ScheduleRecord, ScheduledRun, Utc};
use crate::schedule::Schedule;

/// One scheduled run, recorded once when it ends (what the API, and metrics, report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub started: SystemTime,
    pub ended: SystemTime,
    /// Made at start-up because a run fell due while the server was down.
    pub catch_up: bool,
    /// The backup made, if one was.
    pub backup: Option<String>,
    /// Whether the backup passed verification; `None` when none was made or the check
    /// could not run.
    pub verified: Option<bool>,
    /// How many backups the retention rules removed; `None` when no prune ran.
    pub removed: Option<usize>,
    /// What went wrong, one sentence per failure; `None` when the run succeeded.
    pub error: Option<String>,
    /// The first of the run's operations that failed (`create`, `verify`, `prune`, `push`,
    /// `remote_prune`), as the alert names it.
    pub failed_operation: Option<Operation>,
}

impl Run {
    pub(super) fn begun(started: SystemTime, catch_up: bool) -> Run {
        Run {
            started,
            ended: started,
            catch_up,
            backup: None,
            verified: None,
            removed: None,
            error: None,
            failed_operation: None,
        }
    }

    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }

    pub(super) fn failed(&mut self, operation: Operation, why: String) {
        self.failed_operation.get_or_insert(operation);
        self.error = Some(match self.error.take() {
            Some(before) => format!("{before}; {why}"),
            None => why,
        });
    }
}

/// How many runs (or drills) ended each way since `serve` started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub succeeded: u64,
    pub failed: u64,
}

impl Tally {
    pub(super) fn count(&mut self, succeeded: bool) {
        if succeeded {
            self.succeeded += 1;
        } else {
            self.failed += 1;
        }
    }
}

/// What the schedule is, and what it is doing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleStatus {
    /// The backup schedule; `None` without one.
    pub schedule: Option<Schedule>,
    /// The configured retention rules (perhaps none).
    pub retention: Retention,
    /// When the next run is due; `None` while one runs, or without a schedule.
    pub next_run: Option<SystemTime>,
    /// When the run in progress started.
    pub running_since: Option<SystemTime>,
    pub last_run: Option<Run>,
    /// The runs since start-up, by outcome.
    pub runs: Tally,
    /// How often the newest backup is drilled; `None`: only when asked.
    pub drill_every: Option<Duration>,
    /// When the next drill is due; `None` while one runs, or without drills.
    pub next_drill: Option<SystemTime>,
    pub last_drill: Option<DrillRun>,
    /// The drills since start-up, by outcome.
    pub drills: Tally,
    /// Each remote target, in the operator's order, with its last push and prune.
    pub remotes: Vec<RemoteStatus>,
}

impl ScheduleStatus {
    /// As the status record keeps it; `stopped` when `serve` is stopping.
    pub(super) fn record(&self, stopped: Option<SystemTime>) -> ScheduleRecord {
        ScheduleRecord {
            recorded: Utc(SystemTime::now()),
            schedule: self.schedule.as_ref().map(schedule_text),
            drill_every: self
                .drill_every
                .map(|every| humantime::format_duration(every).to_string()),
            next_run: self.next_run.map(Utc),
            next_drill: self.next_drill.map(Utc),
            running_since: self.running_since.map(Utc),
            last_run: self.last_run.as_ref().map(|run| ScheduledRun {
                started: Utc(run.started),
                ended: Utc(run.ended),
                backup: run.backup.clone(),
                error: run.error.clone(),
            }),
            last_drill: self.last_drill.as_ref().map(|drill| ScheduledRun {
                started: Utc(drill.started),
                ended: Utc(drill.ended),
                backup: drill.backup.clone(),
                error: drill.error.clone(),
            }),
            stopped: stopped.map(Utc),
        }
    }
}

/// [`ScheduleStatus`], shared between the schedule's thread and its readers.
#[derive(Debug, Clone, Default)]
pub struct SharedStatus(Arc<Mutex<ScheduleStatus>>);

impl SharedStatus {
    pub fn new(schedule: Option<&Schedule>, retention: Retention) -> SharedStatus {
        SharedStatus(Arc::new(Mutex::new(ScheduleStatus {
            schedule: schedule.cloned(),
            retention,
            ..ScheduleStatus::default()
        })))
    }

    /// Follows these remote targets too (the runs push to them).
    pub fn with_remotes(self, names: Vec<String>) -> SharedStatus {
        self.lock().remotes = names.into_iter().map(RemoteStatus::new).collect();
        self
    }

    /// The status now.
    pub fn get(&self) -> ScheduleStatus {
        self.lock().clone()
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, ScheduleStatus> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A schedule as `--schedule` takes it back: `6h`, or the cron expression.
pub fn schedule_text(schedule: &Schedule) -> String {
    match schedule {
        Schedule::Every(period) => humantime::format_duration(*period).to_string(),
        Schedule::Cron(cron) => cron.as_str().to_owned(),
    }
}

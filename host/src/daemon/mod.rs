//! What runs on its own inside `serve`: the backup schedule and the restore drills. A
//! scheduled run is one more caller of the same [`Runtime`] the edges call (create under the
//! policy's default name, verify it, then prune when retention rules are configured), and a
//! scheduled drill one more call of `drill`, never a second code path.
//!
//! After a run's backup is verified it goes offsite ([`offsite`]): pushed to every remote
//! target, then each target's retention applied with the same rules. Each run's and drill's
//! outcome goes out as alerts ([`alerts`]: a heartbeat after a successful run, a webhook
//! post after a failure) and into the status record, where `status` in another process
//! reads it.
//!
//! One thread makes the runs and the drills one after the other, so they never overlap
//! here, and the operation lock keeps a run apart from any other process's create or
//! restore. The guest calls block (SQLite, files), so that thread is never one of the async
//! workers.

use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crate::monitor::Operation;
use crate::schedule::Schedule;
use crate::{Error, PruneDecision, Retention, Runtime};

pub mod alerts;
mod drills;
mod offsite;
mod status;

pub use alerts::{Alert, Alerts};
pub use drills::DrillRun;
pub use offsite::{PruneRecord, PushRecord, RemoteStatus, check_targets_in_background};
pub use status::{Run, ScheduleStatus, SharedStatus, Tally, schedule_text};

/// How the policy's default names begin: the backups the schedule makes (a create without
/// a name makes the same), whose newest tells whether a run was missed while down.
pub const SCHEDULED_PREFIX: &str = "litegraph-backup-";

/// The pause after a run finds the database busy, doubled at each retry.
const FIRST_BUSY_PAUSE: Duration = Duration::from_secs(1);
/// The most retries of a busy run; none past the time the next run is due.
const BUSY_RETRIES: u32 = 5;
/// The longest the schedule sleeps without looking at the wall clock again, so that a
/// clock set forward or back is noticed.
const LONGEST_NAP: Duration = Duration::from_secs(60);
/// How long a stopping server waits for the alerts still queued to go.
const ALERTS_PATIENCE: Duration = Duration::from_secs(5);

/// What `serve` runs on its own, as configured.
#[derive(Debug, Clone, Default)]
pub struct DaemonSettings {
    /// When to make a backup; `None`: only when asked.
    pub schedule: Option<Schedule>,
    /// The rules applied after each scheduled backup.
    pub retention: Retention,
    /// How often the newest backup is drilled; `None`: only when asked.
    pub drill_every: Option<Duration>,
    /// Requested after each successful scheduled run.
    pub heartbeat_url: Option<String>,
    /// Receives a JSON POST on each failed scheduled run or drill.
    pub alert_webhook: Option<String>,
}

/// The schedule's thread.
pub struct Daemon {
    control: Arc<Control>,
    thread: JoinHandle<()>,
    status: SharedStatus,
}

/// Asks the schedule to stop: no run starts after it; a run in progress finishes.
#[derive(Clone)]
pub struct Stop(Arc<Control>);

impl Stop {
    pub fn stop(&self) {
        *self.0.stopping() = true;
        self.0.wake.notify_all();
    }
}

struct Control {
    stopping: Mutex<bool>,
    wake: Condvar,
}

impl Control {
    fn stopping(&self) -> MutexGuard<'_, bool> {
        self.stopping.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sleeps until the wall clock reaches `until`; true when asked to stop meanwhile.
    fn sleep_until(&self, until: SystemTime) -> bool {
        let mut stopping = self.stopping();
        loop {
            if *stopping {
                return true;
            }
            let left = match until.duration_since(SystemTime::now()) {
                Ok(left) if !left.is_zero() => left,
                _ => return false,
            };
            stopping = self
                .wake
                .wait_timeout(stopping, left.min(LONGEST_NAP))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl Daemon {
    /// Starts making backups of `runtime`'s database on `schedule`, pruning by `retention`
    /// after each when it holds a rule; `status` follows it.
    pub fn start(
        runtime: Runtime,
        schedule: Schedule,
        retention: Retention,
        status: SharedStatus,
    ) -> io::Result<Daemon> {
        let settings = DaemonSettings {
            schedule: Some(schedule),
            retention,
            ..DaemonSettings::default()
        };
        Daemon::launch(runtime, settings, Alerts::none(), status)
    }

    /// Starts what `settings` asks to run on its own (backups on a schedule, drills, and
    /// the alerts of both); `None` when it asks for neither. Either way the status record
    /// says what this server runs, so that `status` applies this schedule's rules, or none.
    pub fn start_configured(
        runtime: Runtime,
        settings: DaemonSettings,
        status: SharedStatus,
    ) -> io::Result<Option<Daemon>> {
        if settings.schedule.is_none() && settings.heartbeat_url.is_some() {
            tracing::warn!("--heartbeat-url has no effect without --schedule");
        }
        if settings.schedule.is_none() && settings.drill_every.is_none() {
            if settings.alert_webhook.is_some() {
                tracing::warn!("--alert-webhook has no effect without --schedule or --drill-every");
            }
            let book = runtime.capabilities().monitor.status();
            book.schedule(&status.get().record(None));
            return Ok(None);
        }
        let alerts = Alerts::start(
            settings.heartbeat_url.as_deref(),
            settings.alert_webhook.as_deref(),
        )?;
        Daemon::launch(runtime, settings, alerts, status).map(Some)
    }

    fn launch(
        runtime: Runtime,
        settings: DaemonSettings,
        alerts: Alerts,
        status: SharedStatus,
    ) -> io::Result<Daemon> {
        let control = Arc::new(Control {
            stopping: Mutex::new(false),
            wake: Condvar::new(),
        });
        if let Some(schedule) = &settings.schedule {
            tracing::info!(
                "scheduled backups {schedule}; retention: {}",
                describe(&settings.retention)
            );
            let targets = runtime.capabilities().remotes.names();
            if !targets.is_empty() {
                tracing::info!(
                    "each verified scheduled backup goes to the remote targets {} (their \
                     retention by the same rules)",
                    targets.join(", ")
                );
            }
        }
        if let Some(every) = settings.drill_every {
            tracing::info!(
                "a restore drill of the newest backup every {}",
                humantime::format_duration(every)
            );
        }
        {
            let mut shown = status.lock();
            shown.schedule = settings.schedule.clone();
            shown.drill_every = settings.drill_every;
        }
        let scheduler = Scheduler {
            runtime,
            schedule: settings.schedule,
            retention: settings.retention,
            drill_every: settings.drill_every,
            alerts,
            status: status.clone(),
            control: Arc::clone(&control),
        };
        let thread = std::thread::Builder::new()
            .name("schedule".into())
            .spawn(move || scheduler.run())?;
        Ok(Daemon {
            control,
            thread,
            status,
        })
    }

    /// What stops the schedule, for a signal handler.
    pub fn stopper(&self) -> Stop {
        Stop(Arc::clone(&self.control))
    }

    /// Stops the schedule and waits for a run or drill in progress to finish (and, a few
    /// seconds at most, for the alerts still queued).
    pub fn finish(self) {
        self.stopper().stop();
        if let Some(started) = self.status.get().running_since {
            tracing::info!(
                "waiting for the scheduled run started at {} to finish",
                utc(started)
            );
        }
        if self.thread.join().is_err() {
            tracing::error!("the schedule's thread panicked");
        }
    }
}

struct Scheduler {
    runtime: Runtime,
    schedule: Option<Schedule>,
    retention: Retention,
    drill_every: Option<Duration>,
    alerts: Alerts,
    status: SharedStatus,
    control: Arc<Control>,
}

impl Scheduler {
    /// Runs backups and drills as they fall due, a backup first when both are, until
    /// asked to stop.
    fn run(self) {
        let mut backup = self
            .schedule
            .as_ref()
            .map(|schedule| self.first_run(schedule));
        let mut drill = self.drill_every.map(|every| self.first_drill(every));
        let mut announced = None;
        loop {
            {
                let mut status = self.status.lock();
                status.next_run = backup.map(|(due, _)| due);
                status.next_drill = drill;
            }
            self.write_status(None);
            if let Some((due, false)) = backup
                && announced != Some(due)
            {
                tracing::info!("next scheduled backup at {}", utc(due));
                announced = Some(due);
            }
            let Some(due) = [backup.map(|(due, _)| due), drill]
                .into_iter()
                .flatten()
                .min()
            else {
                break;
            };
            if self.control.sleep_until(due) {
                break;
            }
            match (&self.schedule, backup) {
                (Some(schedule), Some((due, catch_up))) if due <= SystemTime::now() => {
                    backup = Some((self.backup_run(schedule, catch_up), false));
                }
                _ => drill = drill.map(|_| self.drill_run()),
            }
        }
        {
            let mut status = self.status.lock();
            status.next_run = None;
            status.next_drill = None;
        }
        self.write_status(Some(SystemTime::now()));
        self.alerts.finish(ALERTS_PATIENCE);
    }

    /// One scheduled run, recorded, reported and alerted on; answers when the next is due.
    fn backup_run(&self, schedule: &Schedule, catch_up: bool) -> SystemTime {
        let started = SystemTime::now();
        let next = schedule.next_after(started);
        {
            let mut status = self.status.lock();
            status.next_run = None;
            status.running_since = Some(started);
        }
        self.write_status(None);
        let run = self.make_run(started, catch_up, next);
        {
            let mut status = self.status.lock();
            status.running_since = None;
            status.last_run = Some(run.clone());
            status.runs.count(run.succeeded());
        }
        // After the record: whoever reads this line finds the run in the API too.
        report(&run);
        match &run.error {
            None => self.alerts.heartbeat(),
            Some(why) => self.alerts.alert(Alert::new(
                run.failed_operation.unwrap_or(Operation::Create).as_str(),
                why,
                run.ended,
                run.backup.as_deref(),
            )),
        }
        self.after_run(schedule, next)
    }

    /// Writes what the schedule is doing to the status record.
    fn write_status(&self, stopped: Option<SystemTime>) {
        let record = self.status.get().record(stopped);
        self.runtime
            .capabilities()
            .monitor
            .status()
            .schedule(&record);
    }

    /// When the first run is due, and whether it catches up: systemd's `Persistent=`,
    /// derived from the backups on disk rather than from a state file. A run is made at
    /// once when one fell due since the newest scheduled backup was made, or when there is
    /// none; otherwise the first comes one period after the newest, so that a restart
    /// keeps the rhythm.
    fn first_run(&self, schedule: &Schedule) -> (SystemTime, bool) {
        let now = SystemTime::now();
        let catch_up = |why: String| {
            tracing::info!("catch-up run now: {why}");
            (now, true)
        };
        let newest = match self.runtime.list() {
            Ok(backups) => backups
                .into_iter()
                .filter(|b| b.filename.starts_with(SCHEDULED_PREFIX))
                .max_by_key(|b| b.created_utc),
            Err(e) => return catch_up(format!("the backups cannot be listed ({e})")),
        };
        let Some(newest) = newest else {
            return catch_up("no scheduled backup exists yet".to_owned());
        };
        let made = newest.created_utc.system_time();
        if schedule.missed_since(made, now) {
            return catch_up(format!(
                "the newest scheduled backup, {}, was made at {}, and a run fell due since",
                newest.filename,
                utc(made)
            ));
        }
        (schedule.next_after(made), false)
    }

    /// When the run after one that was due `next` runs: then, or, when the run overran its
    /// period, at the first time due from now (a run never starts twice in a row to
    /// catch up).
    fn after_run(&self, schedule: &Schedule, next: SystemTime) -> SystemTime {
        let now = SystemTime::now();
        if next > now {
            return next;
        }
        let later = schedule.next_after(now);
        tracing::warn!(
            "the scheduled run took past the next run's time ({}); skipped to {}",
            utc(next),
            utc(later)
        );
        later
    }

    /// One run: sweep what a killed run left, create, verify, prune.
    fn make_run(&self, started: SystemTime, catch_up: bool, next: SystemTime) -> Run {
        let mut run = Run::begun(started, catch_up);
        self.sweep_stale_temporaries();
        match self.retrying_busy(next, || self.runtime.create(None)) {
            Ok(backup) => {
                self.verify(&mut run, &backup.filename);
                // Only a backup that passed verification goes offsite.
                if run.verified == Some(true) {
                    self.offsite(&mut run, &backup.filename);
                }
                run.backup = Some(backup.filename);
                if !self.retention.is_empty() {
                    self.prune(&mut run, next);
                }
            }
            Err(e) => run.failed(Operation::Create, format!("no backup was made: {e}")),
        }
        run.ended = SystemTime::now();
        run
    }

    fn verify(&self, run: &mut Run, name: &str) {
        match self.runtime.verify(name, false) {
            Ok(verdict) => {
                run.verified = Some(verdict.verified);
                if !verdict.verified {
                    run.failed(
                        Operation::Verify,
                        format!(
                            "{name} failed verification: {}",
                            verdict.problems.join("; ")
                        ),
                    );
                }
            }
            Err(e) => run.failed(
                Operation::Verify,
                format!("{name} could not be verified: {e}"),
            ),
        }
    }

    fn prune(&self, run: &mut Run, next: SystemTime) {
        match self.retrying_busy(next, || self.runtime.prune(&self.retention, false)) {
            Ok(decisions) => {
                run.removed = Some(removed(&decisions));
                for decision in decisions {
                    if let Some(why) = decision.removal_failed {
                        run.failed(
                            Operation::Prune,
                            format!("{} could not be removed: {why}", decision.backup.filename),
                        );
                    }
                }
            }
            Err(e) => run.failed(
                Operation::Prune,
                format!("the retention rules could not be applied: {e}"),
            ),
        }
    }

    /// Runs `step`; while the database is busy, tries again after 1 s, 2 s, 4 s... at most
    /// [`BUSY_RETRIES`] times, never past `next` (the next run's time), and not once asked
    /// to stop.
    fn retrying_busy<R>(
        &self,
        next: SystemTime,
        step: impl Fn() -> Result<R, Error>,
    ) -> Result<R, Error> {
        let mut pause = FIRST_BUSY_PAUSE;
        let mut retries = 0;
        loop {
            match step() {
                Err(Error::Busy) if retries < BUSY_RETRIES => {
                    let until = SystemTime::now() + pause;
                    if until >= next {
                        return Err(Error::Busy);
                    }
                    tracing::warn!(
                        "the database is busy; the scheduled run tries again in {}",
                        humantime::format_duration(pause)
                    );
                    if self.control.sleep_until(until) {
                        return Err(Error::Busy);
                    }
                    pause *= 2;
                    retries += 1;
                }
                answer => return answer,
            }
        }
    }

    /// Removes what a run killed mid-way (kill -9, power loss) left in the backup
    /// directory: the server is long-lived, so not only at start-up.
    fn sweep_stale_temporaries(&self) {
        match self
            .runtime
            .capabilities()
            .backups
            .sweep_stale_temporaries()
        {
            Ok(0) => {}
            Ok(swept) => {
                tracing::info!("removed {swept} temporary files left by an interrupted run")
            }
            Err(e) => tracing::warn!("cannot sweep the backup directory's temporaries: {e}"),
        }
    }
}

/// How many backups a prune removed.
fn removed(decisions: &[PruneDecision]) -> usize {
    decisions
        .iter()
        .filter(|d| !d.keep && d.removal_failed.is_none())
        .count()
}

/// One log line per run.
fn report(run: &Run) {
    let backup = run.backup.as_deref().unwrap_or("none");
    let took = run.ended.duration_since(run.started).unwrap_or_default();
    let pruned = match run.removed {
        Some(removed) => format!(", {removed} removed by the retention rules"),
        None => String::new(),
    };
    match &run.error {
        None => tracing::info!(
            "scheduled backup {backup} made and verified in {:.1} s{pruned}",
            took.as_secs_f64()
        ),
        Some(why) => tracing::error!("scheduled run failed (backup {backup}{pruned}): {why}"),
    }
}

/// Retention rules as the flags give them: `keep-last 3, keep-daily 7`.
pub fn describe(retention: &Retention) -> String {
    let counts = retention.counts();
    let mut rules: Vec<String> = counts
        .into_iter()
        .filter_map(|(flag, n)| n.map(|n| format!("{flag} {n}")))
        .collect();
    if let Some(within) = retention.keep_within {
        rules.push(format!(
            "keep-within {}",
            humantime::format_duration(within)
        ));
    }
    if rules.is_empty() {
        return "none (every backup is kept)".to_owned();
    }
    if retention.include_named {
        rules.push("include-named".to_owned());
    }
    rules.join(", ")
}

/// A time as the log shows it: RFC 3339 in UTC, to the second.
fn utc(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_show_as_the_flag_takes_them() {
        for text in ["6h", "1day", "90s", "0 3 * * *", "*/15 * * * 1-5"] {
            let schedule: Schedule = text.parse().expect("a schedule");
            let shown = schedule_text(&schedule);
            assert_eq!(shown.parse::<Schedule>().expect("parses back"), schedule);
        }
        let every: Schedule = "6h".parse().expect("a schedule");
        assert_eq!(schedule_text(&every), "6h");
    }

    #[test]
    fn retention_shows_as_its_flags() {
        assert_eq!(
            describe(&Retention::default()),
            "none (every backup is kept)"
        );
        let rules = Retention {
            keep_last: Some(3),
            keep_weekly: Some(4),
            keep_within: Some(Duration::from_secs(86_400)),
            include_named: true,
            ..Retention::default()
        };
        assert_eq!(
            describe(&rules),
            "keep-last 3, keep-weekly 4, keep-within 1day, include-named"
        );
    }

    #[test]
    fn a_run_keeps_every_failure() {
        let mut run = Run::begun(SystemTime::UNIX_EPOCH, false);
        assert!(run.succeeded());
        run.failed(Operation::Verify, "a failed verification".into());
        run.failed(Operation::Prune, "b could not be removed".into());
        assert_eq!(
            run.error.as_deref(),
            Some("a failed verification; b could not be removed")
        );
        assert_eq!(run.failed_operation, Some(Operation::Verify), "the first");
    }

    #[test]
    fn a_stop_wakes_a_sleeping_schedule() {
        let control = Arc::new(Control {
            stopping: Mutex::new(false),
            wake: Condvar::new(),
        });
        let stop = Stop(Arc::clone(&control));
        let sleeper = std::thread::spawn(move || {
            control.sleep_until(SystemTime::now() + Duration::from_secs(3600))
        });
        stop.stop();
        assert!(sleeper.join().expect("joined"), "woken by the stop");
    }
}

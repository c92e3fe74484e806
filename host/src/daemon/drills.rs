//! Scheduled restore drills (`serve --drill-every`): the newest backup restored into a
//! scratch database and checked, by the same `drill` the CLI runs, on the schedule's thread
//! between runs. A drill that fails (the newest backup would not restore) is logged as an
//! error and posted to the webhook; its verdict is kept with the backup, where `/health` and
//! `status` read it.

use std::time::{Duration, SystemTime};

use super::{Alert, Scheduler, utc};
use crate::Error;
use crate::monitor::Operation;

/// One scheduled drill, recorded once when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillRun {
    pub started: SystemTime,
    pub ended: SystemTime,
    /// The backup drilled.
    pub backup: Option<String>,
    /// Why it failed (the drill's problems, or why it could not run); `None` when it
    /// passed.
    pub error: Option<String>,
}

impl DrillRun {
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }
}

impl Scheduler {
    /// When the first drill is due: `every` after the last drill the status record knows
    /// (this server's or any command's), so that a restart keeps the rhythm; now when
    /// there was none, or when it is older than that.
    pub(super) fn first_drill(&self, every: Duration) -> SystemTime {
        let now = SystemTime::now();
        let record = self.runtime.capabilities().monitor.status().read();
        let last = record
            .operation(Operation::Drill)
            .and_then(|drills| drills.last())
            .map(|drill| drill.ended());
        match last {
            Some(ended) if ended + every > now => ended + every,
            _ => now,
        }
    }

    /// One drill, recorded, reported and alerted on; answers when the next is due.
    pub(super) fn drill_run(&self) -> SystemTime {
        let started = SystemTime::now();
        self.status.lock().next_drill = None;
        if let Some(drill) = self.make_drill(started) {
            {
                let mut status = self.status.lock();
                status.last_drill = Some(drill.clone());
                status.drills.count(drill.succeeded());
            }
            report(&drill);
            if let Some(why) = &drill.error {
                self.alerts.alert(Alert::new(
                    Operation::Drill.as_str(),
                    why,
                    drill.ended,
                    drill.backup.as_deref(),
                ));
            }
        }
        let every = self.drill_every.unwrap_or(Duration::MAX);
        let next = started.checked_add(every).unwrap_or(started);
        let now = SystemTime::now();
        if next > now {
            return next;
        }
        let later = now + every;
        tracing::warn!(
            "the drill took past the next drill's time ({}); skipped to {}",
            utc(next),
            utc(later)
        );
        later
    }

    /// Drills the newest backup; `None` when there was nothing to drill, or the database
    /// was busy (no verdict on the backup either way, so no alert).
    fn make_drill(&self, started: SystemTime) -> Option<DrillRun> {
        let (backup, error) = match self.runtime.drill(None) {
            Ok(drill) if drill.passed => (Some(drill.backup.filename), None),
            Ok(drill) => {
                let why = format!(
                    "{} failed its restore drill: {}",
                    drill.backup.filename,
                    drill.problems.join("; ")
                );
                (Some(drill.backup.filename), Some(why))
            }
            Err(Error::NotFound) => {
                tracing::info!("no backup to drill yet");
                return None;
            }
            Err(Error::Busy) => {
                tracing::warn!("the scheduled drill found the database busy; skipped");
                return None;
            }
            Err(e) => (None, Some(format!("the restore drill could not run: {e}"))),
        };
        Some(DrillRun {
            started,
            ended: SystemTime::now(),
            backup,
            error,
        })
    }
}

/// One log line per drill.
fn report(drill: &DrillRun) {
    let backup = drill.backup.as_deref().unwrap_or("none");
    let took = drill
        .ended
        .duration_since(drill.started)
        .unwrap_or_default();
    match &drill.error {
        None => tracing::info!(
            "scheduled drill of {backup} passed in {:.1} s",
            took.as_secs_f64()
        ),
        Some(why) => tracing::error!("scheduled drill failed: {why}"),
    }
}

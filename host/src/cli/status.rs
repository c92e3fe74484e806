//! `status`: the state of the backups, as `/health` sees it (the same rules:
//! [`health`]), with what people and scripts ask next: the newest backup and its age, how
//! many and how large, its last drill, the last run of each operation (from the status
//! record every process writes), and the schedule as `serve` recorded it. Exit 0 when
//! healthy, 4 when degraded.

use std::io::Write;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::Exit;
use super::commands::{no_backups_yet, runtime};
use super::output::human_size;
use crate::config::Config;
use crate::monitor::Operation;
use crate::monitor::status::health::{self, Evidence, LastRun, Newest, humane, when};
use crate::monitor::status::{Event, OperationStatus, ScheduleRecord, StatusRecord, Utc};
use crate::{BackupFile, Runtime};

/// The width of the labels of the text output.
const LABEL: usize = 12;

pub(super) fn status(config: &Config, out: &mut impl Write) -> anyhow::Result<Exit> {
    let report = if no_backups_yet(config) {
        Report::before_the_first_backup(config)
    } else {
        Report::of(&runtime(config)?)
    };
    if config.json {
        writeln!(out, "{}", serde_json::to_string(&report.json(config))?)?;
    } else {
        report.write(config, out)?;
    }
    Ok(if report.problems.is_empty() {
        Exit::Success
    } else {
        Exit::Damaged
    })
}

/// What `status` found.
struct Report {
    evidence: Evidence,
    problems: Vec<String>,
    count: usize,
    total_bytes: u64,
    record: StatusRecord,
}

impl Report {
    /// The backups, the status record and the schedule `serve` recorded there, judged by
    /// `/health`'s rules.
    fn of(runtime: &Runtime) -> Report {
        let record = runtime.capabilities().monitor.status().read();
        let scheduled = record.schedule.as_ref();
        let schedule = scheduled
            .and_then(|s| s.schedule.as_deref())
            .and_then(|text| text.parse().ok());
        let last_run = scheduled
            .and_then(|s| s.last_run.as_ref())
            .map(|run| LastRun {
                ended: run.ended.0,
                error: run.error.clone(),
            });
        let (evidence, backups) = health::gather(runtime, schedule, last_run);
        Report::judged(evidence, &backups, record)
    }

    /// The default backup directory does not exist yet: no backups, no record; only the
    /// live database to check.
    fn before_the_first_backup(config: &Config) -> Report {
        let evidence = Evidence {
            now: SystemTime::now(),
            places: config
                .live_database()
                .check_present()
                .err()
                .into_iter()
                .collect(),
            schedule: None,
            last_run: None,
            listing_error: None,
            newest: None,
        };
        Report::judged(evidence, &[], StatusRecord::default())
    }

    fn judged(evidence: Evidence, backups: &[BackupFile], record: StatusRecord) -> Report {
        Report {
            problems: health::problems(&evidence),
            count: backups.len(),
            total_bytes: backups.iter().map(|b| b.length).sum(),
            evidence,
            record,
        }
    }

    fn healthy(&self) -> &'static str {
        if self.problems.is_empty() {
            "Healthy"
        } else {
            "Degraded"
        }
    }

    /// For people: one aligned line per fact, ages as `3h 12m ago`.
    fn write(&self, config: &Config, out: &mut impl Write) -> std::io::Result<()> {
        let now = self.evidence.now;
        line(out, "Status", self.healthy())?;
        for problem in &self.problems {
            writeln!(out, "{:LABEL$}  - {problem}", "")?;
        }
        let directory = config.backups.path.display();
        let backups = match self.count {
            0 => format!("none in {directory}"),
            1 => format!("1 in {directory}, {}", human_size(self.total_bytes)),
            n => format!(
                "{n} in {directory}, {} in all",
                human_size(self.total_bytes)
            ),
        };
        line(out, "Backups", &backups)?;
        if let Some(newest) = &self.evidence.newest {
            line(
                out,
                "Newest",
                &format!("{}, made {}", newest.filename, when(newest.created, now)),
            )?;
            line(out, "Its drill", &drill_text(newest, now))?;
        }
        self.write_schedule(out)?;
        self.write_operations(out)
    }

    fn write_schedule(&self, out: &mut impl Write) -> std::io::Result<()> {
        let now = self.evidence.now;
        let Some(record) = &self.record.schedule else {
            return line(out, "Schedule", "none recorded (no `serve` has run here)");
        };
        let by = match record.stopped {
            Some(Utc(stopped)) => format!("serve, stopped {}", when(stopped, now)),
            None => format!("serve, {}", when(record.recorded.0, now)),
        };
        let schedule = match &record.schedule {
            Some(schedule) => format!("{schedule} (as recorded by {by})"),
            None => format!("none (as recorded by {by})"),
        };
        line(out, "Schedule", &schedule)?;
        if let Some(Utc(since)) = record.running_since {
            line(
                out,
                "",
                &format!("a run is in progress, started {}", when(since, now)),
            )?;
        }
        if let Some(Utc(next)) = record.next_run {
            // A running schedule wakes at least once a minute: a time long past means
            // the server that recorded it is gone (killed, or the machine went down).
            let overdue = now
                .duration_since(next)
                .is_ok_and(|late| late > Duration::from_secs(120));
            let hint = if overdue {
                " (overdue: is `serve` still running?)"
            } else {
                ""
            };
            line(out, "", &format!("next run {}{hint}", when(next, now)))?;
        }
        if let Some(run) = &record.last_run {
            line(out, "", &format!("last run {}", run_text(run, now)))?;
        }
        if let Some(every) = &record.drill_every {
            line(out, "Drills", &format!("every {every}"))?;
            if let Some(Utc(next)) = record.next_drill {
                line(out, "", &format!("next drill {}", when(next, now)))?;
            }
            if let Some(drill) = &record.last_drill {
                line(out, "", &format!("last drill {}", run_text(drill, now)))?;
            }
        }
        Ok(())
    }

    fn write_operations(&self, out: &mut impl Write) -> std::io::Result<()> {
        let operations = self.operations();
        if operations.is_empty() {
            return line(out, "Last runs", "none recorded");
        }
        writeln!(out, "Last runs:")?;
        let width = operations
            .iter()
            .map(|(name, _)| name.len())
            .max()
            .unwrap_or(0);
        for (name, status) in operations {
            let mut label = name.as_str();
            for event in [&status.last_success, &status.last_failure]
                .into_iter()
                .flatten()
            {
                writeln!(
                    out,
                    "  {label:width$}  {}",
                    event_text(event, self.evidence.now)
                )?;
                label = "";
            }
        }
        Ok(())
    }

    /// The recorded operations, in the order of [`Operation::ALL`], then any others.
    fn operations(&self) -> Vec<(String, &OperationStatus)> {
        let mut operations: Vec<(String, &OperationStatus)> = self
            .record
            .operations
            .iter()
            .map(|(name, status)| (name.clone(), status))
            .collect();
        let rank = |name: &str| Operation::from_name(name).map_or(usize::MAX, |op| op as usize);
        operations.sort_by_key(|(name, _)| rank(name));
        operations
    }

    /// For programs: a stable PascalCase shape.
    fn json(&self, config: &Config) -> StatusJson<'_> {
        let now = self.evidence.now;
        StatusJson {
            status: self.healthy(),
            problems: &self.problems,
            backup_directory: config.backups.path.display().to_string(),
            backups: BackupsJson {
                count: self.count,
                total_bytes: self.total_bytes,
                newest: self.evidence.newest.as_ref().map(|newest| NewestJson {
                    filename: &newest.filename,
                    created: Utc(newest.created),
                    age_seconds: now
                        .duration_since(newest.created)
                        .unwrap_or_default()
                        .as_secs(),
                    last_drill: newest.last_drill.as_ref().map(|drill| DrillJson {
                        at: Utc(drill.at),
                        passed: drill.passed,
                        summary: &drill.summary,
                    }),
                }),
            },
            schedule: self.record.schedule.as_ref(),
            operations: self.operations().into_iter().collect(),
        }
    }
}

fn line(out: &mut impl Write, label: &str, text: &str) -> std::io::Result<()> {
    let label = if label.is_empty() {
        String::new()
    } else {
        format!("{label}:")
    };
    writeln!(out, "{label:LABEL$}  {text}")
}

fn drill_text(newest: &Newest, now: SystemTime) -> String {
    match &newest.last_drill {
        None => "never drilled (`litegraph-backup drill` tests a restore)".to_owned(),
        Some(drill) if drill.passed => format!("passed {}", when(drill.at, now)),
        Some(drill) => format!("FAILED {}: {}", when(drill.at, now), drill.summary),
    }
}

fn run_text(run: &crate::monitor::status::ScheduledRun, now: SystemTime) -> String {
    let took = run
        .ended
        .0
        .duration_since(run.started.0)
        .unwrap_or_default();
    let backup = run
        .backup
        .as_deref()
        .map(|b| format!(", {b}"))
        .unwrap_or_default();
    match &run.error {
        None => format!(
            "succeeded {}, took {}{backup}",
            when(run.ended.0, now),
            seconds(took)
        ),
        Some(why) => format!("FAILED {}{backup}: {why}", when(run.ended.0, now)),
    }
}

/// `succeeded 3h 12m ago, 2026-12-01T03:00:00Z; 1.2 s, 12.4 MiB, nightly.db`.
fn event_text(event: &Event, now: SystemTime) -> String {
    let mut facts = vec![seconds(Duration::from_millis(event.milliseconds))];
    if event.bytes > 0 {
        facts.push(human_size(event.bytes));
    }
    facts.extend(event.backup.clone());
    if let Some(target) = &event.target {
        facts.push(format!("target {target}"));
    }
    let facts = facts.join(", ");
    match &event.reason {
        None => format!("succeeded {}; {facts}", when(event.ended(), now)),
        Some(why) => format!("FAILED {}; {facts}: {why}", when(event.ended(), now)),
    }
}

/// `1.2 s`, or `3m 5s` past a minute.
fn seconds(d: Duration) -> String {
    if d < Duration::from_secs(60) {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        humane(d)
    }
}

#[derive(Serialize)]
struct StatusJson<'a> {
    /// `Healthy` or `Degraded`, as `/health` says it.
    #[serde(rename = "Status")]
    status: &'static str,
    #[serde(rename = "Problems")]
    problems: &'a [String],
    #[serde(rename = "BackupDirectory")]
    backup_directory: String,
    #[serde(rename = "Backups")]
    backups: BackupsJson<'a>,
    /// As the last `serve` recorded it; null when none has.
    #[serde(rename = "Schedule")]
    schedule: Option<&'a ScheduleRecord>,
    /// By operation name (`create`, `remote_verify`): its last success and last failure.
    #[serde(rename = "Operations")]
    operations: std::collections::BTreeMap<String, &'a OperationStatus>,
}

#[derive(Serialize)]
struct BackupsJson<'a> {
    #[serde(rename = "Count")]
    count: usize,
    #[serde(rename = "TotalBytes")]
    total_bytes: u64,
    #[serde(rename = "Newest")]
    newest: Option<NewestJson<'a>>,
}

#[derive(Serialize)]
struct NewestJson<'a> {
    #[serde(rename = "Filename")]
    filename: &'a str,
    #[serde(rename = "CreatedUtc")]
    created: Utc,
    #[serde(rename = "AgeSeconds")]
    age_seconds: u64,
    /// Its last restore drill; null when never drilled.
    #[serde(rename = "LastDrill")]
    last_drill: Option<DrillJson<'a>>,
}

#[derive(Serialize)]
struct DrillJson<'a> {
    #[serde(rename = "At")]
    at: Utc,
    #[serde(rename = "Passed")]
    passed: bool,
    #[serde(rename = "Summary")]
    summary: &'a str,
}

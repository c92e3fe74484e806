//! The schedule and retention routes. They live outside `/v1.0/backups/{filename}`, since
//! a backup may well be called `prune` or `schedule`: `GET /v1.0/backup-schedule` and
//! `POST /v1.0/backup-retention/prune[?dryrun]`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::errors::{ApiError, ErrorKind, json_response};
use super::routes::{query_flag, read_body};
use super::{ApiState, LogNote, Weight};
use crate::daemon::{
    DrillRun, PruneRecord, PushRecord, RemoteStatus, Run, ScheduleStatus, Tally, schedule_text,
};
use crate::wire::Timestamp;
use crate::{PruneDecision, Retention};

/// `GET /v1.0/backup-schedule`: the schedule, the retention rules, the next run and the
/// last run's outcome.
pub(super) async fn schedule(State(state): State<ApiState>) -> Response {
    json_response(StatusCode::OK, &ScheduleJson::from(state.schedule.get()))
}

/// `POST /v1.0/backup-retention/prune[?dryrun]`: applies the rules in the body (a
/// [`RetentionJson`]), or the configured ones when there is no body; answers every
/// backup's decision, oldest first.
pub(super) async fn prune(State(state): State<ApiState>, uri: Uri, request: Request) -> Response {
    let dry_run = match query_flag(uri.query(), "dryrun") {
        Ok(dry_run) => dry_run,
        Err(e) => return e.into_response(),
    };
    let rules = match read_body(request, state.body_timeout).await {
        Ok(body) if body.iter().all(u8::is_ascii_whitespace) => configured_rules(&state),
        Ok(body) => requested_rules(&body),
        Err(e) => Err(e),
    };
    let rules = match rules {
        Ok(rules) => rules,
        Err(e) => return e.into_response(),
    };
    let decided = state
        .call(Weight::Heavy, move |runtime| runtime.prune(&rules, dry_run))
        .await;
    let note = match &decided {
        Ok(decisions) if dry_run => format!("dry run, {} to remove", to_remove(decisions)),
        Ok(decisions) => format!("{} removed", removed(decisions)),
        Err(_) => "nothing removed".to_owned(),
    };
    let mut response = decided
        .map(|decisions| json_response(StatusCode::OK, &decisions))
        .into_response();
    response.extensions_mut().insert(LogNote(note));
    response
}

fn configured_rules(state: &ApiState) -> Result<Retention, ApiError> {
    let rules = state.schedule.get().retention;
    if rules.is_empty() {
        return Err(ApiError::described(
            ErrorKind::BadRequest,
            "No retention rule is configured (--keep-last, --keep-daily, ...): give the rules \
             in the request body, e.g. {\"KeepLast\": 7}.",
        ));
    }
    Ok(rules)
}

fn requested_rules(body: &[u8]) -> Result<Retention, ApiError> {
    let refused = |why: String| {
        ApiError::described(
            ErrorKind::BadRequest,
            format!("The request body is not a set of retention rules: {why}"),
        )
    };
    // An object only: serde would also read a struct from an array of its fields.
    let rules = match serde_json::from_slice(body) {
        Ok(object @ serde_json::Value::Object(_)) => object,
        Ok(_) => return Err(refused("a JSON object was expected".to_owned())),
        Err(e) => return Err(refused(e.to_string())),
    };
    let rules: RetentionJson = serde_json::from_value(rules).map_err(|e| refused(e.to_string()))?;
    Retention::try_from(rules).map_err(|why| ApiError::described(ErrorKind::BadRequest, why))
}

fn to_remove(decisions: &[PruneDecision]) -> usize {
    decisions.iter().filter(|d| !d.keep).count()
}

fn removed(decisions: &[PruneDecision]) -> usize {
    decisions
        .iter()
        .filter(|d| !d.keep && d.removal_failed.is_none())
        .count()
}

/// Retention rules as JSON, in LiteGraph's PascalCase; an unknown key is refused (a typo
/// would otherwise prune by fewer rules than meant). `KeepWithin` is a duration with its
/// unit (`30d`, `12h`).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionJson {
    #[serde(rename = "KeepLast", default)]
    pub keep_last: Option<u32>,
    #[serde(rename = "KeepHourly", default)]
    pub keep_hourly: Option<u32>,
    #[serde(rename = "KeepDaily", default)]
    pub keep_daily: Option<u32>,
    #[serde(rename = "KeepWeekly", default)]
    pub keep_weekly: Option<u32>,
    #[serde(rename = "KeepMonthly", default)]
    pub keep_monthly: Option<u32>,
    #[serde(rename = "KeepYearly", default)]
    pub keep_yearly: Option<u32>,
    #[serde(rename = "KeepWithin", default)]
    pub keep_within: Option<String>,
    #[serde(rename = "IncludeNamed", default)]
    pub include_named: bool,
}

impl From<&Retention> for RetentionJson {
    fn from(r: &Retention) -> Self {
        RetentionJson {
            keep_last: r.keep_last,
            keep_hourly: r.keep_hourly,
            keep_daily: r.keep_daily,
            keep_weekly: r.keep_weekly,
            keep_monthly: r.keep_monthly,
            keep_yearly: r.keep_yearly,
            keep_within: r
                .keep_within
                .map(|within| humantime::format_duration(within).to_string()),
            include_named: r.include_named,
        }
    }
}

impl TryFrom<RetentionJson> for Retention {
    type Error = String;

    fn try_from(r: RetentionJson) -> Result<Retention, String> {
        let keep_within = r.keep_within.as_deref().map(keep_within).transpose()?;
        Ok(Retention {
            keep_last: r.keep_last,
            keep_hourly: r.keep_hourly,
            keep_daily: r.keep_daily,
            keep_weekly: r.keep_weekly,
            keep_monthly: r.keep_monthly,
            keep_yearly: r.keep_yearly,
            keep_within,
            include_named: r.include_named,
        })
    }
}

fn keep_within(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("KeepWithin {text:?}: {e} (write a duration with its unit, e.g. 30d)"))
}

/// The answer of `GET /v1.0/backup-schedule`.
#[derive(Serialize)]
struct ScheduleJson {
    #[serde(rename = "Schedule")]
    schedule: Option<String>,
    #[serde(rename = "Retention")]
    retention: RetentionJson,
    #[serde(rename = "NextRunUtc")]
    next_run: Option<Timestamp>,
    #[serde(rename = "RunningSinceUtc")]
    running_since: Option<Timestamp>,
    #[serde(rename = "LastRun")]
    last_run: Option<RunJson>,
    /// The runs since the server started, by outcome.
    #[serde(rename = "Runs")]
    runs: TallyJson,
    /// How often the newest backup is drilled (`--drill-every`); null: only when asked.
    #[serde(rename = "DrillEvery")]
    drill_every: Option<String>,
    #[serde(rename = "NextDrillUtc")]
    next_drill: Option<Timestamp>,
    #[serde(rename = "LastDrill")]
    last_drill: Option<DrillJson>,
    /// The drills since the server started, by outcome.
    #[serde(rename = "Drills")]
    drills: TallyJson,
    /// Each remote target with its last push and prune (empty without targets).
    #[serde(rename = "Remotes")]
    remotes: Vec<RemoteJson>,
}

impl From<ScheduleStatus> for ScheduleJson {
    fn from(status: ScheduleStatus) -> Self {
        ScheduleJson {
            schedule: status.schedule.as_ref().map(schedule_text),
            retention: RetentionJson::from(&status.retention),
            next_run: status.next_run.map(timestamp),
            running_since: status.running_since.map(timestamp),
            last_run: status.last_run.map(RunJson::from),
            runs: status.runs.into(),
            drill_every: status
                .drill_every
                .map(|every| humantime::format_duration(every).to_string()),
            next_drill: status.next_drill.map(timestamp),
            last_drill: status.last_drill.map(DrillJson::from),
            drills: status.drills.into(),
            remotes: status.remotes.into_iter().map(RemoteJson::from).collect(),
        }
    }
}

#[derive(Serialize)]
struct TallyJson {
    #[serde(rename = "Succeeded")]
    succeeded: u64,
    #[serde(rename = "Failed")]
    failed: u64,
}

impl From<Tally> for TallyJson {
    fn from(tally: Tally) -> Self {
        TallyJson {
            succeeded: tally.succeeded,
            failed: tally.failed,
        }
    }
}

/// One scheduled drill, as the API shows it.
#[derive(Serialize)]
struct DrillJson {
    #[serde(rename = "StartedUtc")]
    started: Timestamp,
    #[serde(rename = "EndedUtc")]
    ended: Timestamp,
    /// `Succeeded` or `Failed`.
    #[serde(rename = "Outcome")]
    outcome: &'static str,
    #[serde(rename = "Backup")]
    backup: Option<String>,
    #[serde(rename = "Error")]
    error: Option<String>,
}

impl From<DrillRun> for DrillJson {
    fn from(drill: DrillRun) -> Self {
        DrillJson {
            started: timestamp(drill.started),
            ended: timestamp(drill.ended),
            outcome: outcome(&drill.error),
            backup: drill.backup,
            error: drill.error,
        }
    }
}

/// One remote target's offsite state, as the API shows it.
#[derive(Serialize)]
struct RemoteJson {
    #[serde(rename = "Target")]
    target: String,
    #[serde(rename = "LastPush")]
    last_push: Option<PushJson>,
    #[serde(rename = "LastPrune")]
    last_prune: Option<RemotePruneJson>,
}

#[derive(Serialize)]
struct PushJson {
    #[serde(rename = "EndedUtc")]
    ended: Timestamp,
    #[serde(rename = "Backup")]
    backup: String,
    /// `Succeeded` or `Failed`.
    #[serde(rename = "Outcome")]
    outcome: &'static str,
    /// False when the target held the backup already; null when the push failed.
    #[serde(rename = "Uploaded")]
    uploaded: Option<bool>,
    #[serde(rename = "Error")]
    error: Option<String>,
}

#[derive(Serialize)]
struct RemotePruneJson {
    #[serde(rename = "EndedUtc")]
    ended: Timestamp,
    #[serde(rename = "Outcome")]
    outcome: &'static str,
    #[serde(rename = "Removed")]
    removed: Option<usize>,
    #[serde(rename = "Error")]
    error: Option<String>,
}

fn outcome(error: &Option<String>) -> &'static str {
    if error.is_none() {
        "Succeeded"
    } else {
        "Failed"
    }
}

impl From<RemoteStatus> for RemoteJson {
    fn from(status: RemoteStatus) -> Self {
        RemoteJson {
            target: status.target,
            last_push: status.last_push.map(|push: PushRecord| PushJson {
                ended: timestamp(push.at),
                backup: push.backup,
                outcome: outcome(&push.error),
                uploaded: push.uploaded,
                error: push.error,
            }),
            last_prune: status.last_prune.map(|prune: PruneRecord| RemotePruneJson {
                ended: timestamp(prune.at),
                outcome: outcome(&prune.error),
                removed: prune.removed,
                error: prune.error,
            }),
        }
    }
}

/// One run, as the API shows it.
#[derive(Serialize)]
struct RunJson {
    #[serde(rename = "StartedUtc")]
    started: Timestamp,
    #[serde(rename = "EndedUtc")]
    ended: Timestamp,
    /// `Succeeded` or `Failed`.
    #[serde(rename = "Outcome")]
    outcome: &'static str,
    #[serde(rename = "CatchUp")]
    catch_up: bool,
    #[serde(rename = "Backup")]
    backup: Option<String>,
    #[serde(rename = "Verified")]
    verified: Option<bool>,
    #[serde(rename = "Removed")]
    removed: Option<usize>,
    #[serde(rename = "Error")]
    error: Option<String>,
}

impl From<Run> for RunJson {
    fn from(run: Run) -> Self {
        RunJson {
            started: timestamp(run.started),
            ended: timestamp(run.ended),
            outcome: if run.succeeded() {
                "Succeeded"
            } else {
                "Failed"
            },
            catch_up: run.catch_up,
            backup: run.backup,
            verified: run.verified,
            removed: run.removed,
            error: run.error,
        }
    }
}

fn timestamp(t: SystemTime) -> Timestamp {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp::from_unix(since.as_secs(), since.subsec_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_rules_read_pascal_case_and_refuse_typos() {
        let rules =
            requested_rules(br#"{"KeepLast": 3, "KeepWithin": "2d", "IncludeNamed": true}"#)
                .expect("rules");
        assert_eq!(
            rules,
            Retention {
                keep_last: Some(3),
                keep_within: Some(Duration::from_secs(2 * 86_400)),
                include_named: true,
                ..Retention::default()
            }
        );
        for refused in [
            r#"{"KeepLats": 3}"#,
            r#"{"KeepLast": -1}"#,
            r#"{"KeepWithin": "2"}"#,
            "[]",
            "{",
        ] {
            let error = requested_rules(refused.as_bytes()).expect_err(refused);
            assert_eq!(error.kind, ErrorKind::BadRequest, "{refused}");
        }
    }

    #[test]
    fn each_remote_target_shows_its_last_push_and_prune() {
        let status = ScheduleStatus {
            remotes: vec![
                RemoteStatus {
                    target: "offsite".into(),
                    last_push: Some(PushRecord {
                        at: UNIX_EPOCH,
                        backup: "litegraph-backup-19700101-000000.db".into(),
                        uploaded: None,
                        error: Some("unreachable".into()),
                    }),
                    last_prune: None,
                },
                RemoteStatus {
                    target: "usb".into(),
                    last_push: None,
                    last_prune: Some(PruneRecord {
                        at: UNIX_EPOCH,
                        removed: Some(2),
                        error: None,
                    }),
                },
            ],
            ..ScheduleStatus::default()
        };
        let json = serde_json::to_value(ScheduleJson::from(status)).expect("JSON");
        let remotes = &json["Remotes"];
        assert_eq!(remotes[0]["Target"], "offsite");
        assert_eq!(remotes[0]["LastPush"]["Outcome"], "Failed");
        assert_eq!(remotes[0]["LastPush"]["Error"], "unreachable");
        assert_eq!(remotes[0]["LastPush"]["Uploaded"], serde_json::Value::Null);
        assert_eq!(remotes[0]["LastPrune"], serde_json::Value::Null);
        assert_eq!(remotes[1]["LastPrune"]["Outcome"], "Succeeded");
        assert_eq!(remotes[1]["LastPrune"]["Removed"], 2);
    }

    #[test]
    fn retention_rules_show_as_they_are_read() {
        let rules = Retention {
            keep_daily: Some(7),
            keep_within: Some(Duration::from_secs(30 * 86_400)),
            ..Retention::default()
        };
        let shown = serde_json::to_vec(&RetentionJson::from(&rules)).expect("JSON");
        assert_eq!(requested_rules(&shown).expect("read back"), rules);
    }
}

//! When `serve` makes its scheduled backups: every fixed interval (`6h`, `1d`), or at the
//! times a 5-field cron expression names (`0 3 * * *`), always in UTC.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// A schedule of backups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// One run every this long.
    Every(Duration),
    /// One run at each time the expression matches, in UTC (minute hour day month weekday).
    /// Boxed: a parsed expression is some 300 bytes.
    Cron(Box<Cron>),
}

/// A schedule refused as written; the text says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{given:?} is not an interval (6h, 1d) nor a 5-field cron expression (min hour day month \
     weekday): {why}"
)]
pub struct ScheduleError {
    given: String,
    why: String,
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(text: &str) -> Result<Schedule, ScheduleError> {
        let text = text.trim();
        let refused = |why: String| ScheduleError {
            given: text.to_owned(),
            why,
        };
        match humantime::parse_duration(text) {
            Ok(period) if period.is_zero() => {
                Err(refused("an interval must be more than zero".into()))
            }
            Ok(period) => Ok(Schedule::Every(period)),
            Err(_) if looks_like_cron(text) => parse_cron(text)
                .map(|cron| Schedule::Cron(Box::new(cron)))
                .map_err(refused),
            Err(e) => Err(refused(e.to_string())),
        }
    }
}

/// Not an interval, and written like a cron expression: a nickname (`@daily`), a `*`, or
/// fields apart by spaces.
fn looks_like_cron(text: &str) -> bool {
    text.starts_with('@') || text.contains('*') || text.split_whitespace().count() > 1
}

fn parse_cron(text: &str) -> Result<Cron, String> {
    let fields = text.split_whitespace().count();
    if !text.starts_with('@') && fields != 5 {
        return Err(format!(
            "it has {fields} field{}, not 5 (no seconds, no year)",
            if fields == 1 { "" } else { "s" }
        ));
    }
    let parser = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build();
    let cron = parser.parse(text).map_err(|e| e.to_string())?;
    // "0 0 30 2 *" parses but never comes: refuse it now rather than never run.
    cron.find_next_occurrence(&utc(SystemTime::now()), false)
        .map_err(|_| "it never matches a date (e.g. February 30th)".to_owned())?;
    Ok(cron)
}

impl Schedule {
    /// The first run after `t`: `t` plus the interval, or the next time the cron expression
    /// matches after `t` (to the second).
    pub fn next_after(&self, t: SystemTime) -> SystemTime {
        match self {
            Schedule::Every(period) => t + *period,
            Schedule::Cron(cron) => match cron.find_next_occurrence(&utc(t), false) {
                Ok(next) => system_time(next),
                // Only past croner's last searchable year: as good as never.
                Err(_) => t + Duration::from_secs(100 * 365 * 24 * 3600),
            },
        }
    }

    /// How long one period is: the interval, or the gap between the cron expression's next
    /// two runs from now (a weekday-only expression's gap depends on the day).
    pub fn period(&self) -> Duration {
        self.period_after(SystemTime::now())
    }

    /// The gap between the next two runs after `t`.
    pub fn period_after(&self, t: SystemTime) -> Duration {
        let next = self.next_after(t);
        let after = self.next_after(next);
        after.duration_since(next).unwrap_or_default()
    }

    /// Whether a run was due between `last` and `now`: systemd's `Persistent=` test, a run
    /// missed while the server was down.
    pub fn missed_since(&self, last: SystemTime, now: SystemTime) -> bool {
        self.next_after(last) <= now
    }
}

/// As `--schedule` takes it: `6h`, `0 3 * * *`.
impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every(period) => write!(f, "{}", humantime::format_duration(*period)),
            Schedule::Cron(cron) => write!(f, "{}", cron.as_str()),
        }
    }
}

/// `t` in UTC, to the nanosecond; a time before 1970 counts as 1970.
fn utc(t: SystemTime) -> DateTime<Utc> {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_secs())
        .ok()
        .and_then(|secs| DateTime::from_timestamp(secs, since.subsec_nanos()))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn system_time(t: DateTime<Utc>) -> SystemTime {
    let secs = u64::try_from(t.timestamp()).unwrap_or_default();
    UNIX_EPOCH + Duration::new(secs, t.timestamp_subsec_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2025-05-27 10:20:30 UTC, a Tuesday.
    fn tuesday() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_748_341_230)
    }

    fn at(rfc3339: &str) -> SystemTime {
        system_time(
            DateTime::parse_from_rfc3339(rfc3339)
                .expect("a test time")
                .with_timezone(&Utc),
        )
    }

    fn parse(text: &str) -> Schedule {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn intervals_take_their_unit() {
        assert_eq!(parse("6h"), Schedule::Every(Duration::from_secs(6 * 3600)));
        assert_eq!(parse("1d"), Schedule::Every(Duration::from_secs(86_400)));
        assert_eq!(parse("90s"), Schedule::Every(Duration::from_secs(90)));
        assert_eq!(parse("1h 30m"), Schedule::Every(Duration::from_secs(5400)));
        assert_eq!(parse(" 2s "), Schedule::Every(Duration::from_secs(2)));
    }

    #[test]
    fn an_interval_runs_one_period_after() {
        let schedule = parse("6h");
        assert_eq!(
            schedule.next_after(tuesday()),
            tuesday() + Duration::from_secs(6 * 3600)
        );
        assert_eq!(schedule.period(), Duration::from_secs(6 * 3600));
    }

    #[test]
    fn a_cron_expression_runs_at_its_next_match_in_utc() {
        let nightly = parse("0 3 * * *");
        assert_eq!(
            nightly.next_after(tuesday()),
            at("2025-05-28T03:00:00Z"),
            "tomorrow 03:00"
        );
        assert_eq!(
            nightly.next_after(at("2025-05-28T03:00:00Z")),
            at("2025-05-29T03:00:00Z"),
            "strictly after a match"
        );
        assert_eq!(nightly.period_after(tuesday()), Duration::from_secs(86_400));

        let quarter_hours = parse("*/15 * * * *");
        assert_eq!(
            quarter_hours.next_after(tuesday()),
            at("2025-05-27T10:30:00Z")
        );
        assert_eq!(quarter_hours.period(), Duration::from_secs(900));

        let sundays = parse("30 4 * * SUN");
        assert_eq!(sundays.next_after(tuesday()), at("2025-06-01T04:30:00Z"));
        assert_eq!(
            parse("@daily").next_after(tuesday()),
            at("2025-05-28T00:00:00Z")
        );
    }

    #[test]
    fn a_weekday_expression_has_the_gap_of_the_days_ahead() {
        let weekdays = parse("0 3 * * 1-5");
        assert_eq!(
            weekdays.period_after(tuesday()),
            Duration::from_secs(86_400)
        );
        // Friday 03:00 and then Monday 03:00.
        assert_eq!(
            weekdays.period_after(at("2025-05-29T12:00:00Z")),
            Duration::from_secs(3 * 86_400)
        );
    }

    #[test]
    fn a_run_was_missed_when_one_fell_due_since_the_last() {
        let nightly = parse("0 3 * * *");
        let last = at("2025-05-27T03:00:05Z");
        assert!(!nightly.missed_since(last, at("2025-05-28T02:59:59Z")));
        assert!(nightly.missed_since(last, at("2025-05-28T03:00:00Z")));
        let hourly = parse("1h");
        assert!(!hourly.missed_since(tuesday(), tuesday() + Duration::from_secs(3599)));
        assert!(hourly.missed_since(tuesday(), tuesday() + Duration::from_secs(3600)));
    }

    #[test]
    fn refusals_say_what_was_expected() {
        for (text, why) in [
            ("6", "unit"),
            ("0s", "more than zero"),
            ("soon", ""),
            ("0 3 * * * *", "6 fields, not 5"),
            ("0 3 * *", "4 fields, not 5"),
            ("61 3 * * *", ""),
            ("0 0 30 2 *", "never matches"),
            ("", ""),
        ] {
            let error = text.parse::<Schedule>().expect_err(text).to_string();
            assert!(
                error.contains(
                    "is not an interval (6h, 1d) nor a 5-field cron expression (min hour day \
                     month weekday): "
                ),
                "{text:?}: {error}"
            );
            assert!(error.contains(why), "{text:?}: {error}");
        }
    }

    #[test]
    fn schedules_show_as_they_are_written() {
        for text in ["6h", "1day 12h", "1m 30s", "0 3 * * *", "*/15 * * * 1-5"] {
            assert_eq!(parse(text).to_string(), text, "as the flag takes it");
        }
    }
}

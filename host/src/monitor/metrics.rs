//! The Prometheus metrics of the operations, kept in a registry of their own (no global
//! one: a server that embeds the API keeps its metrics apart), and the gauges of the backup
//! directory and the schedule, computed when scraped.
//!
//! Names follow Prometheus' rules: the `litegraph_backup_` prefix, base units in the name
//! (`_seconds`, `_bytes`), `_total` on counters. Every per-operation family carries the
//! same labels, `operation` ([`Operation::as_str`]) and `target` (the remote target, `""`
//! when the operation had none), so that the families join on them.
//!
//! The exposition is OpenMetrics text 1.0.0 ([`CONTENT_TYPE`]), what `prometheus-client`
//! encodes; Prometheus asks for it and reads it, and it ends with `# EOF`.

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::{EncodeLabelSet, text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::{Operation, OperationRecord, Outcome};
use crate::BackupFile;

/// What every metric's name begins with.
pub const PREFIX: &str = "litegraph_backup";

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The duration histogram's upper bounds, in seconds: from a refused or tiny operation
/// (10 ms) to a create or drill of a large database (an hour); beyond is `+Inf`.
const DURATION_BUCKETS: [f64; 15] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0,
];

/// A gauge holding unix seconds, or seconds.
type Seconds = Gauge<f64, AtomicU64>;

/// Which operation, on which remote target (`""`: none).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Subject {
    operation: &'static str,
    target: String,
}

impl Subject {
    fn of(record: &OperationRecord) -> Subject {
        Subject {
            operation: record.operation.as_str(),
            target: record.target.clone().unwrap_or_default(),
        }
    }

    fn local(operation: Operation) -> Subject {
        Subject {
            operation: operation.as_str(),
            target: String::new(),
        }
    }
}

/// A [`Subject`] and how its operation ended ([`Outcome::as_str`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Ended {
    operation: &'static str,
    target: String,
    outcome: &'static str,
}

impl Ended {
    fn new(subject: &Subject, outcome: &'static str) -> Ended {
        Ended {
            operation: subject.operation,
            target: subject.target.clone(),
            outcome,
        }
    }
}

type DurationFamily = Family<Subject, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The metrics of every operation this process ran.
pub struct Metrics {
    registry: Registry,
    operations: Family<Ended, Counter>,
    last_success: Family<Subject, Seconds>,
    last_failure: Family<Subject, Seconds>,
    duration: DurationFamily,
    processed: Family<Subject, Counter>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix(PREFIX);
        let operations = Family::<Ended, Counter>::default();
        let last_success = Family::<Subject, Seconds>::default();
        let last_failure = Family::<Subject, Seconds>::default();
        let duration = DurationFamily::new_with_constructor(duration_histogram);
        let processed = Family::<Subject, Counter>::default();
        registry.register(
            "operations",
            "Operations ended, by outcome: success, failure (what an operator is alerted to), \
             or refused (the request was the caller's mistake; nothing changed)",
            operations.clone(),
        );
        registry.register_with_unit(
            "last_success_timestamp",
            "When the operation last succeeded (unix time), in this process or another (as the \
             status record in the backup directory keeps it); absent until it has",
            Unit::Seconds,
            last_success.clone(),
        );
        registry.register_with_unit(
            "last_failure_timestamp",
            "When the operation last failed (unix time), in this process or another (as the \
             status record in the backup directory keeps it); absent until it has",
            Unit::Seconds,
            last_failure.clone(),
        );
        registry.register_with_unit(
            "operation_duration",
            "How long the operations that succeeded or failed took (refusals are not timed)",
            Unit::Seconds,
            duration.clone(),
        );
        registry.register_with_unit(
            "processed",
            "Bytes processed: the backup's size for create, verify, restore, drill and pull; \
             what was stored for push; what was removed for prune, remote_prune and delete",
            Unit::Bytes,
            processed.clone(),
        );
        // Prometheus' advice: initialise the series whose labels are known in advance, so
        // that `rate()` and `increase()` see the first operation and no query needs
        // `absent()`. The counters and the histogram start at 0 for every operation without
        // a target. The timestamps are not seeded: 0 would say "last succeeded in 1970",
        // and an alert on their age would fire at every restart until the next backup
        // (the scrape-time `newest_backup_age_seconds` covers the time before that).
        for operation in Operation::ALL {
            let subject = Subject::local(operation);
            for outcome in [
                Outcome::Success,
                Outcome::Failure(String::new()),
                Outcome::Refused(String::new()),
            ] {
                operations.get_or_create_owned(&Ended::new(&subject, outcome.as_str()));
            }
            duration.get_or_create_owned(&subject);
            processed.get_or_create_owned(&subject);
        }
        Metrics {
            registry,
            operations,
            last_success,
            last_failure,
            duration,
            processed,
        }
    }

    /// Counts one finished operation; one that succeeded or failed also moves its
    /// timestamp, its duration histogram and its bytes.
    pub fn observe(&self, record: &OperationRecord) {
        let subject = Subject::of(record);
        self.operations
            .get_or_create(&Ended::new(&subject, record.outcome.as_str()))
            .inc();
        let last = match record.outcome {
            Outcome::Success => &self.last_success,
            Outcome::Failure(_) => &self.last_failure,
            Outcome::Refused(_) => return,
        };
        last.get_or_create(&subject)
            .set(unix_seconds(record.started + record.duration));
        self.duration
            .get_or_create(&subject)
            .observe(record.duration.as_secs_f64());
        self.processed.get_or_create(&subject).inc_by(record.bytes);
    }

    /// Sets `operation`'s last success and failure times (on `target`), as a record kept
    /// across restarts says they ended, unless this process has seen later ones: so that
    /// an alert on their age holds across a restart of the server.
    pub fn remember(
        &self,
        operation: Operation,
        target: Option<&str>,
        success: Option<SystemTime>,
        failure: Option<SystemTime>,
    ) {
        let subject = Subject {
            operation: operation.as_str(),
            target: target.unwrap_or_default().to_owned(),
        };
        for (family, ended) in [(&self.last_success, success), (&self.last_failure, failure)] {
            if let Some(ended) = ended {
                let gauge = family.get_or_create(&subject);
                let seconds = unix_seconds(ended);
                if gauge.get() < seconds {
                    gauge.set(seconds);
                }
            }
        }
    }

    /// The metrics as OpenMetrics text ([`CONTENT_TYPE`]): the operations', then the
    /// gauges of `inventory`.
    pub fn encode(&self, inventory: &Inventory) -> Result<String, fmt::Error> {
        let mut text = String::new();
        text::encode_registry(&mut text, &self.registry)?;
        text::encode_registry(&mut text, &inventory.registry())?;
        text::encode_eof(&mut text)?;
        Ok(text)
    }
}

/// What the backup directory and the schedule hold when the metrics are scraped.
#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    /// The backups listed; `None` when the listing failed (the scrape still answers, with
    /// `litegraph_backup_scrape_listing_ok 0`).
    pub listing: Option<Listing>,
    /// When the schedule's next run is due; `None` without a schedule, or while a run is
    /// in progress.
    pub next_run: Option<SystemTime>,
    /// The time the ages are measured to.
    pub now: SystemTime,
}

/// The backups a listing found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub count: u64,
    pub size_bytes: u64,
    /// When the newest backup was created; `None` when there is none.
    pub newest_created: Option<SystemTime>,
}

impl Listing {
    pub fn of(backups: &[BackupFile]) -> Listing {
        Listing {
            count: backups.len() as u64,
            size_bytes: backups.iter().map(|b| b.length).sum(),
            // The policy lists backups oldest first: the newest is the last.
            newest_created: backups.last().map(|b| b.created_utc.system_time()),
        }
    }
}

impl Inventory {
    /// The gauges, in a registry made for this one scrape: what a scrape computes is never
    /// shared, so two scrapes at once cannot mix their values, and a gauge with nothing to
    /// say (no backup, no schedule) is absent rather than 0.
    fn registry(&self) -> Registry {
        let mut registry = Registry::with_prefix(PREFIX);
        let gauge = |value: f64| {
            let gauge = Seconds::default();
            gauge.set(value);
            gauge
        };
        registry.register(
            "scrape_listing_ok",
            "1 when the backups could be listed for this scrape, 0 when not (the backup \
             gauges are then absent)",
            gauge(if self.listing.is_some() { 1.0 } else { 0.0 }),
        );
        if let Some(listing) = &self.listing {
            registry.register(
                "backups",
                "Backups in the backup directory",
                gauge(listing.count as f64),
            );
            registry.register_with_unit(
                "backups_size",
                "Total size of the backups in the backup directory",
                Unit::Bytes,
                gauge(listing.size_bytes as f64),
            );
            if let Some(newest) = listing.newest_created {
                registry.register_with_unit(
                    "newest_backup_timestamp",
                    "When the newest backup was created (unix time)",
                    Unit::Seconds,
                    gauge(unix_seconds(newest)),
                );
                let age = self.now.duration_since(newest).unwrap_or_default();
                registry.register_with_unit(
                    "newest_backup_age",
                    "How long ago the newest backup was created",
                    Unit::Seconds,
                    gauge(age.as_secs_f64()),
                );
            }
        }
        if let Some(next_run) = self.next_run {
            registry.register_with_unit(
                "next_scheduled_run_timestamp",
                "When the schedule's next backup is due (unix time); absent without a \
                 schedule or while a run is in progress",
                Unit::Seconds,
                gauge(unix_seconds(next_run)),
            );
        }
        registry
    }
}

/// Seconds since the unix epoch (negative before it).
fn unix_seconds(time: SystemTime) -> f64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => since.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn record(operation: Operation, outcome: Outcome) -> OperationRecord {
        OperationRecord {
            operation,
            backup: Some("nightly.db".to_owned()),
            target: None,
            started: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            duration: Duration::from_millis(1_500),
            bytes: 4096,
            outcome,
        }
    }

    fn no_inventory() -> Inventory {
        Inventory {
            listing: None,
            next_run: None,
            now: UNIX_EPOCH,
        }
    }

    fn encoded(metrics: &Metrics, inventory: &Inventory) -> String {
        metrics.encode(inventory).expect("encodes")
    }

    /// The value of the one sample line that begins with `series` (name and labels).
    fn sample(text: &str, series: &str) -> Option<f64> {
        let mut values = text.lines().filter_map(|line| {
            let value = line.strip_prefix(series)?.strip_prefix(' ')?;
            Some(value.parse::<f64>().expect("a number"))
        });
        let value = values.next();
        assert!(values.next().is_none(), "{series} appears once");
        value
    }

    #[test]
    fn every_operation_starts_with_zeroed_counters_and_no_timestamps() {
        let text = encoded(&Metrics::new(), &no_inventory());
        for operation in Operation::ALL {
            let op = operation.as_str();
            for outcome in ["success", "failure", "refused"] {
                let series = format!(
                    "litegraph_backup_operations_total{{operation=\"{op}\",target=\"\",outcome=\"{outcome}\"}}"
                );
                assert_eq!(sample(&text, &series), Some(0.0), "{series} in\n{text}");
            }
            let labels = format!("{{operation=\"{op}\",target=\"\"}}");
            assert_eq!(
                sample(
                    &text,
                    &format!("litegraph_backup_processed_bytes_total{labels}")
                ),
                Some(0.0)
            );
            assert_eq!(
                sample(
                    &text,
                    &format!("litegraph_backup_operation_duration_seconds_count{labels}")
                ),
                Some(0.0)
            );
        }
        assert!(!text.contains("timestamp_seconds{"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn a_success_sets_its_timestamp_counts_and_times_it() {
        let metrics = Metrics::new();
        metrics.observe(&record(Operation::Create, Outcome::Success));
        let text = encoded(&metrics, &no_inventory());
        let labels = "{operation=\"create\",target=\"\"}";
        assert_eq!(
            sample(
                &text,
                &format!("litegraph_backup_last_success_timestamp_seconds{labels}")
            ),
            Some(1_700_000_001.5),
            "when it ended"
        );
        assert_eq!(
            sample(
                &text,
                &format!("litegraph_backup_last_failure_timestamp_seconds{labels}")
            ),
            None
        );
        assert_eq!(
            sample(
                &text,
                "litegraph_backup_operations_total{operation=\"create\",target=\"\",outcome=\"success\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                &format!("litegraph_backup_processed_bytes_total{labels}")
            ),
            Some(4096.0)
        );
        // The histogram: 1.5 s falls in the 2.5 s bucket and those above, not in 1 s.
        let bucket = |le: &str| {
            sample(
                &text,
                &format!(
                    "litegraph_backup_operation_duration_seconds_bucket{{le=\"{le}\",operation=\"create\",target=\"\"}}"
                ),
            )
        };
        assert_eq!(bucket("1.0"), Some(0.0), "{text}");
        assert_eq!(bucket("2.5"), Some(1.0));
        assert_eq!(bucket("3600.0"), Some(1.0));
        assert_eq!(bucket("+Inf"), Some(1.0));
        assert_eq!(
            sample(
                &text,
                &format!("litegraph_backup_operation_duration_seconds_sum{labels}")
            ),
            Some(1.5)
        );
        assert!(
            text.contains("# TYPE litegraph_backup_operation_duration_seconds histogram\n"),
            "{text}"
        );
        assert!(text.contains("# UNIT litegraph_backup_operation_duration_seconds seconds\n"));
        assert!(text.contains("# TYPE litegraph_backup_operations counter\n"));
    }

    #[test]
    fn a_failure_is_not_a_refusal() {
        let metrics = Metrics::new();
        metrics.observe(&record(
            Operation::Verify,
            Outcome::Failure("digest mismatch".into()),
        ));
        metrics.observe(&record(
            Operation::Restore,
            Outcome::Refused("no such backup".into()),
        ));
        let text = encoded(&metrics, &no_inventory());
        let total = |op: &str, outcome: &str| {
            sample(
                &text,
                &format!(
                    "litegraph_backup_operations_total{{operation=\"{op}\",target=\"\",outcome=\"{outcome}\"}}"
                ),
            )
        };
        assert_eq!(total("verify", "failure"), Some(1.0));
        assert_eq!(total("restore", "refused"), Some(1.0));
        assert_eq!(total("restore", "failure"), Some(0.0));
        assert_eq!(
            sample(
                &text,
                "litegraph_backup_last_failure_timestamp_seconds{operation=\"verify\",target=\"\"}"
            ),
            Some(1_700_000_001.5)
        );
        assert!(
            !text.contains("timestamp_seconds{operation=\"restore\""),
            "a refusal sets no timestamp: {text}"
        );
        assert_eq!(
            sample(
                &text,
                "litegraph_backup_operation_duration_seconds_count{operation=\"restore\",target=\"\"}"
            ),
            Some(0.0),
            "nor is it timed"
        );
    }

    #[test]
    fn a_remote_operation_is_labelled_with_its_target() {
        let metrics = Metrics::new();
        metrics.observe(&OperationRecord {
            target: Some("offsite".into()),
            ..record(Operation::Push, Outcome::Success)
        });
        let text = encoded(&metrics, &no_inventory());
        assert_eq!(
            sample(
                &text,
                "litegraph_backup_processed_bytes_total{operation=\"push\",target=\"offsite\"}"
            ),
            Some(4096.0)
        );
    }

    #[test]
    fn the_inventory_gauges_say_what_is_known() {
        let metrics = Metrics::new();
        let at = |seconds| UNIX_EPOCH + Duration::from_secs(seconds);
        let text = encoded(
            &metrics,
            &Inventory {
                listing: Some(Listing {
                    count: 3,
                    size_bytes: 12_288,
                    newest_created: Some(at(1_000)),
                }),
                next_run: Some(at(5_000)),
                now: at(1_600),
            },
        );
        for (series, value) in [
            ("litegraph_backup_scrape_listing_ok", 1.0),
            ("litegraph_backup_backups", 3.0),
            ("litegraph_backup_backups_size_bytes", 12_288.0),
            ("litegraph_backup_newest_backup_timestamp_seconds", 1_000.0),
            ("litegraph_backup_newest_backup_age_seconds", 600.0),
            (
                "litegraph_backup_next_scheduled_run_timestamp_seconds",
                5_000.0,
            ),
        ] {
            assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n") && text.matches("# EOF").count() == 1);

        let empty = encoded(
            &metrics,
            &Inventory {
                listing: Some(Listing::default()),
                next_run: None,
                now: at(1_600),
            },
        );
        assert_eq!(sample(&empty, "litegraph_backup_backups"), Some(0.0));
        assert!(!empty.contains("newest_backup"), "{empty}");
        assert!(!empty.contains("next_scheduled_run"), "{empty}");

        let failed = encoded(&metrics, &no_inventory());
        assert_eq!(
            sample(&failed, "litegraph_backup_scrape_listing_ok"),
            Some(0.0)
        );
        assert!(!failed.contains("litegraph_backup_backups"), "{failed}");
    }

    // A restart must not make the age alert go quiet: the times come back from the record.
    #[test]
    fn remembered_times_never_go_back() {
        let metrics = Metrics::new();
        let at = |seconds| UNIX_EPOCH + Duration::from_secs(seconds);
        metrics.remember(Operation::Create, None, Some(at(1_700_000_100)), None);
        metrics.remember(
            Operation::Push,
            Some("offsite"),
            None,
            Some(at(1_700_000_200)),
        );
        let text = encoded(&metrics, &no_inventory());
        let created =
            "litegraph_backup_last_success_timestamp_seconds{operation=\"create\",target=\"\"}";
        let pushed = "litegraph_backup_last_failure_timestamp_seconds{operation=\"push\",target=\"offsite\"}";
        assert_eq!(sample(&text, created), Some(1_700_000_100.0));
        assert_eq!(sample(&text, pushed), Some(1_700_000_200.0));
        // A later success this process saw stands against an older remembered one.
        metrics.observe(&record(Operation::Create, Outcome::Success));
        metrics.remember(Operation::Create, None, Some(at(1_600_000_000)), None);
        let text = encoded(&metrics, &no_inventory());
        assert_eq!(sample(&text, created), Some(1_700_000_001.5));
    }
}

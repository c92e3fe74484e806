//! `GET /metrics`: scraped from a real `serve` (on the API with the token, and on
//! `--metrics-listen` without one), parsed by a Prometheus text-format parser that is not
//! the encoder's, and watched move as backups are made, fail, are pruned and drilled.

use std::io::Read as _;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_parse::{HistogramCount, LineInfo, Scrape, Value};
use rusqlite::Connection;

use crate::client::{ADMIN, Server, post_backup, request, send};
use crate::serve::Served;
use crate::support::Deployment;

/// What `prometheus-client` encodes (OpenMetrics text), and so what the server declares.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A scrape, parsed.
pub(super) struct Metrics {
    scrape: Scrape,
    text: String,
}

impl Metrics {
    /// Parses `text` with `prometheus-parse`, after checking what that lenient parser
    /// would skip: every line is a sample, a HELP, TYPE or UNIT comment, and the last is
    /// OpenMetrics' `# EOF`.
    pub(super) fn parse(text: &str) -> Metrics {
        assert!(text.ends_with("\n# EOF\n"), "ends with # EOF:\n{text}");
        for line in text.lines() {
            let comment = ["# HELP ", "# TYPE ", "# UNIT "]
                .iter()
                .any(|prefix| line.starts_with(prefix))
                || line == "# EOF";
            assert!(
                comment || matches!(LineInfo::parse(line), LineInfo::Sample { .. }),
                "not a sample line: {line:?}"
            );
        }
        let scrape =
            Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).expect("the scrape parses");
        Metrics {
            scrape,
            text: text.to_owned(),
        }
    }

    /// The value of series `name` with exactly `labels`; `None` when it is absent.
    pub(super) fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let value = match &self.sample(name, labels)?.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            other => panic!("{name} is not a single value: {other:?}"),
        };
        Some(value)
    }

    /// The buckets of histogram `name` with exactly `labels` (besides `le`).
    pub(super) fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Vec<HistogramCount> {
        match &self
            .sample(name, labels)
            .unwrap_or_else(|| panic!("no histogram {name}{labels:?} in\n{}", self.text))
            .value
        {
            Value::Histogram(buckets) => buckets.clone(),
            other => panic!("{name} is not a histogram: {other:?}"),
        }
    }

    fn sample(&self, name: &str, labels: &[(&str, &str)]) -> Option<&prometheus_parse::Sample> {
        let mut found = self.scrape.samples.iter().filter(|sample| {
            sample.metric == name
                && sample.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(key, value)| sample.labels.get(key) == Some(*value))
        });
        let sample = found.next();
        assert!(found.next().is_none(), "{name}{labels:?} appears once");
        sample
    }

    /// `litegraph_backup_operations_total` of `operation` (no target) ending as `outcome`.
    pub(super) fn operations(&self, operation: &str, outcome: &str) -> f64 {
        self.value(
            "litegraph_backup_operations_total",
            &[
                ("operation", operation),
                ("target", ""),
                ("outcome", outcome),
            ],
        )
        .unwrap_or_else(|| panic!("operations_total of {operation} {outcome} is seeded"))
    }

    /// A per-operation series of `operation`, without a target.
    pub(super) fn of(&self, name: &str, operation: &str) -> Option<f64> {
        self.value(name, &[("operation", operation), ("target", "")])
    }

    /// A series without labels (the scrape-time gauges).
    pub(super) fn gauge(&self, name: &str) -> Option<f64> {
        self.value(name, &[])
    }
}

/// GETs `/metrics` from `addr` with `headers`; answers 200 in OpenMetrics text, parsed.
pub(super) fn scrape(addr: SocketAddr, headers: &[(&str, &str)]) -> Metrics {
    let (status, head, mut body) = send(addr, "GET", "/metrics", headers, b"");
    let mut text = String::new();
    body.read_to_string(&mut text).expect("the body is text");
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        head.get("content-type").map(String::as_str),
        Some(OPENMETRICS)
    );
    Metrics::parse(&text)
}

/// The address `serve --metrics-listen` logged.
pub(super) fn metrics_address(served: &Served) -> SocketAddr {
    const LOGGED: &str = "serving metrics on http://";
    let log = served.wait_for_log("the metrics address", Duration::from_secs(10), |log| {
        log.contains(LOGGED)
    });
    log.split(LOGGED)
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no metrics address in\n{log}"))
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

/// The backups as `GET /v1.0/backups` lists them: (name, length, created unix seconds).
fn listed(addr: SocketAddr) -> Vec<(String, u64)> {
    let answer = request(addr, "GET", "/v1.0/backups", &[ADMIN], b"");
    assert_eq!(answer.status, 200, "{}", answer.text());
    let list: serde_json::Value = serde_json::from_slice(&answer.body).expect("JSON");
    list.as_array()
        .expect("an array")
        .iter()
        .map(|b| {
            (
                b["Filename"].as_str().expect("a name").to_owned(),
                b["Length"].as_u64().expect("a length"),
            )
        })
        .collect()
}

/// The backup directory's gauges agree with the API's listing.
fn assert_gauges_match_list(metrics: &Metrics, addr: SocketAddr) {
    let list = listed(addr);
    assert_eq!(
        metrics.gauge("litegraph_backup_scrape_listing_ok"),
        Some(1.0)
    );
    assert_eq!(
        metrics.gauge("litegraph_backup_backups"),
        Some(list.len() as f64),
        "{list:?}"
    );
    assert_eq!(
        metrics.gauge("litegraph_backup_backups_size_bytes"),
        Some(list.iter().map(|(_, length)| *length).sum::<u64>() as f64)
    );
}

#[test]
fn metrics_move_when_a_backup_is_made_fails_and_is_pruned() {
    let deployment = Deployment::with_nodes(200);
    // A rollback journal, as in the CLI's lock test: in WAL mode BEGIN EXCLUSIVE would not
    // keep the backup's reader out.
    let mode: String = Connection::open(&deployment.database)
        .expect("open")
        .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
        .expect("rollback journal");
    assert_eq!(mode, "delete");
    let served = Served::start(
        &deployment,
        &[
            "--metrics-listen",
            "127.0.0.1:0",
            "--busy-timeout-ms",
            "200",
        ],
    );
    let metrics = metrics_address(&served);

    let fresh = scrape(metrics, &[]);
    assert_eq!(fresh.operations("create", "success"), 0.0, "seeded at 0");
    assert_eq!(
        fresh.of("litegraph_backup_last_success_timestamp_seconds", "create"),
        None,
        "no success yet"
    );
    assert_eq!(fresh.gauge("litegraph_backup_backups"), Some(0.0));
    assert_eq!(
        fresh.gauge("litegraph_backup_newest_backup_timestamp_seconds"),
        None
    );
    assert_eq!(
        fresh.gauge("litegraph_backup_next_scheduled_run_timestamp_seconds"),
        None,
        "no schedule"
    );

    // A backup is made.
    let before_a = unix_now();
    let a = post_backup(served.addr, "a.db");
    assert_eq!(a.status, 200, "{}", a.text());
    let a_length = listed(served.addr)[0].1;
    let made = scrape(metrics, &[]);
    let last_success = made
        .of("litegraph_backup_last_success_timestamp_seconds", "create")
        .expect("set by the create");
    assert!(
        last_success >= before_a && last_success <= unix_now(),
        "{last_success} after {before_a}"
    );
    assert_eq!(made.operations("create", "success"), 1.0);
    assert_eq!(
        made.of("litegraph_backup_processed_bytes_total", "create"),
        Some(a_length as f64)
    );
    assert_eq!(
        made.of(
            "litegraph_backup_operation_duration_seconds_count",
            "create"
        ),
        Some(1.0)
    );
    let buckets = made.histogram(
        "litegraph_backup_operation_duration_seconds",
        &[("operation", "create"), ("target", "")],
    );
    assert_eq!(
        buckets.last().map(|b| (b.less_than, b.count)),
        Some((f64::INFINITY, 1.0))
    );
    assert_gauges_match_list(&made, served.addr);
    let newest = made
        .gauge("litegraph_backup_newest_backup_timestamp_seconds")
        .expect("a backup exists");
    assert!(
        newest >= before_a - 1.0 && newest <= last_success,
        "{newest}"
    );
    let age = made
        .gauge("litegraph_backup_newest_backup_age_seconds")
        .expect("a backup exists");
    assert!((0.0..60.0).contains(&age), "{age}");

    let b = post_backup(served.addr, "b.db");
    assert_eq!(b.status, 200, "{}", b.text());
    let two = scrape(metrics, &[]);
    assert_eq!(two.operations("create", "success"), 2.0);
    assert_gauges_match_list(&two, served.addr);

    // A backup fails: the database stays locked past the busy timeout.
    let holder = Connection::open(&deployment.database).expect("open");
    holder
        .execute_batch("BEGIN EXCLUSIVE")
        .expect("hold the lock");
    let before_c = unix_now();
    let c = post_backup(served.addr, "c.db");
    holder.execute_batch("COMMIT").expect("release");
    assert_ne!(c.status, 200, "{}", c.text());
    assert!(c.text().contains("locked"), "{}", c.text());
    let failed = scrape(metrics, &[]);
    let last_failure = failed
        .of("litegraph_backup_last_failure_timestamp_seconds", "create")
        .expect("set by the failure");
    assert!(last_failure >= before_c, "{last_failure} after {before_c}");
    assert_eq!(failed.operations("create", "failure"), 1.0);
    assert_eq!(failed.operations("create", "success"), 2.0);
    assert_eq!(failed.operations("create", "refused"), 0.0);
    assert_eq!(
        failed.of("litegraph_backup_last_success_timestamp_seconds", "create"),
        two.of("litegraph_backup_last_success_timestamp_seconds", "create"),
        "a failure leaves the last success alone"
    );
    assert_gauges_match_list(&failed, served.addr);

    // A prune removes the older backup.
    let before_prune = unix_now();
    let pruned = request(
        served.addr,
        "POST",
        "/v1.0/backup-retention/prune",
        &[ADMIN, ("Content-Type", "application/json")],
        br#"{"KeepLast": 1, "IncludeNamed": true}"#,
    );
    assert_eq!(pruned.status, 200, "{}", pruned.text());
    assert_eq!(
        listed(served.addr)
            .into_iter()
            .map(|(name, _)| name)
            .collect::<Vec<_>>(),
        ["b.db"]
    );
    let after_prune = scrape(metrics, &[]);
    assert_eq!(after_prune.operations("prune", "success"), 1.0);
    assert!(
        after_prune
            .of("litegraph_backup_last_success_timestamp_seconds", "prune")
            .expect("set by the prune")
            >= before_prune
    );
    assert_eq!(
        after_prune.of("litegraph_backup_processed_bytes_total", "prune"),
        Some(a_length as f64),
        "the bytes removed"
    );
    assert_eq!(after_prune.gauge("litegraph_backup_backups"), Some(1.0));
    assert_gauges_match_list(&after_prune, served.addr);

    // On the API's address /metrics needs the token; the metrics listener serves nothing
    // but /metrics.
    assert_eq!(
        request(served.addr, "GET", "/metrics", &[], b"").status,
        401
    );
    let with_token = scrape(served.addr, &[ADMIN]);
    assert_eq!(with_token.operations("prune", "success"), 1.0);
    for path in ["/health", "/v1.0/backups", "/metrics/x", "/"] {
        assert_eq!(
            request(metrics, "GET", path, &[ADMIN], b"").status,
            404,
            "{path}"
        );
    }

    // It stops with the server.
    let (code, log) = served.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        TcpStream::connect(metrics).is_err(),
        "the metrics listener is closed"
    );
}

#[test]
fn a_metrics_address_that_cannot_be_bound_stops_serve_at_start() {
    let deployment = Deployment::with_nodes(10);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("address").to_string();
    let output = deployment.run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        &addr,
    ]);
    assert_eq!(
        output.status.code(),
        Some(6),
        "as for the API's own address"
    );
    let message = crate::support::stderr(&output);
    assert!(
        message.contains(&format!("cannot listen on {addr} for --metrics-listen")),
        "{message}"
    );
}

#[test]
fn a_drill_moves_the_drill_metrics() {
    let deployment = Deployment::with_nodes(50);
    let runtime = deployment.runtime();
    runtime.create(Some("drilled.db")).expect("a backup");
    let server = Server::start_with(runtime.clone());
    let before = scrape(server.addr, &[ADMIN]);
    assert_eq!(before.operations("drill", "success"), 0.0);
    assert_eq!(before.operations("drill", "failure"), 0.0);

    // drill: through the runtime the API serves (no drill route yet); the metrics are the
    // runtime's, whichever edge asked.
    let started = unix_now();
    let drill = runtime.drill(None);
    let after = scrape(server.addr, &[ADMIN]);
    let (outcome, timestamp) = match &drill {
        Ok(drill) if drill.passed => ("success", Some("last_success")),
        Err(e) if e.is_callers() => ("refused", None),
        _ => ("failure", Some("last_failure")),
    };
    assert_eq!(after.operations("drill", outcome), 1.0, "{drill:?}");
    if let Some(timestamp) = timestamp {
        let name = format!("litegraph_backup_{timestamp}_timestamp_seconds");
        assert!(
            after.of(&name, "drill").expect("set by the drill") >= started,
            "{drill:?}"
        );
    }
    if let Ok(drill) = &drill {
        assert_eq!(
            after.of("litegraph_backup_processed_bytes_total", "drill"),
            Some(drill.backup.length as f64)
        );
    }
}

//! Alerts out of a real `serve`: a heartbeat GET after each successful scheduled run, a
//! webhook POST for each failed run or drill, received on 127.0.0.1; and a dead endpoint
//! (nobody listening, or a receiver that never answers) that delays no run.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::health::{PATIENCE, health, remove_database, runs, schedule, wait_until};
use crate::serve::Served;
use crate::support::Deployment;
use crate::support::stdout;

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// An HTTP receiver on 127.0.0.1 that records each request, then answers 200 (or, when
/// `silent`, holds the connection open and never answers).
struct Receiver {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start(silent: bool) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a receiver");
        let port = listener.local_addr().expect("address").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                if silent {
                    // Kept open, never read nor answered: the client's timeout must end it.
                    held.push(stream);
                    continue;
                }
                let log = Arc::clone(&log);
                std::thread::spawn(move || answer(stream, &log));
            }
        });
        Receiver { port, received }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().expect("received").clone()
    }

    fn count(&self, method: &str) -> usize {
        self.received()
            .iter()
            .filter(|r| r.method == method)
            .count()
    }
}

/// Reads one request (head, then a body of its Content-Length), records it, answers 200
/// and closes.
fn answer(stream: TcpStream, log: &Mutex<Vec<Received>>) {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or_default().to_owned(),
        parts.next().unwrap_or_default().to_owned(),
    );
    let mut length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    log.lock()
        .expect("received")
        .push(Received { method, path, body });
    let _ = reader
        .get_mut()
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

/// A port on 127.0.0.1 that nobody listens on (bound, then let go).
fn dead_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// The scheduled runs the log reports, by outcome: made and verified, or failed.
fn logged_runs(log: &str) -> (usize, usize) {
    (
        log.matches(" made and verified in ").count(),
        log.matches("scheduled run failed").count(),
    )
}

#[test]
fn the_webhook_gets_one_post_per_failed_run_and_the_heartbeat_one_get_per_successful_run() {
    let deployment = Deployment::with_nodes(20);
    let receiver = Receiver::start(false);
    let (heartbeat, webhook) = (receiver.url("/ping/0f3c-secret"), receiver.url("/alerts"));
    let served = Served::start(
        &deployment,
        &[
            "--schedule",
            "1s",
            "--heartbeat-url",
            &heartbeat,
            "--alert-webhook",
            &webhook,
        ],
    );
    wait_until("two successful runs and their heartbeats", PATIENCE, || {
        (runs(&served, "Succeeded") >= 2 && receiver.count("GET") >= 2).then_some(())
    });
    remove_database(&deployment);
    wait_until("three failed runs and their alerts", PATIENCE, || {
        (runs(&served, "Failed") >= 3 && receiver.count("POST") >= 3).then_some(())
    });
    let (code, log) = served.terminate();
    assert_eq!(code, Some(0), "{log}");
    // The secret path of the heartbeat is never logged.
    assert!(!log.contains("0f3c-secret"), "{log}");

    let (succeeded, failed) = logged_runs(&log);
    let received = receiver.received();
    let gets: Vec<&Received> = received.iter().filter(|r| r.method == "GET").collect();
    let posts: Vec<&Received> = received.iter().filter(|r| r.method == "POST").collect();
    assert_eq!(
        gets.len(),
        succeeded,
        "one heartbeat per successful run\n{log}"
    );
    assert_eq!(posts.len(), failed, "one alert per failed run\n{log}");
    assert!(gets.iter().all(|r| r.path == "/ping/0f3c-secret"));
    assert!(posts.iter().all(|r| r.path == "/alerts"));
    // No heartbeat once the runs fail: every GET came before the first POST.
    let first_post = received
        .iter()
        .position(|r| r.method == "POST")
        .expect("a POST");
    assert!(
        received[first_post..].iter().all(|r| r.method == "POST"),
        "{received:?}"
    );
    let shown = deployment.database.display().to_string();
    for post in posts {
        let alert = post.json();
        assert_eq!(alert["Operation"], "create", "{alert}");
        let error = alert["Error"].as_str().expect("Error");
        assert!(
            error.contains("no backup was made") && error.contains(&shown),
            "{error}"
        );
        // RFC 3339 in UTC, to the second: 2026-12-01T03:00:00Z.
        let time = alert["Time"].as_str().expect("Time");
        let shape: String = time
            .chars()
            .map(|c| if c.is_ascii_digit() { '0' } else { c })
            .collect();
        assert_eq!(shape, "0000-00-00T00:00:00Z", "{time}");
        assert!(!alert["Host"].as_str().expect("Host").is_empty());
        assert_eq!(alert["Backup"], Value::Null);
    }
}

#[test]
fn a_dead_webhook_delays_no_run_and_each_delivery_failure_is_logged() {
    const PERIOD: Duration = Duration::from_secs(1);
    const RUNS: u64 = 5;
    let deployment = Deployment::with_nodes(20);
    let silent = Receiver::start(true);
    let heartbeat = format!("http://127.0.0.1:{}/ping", dead_port());
    let served = Served::start(
        &deployment,
        &[
            "--schedule",
            "1s",
            "--heartbeat-url",
            &heartbeat,
            "--alert-webhook",
            &silent.url("/alerts"),
        ],
    );
    // The heartbeat of the first run goes to a port nobody listens on: refused, logged,
    // retried.
    served.wait_for_log("a refused heartbeat", PATIENCE, |log| {
        log.contains("the heartbeat to http://127.0.0.1:") && log.contains("attempt 1 of 3")
    });
    remove_database(&deployment);
    let failed = |served: &Served| runs(served, "Failed");
    let first = wait_until("a failed run", PATIENCE, || {
        let failed = failed(&served);
        (failed >= 1).then_some(failed)
    });
    let began = Instant::now();
    // Each alert now waits on a receiver that never answers (10 s per attempt): the runs
    // must keep their period all the same.
    wait_until("more failed runs", PATIENCE, || {
        (failed(&served) >= first + RUNS).then_some(())
    });
    let took = began.elapsed();
    let runs = u32::try_from(RUNS).expect("a few");
    assert!(
        took <= PERIOD * runs + Duration::from_millis(900),
        "{RUNS} runs took {took:?}, not one period each"
    );
    let (status, _) = health(&served);
    assert_eq!(status, 503);

    let (code, log) = served.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("alerts still unsent after 5s: abandoned"),
        "a dead endpoint holds up the shutdown a bounded time\n{log}"
    );
    assert!(silent.received().is_empty());
}

#[test]
fn a_failed_scheduled_drill_is_posted_and_degrades_health_and_status() {
    let deployment = Deployment::with_nodes(200);
    assert!(deployment.run(&["create", "a.db"]).status.success());
    // Damaged on purpose, after its digests were recorded: it would not restore as made.
    let backup = deployment.backup("a.db");
    let mut bytes = std::fs::read(&backup).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&backup, &bytes).expect("damage the backup");

    let receiver = Receiver::start(false);
    let webhook = receiver.url("/alerts");
    // Drills only, no backup schedule: the daemon runs all the same.
    let served = Served::start(
        &deployment,
        &["--drill-every", "1s", "--alert-webhook", &webhook],
    );
    wait_until("an alert about the drill", PATIENCE, || {
        (receiver.count("POST") >= 1).then_some(())
    });
    let alert = receiver.received()[0].json();
    assert_eq!(alert["Operation"], "drill", "{alert}");
    assert_eq!(alert["Backup"], "a.db", "{alert}");
    let error = alert["Error"].as_str().expect("Error");
    assert!(error.contains("a.db failed its restore drill"), "{error}");

    let (status, body) = health(&served);
    assert_eq!(status, 503, "{body}");
    let problems = body["Problems"].to_string();
    assert!(
        problems.contains("the newest backup, a.db, failed its last restore drill"),
        "{problems}"
    );
    let drills = &schedule(&served)["Drills"];
    assert!(drills["Failed"].as_u64().expect("a count") >= 1, "{drills}");
    assert_eq!(runs(&served, "Succeeded") + runs(&served, "Failed"), 0);

    let status = deployment.run(&["status"]);
    assert_eq!(status.status.code(), Some(4), "{}", stdout(&status));
    assert!(
        stdout(&status).contains("Its drill:    FAILED"),
        "{}",
        stdout(&status)
    );
    let (code, log) = served.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("scheduled drill failed: a.db failed its restore drill"),
        "{log}"
    );
}

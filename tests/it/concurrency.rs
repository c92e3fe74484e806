//! Backups of a database that keeps changing, and operations that race each other.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use litegraph_backup::Error;
use litegraph_backup_tests::{create_litegraph_database_of_size, file_sha256, integrity};
use rusqlite::{Connection, params};

use crate::client::{ADMIN, Server, post_backup, request};
use crate::support::{Deployment, ignoring_access};

/// Commits continuously until told to stop: each transaction adds a node and advances a
/// counter, so a consistent snapshot always has exactly `counter` writer nodes.
fn writer(database: &std::path::Path, stop: &AtomicBool, committed: &AtomicU64) {
    let mut db = Connection::open(database).expect("open");
    db.busy_timeout(std::time::Duration::from_secs(10))
        .expect("timeout");
    db.execute_batch(
        "PRAGMA synchronous = NORMAL;
         CREATE TABLE IF NOT EXISTS writer_progress (n INTEGER NOT NULL);
         INSERT INTO writer_progress VALUES (0);",
    )
    .expect("prepare");
    let mut n: i64 = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let tx = db.transaction().expect("begin");
        tx.execute(
            "INSERT INTO nodes (guid, tenantguid, graphguid, name, data) VALUES (?1, 't', 'g', ?2, '{}')",
            params![format!("writer-{n}"), format!("writer node {n}")],
        )
        .expect("insert");
        tx.execute("UPDATE writer_progress SET n = ?1", params![n])
            .expect("update");
        tx.commit().expect("commit");
        committed.store(n as u64, Ordering::Release);
    }
}

#[test]
fn backup_while_a_writer_commits_is_consistent() {
    let deployment = Deployment::with_nodes(20_000);
    let stop = AtomicBool::new(false);
    let committed = AtomicU64::new(0);
    thread::scope(|scope| {
        scope.spawn(|| writer(&deployment.database, &stop, &committed));
        while committed.load(Ordering::Acquire) < 10 {
            thread::yield_now();
        }
        let before = committed.load(Ordering::Acquire);
        let result = deployment.runtime().create(Some("live.db"));
        let after = committed.load(Ordering::Acquire);
        stop.store(true, Ordering::Relaxed);
        result.expect("the backup finishes under a steady writer");
        assert!(
            after > before,
            "the writer kept committing during the backup"
        );

        let copy = deployment.backup("live.db");
        assert_eq!(integrity(&copy, true).expect("check"), "ok");
        let db = Connection::open(&copy).expect("open");
        let progress: i64 = db
            .query_row("SELECT n FROM writer_progress", [], |r| r.get(0))
            .expect("progress");
        let writer_nodes: i64 = db
            .query_row(
                "SELECT count(*) FROM nodes WHERE guid LIKE 'writer-%'",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(writer_nodes, progress, "every transaction whole, none torn");
        assert!((before as i64..=after as i64).contains(&progress));
    });
}

#[test]
fn simultaneous_creates_of_one_name_give_one_backup() {
    let deployment = Deployment::with_nodes(2_000);
    let runtime = deployment.runtime();
    const RACERS: usize = 6;
    let barrier = Barrier::new(RACERS);
    let results: Vec<_> = thread::scope(|scope| {
        let handles: Vec<_> = (0..RACERS)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    runtime.create(Some("race.db"))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("join"))
            .collect()
    });
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter(|r| r.is_err())
            .all(|r| r == &Err(Error::Exist)),
        "{results:?}"
    );
    let copy = deployment.backup("race.db");
    assert_eq!(integrity(&copy, true).expect("check"), "ok");
    assert_eq!(winners[0].sha256_hash, file_sha256(&copy).expect("hash"));
    let read = runtime.read("race.db").expect("read");
    assert_eq!(ignoring_access(&read), ignoring_access(winners[0]));
    let entries = deployment.backup_dir_entries();
    assert_eq!(
        entries.len(),
        2,
        "one backup and its sidecar, no temporaries: {entries:?}"
    );
}

#[test]
fn listing_while_backups_are_made_never_shows_internal_files() {
    let deployment = Deployment::with_nodes(5_000);
    let runtime = deployment.runtime();
    let done = AtomicBool::new(false);
    thread::scope(|scope| {
        scope.spawn(|| {
            for i in 0..5 {
                runtime.create(Some(&format!("b{i}.db"))).expect("create");
            }
            done.store(true, Ordering::Release);
        });
        let mut lists = 0;
        while !done.load(Ordering::Acquire) {
            for backup in runtime.list().expect("list") {
                assert!(!backup.filename.starts_with('.'), "{}", backup.filename);
            }
            lists += 1;
        }
        assert!(lists > 0);
    });
    assert_eq!(runtime.list().expect("list").len(), 5);
}

/// A full verify over HTTP: counts itself in `sent` once its request is on the wire and in
/// `finished` once answered.
fn full_verify(addr: SocketAddr, sent: &AtomicUsize, finished: &AtomicUsize) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .write_all(
            b"POST /v1.0/backups/big.db/verify?full HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
              Authorization: Bearer litegraphadmin\r\nContent-Length: 0\r\n\r\n",
        )
        .expect("send");
    sent.fetch_add(1, Ordering::SeqCst);
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("an answer");
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    finished.fetch_add(1, Ordering::SeqCst);
}

// Before, 200 parallel full verifies held all 64 guest instances and a plain list waited
// behind them (9.4 s); heavy operations now queue for their own few turns.
#[test]
fn lists_answer_promptly_while_many_full_verifies_queue() {
    // More than the 64 guest instances, each verify some tens of milliseconds of work.
    const VERIFIES: usize = 100;
    let deployment = Deployment::without_database();
    create_litegraph_database_of_size(&deployment.database, 6 << 20).expect("a database");
    let server = Server::start(&deployment);
    assert_eq!(post_backup(server.addr, "big.db").status, 200);
    let timed_list = || {
        let started = Instant::now();
        let answer = request(server.addr, "GET", "/v1.0/backups", &[ADMIN], b"");
        assert_eq!(answer.status, 200);
        started.elapsed()
    };
    let baseline = (0..5).map(|_| timed_list()).max().expect("five");

    let (sent, finished) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let during = thread::scope(|scope| {
        for _ in 0..VERIFIES {
            scope.spawn(|| full_verify(server.addr, &sent, &finished));
        }
        let began = Instant::now();
        while sent.load(Ordering::SeqCst) < VERIFIES {
            assert!(
                began.elapsed() < Duration::from_secs(60),
                "verifies not sent"
            );
            thread::yield_now();
        }
        let mut during = Vec::new();
        while during.len() < 5 && finished.load(Ordering::SeqCst) < VERIFIES {
            let took = timed_list();
            if finished.load(Ordering::SeqCst) < VERIFIES {
                during.push(took);
            }
        }
        during
    });
    eprintln!("list: {baseline:?} alone, {during:?} behind {VERIFIES} full verifies");
    assert!(
        during.len() >= 3,
        "the verifies ended before lists could be timed among them: {during:?}"
    );
    let worst = during.iter().max().expect("samples");
    assert!(
        *worst < Duration::from_secs(1).max(baseline * 20),
        "a list took {worst:?} behind heavy work (alone: {baseline:?})"
    );
    assert_eq!(
        finished.load(Ordering::SeqCst),
        VERIFIES,
        "every verify answered"
    );
}

//! The API on a real socket: races between clients, requests served while a large backup
//! runs, a streamed GET, and clients too slow to be worth a connection.

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

use litegraph_backup_tests::{create_litegraph_database_of_size, integrity};
use serde_json::Value;

use crate::client::{ADMIN, Server, post_backup, request, send};
use crate::support::{Deployment, decoded_data};

#[test]
fn simultaneous_posts_of_one_name_give_one_200_and_one_409() {
    let deployment = Deployment::with_nodes(3_000);
    let server = Server::start(&deployment);
    let body = br#"{"Filename":"race.db"}"#;
    let statuses: Vec<u16> = thread::scope(|scope| {
        let racers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| request(server.addr, "POST", "/v1.0/backups", &[ADMIN], body).status)
            })
            .collect();
        racers
            .into_iter()
            .map(|r| r.join().expect("join"))
            .collect()
    });
    let mut sorted = statuses.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [200, 409], "{statuses:?}");
    let copy = deployment.backup("race.db");
    assert_eq!(integrity(&copy, true).expect("check"), "ok");
    assert_eq!(
        deployment.backup_dir_entries().len(),
        2,
        "one backup, one sidecar"
    );
}

#[test]
fn requests_keep_answering_while_a_large_backup_runs() {
    let deployment = Deployment::without_database();
    create_litegraph_database_of_size(&deployment.database, 96 << 20).expect("a large database");
    let server = Server::start(&deployment);
    assert_eq!(post_backup(server.addr, "small.db").status, 200);

    // A request answered while the snapshot's temporary exists proves nothing waited for
    // it; on a machine busy with other tests the snapshot can be over before one round trip
    // is, so up to three backups are tried. A server that made requests wait for the
    // snapshot answers none during any of them.
    let answered_meanwhile = AtomicUsize::new(0);
    for attempt in 1..=3 {
        answered_during_one_backup(&deployment, &server, attempt, &answered_meanwhile);
        if answered_meanwhile.load(Ordering::SeqCst) >= 1 {
            break;
        }
    }
    eprintln!(
        "{} requests answered while the snapshot was being made",
        answered_meanwhile.load(Ordering::SeqCst)
    );
    assert!(
        answered_meanwhile.load(Ordering::SeqCst) >= 1,
        "no request was answered while the snapshot was being made"
    );
}

#[test]
fn get_with_data_streams_through_a_real_socket() {
    let deployment = Deployment::with_nodes(3_000);
    let server = Server::start(&deployment);
    assert_eq!(post_backup(server.addr, "x.db").status, 200);
    let (status, headers, mut reader) =
        send(server.addr, "GET", "/v1.0/backups/x.db", &[ADMIN], b"");
    assert_eq!(status, 200);
    let mut body = Vec::new();
    reader.read_to_end(&mut body).expect("body");
    let declared: usize = headers["content-length"].parse().expect("a length");
    assert_eq!(declared, body.len(), "Content-Length is exact");
    let value: Value = serde_json::from_slice(&body).expect("JSON");
    decoded_data(&value);
}

#[test]
fn slow_clients_cannot_hold_a_connection() {
    use std::io::Write as _;
    let deployment = Deployment::with_nodes(10);
    let server =
        Server::start_with_timeout(deployment.runtime(), std::time::Duration::from_millis(300));
    let before = deployment.tree();
    // A bound on the test, not a synchronisation: the server must act well before it.
    let patience = Some(std::time::Duration::from_secs(20));

    // Headers that never end: the server closes the connection.
    let mut slow = std::net::TcpStream::connect(server.addr).expect("connect");
    slow.set_read_timeout(patience).expect("timeout");
    slow.write_all(
        b"GET /v1.0/backups HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer litegraphadmin\r\n",
    )
    .expect("send part of the headers");
    let mut rest = Vec::new();
    let outcome = slow.read_to_end(&mut rest);
    assert!(
        !matches!(&outcome, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "the server kept a connection with unfinished headers: {outcome:?}"
    );
    assert!(
        !String::from_utf8_lossy(&rest).contains(" 200 "),
        "it was not served"
    );

    // A body that never arrives in full: 408 RequestTimeout, and nothing is created.
    let mut slow = std::net::TcpStream::connect(server.addr).expect("connect");
    slow.set_read_timeout(patience).expect("timeout");
    slow.write_all(
        b"POST /v1.0/backups HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer litegraphadmin\r\nContent-Length: 100\r\n\r\n{\"Filename\":",
    )
    .expect("send part of the body");
    let mut answer = Vec::new();
    slow.read_to_end(&mut answer)
        .expect("an answer before the test's bound");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""Error":"RequestTimeout""#), "{answer}");

    assert_eq!(deployment.tree(), before);
    assert_eq!(
        request(server.addr, "GET", "/v1.0/backups", &[ADMIN], b"").status,
        200,
        "still serving"
    );
}

/// Makes backup `large-<attempt>.db` while requests go on; counts those answered while its
/// temporary existed.
fn answered_during_one_backup(
    deployment: &Deployment,
    server: &Server,
    attempt: u32,
    answered_meanwhile: &AtomicUsize,
) {
    let finished = AtomicBool::new(false);
    let copying = || {
        std::fs::read_dir(&deployment.backups)
            .expect("read")
            .any(|e| {
                e.expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")
            })
    };
    thread::scope(|scope| {
        let create = scope.spawn(|| {
            let answer = post_backup(server.addr, &format!("large-{attempt}.db"));
            finished.store(true, Ordering::SeqCst);
            answer
        });
        // HEAD, list and GET while the snapshot is being made (its temporary exists): each
        // answer that comes back before the temporary is gone proves nothing waited for it.
        let mut round = 0;
        while !finished.load(Ordering::SeqCst) {
            let copying_before = copying();
            let (method, target) = match round % 3 {
                0 => ("HEAD", "/v1.0/backups/small.db"),
                1 => ("GET", "/v1.0/backups"),
                _ => ("GET", "/v1.0/backups/small.db"),
            };
            let status = request(server.addr, method, target, &[ADMIN], b"").status;
            assert_eq!(status, 200, "{method} {target}");
            if copying_before && copying() {
                answered_meanwhile.fetch_add(1, Ordering::SeqCst);
            }
            round += 1;
        }
        let created = create.join().expect("join");
        assert_eq!(created.status, 200, "{}", created.text());
    });
}

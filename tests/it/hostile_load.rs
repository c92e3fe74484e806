//! The server under hostile load: more idle connections than it has descriptors, and a
//! connection cap that is full.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use litegraph_backup::http::ServeOptions;

use crate::client::Server;
use crate::serve::Served;
use crate::support::Deployment;

/// A bound on each socket operation of the test, never a synchronisation.
const PATIENCE: Duration = Duration::from_secs(10);

/// `GET /health` on a fresh connection: the status and how long the answer took.
fn timed_health(addr: SocketAddr) -> (u16, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect_timeout(&addr, PATIENCE).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("an answer");
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"));
    (status, started.elapsed())
}

/// `count` connections to `addr` that never send a byte.
fn idle_connections(addr: SocketAddr, count: usize) -> Vec<TcpStream> {
    (0..count)
        .map(|_| TcpStream::connect_timeout(&addr, PATIENCE).expect("connect"))
        .collect()
}

/// `deployment`'s `serve` command run with at most `limit` open descriptors.
fn serve_with_descriptor_limit(deployment: &Deployment, limit: u32, extra: &[&str]) -> Command {
    let mut inner = deployment.cli();
    inner.args(["serve", "--listen", "127.0.0.1:0"]).args(extra);
    let mut outer = Command::new("sh");
    outer
        .arg("-c")
        .arg(format!("ulimit -n {limit} && exec \"$@\""))
        .arg("sh")
        .arg(inner.get_program())
        .args(inner.get_args());
    for (name, value) in inner.get_envs() {
        match value {
            Some(value) => outer.env(name, value),
            None => outer.env_remove(name),
        };
    }
    if let Some(dir) = inner.get_current_dir() {
        outer.current_dir(dir);
    }
    outer
}

// Before, out of descriptors the accept loop retried at once, forever: 3.37 million
// "accept failed" warnings in 4 s, a core at 100%, and /health timing out.
#[test]
fn health_answers_within_a_second_with_1000_idle_connections_and_256_descriptors() {
    let deployment = Deployment::with_nodes(10);
    // Idle connections must not be closed by the header timeout during the test.
    let command =
        serve_with_descriptor_limit(&deployment, 256, &["--request-timeout-ms", "600000"]);
    let served = Served::spawn(command);
    let idle = idle_connections(served.addr, 1_000);

    let (status, took) = timed_health(served.addr);
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(1), "/health took {took:?}");
    drop(idle);

    let (_, log) = served.terminate();
    let warnings = log.lines().filter(|l| l.contains("WARN")).count();
    assert!(warnings < 10, "{warnings} warnings:\n{log}");
    assert!(
        log.contains("serving at most 192 connections"),
        "the cap follows the descriptor limit:\n{log}"
    );
}

// Before, connections were not capped at all; a cap alone would have left a client with a
// request waiting behind idle connections until their header timeout.
#[test]
fn a_full_connection_cap_gives_the_longest_idle_place_to_a_client_with_a_request() {
    let deployment = Deployment::with_nodes(10);
    let server = Server::start_with_options(
        deployment.runtime(),
        ServeOptions {
            header_timeout: Duration::from_secs(600),
            max_connections: 4,
        },
    );
    let mut idle = idle_connections(server.addr, 4);
    // The server has taken all four (each is answered once it sends a request): prove it
    // by one of them asking for /health, which makes it the most recently busy.
    let last = idle.last_mut().expect("four");
    last.set_read_timeout(Some(PATIENCE)).expect("timeout");
    last.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let mut head = [0; 12];
    last.read_exact(&mut head).expect("answered");
    assert_eq!(&head, b"HTTP/1.1 200");

    let (status, took) = timed_health(server.addr);
    assert_eq!(status, 200, "a fifth client is served");
    assert!(took < Duration::from_secs(5), "/health took {took:?}");

    // The first connection, idle the longest, gave its place: the server closed it.
    let first = &mut idle[0];
    first.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let mut byte = [0; 1];
    let outcome = first.read(&mut byte);
    assert!(
        matches!(outcome, Ok(0))
            || outcome
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the longest-idle connection is closed: {outcome:?}"
    );
}

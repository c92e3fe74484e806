//! A deliberately small HTTP/1.1 client over a raw TCP socket, so tests can send exactly the
//! bytes they mean (raw paths, malformed bodies, slow headers) and stream large answers
//! without holding them in memory. And a server on a real socket, in-process.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;

use litegraph_backup::http::{self, ApiState};

use crate::support::Deployment;

pub const ADMIN: (&str, &str) = ("Authorization", "Bearer litegraphadmin");

/// A response: status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request on a fresh connection and reads the status line and headers; the
/// body is left in the returned reader.
pub fn send(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, BTreeMap<String, String>, BufReader<TcpStream>) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("send headers");
    stream.write_all(body).expect("send body");
    read_head(BufReader::new(stream))
}

/// Reads a status line and headers from `reader`.
pub fn read_head(
    mut reader: BufReader<TcpStream>,
) -> (u16, BTreeMap<String, String>, BufReader<TcpStream>) {
    let mut line = String::new();
    reader.read_line(&mut line).expect("status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {line:?}"));
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line).expect("header line");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').expect("name: value");
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    (status, headers, reader)
}

/// Sends one request and reads the whole answer.
pub fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let (status, _, mut reader) = send(addr, method, target, headers, body);
    let mut body = Vec::new();
    if method != "HEAD" {
        reader.read_to_end(&mut body).expect("body");
    }
    Answer { status, body }
}

/// `POST /v1.0/backups` with `{"Filename": name}` and the admin token.
pub fn post_backup(addr: SocketAddr, name: &str) -> Answer {
    let body = format!(r#"{{"Filename":"{name}"}}"#);
    request(addr, "POST", "/v1.0/backups", &[ADMIN], body.as_bytes())
}

/// The API served on a real socket (127.0.0.1, a free port) by a runtime of its own; shut
/// down gracefully when dropped.
pub struct Server {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Server {
    pub fn start(deployment: &Deployment) -> Server {
        Server::start_with(deployment.runtime())
    }

    /// Serves the API over `runtime` (any policy).
    pub fn start_with(runtime: litegraph_backup::Runtime) -> Server {
        Server::start_with_timeout(runtime, http::DEFAULT_REQUEST_TIMEOUT)
    }

    /// Serves the API, giving clients `timeout` for their headers and then their body.
    pub fn start_with_timeout(
        runtime: litegraph_backup::Runtime,
        timeout: std::time::Duration,
    ) -> Server {
        let state = ApiState::new(runtime, "litegraphadmin")
            .expect("state")
            .with_body_timeout(timeout);
        Server::start_app(http::router(state), timeout.into())
    }

    /// Serves the API over `runtime` with `options` (a connection cap, say).
    pub fn start_with_options(
        runtime: litegraph_backup::Runtime,
        options: http::ServeOptions,
    ) -> Server {
        let state = ApiState::new(runtime, "litegraphadmin").expect("state");
        Server::start_app(http::router(state), options)
    }

    fn start_app(app: axum::Router, options: http::ServeOptions) -> Server {
        let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let thread = thread::spawn(move || {
            runtime
                .block_on(http::serve(listener, app, options, async {
                    let _ = stop.await;
                }))
                .expect("serve");
        });
        Server {
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

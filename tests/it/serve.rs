//! `litegraph-backup serve`, the binary: LiteGraph's documented curl lines, a streamed GET
//! of a large backup with the server's memory measured, graceful shutdown, clean logs.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;

use base64::Engine as _;
use litegraph_backup_tests::{
    create_litegraph_database_of_size, file_sha256, integrity, upper_hex,
};
use serde_json::Value;
use sha2::Digest as _;

use crate::client::{ADMIN, post_backup, request, send};
use crate::support::{Deployment, decoded_data};

/// A `serve` process on a free port, its log collected; killed if still running when
/// dropped.
pub struct Served {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
    /// The thread collecting the log: joined once the process ended, so that the log read
    /// then is whole.
    reader: Option<thread::JoinHandle<()>>,
}

impl Served {
    pub fn start(deployment: &Deployment, extra: &[&str]) -> Served {
        let mut command = deployment.cli();
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra);
        Served::spawn(command)
    }

    /// Runs `command` (a `serve` command line), waiting until it listens.
    pub fn spawn(mut command: Command) -> Served {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let stderr = child.stderr.take().expect("piped");
        let log = Arc::new(Mutex::new(String::new()));
        let (found, address) = mpsc::channel();
        let collected = Arc::clone(&log);
        let reader = thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    let _ = found.send(addr);
                }
                let mut log = collected.lock().expect("log");
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = address
            .recv()
            .unwrap_or_else(|_| panic!("serve did not start: {}", log.lock().expect("log")));
        Served {
            child,
            addr: addr.parse().expect("an address"),
            log,
            reader: Some(reader),
        }
    }

    /// The log so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    /// Waits until the log satisfies `done`, for at most `limit`; returns the log then.
    pub fn wait_for_log(
        &self,
        what: &str,
        limit: std::time::Duration,
        done: impl Fn(&str) -> bool,
    ) -> String {
        let began = std::time::Instant::now();
        loop {
            let log = self.log();
            if done(&log) {
                return log;
            }
            assert!(
                began.elapsed() < limit,
                "{what}: not within {limit:?}:\n{log}"
            );
            thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Kills the server with SIGKILL (nothing of it runs after) and waits.
    pub fn kill(mut self) -> String {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("wait");
        self.whole_log()
    }

    /// The log once the process has ended: everything it wrote.
    fn whole_log(&mut self) -> String {
        if let Some(reader) = self.reader.take() {
            reader.join().expect("the log reader");
        }
        self.log()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends SIGTERM and waits; returns the exit code and the whole log.
    pub fn terminate(mut self) -> (Option<i32>, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let code = self.child.wait().expect("wait").code();
        (code, self.whole_log())
    }

    /// The server's peak resident memory so far, from /proc.
    fn peak_rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmHWM");
        kib * 1024
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `curl -s` with `args` (a documented line's options), returning status and body.
fn curl(args: &[&str]) -> (u16, String) {
    let output = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("a status line");
    (status.trim().parse().expect("a status"), body.to_owned())
}

/// The docs' existence check, `curl -I` with the admin token: the response head.
fn curl_head(url: &str) -> String {
    let output = Command::new("curl")
        .args([
            "-s",
            "-I",
            "-H",
            "Authorization: Bearer litegraphadmin",
            url,
        ])
        .output()
        .expect("curl -I");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn litegraph_docs_curl_lines_work_unchanged() {
    let deployment = Deployment::with_nodes(100);
    let served = Served::start(&deployment, &[]);
    let backups = served.url("/v1.0/backups");
    let one = served.url("/v1.0/backups/backup-2025.db");

    // Create (readme.io "Create a Backup").
    let (status, body) = curl(&[
        "-X",
        "POST",
        "-H",
        "Authorization: Bearer litegraphadmin",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"Filename": "backup-2025.db"}"#,
        &backups,
    ]);
    assert_eq!(status, 200, "{body}");
    let created: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(created["Filename"], "backup-2025.db");

    // List.
    let (status, body) = curl(&[
        "-H",
        "Authorization: Bearer litegraphadmin",
        "-H",
        "Content-Type: application/json",
        &backups,
    ]);
    assert_eq!(status, 200);
    let list: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert!(list[0].get("Data").is_none());

    // Read.
    let (status, body) = curl(&[
        "-H",
        "Authorization: Bearer litegraphadmin",
        "-H",
        "Content-Type: application/json",
        &one,
    ]);
    assert_eq!(status, 200);
    let read: Value = serde_json::from_str(&body).expect("JSON");
    decoded_data(&read);

    // Exists (HEAD): headers only.
    let head = curl_head(&one);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    // Delete.
    let (status, body) = curl(&[
        "-X",
        "DELETE",
        "-H",
        "Authorization: Bearer litegraphadmin",
        "-H",
        "Content-Type: application/json",
        &one,
    ]);
    assert_eq!((status, body.as_str()), (200, ""));
    assert!(curl_head(&one).starts_with("HTTP/1.1 404"));

    // Without a token: LiteGraph's exact 401.
    let (status, body) = curl(&[&backups]);
    assert_eq!(status, 401);
    assert_eq!(
        body,
        r#"{"Error":"AuthenticationFailed","Message":"Your authentication material was not accepted.","StatusCode":401}"#
    );

    let (code, log) = served.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("POST /v1.0/backups 200"),
        "one line per request: {log}"
    );
    assert!(
        !log.contains("litegraphadmin"),
        "the token never appears in the log: {log}"
    );
}

#[test]
fn serve_creates_a_missing_database_in_wal_mode() {
    let deployment = Deployment::without_database();
    std::fs::remove_dir(&deployment.backups).expect("no backup directory either");
    // A database named on the command line is created only when asked (issue 9, item 7).
    let served = Served::start(&deployment, &["--create-database"]);
    let answer = post_backup(served.addr, "first.db");
    assert_eq!(answer.status, 200, "{}", answer.text());
    let mode: String = rusqlite::Connection::open(&deployment.database)
        .expect("open")
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("query");
    assert_eq!(mode, "wal");
    let (code, log) = served.terminate();
    assert_eq!(code, Some(0));
    assert!(
        log.contains("created a NEW EMPTY database in WAL mode"),
        "{log}"
    );
    assert_eq!(
        integrity(&deployment.backup("first.db"), true).expect("check"),
        "ok"
    );
}

#[test]
fn admin_token_comes_from_the_command_line_and_is_never_logged() {
    let deployment = Deployment::with_nodes(10);
    let served = Served::start(&deployment, &["--admin-token", "s3cret-token"]);
    let old = request(served.addr, "GET", "/v1.0/backups", &[ADMIN], b"");
    assert_eq!(old.status, 401, "the default token no longer works");
    let new = request(
        served.addr,
        "GET",
        "/v1.0/backups",
        &[("Authorization", "Bearer s3cret-token")],
        b"",
    );
    assert_eq!(new.status, 200);
    let (_, log) = served.terminate();
    assert!(!log.contains("s3cret-token"), "{log}");

    let empty = deployment.run(&["serve", "--admin-token", ""]);
    assert_eq!(empty.status.code(), Some(2), "an empty token is refused");
}

#[test]
fn get_with_data_of_a_large_backup_keeps_server_memory_flat() {
    const SIZE: u64 = 160 << 20;
    let deployment = Deployment::without_database();
    create_litegraph_database_of_size(&deployment.database, SIZE).expect("a large database");
    let served = Served::start(&deployment, &[]);
    let created = post_backup(served.addr, "big.db");
    assert_eq!(created.status, 200, "{}", created.text());

    // Stream the answer through a base64 decoder into a hash: this side holds no copy either.
    let (status, headers, mut reader) =
        send(served.addr, "GET", "/v1.0/backups/big.db", &[ADMIN], b"");
    assert_eq!(status, 200);
    let declared: u64 = headers["content-length"].parse().expect("a length");
    let mut received = 0u64;
    let mut prefix = Vec::new();
    let mut pending = Vec::new();
    let mut in_data = false;
    let mut hasher = sha2::Sha256::new();
    let mut decoded = 0u64;
    let mut buffer = vec![0; 1 << 16];
    loop {
        let n = reader.read(&mut buffer).expect("read");
        if n == 0 {
            break;
        }
        received += n as u64;
        let mut chunk = &buffer[..n];
        if !in_data {
            prefix.extend_from_slice(chunk);
            let marker = b"\"Data\":\"";
            let Some(at) = prefix.windows(marker.len()).position(|w| w == marker) else {
                continue;
            };
            in_data = true;
            pending = prefix.split_off(at + marker.len());
            chunk = &[];
        }
        pending.extend_from_slice(chunk);
        let usable = pending
            .iter()
            .position(|&b| b == b'"')
            .unwrap_or(pending.len())
            / 4
            * 4;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&pending[..usable])
            .expect("base64");
        decoded += bytes.len() as u64;
        hasher.update(&bytes);
        pending.drain(..usable);
    }
    let end = pending
        .iter()
        .position(|&b| b == b'"')
        .expect("closing quote");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&pending[..end])
        .expect("base64");
    decoded += bytes.len() as u64;
    hasher.update(&bytes);

    assert_eq!(received, declared, "the whole answer arrived");
    let file = deployment.backup("big.db");
    assert_eq!(decoded, std::fs::metadata(&file).expect("stat").len());
    assert_eq!(
        upper_hex(&hasher.finalize()),
        file_sha256(&file).expect("hash")
    );
    let peak = served.peak_rss_bytes();
    eprintln!(
        "server peak RSS {} MiB streaming a {} MiB backup",
        peak >> 20,
        decoded >> 20
    );
    assert!(
        peak < 100 << 20,
        "server peak RSS {} MiB for a {} MiB backup",
        peak >> 20,
        SIZE >> 20
    );
}

#[test]
fn sigterm_lets_a_backup_in_progress_finish() {
    let deployment = Deployment::without_database();
    create_litegraph_database_of_size(&deployment.database, 64 << 20).expect("a database");
    let served = Served::start(&deployment, &[]);
    let addr = served.addr;
    let backups = deployment.backups.clone();
    let create = thread::spawn(move || post_backup(addr, "inflight.db"));
    // Wait until the snapshot has begun: its temporary appears in the backup directory.
    let began = std::time::Instant::now();
    while !std::fs::read_dir(&backups).expect("read").any(|e| {
        e.expect("entry")
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp")
    }) {
        assert!(began.elapsed().as_secs() < 60, "the backup never started");
        thread::yield_now();
    }
    let (code, log) = served.terminate();
    let answer = create.join().expect("join");
    assert_eq!(answer.status, 200, "{}\n{log}", answer.text());
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("SIGTERM received"), "{log}");
    assert_eq!(
        integrity(&deployment.backup("inflight.db"), true).expect("check"),
        "ok"
    );
    assert_eq!(
        deployment.backup_dir_entries().len(),
        2,
        "no temporaries left"
    );
}

// Before, the log said only "POST /v1.0/backups 200": not who asked, nor which backup a
// create, delete or restore changed, nor where the restore put the previous content.
#[test]
fn request_log_names_the_client_and_the_backups_changed() {
    let deployment = Deployment::with_nodes(50);
    let served = Served::start(&deployment, &[]);
    assert_eq!(post_backup(served.addr, "named.db").status, 200);
    let restored = request(
        served.addr,
        "POST",
        "/v1.0/backups/named.db/restore",
        &[ADMIN],
        b"",
    );
    assert_eq!(restored.status, 200, "{}", restored.text());
    let safety: Value = serde_json::from_slice(&restored.body).expect("JSON");
    let safety = safety["SafetyBackup"]["Filename"]
        .as_str()
        .expect("a safety backup")
        .to_owned();
    let deleted = request(
        served.addr,
        "DELETE",
        "/v1.0/backups/named.db",
        &[ADMIN],
        b"",
    );
    assert_eq!(deleted.status, 200);

    let (_, log) = served.terminate();
    let line = |needle: &str| {
        log.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{log}"))
            .to_owned()
    };
    let created = line("POST /v1.0/backups 200");
    assert!(created.contains("127.0.0.1:"), "the client: {created}");
    assert!(created.contains(r#"backup "named.db""#), "{created}");
    let restore = line("POST /v1.0/backups/named.db/restore 200");
    assert!(restore.contains("127.0.0.1:"), "{restore}");
    assert!(
        restore.contains(&format!(r#"safety backup "{safety}""#)),
        "{restore}"
    );
    let delete = line("DELETE /v1.0/backups/named.db 200");
    assert!(delete.contains(r#"backup "named.db""#), "{delete}");
}

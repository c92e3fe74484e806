//! What an operator meets first: exit codes a script can act on, `serve` that creates
//! nothing it should not, a first `list` before any backup, quiet output, durations and
//! environment variables, a warning about an exposed default token, and a table that fits.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use litegraph_backup_tests::file_sha256;
use serde_json::Value;

use crate::support::{Deployment, cli_binary, stderr, stdout};

/// The CLI run in the deployment's root with no `--database` or `--backups`: the defaults,
/// `./litegraph.db` and `./backups/`, are the deployment's.
fn run_with_defaults(deployment: &Deployment, args: &[&str]) -> Output {
    defaults(deployment)
        .args(args)
        .output()
        .expect("run the CLI")
}

fn defaults(deployment: &Deployment) -> Command {
    let mut command = Command::new(cli_binary());
    command
        .current_dir(deployment.root.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    command
}

fn code(output: &Output) -> Option<i32> {
    output.status.code()
}

/// Flips one byte in the middle of a file: its digests no longer match the recorded ones.
fn tamper(path: &std::path::Path) {
    let mut bytes = std::fs::read(path).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xFF;
    std::fs::write(path, bytes).expect("write");
}

#[test]
fn exit_codes_tell_scripts_what_happened() {
    // Before: every failure exited 2, whatever it was.
    let deployment = Deployment::with_nodes(50);
    assert_eq!(code(&deployment.run(&["create", "a.db"])), Some(0));
    assert_eq!(code(&deployment.run(&["exists", "a.db"])), Some(0));
    assert_eq!(code(&deployment.run(&["exists", "b.db"])), Some(1));

    for refused in [
        &["create", "../x.db"][..],
        &["create", "a.db"],
        &["frobnicate"],
        &["list", "--busy-timeout", "10"],
    ] {
        let output = deployment.run(refused);
        assert_eq!(code(&output), Some(2), "{refused:?}: {}", stderr(&output));
    }
    for missing in [
        &["show", "b.db"][..],
        &["delete", "b.db"],
        &["restore", "b.db"],
    ] {
        let output = deployment.run(missing);
        assert_eq!(code(&output), Some(3), "{missing:?}: {}", stderr(&output));
    }

    tamper(&deployment.backup("a.db"));
    let before = file_sha256(&deployment.database).expect("hash");
    for damaged in [&["verify", "a.db"][..], &["restore", "a.db"]] {
        let output = deployment.run(damaged);
        assert_eq!(code(&output), Some(4), "{damaged:?}: {}", stderr(&output));
        assert!(stderr(&output).contains("a.db"), "{}", stderr(&output));
    }
    assert_eq!(
        file_sha256(&deployment.database).expect("hash"),
        before,
        "a damaged backup is never restored"
    );

    std::fs::remove_file(&deployment.database).expect("remove the database");
    let output = deployment.run(&["create", "c.db"]);
    assert_eq!(code(&output), Some(3), "{}", stderr(&output));
}

/// Command-line flags, and environment variables, of one run.
type Flags<'a> = &'a [&'a str];
type Environment<'a> = &'a [(&'a str, &'a str)];

#[test]
fn a_held_lock_exits_5_after_the_busy_timeout_in_any_form() {
    // Before: exit 2 (like every error), and only milliseconds were accepted.
    let deployment = Deployment::with_nodes(50);
    assert!(deployment.run(&["create", "a.db"]).status.success());
    let lock = std::fs::File::options()
        .write(true)
        .open(deployment.backup(".lgb-operation.lock"))
        .expect("the lock file exists after a create");
    lock.lock().expect("take it");
    let forms: [(Flags, Environment); 4] = [
        (&["--busy-timeout", "200ms"], &[]),
        (&["--busy-timeout-ms", "200"], &[]),
        (&[], &[("LITEGRAPH_BUSY_TIMEOUT", "0.2s")]),
        // A flag wins over the environment, whichever form each takes.
        (
            &["--busy-timeout", "200ms"],
            &[("LITEGRAPH_BUSY_TIMEOUT_MS", "600000")],
        ),
    ];
    for (flags, env) in forms {
        let started = Instant::now();
        let output = deployment
            .cli()
            .args(flags)
            .args(["create", "b.db"])
            .envs(env.iter().copied())
            .output()
            .expect("run");
        assert_eq!(
            code(&output),
            Some(5),
            "{flags:?} {env:?}: {}",
            stderr(&output)
        );
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{flags:?} {env:?}: waited the default 10 s"
        );
    }
    let both = deployment.run(&[
        "--busy-timeout",
        "1s",
        "--busy-timeout-ms",
        "1000",
        "create",
        "b.db",
    ]);
    assert_eq!(code(&both), Some(2), "{}", stderr(&both));
    assert!(stderr(&both).contains("not both"), "{}", stderr(&both));
}

#[test]
fn serve_on_a_busy_port_creates_nothing() {
    // Before: the database and backups/ were created, then the bind failed.
    let deployment = Deployment::without_database();
    std::fs::remove_dir(&deployment.backups).expect("no backup directory");
    let taken = TcpListener::bind("127.0.0.1:0").expect("occupy a port");
    let addr = taken.local_addr().expect("address").to_string();
    let output = run_with_defaults(&deployment, &["serve", "--listen", &addr]);
    assert_eq!(code(&output), Some(6), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!("cannot listen on {addr}")),
        "{}",
        stderr(&output)
    );
    assert!(!deployment.database.exists(), "no database was created");
    assert!(
        !deployment.backups.exists(),
        "no backup directory was created"
    );
}

#[test]
fn serve_refuses_a_bad_schedule_at_start_and_creates_nothing() {
    // A schedule is checked when it is read: a typo never becomes a server that never runs.
    let deployment = Deployment::without_database();
    std::fs::remove_dir(&deployment.backups).expect("no backup directory");
    for (schedule, why) in [
        ("0 3 * * * *", "it has 6 fields, not 5"),
        (
            "nightly",
            "is not an interval (6h, 1d) nor a 5-field cron expression",
        ),
        ("0 0 30 2 *", "never matches"),
    ] {
        let output = run_with_defaults(
            &deployment,
            &["serve", "--listen", "127.0.0.1:0", "--schedule", schedule],
        );
        assert_eq!(code(&output), Some(2), "{schedule}: {}", stderr(&output));
        assert!(
            stderr(&output).contains(why),
            "{schedule}: {}",
            stderr(&output)
        );
        let from_env = defaults(&deployment)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("LITEGRAPH_SCHEDULE", schedule)
            .output()
            .expect("run");
        assert_eq!(
            code(&from_env),
            Some(2),
            "{schedule}: {}",
            stderr(&from_env)
        );
    }
    assert!(!deployment.database.exists(), "no database was created");
    assert!(
        !deployment.backups.exists(),
        "no backup directory was created"
    );
}

#[test]
fn serve_refuses_a_named_database_that_does_not_exist() {
    // Before: a typo in --database created and backed up a new empty database.
    let deployment = Deployment::without_database();
    let typo = deployment.root.path().join("litegrahp.db");
    let output = defaults(&deployment)
        .arg("--database")
        .arg(&typo)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .expect("run");
    assert_eq!(code(&output), Some(3), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains(&format!("no database at {}", typo.display()))
            && message.contains("--create-database"),
        "{message}"
    );
    assert!(!typo.exists());
}

/// A running `serve`, its stderr read line by line.
struct Serve {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Serve {
    fn start(mut command: Command) -> Serve {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let stderr = child.stderr.take().expect("piped");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = send.send(line);
            }
        });
        Serve { child, lines }
    }

    /// The log up to and including the "listening on" line.
    fn log_until_listening(&self) -> String {
        let mut log = String::new();
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("serve did not start: {log}"));
            log.push_str(&line);
            log.push('\n');
            if line.contains("listening on http://") {
                return log;
            }
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_creates_a_named_database_only_when_asked_and_says_so_loudly() {
    let deployment = Deployment::without_database();
    let mut command = deployment.cli();
    command.args(["serve", "--listen", "127.0.0.1:0", "--create-database"]);
    let served = Serve::start(command);
    let log = served.log_until_listening();
    assert!(log.contains("WARN"), "{log}");
    assert!(
        log.contains(&format!(
            "created a NEW EMPTY database in WAL mode at {}",
            deployment.database.display()
        )),
        "{log}"
    );
    assert!(deployment.database.is_file());
}

#[test]
fn the_default_token_on_a_public_address_is_warned_about() {
    // Before: LiteGraph's well-known token served 0.0.0.0 without a word.
    let deployment = Deployment::with_nodes(10);
    for (listen, warned) in [("0.0.0.0:0", true), ("127.0.0.1:0", false)] {
        let mut command = deployment.cli();
        command.args(["serve", "--listen", listen]);
        let log = Serve::start(command).log_until_listening();
        assert_eq!(
            log.contains("WITH THE DEFAULT ADMIN TOKEN"),
            warned,
            "{listen}: {log}"
        );
    }
    let mut command = deployment.cli();
    command.args(["serve", "--listen", "0.0.0.0:0", "--admin-token", "s3cret"]);
    let log = Serve::start(command).log_until_listening();
    assert!(!log.contains("DEFAULT ADMIN TOKEN"), "{log}");
}

#[test]
fn list_and_exists_before_the_first_backup() {
    // Before: "cannot open backup directory ./backups/" and exit 2.
    let deployment = Deployment::with_nodes(10);
    std::fs::remove_dir(&deployment.backups).expect("no backups yet");
    let listed = run_with_defaults(&deployment, &["list"]);
    assert_eq!(code(&listed), Some(0), "{}", stderr(&listed));
    assert_eq!(stdout(&listed).trim(), "no backups in ./backups/");
    let json = run_with_defaults(&deployment, &["list", "--json"]);
    assert_eq!(code(&json), Some(0), "{}", stderr(&json));
    assert_eq!(stdout(&json).trim(), "[]");
    let exists = run_with_defaults(&deployment, &["exists", "x.db"]);
    assert_eq!(code(&exists), Some(1), "{}", stderr(&exists));
    assert!(!deployment.backups.exists(), "reading creates nothing");

    // A directory the operator named must exist.
    let named = deployment.run(&["list"]);
    assert_eq!(code(&named), Some(3));
    assert!(
        stderr(&named).contains(&format!(
            "backup directory {} does not exist",
            deployment.backups.display()
        )),
        "{}",
        stderr(&named)
    );
}

#[test]
fn quiet_prints_answers_but_not_confirmations() {
    let deployment = Deployment::with_nodes(10);
    for args in [
        &["-q", "create", "a.db"][..],
        &["--quiet", "verify", "a.db"],
        &["-q", "exists", "a.db"],
        &["-q", "delete", "a.db"],
    ] {
        let output = deployment.run(args);
        assert_eq!(code(&output), Some(0), "{args:?}: {}", stderr(&output));
        assert_eq!(stdout(&output), "", "{args:?}");
    }
    let json = deployment.run(&["-q", "create", "b.db", "--json"]);
    let object: Value = serde_json::from_str(&stdout(&json)).expect("JSON still printed");
    assert_eq!(object["Filename"], "b.db");
    let listed = deployment.run(&["list", "-q"]);
    assert!(stdout(&listed).contains("b.db"), "a listing is the answer");
    let missing = deployment.run(&["-q", "show", "c.db"]);
    assert_eq!(code(&missing), Some(3));
    assert!(
        stderr(&missing).contains("no backup named"),
        "errors still show"
    );
}

#[test]
fn environment_variables_set_the_options() {
    let deployment = Deployment::with_nodes(10);
    let output = defaults(&deployment)
        .args(["create", "env.db"])
        .env("LITEGRAPH_DB", &deployment.database)
        .env("LITEGRAPH_BACKUPS", &deployment.backups)
        .env("LITEGRAPH_QUIET", "1")
        .output()
        .expect("run");
    assert_eq!(code(&output), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "", "quiet from the environment");
    let listed = defaults(&deployment)
        .arg("list")
        .env("LITEGRAPH_DB", &deployment.database)
        .env("LITEGRAPH_BACKUPS", &deployment.backups)
        .env("LITEGRAPH_JSON", "true")
        .env("LITEGRAPH_QUIET", "0")
        .output()
        .expect("run");
    let list: Value = serde_json::from_str(&stdout(&listed)).expect("JSON from the environment");
    assert_eq!(list[0]["Filename"], "env.db");
    let bad_filter = deployment
        .cli()
        .arg("list")
        .env("RUST_LOG", "info,=[")
        .output()
        .expect("run");
    assert_eq!(code(&bad_filter), Some(2), "{}", stderr(&bad_filter));
    let help = stdout(&deployment.run(&["--help"]));
    for variable in [
        "LITEGRAPH_BUSY_TIMEOUT",
        "LITEGRAPH_GUEST_TIMEOUT",
        "RUST_LOG",
        "NO_COLOR",
    ] {
        assert!(help.contains(variable), "--help names {variable}");
    }
}

#[test]
fn list_table_fits_long_names_and_wide_characters() {
    let deployment = Deployment::with_nodes(10);
    let long = format!("{}.db", "n".repeat(100));
    for name in [
        long.as_str(),
        "日本語のバックアップ名前はとても長いのですがこれは.db",
        "a.db",
    ] {
        let output = deployment.run(&["create", name]);
        assert_eq!(code(&output), Some(0), "{}", stderr(&output));
    }
    let text = stdout(&deployment.run(&["list"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(!text.contains(&long), "the long name is shortened: {text}");
    assert!(
        lines[1].starts_with("nnnn") && lines[1].contains('…'),
        "{text}"
    );
    // Every row's size column starts at the same terminal cell.
    let size_cells: Vec<usize> = lines[1..4]
        .iter()
        .map(|line| cells_before(line, " KiB  ").expect("a size"))
        .collect();
    assert!(size_cells.windows(2).all(|w| w[0] == w[1]), "{text}");
    let digest = lines[3].rsplit("  ").next().expect("a digest");
    assert_eq!(
        digest.chars().count(),
        13,
        "12 digits and an ellipsis: {digest}"
    );

    let wide = stdout(&deployment.run(&["list", "--wide"]));
    assert!(wide.contains(&long), "{wide}");
    assert!(!wide.contains('…'), "{wide}");
}

/// How many terminal cells come before `needle` in `line` (CJK counted as two).
fn cells_before(line: &str, needle: &str) -> Option<usize> {
    let at = line.find(needle)?;
    Some(
        line[..at]
            .chars()
            .map(|c| if c > '\u{2E80}' { 2 } else { 1 })
            .sum(),
    )
}

#[test]
fn list_limit_and_reverse_pick_the_newest() {
    let deployment = Deployment::with_nodes(10);
    for name in ["c.db", "a.db", "b.db"] {
        assert!(deployment.run(&["create", name]).status.success());
    }
    let names = |args: &[&str]| -> Vec<String> {
        let mut full = vec!["list", "--json"];
        full.extend_from_slice(args);
        let list: Value = serde_json::from_str(&stdout(&deployment.run(&full))).expect("JSON");
        list.as_array()
            .expect("an array")
            .iter()
            .map(|b| b["Filename"].as_str().expect("a name").to_owned())
            .collect()
    };
    assert_eq!(names(&[]), ["c.db", "a.db", "b.db"], "oldest first");
    assert_eq!(names(&["--limit", "2"]), ["a.db", "b.db"]);
    assert_eq!(names(&["--reverse"]), ["b.db", "a.db", "c.db"]);
    assert_eq!(names(&["--reverse", "--limit", "1"]), ["b.db"]);
    let text = stdout(&deployment.run(&["list", "--limit", "1"]));
    assert!(
        text.contains("3 backups") && text.contains("(1 shown)"),
        "{text}"
    );
}

#[test]
fn latest_names_the_newest_backup_and_dot_slash_escapes_it() {
    let deployment = Deployment::with_nodes(10);
    let none = deployment.run(&["show", "latest"]);
    assert_eq!(code(&none), Some(3), "{}", stderr(&none));
    for name in ["./latest", "z.db", "m.db"] {
        let output = deployment.run(&["create", name]);
        assert_eq!(code(&output), Some(0), "{}", stderr(&output));
    }
    assert!(deployment.backup("latest").is_file(), "./ is dropped");
    let shown = |name: &str| -> String {
        let output = deployment.run(&["show", name, "--json"]);
        assert_eq!(code(&output), Some(0), "{}", stderr(&output));
        let object: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
        object["Filename"].as_str().expect("a name").to_owned()
    };
    assert_eq!(shown("latest"), "m.db");
    assert_eq!(shown("./latest"), "latest");
    let verified = stdout(&deployment.run(&["verify", "latest"]));
    assert!(verified.starts_with("m.db: OK"), "{verified}");
    let restored = deployment.run(&["restore", "latest"]);
    assert_eq!(code(&restored), Some(0), "{}", stderr(&restored));
    assert!(
        stdout(&restored).contains("restored m.db"),
        "{}",
        stdout(&restored)
    );
}

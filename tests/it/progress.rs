//! Progress bars: drawn on stderr when it is a terminal (a real pseudo-terminal here, stdout
//! piped as a script would), with the pass names, bytes, rate and ETA, and cleared before
//! the answer; nothing at all when stderr is a pipe, or with `--quiet` or `--json`. The
//! command's stdout is the same either way.

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use litegraph_backup_tests::create_litegraph_database_of_size;
use rustix::fs::{Mode, OFlags};
use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
use rustix::termios::{Winsize, tcsetwinsize};

use crate::support::{Deployment, stderr, stdout};

const MIB: u64 = 1 << 20;
/// How long a command on the terminal may take before the test gives up on it.
const PATIENCE: Duration = Duration::from_secs(300);

/// What a command run with its stderr on a terminal did.
struct OnTerminal {
    status: ExitStatus,
    stdout: String,
    /// Everything the terminal received, escape sequences included.
    terminal: String,
}

/// A fresh pseudo-terminal of 30 rows by 100 columns: (master, slave).
fn pseudo_terminal() -> (OwnedFd, OwnedFd) {
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
        .expect("open a pseudo-terminal");
    grantpt(&master).expect("grantpt");
    unlockpt(&master).expect("unlockpt");
    let name = ptsname(&master, Vec::new()).expect("ptsname");
    // NOCTTY: it never becomes this test process's controlling terminal.
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .expect("open the terminal's slave side");
    let size = Winsize {
        ws_row: 30,
        ws_col: 100,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    tcsetwinsize(&slave, size).expect("set the terminal's size");
    (master, slave)
}

/// Runs `command` with stderr on a new terminal (TERM=xterm unless the command sets it)
/// and stdout piped, and reads the terminal until the command has closed it.
fn on_terminal(mut command: Command) -> OnTerminal {
    let (master, slave) = pseudo_terminal();
    if !command.get_envs().any(|(name, _)| name == "TERM") {
        command.env("TERM", "xterm");
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(slave));
    let child = command.spawn().expect("run the CLI");
    // Our copy of the slave side goes with the Command: once the child has exited, reading
    // the master ends (EIO).
    drop(command);
    let (sent, received) = mpsc::channel();
    std::thread::spawn(move || {
        let mut master = File::from(master);
        let mut terminal = Vec::new();
        let mut buffer = [0u8; 16 << 10];
        loop {
            match master.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => terminal.extend_from_slice(&buffer[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // EIO: every slave descriptor is closed.
                Err(_) => break,
            }
        }
        let _ = sent.send(terminal);
    });
    let output = child.wait_with_output().expect("wait for the CLI");
    let terminal = received
        .recv_timeout(PATIENCE)
        .expect("the terminal is closed once the command has exited");
    OnTerminal {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        terminal: String::from_utf8_lossy(&terminal).into_owned(),
    }
}

/// The CLI's stdout with what differs between two runs of the same command made
/// uniform: the backup's name, the times recorded, a safety backup's name.
fn uniform(stdout: &str, name: &str) -> String {
    stdout
        .replace(name, "NAME")
        .lines()
        .map(|line| {
            let timed = ["Created ", "Last update ", "Last access "]
                .iter()
                .any(|label| line.starts_with(label));
            match line.find("pre-restore-") {
                _ if timed => format!("{} TIME", &line[..12]),
                Some(at) => format!("{}pre-restore-TIME", &line[..at]),
                None => line.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The size as indicatif shows a byte count: `64.02 MiB`.
fn as_shown(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / MIB as f64)
}

fn piped(deployment: &Deployment, args: &[&str]) -> Output {
    let output = deployment.run(args);
    assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    output
}

#[test]
fn create_of_a_large_database_on_a_terminal_draws_bars_and_prints_what_it_prints_piped() {
    let deployment = Deployment::without_database();
    create_litegraph_database_of_size(&deployment.database, 64 * MIB).expect("a large database");

    let drawn = on_terminal({
        let mut command = deployment.cli();
        command.args(["create", "drawn.db"]);
        command
    });
    assert!(drawn.status.success(), "{}", drawn.terminal);
    let plain = piped(&deployment, &["create", "plain.db"]);

    let terminal = &drawn.terminal;
    for pass in ["copying", "hashing"] {
        assert!(terminal.contains(pass), "no {pass} bar: {terminal:?}");
    }
    // Bytes out of the database's size, a rate and an ETA.
    let length = std::fs::metadata(deployment.backup("drawn.db"))
        .expect("the backup")
        .len();
    let total = format!("/{}", as_shown(length));
    assert!(terminal.contains(&total), "{total}: {terminal:?}");
    assert!(terminal.contains("B/s"), "a rate: {terminal:?}");
    assert!(terminal.contains("ETA"), "{terminal:?}");
    // The last bar was cleared (console's "clear line") and nothing else was said.
    assert!(
        terminal.ends_with("\r\x1b[2K"),
        "the terminal is left clean: {:?}",
        &terminal[terminal.len().saturating_sub(200)..]
    );

    // Piped, stderr holds nothing; stdout is the same on both, line for line.
    assert_eq!(stderr(&plain), "");
    let plain_stdout = stdout(&plain);
    assert!(
        plain_stdout.starts_with(&format!(
            "created {}\n",
            deployment.backup("plain.db").display()
        )),
        "{plain_stdout}"
    );
    assert_eq!(
        uniform(&drawn.stdout, "drawn.db"),
        uniform(&plain_stdout, "plain.db")
    );
}

#[test]
fn verify_and_restore_on_a_terminal_draw_their_passes_and_print_what_they_print_piped() {
    let deployment = Deployment::with_nodes(300);
    piped(&deployment, &["create", "a.db"]);

    let verify = ["verify", "a.db", "--full"];
    let drawn = on_terminal({
        let mut command = deployment.cli();
        command.args(verify);
        command
    });
    assert!(drawn.status.success(), "{}", drawn.terminal);
    for pass in ["hashing", "checking"] {
        assert!(
            drawn.terminal.contains(pass),
            "{pass}: {:?}",
            drawn.terminal
        );
    }
    let plain = piped(&deployment, &verify);
    assert_eq!(stderr(&plain), "");
    assert_eq!(drawn.stdout, stdout(&plain));
    assert_eq!(
        drawn.stdout,
        "a.db: OK (digests match, integrity_check ok)\n"
    );

    let drawn = on_terminal({
        let mut command = deployment.cli();
        command.args(["restore", "a.db"]);
        command
    });
    assert!(drawn.status.success(), "{}", drawn.terminal);
    // The backup verified, the safety copy taken and hashed, the pages written.
    for pass in ["hashing", "checking", "copying", "restoring"] {
        assert!(
            drawn.terminal.contains(pass),
            "{pass}: {:?}",
            drawn.terminal
        );
    }
    assert!(
        drawn.terminal.ends_with("\r\x1b[2K"),
        "{:?}",
        drawn.terminal
    );
    let plain = piped(&deployment, &["restore", "a.db"]);
    assert_eq!(stderr(&plain), "");
    assert_eq!(
        uniform(&drawn.stdout, "a.db"),
        uniform(&stdout(&plain), "a.db")
    );
    assert!(
        drawn.stdout.starts_with(&format!(
            "restored a.db into {}; its previous content is in ",
            deployment.database.display()
        )),
        "{}",
        drawn.stdout
    );
}

#[test]
fn quiet_json_and_a_dumb_terminal_draw_nothing() {
    let deployment = Deployment::with_nodes(300);
    for (args, term) in [
        (&["--quiet", "create", "quiet.db"][..], "xterm"),
        (&["--json", "create", "json.db"][..], "xterm"),
        (&["create", "dumb.db"][..], "dumb"),
        (&["--json", "verify", "quiet.db"][..], "xterm"),
    ] {
        let drawn = on_terminal({
            let mut command = deployment.cli();
            command.args(args).env("TERM", term);
            command
        });
        assert!(drawn.status.success(), "{args:?}: {}", drawn.terminal);
        assert_eq!(drawn.terminal, "", "{args:?} with TERM={term}");
    }
}

#[test]
fn push_and_pull_on_a_terminal_draw_their_passes() {
    let deployment = Deployment::with_nodes(300);
    piped(&deployment, &["create", "a.db"]);
    let target = deployment.root.path().join("usb");
    std::fs::create_dir(&target).expect("the operator makes the target directory");
    let config = deployment.root.path().join("backup.toml");
    std::fs::write(
        &config,
        format!(
            "[[remote]]\nname = \"usb\"\nurl = \"{}\"\n",
            target.display()
        ),
    )
    .expect("write the configuration");
    let on_terminal_with_target = |args: &[&str]| {
        let mut command = deployment.cli();
        command.arg("--config").arg(&config).args(args);
        on_terminal(command)
    };

    let pushed = on_terminal_with_target(&["push", "a.db"]);
    assert!(pushed.status.success(), "{}", pushed.terminal);
    assert!(
        pushed.terminal.contains("uploading"),
        "{:?}",
        pushed.terminal
    );
    assert!(
        pushed.terminal.ends_with("\r\x1b[2K"),
        "{:?}",
        pushed.terminal
    );
    assert!(
        pushed.stdout.starts_with("pushed a.db to usb"),
        "{}",
        pushed.stdout
    );

    piped(&deployment, &["delete", "a.db"]);
    let pulled = on_terminal_with_target(&["pull", "a.db"]);
    assert!(pulled.status.success(), "{}", pulled.terminal);
    assert!(
        pulled.terminal.contains("downloading"),
        "{:?}",
        pulled.terminal
    );
    assert!(
        pulled.terminal.ends_with("\r\x1b[2K"),
        "{:?}",
        pulled.terminal
    );
    assert!(
        pulled.stdout.starts_with("pulled a.db from usb"),
        "{}",
        pulled.stdout
    );
}

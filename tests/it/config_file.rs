//! One configuration file (`--config`, TOML) and LiteGraph's own `litegraph.json`
//! (`--litegraph-config`): a typo fails at start naming the line; flag > env > file >
//! litegraph.json > default, as `config` shows; the admin token never shown.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::{Deployment, cli_binary, stderr, stdout};

/// The CLI in `dir` with an empty environment: nothing set but what a test sets.
fn bare(dir: &Path) -> Command {
    let mut command = Command::new(cli_binary());
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("run the CLI")
}

/// `config --json` as a map from key to (value, source, from).
fn effective(output: &Output) -> Vec<(String, String, String, String)> {
    assert_eq!(output.status.code(), Some(0), "{}", stderr(output));
    let entries: Value = serde_json::from_str(&stdout(output)).expect("JSON");
    entries
        .as_array()
        .expect("an array")
        .iter()
        .map(|e| {
            let text = |key: &str| e[key].as_str().unwrap_or_default().to_owned();
            (text("Key"), text("Value"), text("Source"), text("From"))
        })
        .collect()
}

fn setting<'a>(
    entries: &'a [(String, String, String, String)],
    key: &str,
) -> &'a (String, String, String, String) {
    entries
        .iter()
        .find(|e| e.0 == key)
        .unwrap_or_else(|| panic!("no {key} in {entries:?}"))
}

#[test]
fn a_config_file_with_a_typo_fails_at_start_naming_the_line_and_key() {
    let dir = tempfile::tempdir().expect("scratch");
    let file = dir.path().join("backup.toml");
    fs::write(
        &file,
        "database = \"litegraph.db\"\n\n[retention]\nkeep_daily = 7\nkeep_wekly = 4\n",
    )
    .expect("write the file");
    for args in [
        &["list"][..],
        &["serve", "--listen", "127.0.0.1:0"],
        &["config"],
    ] {
        let output = run(bare(dir.path()).arg("--config").arg(&file).args(args));
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        let error = stderr(&output);
        assert!(
            error.contains(&format!(
                "{}, line 5, key `retention.keep_wekly`",
                file.display()
            )),
            "{args:?}: {error}"
        );
    }
    // `serve` refused before it created anything.
    let entries: Vec<_> = fs::read_dir(dir.path()).expect("read").collect();
    assert_eq!(entries.len(), 1, "only the file itself");

    fs::write(&file, "[serve]\nschedule = \"every night\"\n").expect("write");
    let output = run(bare(dir.path()).arg("--config").arg(&file).arg("config"));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output)
            .contains("line 2, key `serve.schedule`: \"every night\" is not an interval"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn config_shows_a_flag_beats_env_beats_file_beats_default() {
    let dir = tempfile::tempdir().expect("scratch");
    let file = dir.path().join("backup.toml");
    fs::write(
        &file,
        "busy_timeout = \"3s\"\nguest_timeout = \"3s\"\nbackups = \"store\"\n\
         [serve]\nrequest_timeout = \"3s\"\n[retention]\nkeep_daily = 3\n",
    )
    .expect("write the file");
    let output = run(bare(dir.path())
        .args([
            "config",
            "--json",
            "--busy-timeout",
            "1s",
            "--keep-weekly",
            "1",
        ])
        .arg("--config")
        .arg(&file)
        .env("LITEGRAPH_BUSY_TIMEOUT", "2s")
        .env("LITEGRAPH_GUEST_TIMEOUT", "2s")
        .env("LITEGRAPH_KEEP_WEEKLY", "2")
        .env("LITEGRAPH_KEEP_DAILY", "2"));
    let entries = effective(&output);
    let shown = file.display().to_string();
    let flag = |value: &str| (value.to_owned(), "flag".to_owned(), String::new());
    let env =
        |value: &str, variable: &str| (value.to_owned(), "env".to_owned(), variable.to_owned());
    let from_file = |value: &str| (value.to_owned(), "file".to_owned(), shown.clone());
    let default = |value: &str| (value.to_owned(), "default".to_owned(), String::new());
    for (key, expected) in [
        ("busy_timeout", flag("1s")),
        ("guest_timeout", env("2s", "LITEGRAPH_GUEST_TIMEOUT")),
        ("serve.request_timeout", from_file("3s")),
        ("serve.max_connections", default("1024")),
        ("retention.keep_weekly", flag("1")),
        ("retention.keep_daily", env("2", "LITEGRAPH_KEEP_DAILY")),
        (
            "backups",
            from_file(&dir.path().join("store").display().to_string()),
        ),
        ("database", default("litegraph.db")),
    ] {
        let (_, value, source, from) = setting(&entries, key);
        assert_eq!(
            (value.clone(), source.clone(), from.clone()),
            expected,
            "{key}"
        );
    }

    // The text form says the same, one line per setting.
    let output = run(bare(dir.path())
        .arg("config")
        .arg("--config")
        .arg(&file)
        .env("LITEGRAPH_GUEST_TIMEOUT", "2s"));
    let text = stdout(&output);
    let line = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
            .to_owned()
    };
    assert!(
        line("guest_timeout").ends_with("env LITEGRAPH_GUEST_TIMEOUT"),
        "{text}"
    );
    assert!(
        line("busy_timeout").ends_with(&format!("file {shown}")),
        "{text}"
    );
    assert!(line("serve.listen").ends_with("default"), "{text}");
}

#[test]
fn config_never_shows_the_admin_token() {
    let dir = tempfile::tempdir().expect("scratch");
    let file = dir.path().join("backup.toml");
    fs::write(&file, "[serve]\nadmin_token = \"file-secret-token\"\n").expect("write");
    let litegraph = dir.path().join("litegraph.json");
    fs::write(
        &litegraph,
        r#"{"LiteGraph": {"AdminBearerToken": "json-secret-token"}}"#,
    )
    .expect("write");
    /// Where the token is set, and the source `config` must name.
    struct Case {
        args: &'static [&'static str],
        env: &'static [(&'static str, &'static str)],
        source: &'static str,
    }
    let cases = [
        Case {
            args: &["--config", "backup.toml"],
            env: &[],
            source: "file",
        },
        Case {
            args: &["--config", "backup.toml"],
            env: &[("LITEGRAPH_ADMIN_TOKEN", "env-secret-token")],
            source: "env",
        },
        Case {
            args: &["--litegraph-config", "litegraph.json"],
            env: &[],
            source: "litegraph.json",
        },
    ];
    for Case { args, env, source } in cases {
        for json in [false, true] {
            let mut command = bare(dir.path());
            command.args(args).arg("config").envs(env.iter().copied());
            if json {
                command.arg("--json");
            }
            let output = run(&mut command);
            assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
            let shown = stdout(&output);
            assert!(!shown.contains("secret"), "{args:?} {env:?}: {shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
            if json {
                let entries = effective(&output);
                assert_eq!(setting(&entries, "serve.admin_token").2, source);
            }
        }
    }
}

#[test]
fn litegraph_json_names_the_database_and_the_backup_directory() {
    // LiteGraph's file, with paths relative to its own directory, read from elsewhere.
    let deployment = Deployment::with_nodes(10);
    let litegraph = deployment.root.path().join("litegraph.json");
    fs::write(
        &litegraph,
        r#"{
  "LiteGraph": {
    "AdminBearerToken": "litegraphadmin",
    "GraphRepositoryFilename": "ignored-older-name.db",
    "Database": { "Type": "Sqlite", "Filename": "litegraph.db", "InMemory": false }
  },
  "Storage": { "BackupsDirectory": "./backups/" }
}"#,
    )
    .expect("write litegraph.json");
    let elsewhere = tempfile::tempdir().expect("another working directory");
    let output = run(bare(elsewhere.path())
        .arg("--litegraph-config")
        .arg(&litegraph)
        .args(["create", "from-litegraph.db"]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(deployment.backup("from-litegraph.db").is_file());

    let output = run(bare(elsewhere.path())
        .env("LITEGRAPH_LITEGRAPH_CONFIG", &litegraph)
        .args(["config", "--json"]));
    let entries = effective(&output);
    let (_, database, source, from) = setting(&entries, "database");
    assert_eq!(
        Path::new(database),
        deployment.root.path().join("litegraph.db")
    );
    assert_eq!(source, "litegraph.json");
    assert_eq!(from, &litegraph.display().to_string());

    // The --config file ranks above litegraph.json.
    let file = elsewhere.path().join("backup.toml");
    fs::write(&file, "backups = \"mine\"\n").expect("write");
    let output = run(bare(elsewhere.path())
        .arg("--litegraph-config")
        .arg(&litegraph)
        .arg("--config")
        .arg(&file)
        .args(["config", "--json"]));
    let entries = effective(&output);
    assert_eq!(setting(&entries, "backups").2, "file");
    assert_eq!(setting(&entries, "database").2, "litegraph.json");
}

#[test]
fn a_config_file_sets_what_the_commands_do() {
    // Paths in the file are relative to the file, whatever the working directory.
    let deployment = Deployment::with_nodes(10);
    let file = deployment.root.path().join("backup.toml");
    fs::write(
        &file,
        "database = \"litegraph.db\"\nbackups = \"backups\"\njson = true\n\
         [retention]\nkeep_last = 1\n",
    )
    .expect("write the file");
    let elsewhere = tempfile::tempdir().expect("another working directory");
    for name in ["one.db", "two.db"] {
        let output = run(bare(elsewhere.path())
            .env("LITEGRAPH_CONFIG", &file)
            .args(["create", name]));
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let made: Value = serde_json::from_str(&stdout(&output)).expect("JSON, as the file says");
        assert_eq!(made["Filename"], name);
    }
    let output = run(bare(elsewhere.path())
        .env("LITEGRAPH_CONFIG", &file)
        .args(["prune", "--include-named"]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(!deployment.backup("one.db").exists(), "[retention] applied");
    assert!(deployment.backup("two.db").exists());
}

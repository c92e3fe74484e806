//! The `litegraph-backup` binary itself: output, JSON shape, exit codes, errors.

use std::fs;

use litegraph_backup_tests::integrity;
use serde_json::Value;

use crate::support::{Deployment, assert_backup_file, checksum_tool, stderr, stdout};

/// A BackupFile as the CLI prints it: LiteGraph's shape, never with `Data`.
fn assert_cli_backup_file(object: &Value, raw: &str) {
    assert_backup_file(object, raw);
    assert!(object.get("Data").is_none(), "no Data in CLI output");
}

#[test]
fn create_list_show_exists_delete_through_the_binary() {
    let deployment = Deployment::with_nodes(500);

    let created = deployment.run(&["create", "x.db"]);
    assert_eq!(created.status.code(), Some(0), "{}", stderr(&created));
    assert!(stdout(&created).contains("created"));
    let copy = deployment.backup("x.db");
    assert_eq!(integrity(&copy, true).expect("check"), "ok");

    let listed = deployment.run(&["list", "--json"]);
    assert_eq!(listed.status.code(), Some(0));
    let raw = stdout(&listed);
    let list: Value = serde_json::from_str(&raw).expect("JSON");
    let items = list.as_array().expect("an array");
    assert_eq!(items.len(), 1);
    assert_cli_backup_file(&items[0], &raw);
    assert_eq!(items[0]["Filename"], "x.db");
    assert_eq!(items[0]["Length"], fs::metadata(&copy).expect("stat").len());
    assert_eq!(
        items[0]["SHA256Hash"],
        checksum_tool("sha256sum", &copy).as_str()
    );

    let shown = deployment.run(&["show", "x.db", "--json"]);
    assert_eq!(shown.status.code(), Some(0));
    let raw = stdout(&shown);
    let object: Value = serde_json::from_str(&raw).expect("JSON");
    assert_cli_backup_file(&object, &raw);
    assert_eq!(object, items[0]);

    let text = stdout(&deployment.run(&["show", "x.db"]));
    assert!(
        text.contains(items[0]["SHA256Hash"].as_str().expect("hex")),
        "{text}"
    );

    assert_eq!(deployment.run(&["exists", "x.db"]).status.code(), Some(0));
    assert_eq!(deployment.run(&["exists", "y.db"]).status.code(), Some(1));
    assert_eq!(
        stdout(&deployment.run(&["exists", "y.db", "--json"])).trim(),
        "false"
    );

    let deleted = deployment.run(&["delete", "x.db"]);
    assert_eq!(deleted.status.code(), Some(0));
    assert!(!copy.exists());
    assert_eq!(deployment.run(&["exists", "x.db"]).status.code(), Some(1));
    let gone = deployment.run(&["delete", "x.db"]);
    assert_eq!(gone.status.code(), Some(3), "not found");
    assert!(stderr(&gone).contains("no backup named \"x.db\""));
    assert_eq!(stdout(&deployment.run(&["list", "--json"])).trim(), "[]");
}

#[test]
fn create_with_default_name_prints_it() {
    let deployment = Deployment::with_nodes(10);
    let output = deployment.run(&["create", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let raw = stdout(&output);
    let object: Value = serde_json::from_str(&raw).expect("JSON");
    assert_cli_backup_file(&object, &raw);
    let name = object["Filename"].as_str().expect("a name");
    assert!(
        name.starts_with("litegraph-backup-") && name.ends_with(".db"),
        "{name}"
    );
    assert!(deployment.backup(name).is_file());
}

#[test]
fn existing_name_is_refused_with_2_and_leaves_the_original() {
    let deployment = Deployment::with_nodes(10);
    assert!(deployment.run(&["create", "x.db"]).status.success());
    let before = deployment.tree();
    let output = deployment.run(&["create", "x.db"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("exists already"),
        "{}",
        stderr(&output)
    );
    assert_eq!(deployment.tree(), before);
}

#[test]
fn missing_database_exits_3_and_creates_nothing() {
    let deployment = Deployment::without_database();
    fs::remove_dir(&deployment.backups).expect("no backup directory either");
    let before = deployment.tree();
    let output = deployment.run(&["create", "x.db"]);
    assert_eq!(output.status.code(), Some(3));
    let message = stderr(&output);
    assert!(message.contains("does not exist"), "{message}");
    assert_eq!(message.lines().count(), 1);
    assert_eq!(
        deployment.tree(),
        before,
        "neither a database nor a backup directory"
    );
}

#[test]
fn refused_create_removes_every_directory_it_made() {
    let deployment = Deployment::with_nodes(10);
    let before = deployment.tree();
    let nested = deployment.root.path().join("new/sub/backups");
    let create = |name: &str| {
        crate::support::cli_command()
            .arg("--database")
            .arg(&deployment.database)
            .arg("--backups")
            .arg(&nested)
            .args(["create", name])
            .output()
            .expect("run")
    };
    let refused = create("../x.db");
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert_eq!(deployment.tree(), before, "not even new/ is left");
    let made = create("x.db");
    assert_eq!(made.status.code(), Some(0), "{}", stderr(&made));
    assert!(nested.join("x.db").is_file());
}

#[test]
fn missing_named_backup_directory_is_a_clear_error_for_reads() {
    let deployment = Deployment::with_nodes(10);
    fs::remove_dir(&deployment.backups).expect("remove");
    for args in [
        &["list"][..],
        &["show", "x.db"],
        &["exists", "x.db"],
        &["delete", "x.db"],
    ] {
        let output = deployment.run(args);
        assert_eq!(output.status.code(), Some(3), "{args:?}");
        assert!(
            stderr(&output).contains("does not exist"),
            "{}",
            stderr(&output)
        );
    }
    assert!(!deployment.backups.exists());
}

#[test]
fn list_text_is_a_table_with_totals() {
    let deployment = Deployment::with_nodes(10);
    assert!(deployment.run(&["create", "a.db"]).status.success());
    assert!(deployment.run(&["create", "b.db"]).status.success());
    let text = stdout(&deployment.run(&["list"]));
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{text}");
    assert!(
        lines[1].starts_with("a.db") && lines[2].starts_with("b.db"),
        "{text}"
    );
    assert!(lines[3].starts_with("2 backups"), "{text}");
}

#[test]
fn environment_names_the_database_and_directory() {
    let deployment = Deployment::with_nodes(10);
    let output = crate::support::cli_command()
        .args(["create", "env.db"])
        .env("LITEGRAPH_DB", &deployment.database)
        .env("LITEGRAPH_BACKUPS", &deployment.backups)
        .current_dir(deployment.root.path())
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(deployment.backup("env.db").is_file());
}

#[test]
fn help_teaches_usage() {
    let deployment = Deployment::without_database();
    let help = stdout(&deployment.run(&["--help"]));
    for needle in [
        "create",
        "list",
        "show",
        "exists",
        "delete",
        "--database",
        "--backups",
        "--json",
        "Examples:",
        "255 bytes",
        "prune",
        "config",
        "--config",
        "--litegraph-config",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
    let usage = deployment.run(&["frobnicate"]);
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn prune_help_teaches_the_rules_with_an_example() {
    let deployment = Deployment::without_database();
    let help = stdout(&deployment.run(&["prune", "--help"]));
    for needle in [
        "--keep-last",
        "--keep-hourly",
        "--keep-daily",
        "--keep-weekly",
        "--keep-monthly",
        "--keep-yearly",
        "--keep-within",
        "--include-named",
        "--dry-run",
        "any rule keeps it",
        "ISO weeks",
        "the newest backup",
        "exit 2",
        "exit status is 6",
        "LITEGRAPH_KEEP_DAILY",
        "prune --keep-hourly 24 --keep-daily 7 --keep-weekly 4 --dry-run",
    ] {
        assert!(
            help.contains(needle),
            "prune --help lacks {needle:?}:\n{help}"
        );
    }
}

#[test]
fn closed_stdout_is_not_an_error() {
    let deployment = Deployment::with_nodes(10);
    for i in 0..3 {
        assert!(
            deployment
                .run(&["create", &format!("b{i}.db")])
                .status
                .success()
        );
    }
    let mut child = deployment
        .cli()
        .arg("list")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("wait");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(output.stderr.is_empty());
}

// Regression: only the program's own --help listed the exit codes, not a command's.
#[test]
fn every_command_help_lists_the_exit_codes() {
    let deployment = Deployment::without_database();
    for command in [
        "create", "list", "show", "exists", "delete", "verify", "restore", "prune", "serve",
        "config",
    ] {
        let help = deployment.run(&[command, "--help"]);
        assert!(help.status.success(), "{command}");
        let text = stdout(&help);
        assert!(
            text.contains("Exit codes:") && text.contains("5  busy"),
            "{command}: {text}"
        );
    }
}

//! `litegraph-backup prune`: the table, the dry run, the JSON decisions, the refusal of a
//! prune without a rule, and the exit status when a removal fails while the others go on.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{Deployment, stderr, stdout};

/// Backups made the scheduled way (a default name each), oldest first.
fn scheduled(deployment: &Deployment, count: usize) -> Vec<String> {
    (0..count)
        .map(|_| {
            let output = deployment.run(&["create", "--json"]);
            assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
            let made: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
            made["Filename"].as_str().expect("a name").to_owned()
        })
        .collect()
}

/// The backups on disk (no internal files).
fn on_disk(deployment: &Deployment) -> BTreeSet<String> {
    deployment
        .backup_dir_entries()
        .into_iter()
        .filter(|name| !name.starts_with('.'))
        .collect()
}

/// The table line of backup `name`.
fn row<'a>(table: &'a str, name: &str) -> &'a str {
    table
        .lines()
        .find(|line| line.starts_with(name))
        .unwrap_or_else(|| panic!("no row for {name} in:\n{table}"))
}

#[test]
fn prune_dry_run_says_what_would_go_and_removes_nothing() {
    let deployment = Deployment::with_nodes(10);
    let made = scheduled(&deployment, 3);
    let before = deployment.tree();
    let output = deployment.run(&["prune", "--keep-last", "1", "--dry-run"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(deployment.tree(), before, "a dry run touches no file");
    let table = stdout(&output);
    assert!(table.starts_with("NAME"), "{table}");
    for old in &made[..2] {
        assert!(row(&table, old).contains("would remove"), "{table}");
        assert!(row(&table, old).contains("no rule keeps it"), "{table}");
    }
    assert!(row(&table, &made[2]).contains("keep"), "{table}");
    assert!(row(&table, &made[2]).contains("last 1"), "{table}");
    assert!(table.contains("1 kept, 2 would be removed"), "{table}");
}

#[test]
fn prune_removes_what_no_rule_keeps_and_keeps_named_backups() {
    let deployment = Deployment::with_nodes(10);
    let named = deployment.run(&["create", "mine.db"]);
    assert_eq!(named.status.code(), Some(0), "{}", stderr(&named));
    let made = scheduled(&deployment, 4);
    let output = deployment.run(&["prune", "--keep-last", "2"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let table = stdout(&output);
    assert!(
        row(&table, "mine.db").contains("named by a person"),
        "{table}"
    );
    assert!(row(&table, &made[0]).contains("removed"), "{table}");
    assert!(table.contains("3 kept, 2 removed"), "{table}");
    let expected: BTreeSet<String> = ["mine.db", &made[2], &made[3]]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(on_disk(&deployment), expected);

    // With --include-named, a person's name is subject to the rules too.
    let output = deployment.run(&["prune", "--keep-last", "2", "--include-named"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        !deployment.backup("mine.db").exists(),
        "{}",
        stdout(&output)
    );
}

#[test]
fn prune_json_prints_every_decision() {
    let deployment = Deployment::with_nodes(10);
    let made = scheduled(&deployment, 3);
    let output = deployment.run(&["prune", "--keep-last", "2", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let decisions: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    let decisions = decisions.as_array().expect("an array");
    assert_eq!(decisions.len(), 3, "one decision per backup");
    let names: Vec<&str> = decisions
        .iter()
        .map(|d| d["Backup"]["Filename"].as_str().expect("a name"))
        .collect();
    assert_eq!(names, made, "oldest first");
    assert_eq!(decisions[0]["Keep"], false);
    assert_eq!(decisions[0]["Reasons"][0], "no rule keeps it");
    assert!(decisions[0].get("RemovalFailed").is_none());
    assert_eq!(decisions[2]["Keep"], true);
    assert!(!deployment.backup(&made[0]).exists());
}

#[test]
fn prune_without_a_rule_is_refused_and_removes_nothing() {
    let deployment = Deployment::with_nodes(10);
    scheduled(&deployment, 2);
    let before = deployment.tree();
    for args in [
        &["prune"][..],
        &["prune", "--include-named"],
        &["prune", "--dry-run"],
    ] {
        let output = deployment
            .cli()
            .args(args)
            .env_remove("LITEGRAPH_CONFIG")
            .output();
        let output = output.expect("run");
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains("no retention rule given"),
            "{}",
            stderr(&output)
        );
    }
    assert_eq!(deployment.tree(), before);
}

#[test]
fn a_removal_that_fails_is_reported_the_others_go_on_and_the_exit_status_is_6() {
    let deployment = Deployment::with_nodes(10);
    let made = scheduled(&deployment, 4);
    // The second backup made immutable: its removal fails whoever runs it, root included.
    let Some(_immutable) = Immutable::set(&deployment.backup(&made[1])) else {
        eprintln!("skipped: chattr +i is not available here (cli::prune unit tests cover it)");
        return;
    };

    let output = deployment.run(&["prune", "--keep-last", "1"]);
    assert_eq!(output.status.code(), Some(6), "{}", stderr(&output));
    let table = stdout(&output);
    assert!(row(&table, &made[1]).contains("FAILED"), "{table}");
    assert!(row(&table, &made[1]).contains("removal failed"), "{table}");
    assert!(stderr(&output).contains(&made[1]), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("1 of 3 removals"),
        "{}",
        stderr(&output)
    );
    let left: BTreeSet<String> = [&made[1], &made[3]].into_iter().cloned().collect();
    assert_eq!(on_disk(&deployment), left, "the others were removed");
}

/// A file with the immutable attribute set (`chattr +i`), cleared again when dropped so
/// that the scratch directory can be removed.
struct Immutable(PathBuf);

impl Immutable {
    fn set(path: &Path) -> Option<Immutable> {
        let set = Command::new("chattr").arg("+i").arg(path).output().ok()?;
        set.status.success().then(|| Immutable(path.to_owned()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

//! Retention through the real component and real files: `Runtime::prune` decides in the
//! guest and removes through the same path as `delete`.

use std::collections::BTreeSet;
use std::fs;

use litegraph_backup::wire::Timestamp;
use litegraph_backup::{Error, PruneDecision, Retention, Runtime};

use crate::support::Deployment;

fn keep_last(n: u32) -> Retention {
    Retention {
        keep_last: Some(n),
        ..Retention::default()
    }
}

/// Backups made the scheduled way: a default name each.
fn scheduled(runtime: &Runtime, count: usize) -> Vec<String> {
    (0..count)
        .map(|_| runtime.create(None).expect("create").filename)
        .collect()
}

fn names(decisions: &[PruneDecision], keep: bool) -> BTreeSet<String> {
    decisions
        .iter()
        .filter(|d| d.keep == keep)
        .map(|d| d.backup.filename.clone())
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

#[test]
fn prune_dry_run_removes_nothing_and_reports() {
    let deployment = Deployment::with_nodes(20);
    let runtime = deployment.runtime();
    let made = scheduled(&runtime, 4);
    let before = deployment.tree();
    let decisions = runtime.prune(&keep_last(1), true).expect("dry run");
    assert_eq!(deployment.tree(), before, "a dry run touches no file");
    let listed = runtime.list().expect("list");
    assert_eq!(
        decisions.iter().map(|d| &d.backup).collect::<Vec<_>>(),
        listed.iter().collect::<Vec<_>>(),
        "one decision per backup, oldest first"
    );
    assert_eq!(names(&decisions, true), BTreeSet::from([made[3].clone()]));
    for decision in &decisions[..3] {
        assert_eq!(decision.reasons, ["no rule keeps it"]);
        assert_eq!(decision.removal_failed, None);
    }
    assert_eq!(decisions[3].reasons, ["last 1", "newest"]);
}

#[test]
fn prune_removes_exactly_the_reported_ones_and_their_records() {
    let deployment = Deployment::with_nodes(20);
    let runtime = deployment.runtime();
    let made = scheduled(&runtime, 5);
    let decisions = runtime.prune(&keep_last(2), false).expect("prune");
    let removed = names(&decisions, false);
    assert_eq!(removed, made[..3].iter().cloned().collect());
    assert_eq!(on_disk(&deployment), names(&decisions, true));
    // Each remaining backup has its sidecar, and nothing else is left behind.
    assert_eq!(deployment.backup_dir_entries().len(), 2 * 2);
    assert!(decisions.iter().all(|d| d.removal_failed.is_none()));
    // A second run finds nothing more to remove.
    let again = runtime.prune(&keep_last(2), false).expect("prune again");
    assert!(again.iter().all(|d| d.keep));
}

#[test]
fn named_backups_survive_unless_included() {
    let deployment = Deployment::with_nodes(20);
    let runtime = deployment.runtime();
    runtime.create(Some("before-upgrade.db")).expect("create");
    // A person may name a backup like a default one: it is still theirs.
    runtime
        .create(Some("litegraph-backup-20200101-000000.db"))
        .expect("create");
    let made = scheduled(&runtime, 3);
    let decisions = runtime.prune(&keep_last(1), false).expect("prune");
    let named = ["before-upgrade.db", "litegraph-backup-20200101-000000.db"];
    for (decision, name) in decisions.iter().zip(named) {
        assert_eq!(decision.backup.filename, name);
        assert!(decision.keep);
        assert_eq!(decision.reasons, ["named by a person"]);
    }
    let mut expected: BTreeSet<String> = named.iter().map(|n| n.to_string()).collect();
    expected.insert(made[2].clone());
    assert_eq!(on_disk(&deployment), expected);

    let including = Retention {
        include_named: true,
        ..keep_last(1)
    };
    runtime.prune(&including, false).expect("prune");
    assert_eq!(on_disk(&deployment), BTreeSet::from([made[2].clone()]));
}

#[test]
fn newest_and_newest_verified_survive() {
    let deployment = Deployment::with_nodes(20);
    let runtime = deployment.runtime();
    let made = scheduled(&runtime, 4);
    assert!(runtime.verify(&made[1], false).expect("verify").verified);
    // A later backup that fails verification does not take its place.
    fs::write(deployment.backup(&made[2]), b"not a database").expect("damage");
    assert!(!runtime.verify(&made[2], false).expect("verify").verified);
    let rules = Retention {
        keep_within: Some(std::time::Duration::from_secs(0)),
        keep_hourly: Some(0),
        keep_last: Some(1),
        ..Retention::default()
    };
    let decisions = runtime.prune(&rules, false).expect("prune");
    assert_eq!(decisions[1].reasons, ["newest verified"]);
    assert_eq!(decisions[3].reasons, ["last 1", "newest"]);
    assert_eq!(
        on_disk(&deployment),
        BTreeSet::from([made[1].clone(), made[3].clone()])
    );
}

#[test]
fn a_prune_with_no_rule_is_refused_and_removes_nothing() {
    let deployment = Deployment::with_nodes(20);
    let runtime = deployment.runtime();
    scheduled(&runtime, 2);
    let before = deployment.tree();
    let zeros = Retention {
        keep_daily: Some(0),
        include_named: true,
        ..Retention::default()
    };
    for rules in [Retention::default(), zeros] {
        assert!(rules.is_empty());
        for dry_run in [true, false] {
            let refused = runtime.prune(&rules, dry_run);
            assert!(
                matches!(refused, Err(Error::InvalidArgument(ref why)) if why.contains("no retention rule")),
                "{refused:?}"
            );
        }
    }
    assert_eq!(deployment.tree(), before);
}

// Backups made by an earlier release have version 1 records, which say nothing of origin:
// a default name is then the policy's, and such a backup is subject to pruning.
#[test]
fn backups_with_version_1_records_are_pruned_by_their_names() {
    let deployment = Deployment::with_nodes(20);
    let runtime = deployment.runtime();
    let old = "litegraph-backup-20200101-000000.db";
    runtime.create(Some(old)).expect("create");
    let sidecar = deployment.backup(&sidecar_of(old));
    let record = fs::read_to_string(&sidecar).expect("the record");
    // The same facts as version 1 wrote them, made in 2020: no origin, no verification, no drill.
    let version_1: String = record
        .lines()
        .filter(|line| {
            !line.starts_with("origin\t")
                && !line.starts_with("verified\t")
                && !line.starts_with("drilled\t")
        })
        .map(|line| match line {
            "litegraph-backup-metadata 3" => "litegraph-backup-metadata 1",
            created if created.starts_with("created\t") => "created\t1577836800.000000000",
            other => other,
        })
        .map(|line| format!("{line}\n"))
        .collect();
    assert_eq!(
        version_1.lines().count() + 3,
        record.lines().count(),
        "{record}"
    );
    fs::write(&sidecar, version_1).expect("write a version 1 record");
    let made_in_2020 = Timestamp::from_unix(1_577_836_800, 0);
    assert_eq!(runtime.read(old).expect("read").created_utc, made_in_2020);
    let newest = scheduled(&runtime, 1);
    let decisions = runtime.prune(&keep_last(1), false).expect("prune");
    assert_eq!(decisions[0].backup.filename, old);
    assert_eq!(decisions[0].backup.created_utc, made_in_2020);
    assert_eq!(decisions[0].reasons, ["no rule keeps it"]);
    assert_eq!(on_disk(&deployment), newest.into_iter().collect());
}

/// The hidden file that holds a backup's record: `.lgb-<SHA-256 of the name, hex>.meta`.
fn sidecar_of(name: &str) -> String {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(name.as_bytes());
    format!(
        ".lgb-{}.meta",
        litegraph_backup_tests::upper_hex(&hash).to_lowercase()
    )
}

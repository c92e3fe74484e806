//! A big backup directory: the budgets bound a runaway policy, not the number of backups.

use std::fs;

use sha2::{Digest, Sha256};

use crate::support::Deployment;

/// The sidecar that holds the record of backup `name` (the policy's naming: `.lgb-` and
/// the SHA-256 of the name in lower-case hex).
fn sidecar_of(name: &str) -> String {
    let hash = Sha256::digest(name.as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!(".lgb-{hex}.meta")
}

// Regression: a directory of 50,000 backups failed to list (500 over HTTP) on the fixed
// budget of 200,000 host calls; at 100,000 the guest's fixed 5 s and 64 MiB ran out too.
#[test]
fn a_hundred_thousand_backups_list() {
    const BACKUPS: usize = 100_000;
    // A file has at most 65,000 links on ext4: a few sources share the links.
    const SOURCES: usize = 4;
    let deployment = Deployment::with_nodes(10);
    let runtime = deployment.runtime();
    let records: Vec<String> = (0..SOURCES)
        .map(|s| {
            let name = format!("b{s}.db");
            runtime.create(Some(&name)).expect("create");
            let record = fs::read_to_string(deployment.backup(&sidecar_of(&name))).expect("record");
            assert!(record.contains(&format!("filename\t{name}\n")), "{record}");
            record
        })
        .collect();
    // Every other backup: a hard link to one of those (the same birth time, which its
    // record keeps) with that one's record under its own name, as if made here.
    for i in SOURCES..BACKUPS {
        let source = i % SOURCES;
        let name = format!("b{i}.db");
        fs::hard_link(
            deployment.backup(&format!("b{source}.db")),
            deployment.backup(&name),
        )
        .expect("link");
        let own = records[source].replace(
            &format!("filename\tb{source}.db\n"),
            &format!("filename\t{name}\n"),
        );
        fs::write(deployment.backup(&sidecar_of(&name)), own).expect("record");
    }
    let listed = runtime.list().expect("a listing of 100,000 backups");
    assert_eq!(listed.len(), BACKUPS);
    assert!(
        listed
            .iter()
            .all(|b| b.sha256_hash == listed[0].sha256_hash),
        "every record was read, none recomputed differently"
    );
}

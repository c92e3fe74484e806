//! When things go wrong for real: the S3 server dies in the middle of a large upload, and
//! the machine loses its database and its backup directory and recovers from the bucket.

use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::time::Duration;

use litegraph_backup_tests::{
    content_digest, create_litegraph_database_of_size, file_sha256, integrity, row_counts,
};

use crate::support::s3::age_decrypt;
use crate::support::{Deployment, stderr};

use super::setup::{Encoding, Offsite, PREFIX, eventually};

const MIB: u64 = 1024 * 1024;

/// Long enough for a debug build on two busy cores; the tests poll, they never wait this out
/// when things work.
const LIMIT: Duration = Duration::from_secs(300);

/// Starts `push NAME` and kills the server once a part of its upload has arrived; returns
/// the push still running and its log.
fn kill_the_server_mid_upload(offsite: &mut Offsite, name: &str) -> (Child, PathBuf) {
    let before = offsite.server.objects();
    let log = offsite.scratch(&format!("push-{name}.log"));
    let mut push = offsite.spawn(&["push", name], &log);
    let parts_before = parts_on_disk(offsite);
    let part_arrived = eventually(LIMIT, || parts_on_disk(offsite) > parts_before);
    assert!(part_arrived, "no part of the upload reached the server");
    assert!(
        push.try_wait().expect("poll the push").is_none(),
        "the push is still running"
    );
    assert_eq!(
        offsite.server.objects(),
        before,
        "mid-upload, nothing new is visible"
    );
    offsite.server.kill();
    (push, log)
}

/// The parts of unfinished multipart uploads on the server's disk.
fn parts_on_disk(offsite: &Offsite) -> usize {
    let files = offsite.server.uploads_in_progress();
    files
        .iter()
        .filter(|name| name.starts_with(".upload_id-"))
        .count()
}

fn wait_for(push: &mut Child) -> ExitStatus {
    let mut status = None;
    let ended = eventually(LIMIT, || {
        status = push.try_wait().expect("poll the push");
        status.is_some()
    });
    assert!(ended, "the push ends");
    status.expect("an exit status")
}

/// The object of `name` decrypts to the backup's exact bytes.
fn assert_stored_intact(offsite: &Offsite, name: &str) {
    let data = offsite.data_key(name);
    let plain = offsite.scratch(name);
    let decrypted = age_decrypt(
        &offsite.identity,
        &offsite.server.object_path(&data),
        &plain,
    );
    assert!(decrypted.status.success(), "{}", stderr(&decrypted));
    let backup = offsite.deployment.backup(name);
    assert_eq!(
        file_sha256(&plain).expect("hash"),
        file_sha256(&backup).expect("hash")
    );
    offsite.ok(&["remote", "verify", name]);
}

#[test]
fn a_push_whose_server_is_killed_mid_upload_completes_on_retry_with_no_stray_object_or_part() {
    let deployment = Deployment::without_database();
    create_litegraph_database_of_size(&deployment.database, 64 * MIB).expect("a database");
    // Uncompressed, so the upload has many parts and lasts long enough to be cut.
    let mut offsite = Offsite::new(deployment, Encoding::Age);
    offsite.ok(&["create", "first.db"]);
    offsite.ok(&["create", "second.db"]);

    // Back at once: the host's own retries (about a second of them) usually carry the
    // upload over the restart; on a machine too busy to restart the server in time, the
    // operator's re-run must.
    let (mut push, log) = kill_the_server_mid_upload(&mut offsite, "first.db");
    offsite.server.restart();
    let status = wait_for(&mut push);
    if !status.success() {
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        eprintln!("the host's retries ended before the restart: {said}");
        assert!(said.contains("offsite"), "names the target: {said}");
        offsite.ok(&["push", "first.db"]);
    }
    assert_stored_intact(&offsite, "first.db");

    // Down for longer than the retries: the push fails, naming the target; the operator's
    // retry once the server is back completes.
    let (mut push, log) = kill_the_server_mid_upload(&mut offsite, "second.db");
    let status = wait_for(&mut push);
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!status.success(), "no server, no push: {said}");
    assert!(said.contains("offsite"), "names the target: {said}");
    assert!(said.contains("unreachable"), "says why: {said}");
    offsite.server.restart();
    assert!(
        parts_on_disk(&offsite) > 0,
        "the killed upload's parts are left"
    );
    offsite.ok(&["push", "second.db"]);
    assert_stored_intact(&offsite, "second.db");
    assert_eq!(
        offsite.server.uploads_in_progress(),
        Vec::<String>::new(),
        "the retry aborted the killed upload: its parts are gone"
    );

    // Exactly each backup's object and manifest: nothing stray is visible.
    let keys: Vec<String> = offsite
        .server
        .objects()
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    let expected = [
        offsite.data_key("first.db"),
        offsite.data_key("second.db"),
        format!("{PREFIX}/manifests/first.db.manifest"),
        format!("{PREFIX}/manifests/second.db.manifest"),
    ];
    let mut expected = expected.to_vec();
    expected.sort();
    assert_eq!(keys, expected);
}

#[test]
fn disaster_drill_recovers_every_table_from_the_bucket_alone() {
    let offsite = Offsite::new(Deployment::with_nodes(2_000), Encoding::ZstdAge);
    let database = offsite.deployment.database.clone();
    offsite.ok(&["create", "nightly.db"]);
    let nightly = content_digest(&database).expect("digest");
    let change = rusqlite::Connection::open(&database).expect("open");
    change
        .execute_batch("DELETE FROM edges WHERE rowid % 3 = 0; UPDATE nodes SET name = 'renamed';")
        .expect("change the database");
    drop(change);
    offsite.ok(&["create", "later.db"]);
    let later = content_digest(&database).expect("digest");
    let later_counts = row_counts(&database).expect("count");
    assert_ne!(nightly, later);
    offsite.ok(&["push", "--all"]);

    // The disk is lost: the database, its journal files and every local backup.
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", database.display()));
    }
    std::fs::remove_dir_all(&offsite.deployment.backups).expect("remove the backups");

    let recovered = offsite.deployment.root.path().join("recovered.db");
    let recovered_text = recovered.to_str().expect("a UTF-8 path");
    offsite.ok(&["recover", "--to", recovered_text, "--latest"]);
    assert_eq!(integrity(&recovered, true).expect("check"), "ok");
    assert_eq!(content_digest(&recovered).expect("digest"), later);
    assert_eq!(row_counts(&recovered).expect("count"), later_counts);

    let named = offsite.deployment.root.path().join("nightly.db");
    let named_text = named.to_str().expect("a UTF-8 path");
    offsite.ok(&["recover", "--to", named_text, "nightly.db"]);
    assert_eq!(content_digest(&named).expect("digest"), nightly);

    // Never over an existing file.
    let before = file_sha256(&recovered).expect("hash");
    let refused = offsite.run(&["recover", "--to", recovered_text, "nightly.db"]);
    assert_ne!(refused.status.code(), Some(0));
    assert!(
        stderr(&refused).contains("recovered.db"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(file_sha256(&recovered).expect("hash"), before);
}

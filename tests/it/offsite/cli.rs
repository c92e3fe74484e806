//! Offsite copies through the real CLI against the loopback S3 server (issue 11, item 6):
//! a backup over 100 MiB pushed and pulled byte for byte, held encrypted (the standard `age`
//! and `zstd` tools give the bytes back, no plaintext on the server); a push never overwrites;
//! wrong credentials, a tampered object and a wrong identity are clear errors that publish
//! nothing.

use std::path::Path;

use litegraph_backup_tests::{create_litegraph_database_of_size, file_sha256};

use crate::support::s3::{age_decrypt, zstd_decompress};
use crate::support::{Deployment, stderr, stdout};

use super::setup::{Encoding, Offsite, PREFIX, assert_no_plaintext};

const MIB: u64 = 1024 * 1024;

#[test]
fn a_backup_over_100_mib_goes_offsite_encrypted_and_comes_back_byte_for_byte() {
    let deployment = Deployment::without_database();
    create_litegraph_database_of_size(&deployment.database, 101 * MIB).expect("a large database");
    let offsite = Offsite::new(deployment, Encoding::ZstdAge);
    offsite.ok(&["create", "big.db"]);
    let backup = offsite.deployment.backup("big.db");
    let length = std::fs::metadata(&backup).expect("stat").len();
    assert!(length > 100 * MIB, "{length}");
    let sha256 = file_sha256(&backup).expect("hash the backup");

    let pushed = offsite.ok(&["push", "big.db"]);
    assert!(stdout(&pushed).contains("big.db"), "{}", stdout(&pushed));
    let (data, _manifest) = offsite.stored_keys("big.db");
    assert!(data.ends_with(".db.zst.age"), "{data}");

    // The standard tools read the object without our code; the server never saw plaintext.
    let object = offsite.server.object_path(&data);
    assert_no_plaintext(&object);
    let scratch = tempfile::tempdir().expect("scratch");
    let compressed = scratch.path().join("big.db.zst");
    let plain = scratch.path().join("big.db");
    let decrypted = age_decrypt(&offsite.identity, &object, &compressed);
    assert!(decrypted.status.success(), "{}", stderr(&decrypted));
    let decompressed = zstd_decompress(&compressed, &plain);
    assert!(decompressed.status.success(), "{}", stderr(&decompressed));
    assert_eq!(file_sha256(&plain).expect("hash"), sha256);
    drop(scratch);

    let listed = offsite.ok(&["remote", "list", "--json"]);
    assert!(stdout(&listed).contains("big.db"), "{}", stdout(&listed));
    assert!(stdout(&listed).contains(&sha256), "{}", stdout(&listed));
    offsite.ok(&["remote", "verify", "big.db"]);

    offsite.ok(&["delete", "big.db"]);
    assert!(!backup.exists());
    offsite.ok(&["pull", "big.db"]);
    assert_eq!(
        file_sha256(&backup).expect("hash the pulled backup"),
        sha256
    );
    let shown = offsite.ok(&["show", "big.db", "--json"]);
    assert!(stdout(&shown).contains(&sha256), "a recorded backup");
}

#[test]
fn a_second_push_overwrites_nothing_and_another_backup_of_the_same_name_is_refused() {
    let offsite = Offsite::new(Deployment::with_nodes(300), Encoding::ZstdAge);
    offsite.ok(&["create", "x.db"]);
    offsite.ok(&["push", "x.db"]);
    let stored = offsite.server.stored_digests();

    // The same backup again: nothing to upload, nothing touched.
    offsite.ok(&["push", "x.db"]);
    assert_eq!(offsite.server.stored_digests(), stored);

    // A different backup under the same name: refused, and the target keeps the first.
    offsite.ok(&["delete", "x.db"]);
    let conn = rusqlite::Connection::open(&offsite.deployment.database).expect("open");
    conn.execute_batch("INSERT INTO tenants (guid, name) VALUES ('changed', 'changed');")
        .expect("change the database");
    drop(conn);
    offsite.ok(&["create", "x.db"]);
    let refused = offsite.run(&["push", "x.db"]);
    assert_ne!(refused.status.code(), Some(0), "{}", stdout(&refused));
    let message = stderr(&refused);
    assert!(
        message.contains("offsite") && message.contains("x.db"),
        "names the target and the backup: {message}"
    );
    assert!(
        message.contains("overwr"),
        "says nothing was overwritten: {message}"
    );
    assert_eq!(offsite.server.stored_digests(), stored);
}

#[test]
fn wrong_credentials_are_a_clear_error_naming_the_target() {
    let offsite = Offsite::new(Deployment::with_nodes(50), Encoding::ZstdAge);
    offsite.ok(&["create", "x.db"]);
    let wrong = offsite.config_with_secret("not-the-secret-key");
    for args in [&["push", "x.db"][..], &["remote", "list"][..]] {
        let refused = offsite.run_with(&wrong, args);
        assert_ne!(refused.status.code(), Some(0), "{args:?}");
        let message = stderr(&refused).to_lowercase();
        assert!(message.contains("offsite"), "names the target: {message}");
        assert!(
            message.contains("credential"),
            "says credentials: {message}"
        );
        assert!(
            !message.contains("not-the-secret-key"),
            "never shows the secret: {message}"
        );
    }
    assert_eq!(offsite.server.objects(), Vec::<(String, u64)>::new());
}

#[test]
fn a_tampered_object_is_refused_on_pull_and_verify_and_nothing_is_published() {
    // Encrypted, age's authentication refuses it; plain, the manifest's digests do.
    for (encoding, why) in [(Encoding::ZstdAge, "decrypt"), (Encoding::Plain, "SHA-256")] {
        let offsite = Offsite::new(Deployment::with_nodes(300), encoding);
        offsite.ok(&["create", "x.db"]);
        offsite.ok(&["push", "x.db"]);
        offsite.ok(&["delete", "x.db"]);
        let (data, _) = offsite.stored_keys("x.db");
        flip_a_byte(&offsite.server.object_path(&data));
        let before = offsite.deployment.backup_dir_entries();

        for args in [&["remote", "verify", "x.db"][..], &["pull", "x.db"][..]] {
            let refused = offsite.run(args);
            let message = stderr(&refused);
            assert_eq!(refused.status.code(), Some(4), "damaged: {message}");
            assert!(
                message.contains("x.db") && message.contains("offsite"),
                "names the backup and the target: {message}"
            );
            assert!(message.contains(why), "{encoding:?}: says why: {message}");
        }
        assert_eq!(offsite.deployment.backup_dir_entries(), before);
        assert!(!offsite.deployment.backup("x.db").exists());
    }
}

#[test]
fn a_wrong_age_identity_is_a_clear_error_and_publishes_nothing() {
    let offsite = Offsite::new(Deployment::with_nodes(300), Encoding::ZstdAge);
    offsite.ok(&["create", "x.db"]);
    offsite.ok(&["push", "x.db"]);
    offsite.ok(&["delete", "x.db"]);
    let stranger = offsite.config_with_other_identity();
    let before = offsite.deployment.backup_dir_entries();

    let refused = offsite.run_with(&stranger, &["pull", "x.db"]);
    assert_ne!(refused.status.code(), Some(0));
    let message = stderr(&refused).to_lowercase();
    assert!(message.contains("offsite"), "names the target: {message}");
    assert!(message.contains("identit"), "says the identity: {message}");
    assert_eq!(offsite.deployment.backup_dir_entries(), before);
}

/// Inverts one byte in the middle of a file, as a disk or a provider might.
fn flip_a_byte(path: &Path) {
    let mut bytes = std::fs::read(path).expect("read the object");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xFF;
    std::fs::write(path, bytes).expect("write the object back");
}

#[test]
fn remote_list_describes_each_copy_and_remote_prune_applies_the_rules_to_the_target() {
    let offsite = Offsite::new(Deployment::with_nodes(100), Encoding::ZstdAge);
    for name in ["a.db", "b.db", "c.db"] {
        offsite.ok(&["create", name]);
    }
    offsite.ok(&["push", "--all"]);

    let listed = offsite.ok(&["remote", "list", "--json"]);
    let copies: serde_json::Value = serde_json::from_str(&stdout(&listed)).expect("JSON");
    let copies = copies.as_array().expect("an array");
    assert_eq!(copies.len(), 3, "{copies:?}");
    for copy in copies {
        let name = copy["Backup"]["Filename"].as_str().expect("a name");
        let local = offsite.deployment.backup(name);
        assert_eq!(copy["Target"], "offsite");
        assert_eq!(
            copy["Backup"]["SHA256Hash"].as_str(),
            Some(file_sha256(&local).expect("hash").as_str())
        );
        let key = format!("{PREFIX}/{}", copy["Key"].as_str().expect("a key"));
        let object = offsite.server.object_path(&key);
        assert_eq!(
            copy["StoredLength"],
            std::fs::metadata(&object).expect("stat").len()
        );
        assert_eq!(
            copy["StoredSHA256Hash"].as_str(),
            Some(file_sha256(&object).expect("hash").as_str())
        );
        assert_eq!(copy["Encoding"], serde_json::json!(["zstd", "age"]));
    }

    let stored = offsite.server.stored_digests();
    // Backups a person named are kept unless the rules include them, as `prune` does.
    let rules = ["--keep-last", "1", "--include-named"];
    let dry_run = offsite.ok(&[&["remote", "prune", "--dry-run"][..], &rules].concat());
    assert!(stdout(&dry_run).contains("a.db"), "{}", stdout(&dry_run));
    assert_eq!(
        offsite.server.stored_digests(),
        stored,
        "a dry run removes nothing"
    );

    offsite.ok(&[&["remote", "prune"][..], &rules].concat());
    let (data, manifest) = offsite.stored_keys("c.db");
    let kept: Vec<String> = offsite
        .server
        .objects()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(kept, vec![data, manifest], "the newest backup only");
    for name in ["a.db", "b.db", "c.db"] {
        assert!(
            offsite.deployment.backup(name).exists(),
            "local {name} untouched"
        );
    }
}

//! The mechanism through the WIT `Host` impl, against directory targets in a temporary
//! directory (the S3 server is exercised end to end in tests/it/offsite*.rs).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use age::secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use super::*;
use crate::bindings::litegraph::backup::remote::Host;
use crate::digests::upper_hex;

const MIB: usize = 1 << 20;

/// A backup directory with one file, and a directory target beside it.
struct Setup {
    _root: tempfile::TempDir,
    backups: Arc<BackupDir>,
    remote_dir: PathBuf,
    identity_file: PathBuf,
    recipient: String,
}

impl Setup {
    fn new() -> Setup {
        let root = tempfile::tempdir().expect("temporary directory");
        let backups = Arc::new(BackupDir::create(&root.path().join("backups")).expect("backups"));
        let remote_dir = root.path().join("remote");
        std::fs::create_dir(&remote_dir).expect("remote directory");
        let identity = age::x25519::Identity::generate();
        let identity_file = root.path().join("key.txt");
        std::fs::write(&identity_file, identity.to_string().expose_secret()).expect("key");
        Setup {
            recipient: identity.to_public().to_string(),
            _root: root,
            backups,
            remote_dir,
            identity_file,
        }
    }

    fn config(&self, zstd_level: Option<i32>, encrypt: bool) -> TargetConfig {
        TargetConfig {
            name: "offsite".into(),
            location: Location::Directory(self.remote_dir.clone()),
            zstd_level,
            recipients: if encrypt {
                vec![self.recipient.clone()]
            } else {
                vec![]
            },
            identity_files: if encrypt {
                vec![self.identity_file.clone()]
            } else {
                vec![]
            },
        }
    }

    fn ctx(&self, config: TargetConfig) -> RemoteCtx {
        let targets = Targets::open(vec![config]).expect("the target opens");
        RemoteCtx::new(
            Arc::new(targets),
            Arc::clone(&self.backups),
            Budget::default(),
            crate::monitor::Monitor::new(Arc::clone(&self.backups)),
        )
    }

    /// Writes a backup file of `length` bytes of noise (zstd cannot shrink it below a part,
    /// so large files take the multipart path whatever the encoding).
    fn backup(&self, name: &str, length: usize) -> Vec<u8> {
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let bytes: Vec<u8> = (0..length)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                // Every fourth byte repeats: some compression, never to nothing.
                if i % 4 == 0 { 0 } else { state as u8 }
            })
            .collect();
        std::fs::write(self.backups.path().join(name), &bytes).expect("backup written");
        bytes
    }

    fn stored(&self, key: &str) -> PathBuf {
        self.remote_dir.join(key)
    }
}

fn sha256(bytes: &[u8]) -> String {
    upper_hex(&Sha256::digest(bytes))
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("readable")
}

#[test]
fn a_20_mib_file_round_trips_byte_for_byte_with_each_encoding() {
    let setup = Setup::new();
    let source = setup.backup("x.db", 20 * MIB);
    for (level, encrypt, encoding) in [
        (None, false, vec![]),
        (Some(3), false, vec!["zstd"]),
        (None, true, vec!["age"]),
        (Some(3), true, vec!["zstd", "age"]),
    ] {
        let mut ctx = setup.ctx(setup.config(level, encrypt));
        let key = format!("data/x.db/{level:?}-{encrypt}");
        let upload = ctx
            .put_file("offsite".into(), key.clone(), "x.db".into())
            .expect("uploaded");
        assert_eq!(upload.encoding, encoding);
        assert_eq!(upload.source_length, source.len() as u64);
        assert_eq!(upload.source_sha256, sha256(&source));
        let stored = read(&setup.stored(&key));
        assert_eq!(upload.length, stored.len() as u64);
        assert_eq!(upload.sha256, sha256(&stored));
        assert_eq!(encrypt || level.is_some(), stored != source, "{encoding:?}");

        let encoding: Vec<String> = encoding.iter().map(|e| e.to_string()).collect();
        let download = ctx
            .get_file("offsite".into(), key, encoding.clone())
            .expect("downloaded");
        let decoded = read(&setup.backups.path().join(&download.name));
        assert!(decoded == source, "{encoding:?}: the download differs");
        assert_eq!(download.length, source.len() as u64);
        assert_eq!(download.digests.sha256, sha256(&source));
        assert_eq!(download.stored_length, upload.length);
        assert_eq!(download.stored_sha256, upload.sha256);
    }
}

#[test]
fn put_and_put_file_never_replace_an_object() {
    let setup = Setup::new();
    setup.backup("small.db", 1000);
    setup.backup("large.db", 9 * MIB);
    let mut ctx = setup.ctx(setup.config(None, false));
    ctx.put("offsite".into(), "m/a.json".into(), b"first".to_vec())
        .expect("stored");
    let again = ctx.put("offsite".into(), "m/a.json".into(), b"second".to_vec());
    assert!(matches!(again, Err(Error::Exist)), "{again:?}");
    assert_eq!(read(&setup.stored("m/a.json")), b"first");
    for name in ["small.db", "large.db"] {
        let again = ctx.put_file("offsite".into(), "m/a.json".into(), name.into());
        assert!(matches!(again, Err(Error::Exist)), "{name}: {again:?}");
        assert_eq!(read(&setup.stored("m/a.json")), b"first");
    }
}

#[test]
fn targets_open_refuses_what_would_fail_later() {
    let setup = Setup::new();
    let refused = |config: TargetConfig, needle: &str| {
        let error = Targets::open(vec![config])
            .expect_err("refused")
            .to_string();
        assert!(error.contains(needle), "{error:?} lacks {needle:?}");
    };
    let mut bad_recipient = setup.config(None, true);
    bad_recipient.recipients = vec!["age1notarecipient".into()];
    refused(bad_recipient, "age1notarecipient");
    // Before: a secret key pasted as a recipient was printed back in the error (and log).
    let mut secret_as_recipient = setup.config(None, true);
    let secret = age::x25519::Identity::generate();
    secret_as_recipient.recipients = vec![secret.to_string().expose_secret().to_owned()];
    let error = Targets::open(vec![secret_as_recipient])
        .expect_err("refused")
        .to_string();
    assert!(
        error.contains("SECRET key") && !error.contains(secret.to_string().expose_secret()),
        "{error}"
    );
    let mut no_identity_file = setup.config(None, true);
    no_identity_file.identity_files = vec![setup.remote_dir.join("missing.txt")];
    refused(no_identity_file, "missing.txt");
    let garbage = setup.remote_dir.join("garbage.txt");
    std::fs::write(&garbage, "AGE-SECRET-KEY-1NOTAKEY\n").expect("written");
    let mut bad_identity = setup.config(None, true);
    bad_identity.identity_files = vec![garbage];
    let error = Targets::open(vec![bad_identity])
        .expect_err("refused")
        .to_string();
    assert!(
        error.contains("garbage.txt") && !error.contains("NOTAKEY"),
        "{error}"
    );
    let mut missing_directory = setup.config(None, false);
    missing_directory.location = Location::Directory(setup.remote_dir.join("nope"));
    refused(missing_directory, "nope");
    let mut empty_bucket = setup.config(None, false);
    empty_bucket.location = Location::S3 {
        bucket: String::new(),
        prefix: String::new(),
        endpoint: None,
        region: None,
        allow_http: false,
        credentials: None,
    };
    refused(empty_bucket, "bucket");
    let mut bad_level = setup.config(Some(40), false);
    bad_level.name = "lvl".into();
    refused(bad_level, "40");
    let twice = Targets::open(vec![setup.config(None, false), setup.config(None, false)]);
    assert!(twice.expect_err("refused").to_string().contains("twice"));
}

#[test]
fn a_wrong_or_missing_identity_is_not_permitted() {
    let setup = Setup::new();
    setup.backup("x.db", 1000);
    let mut ctx = setup.ctx(setup.config(None, true));
    ctx.put_file("offsite".into(), "k".into(), "x.db".into())
        .expect("uploaded");
    let other = age::x25519::Identity::generate();
    let other_file = setup.remote_dir.join("other.txt");
    std::fs::write(&other_file, other.to_string().expose_secret()).expect("key");
    let mut wrong = setup.config(None, true);
    wrong.identity_files = vec![other_file];
    let mut ctx = setup.ctx(wrong);
    let error = ctx.get_file("offsite".into(), "k".into(), vec!["age".into()]);
    assert!(
        matches!(&error, Err(Error::NotPermitted(m)) if m.contains("none of the identities")),
        "{error:?}"
    );
    let mut none = setup.config(None, true);
    none.identity_files = vec![];
    let mut ctx = setup.ctx(none);
    let error = ctx.get_file("offsite".into(), "k".into(), vec!["age".into()]);
    assert!(
        matches!(&error, Err(Error::NotPermitted(m)) if m.contains("set age_identity_file")),
        "{error:?}"
    );
}

#[test]
fn a_flipped_byte_in_an_encrypted_object_is_corrupt() {
    let setup = Setup::new();
    setup.backup("x.db", 300_000);
    let mut ctx = setup.ctx(setup.config(Some(1), true));
    let upload = ctx
        .put_file("offsite".into(), "k".into(), "x.db".into())
        .expect("uploaded");
    let mut stored = read(&setup.stored("k"));
    let middle = stored.len() / 2;
    stored[middle] ^= 1;
    std::fs::write(setup.stored("k"), &stored).expect("tampered");
    let error = ctx.get_file("offsite".into(), "k".into(), upload.encoding.clone());
    assert!(matches!(error, Err(Error::Corrupt(_))), "{error:?}");
    // Truncated: the last chunk's authentication is missing.
    std::fs::write(setup.stored("k"), &stored[..middle]).expect("truncated");
    let error = ctx.get_file("offsite".into(), "k".into(), upload.encoding);
    assert!(matches!(error, Err(Error::Corrupt(_))), "{error:?}");
}

#[test]
fn a_flipped_byte_in_a_plain_object_changes_the_stored_digest() {
    let setup = Setup::new();
    setup.backup("x.db", 300_000);
    let mut ctx = setup.ctx(setup.config(None, false));
    let upload = ctx
        .put_file("offsite".into(), "k".into(), "x.db".into())
        .expect("uploaded");
    let mut stored = read(&setup.stored("k"));
    stored[1234] ^= 1;
    std::fs::write(setup.stored("k"), &stored).expect("tampered");
    let download = ctx
        .get_file("offsite".into(), "k".into(), vec![])
        .expect("a plain object always decodes");
    assert_ne!(download.stored_sha256, upload.sha256);
    assert_ne!(download.digests.sha256, upload.source_sha256);
}

#[test]
fn hostile_keys_names_and_targets_are_refused() {
    let setup = Setup::new();
    setup.backup("x.db", 10);
    let mut ctx = setup.ctx(setup.config(None, false));
    for key in ["../escape", "/abs", "a//b", "a/./b", "a\nb", ""] {
        let put = ctx.put_file("offsite".into(), key.into(), "x.db".into());
        assert!(
            matches!(put, Err(Error::NotPermitted(_))),
            "{key:?}: {put:?}"
        );
        let get = ctx.get("offsite".into(), key.into());
        assert!(
            matches!(get, Err(Error::NotPermitted(_))),
            "{key:?}: {get:?}"
        );
    }
    for name in ["../key.txt", "/etc/passwd", "a/b"] {
        let put = ctx.put_file("offsite".into(), "k".into(), name.into());
        assert!(
            matches!(put, Err(Error::NotPermitted(_))),
            "{name:?}: {put:?}"
        );
    }
    let unknown = ctx.put("elsewhere".into(), "k".into(), vec![]);
    assert!(
        matches!(unknown, Err(Error::NotPermitted(_))),
        "{unknown:?}"
    );
    let encoding = ctx.get_file("offsite".into(), "k".into(), vec!["rot13".into()]);
    assert!(
        matches!(encoding, Err(Error::NotPermitted(_))),
        "{encoding:?}"
    );
    assert!(
        !setup
            .remote_dir
            .parent()
            .expect("root")
            .join("escape")
            .exists()
    );
}

#[test]
fn list_get_and_delete_answer_as_the_contract_says() {
    let setup = Setup::new();
    let mut ctx = setup.ctx(setup.config(None, false));
    for key in [
        "manifests/a.json",
        "manifests/b.json",
        "data/x.db/1",
        "data/y.db/1",
    ] {
        ctx.put("offsite".into(), key.into(), key.as_bytes().to_vec())
            .expect("stored");
    }
    let keys = |ctx: &mut RemoteCtx, prefix: &str| {
        let mut keys: Vec<String> = ctx
            .list("offsite".into(), prefix.into())
            .expect("listed")
            .into_iter()
            .map(|o| o.key)
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(
        keys(&mut ctx, "manifests/"),
        ["manifests/a.json", "manifests/b.json"]
    );
    assert_eq!(keys(&mut ctx, "data/x"), ["data/x.db/1"]);
    assert_eq!(keys(&mut ctx, "").len(), 4);
    assert!(keys(&mut ctx, "nothing/").is_empty());
    assert_eq!(
        ctx.get("offsite".into(), "data/x.db/1".into())
            .expect("read"),
        b"data/x.db/1"
    );
    let missing = ctx.get("offsite".into(), "data/z".into());
    assert!(matches!(missing, Err(Error::NotFound)), "{missing:?}");
    let missing = ctx.get_file("offsite".into(), "data/z".into(), vec![]);
    assert!(matches!(missing, Err(Error::NotFound)), "{missing:?}");
    ctx.delete("offsite".into(), "data/x.db/1".into())
        .expect("deleted");
    let again = ctx.delete("offsite".into(), "data/x.db/1".into());
    assert!(matches!(again, Err(Error::NotFound)), "{again:?}");
    std::fs::write(setup.stored("big"), vec![0; 64 * 1024 + 1]).expect("written");
    let big = ctx.get("offsite".into(), "big".into());
    assert!(matches!(big, Err(Error::Io(_))), "{big:?}");
}

#[test]
fn a_download_not_renamed_away_is_removed_when_the_operation_ends() {
    let setup = Setup::new();
    setup.backup("x.db", 1000);
    let mut ctx = setup.ctx(setup.config(Some(3), false));
    let upload = ctx
        .put_file("offsite".into(), "k".into(), "x.db".into())
        .expect("uploaded");
    let download = ctx
        .get_file("offsite".into(), "k".into(), upload.encoding)
        .expect("downloaded");
    let temporary = setup.backups.path().join(&download.name);
    assert!(temporary.exists());
    drop(ctx);
    assert!(
        !temporary.exists(),
        "{} is left behind",
        temporary.display()
    );
}

#[test]
fn calls_from_a_spawn_blocking_thread_do_not_panic() {
    let setup = Setup::new();
    setup.backup("x.db", 9 * MIB);
    let ctx = setup.ctx(setup.config(Some(1), true));
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .expect("runtime");
    let (ctx, upload) = server
        .block_on(async move {
            tokio::task::spawn_blocking(move || {
                let mut ctx = ctx;
                let upload = ctx.put_file("offsite".into(), "k".into(), "x.db".into());
                (ctx, upload)
            })
            .await
        })
        .expect("no panic");
    assert!(upload.is_ok(), "{upload:?}");
    // The targets' runtime dropped inside another runtime's task must not panic either.
    server.block_on(async move { drop(ctx) });
}

#[test]
fn no_targets_refuse_every_call() {
    let setup = Setup::new();
    let mut ctx = RemoteCtx::new(
        Arc::new(Targets::none()),
        Arc::clone(&setup.backups),
        Budget::default(),
        crate::monitor::Monitor::new(Arc::clone(&setup.backups)),
    );
    assert!(ctx.targets().is_empty());
    let put = ctx.put("offsite".into(), "k".into(), vec![]);
    assert!(matches!(put, Err(Error::NotPermitted(_))), "{put:?}");
}

#[test]
fn plain_upload_stores_the_file_as_it_is() {
    let setup = Setup::new();
    let source = setup.backup("x.db", 9 * MIB);
    let targets = Targets::open(vec![setup.config(Some(3), true)]).expect("opens");
    let sent = targets
        .plain_upload("offsite", "plain/x.db", &setup.backups.path().join("x.db"))
        .expect("uploaded");
    assert_eq!(sent, source.len() as u64);
    assert!(read(&setup.stored("plain/x.db")) == source);
}

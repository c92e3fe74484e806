//! The upload journal: an upload a dead process left is aborted by the next put-file to its
//! target, against the loopback S3 server in this process (s3s-fs keeps an unfinished
//! upload's parts as files under its root: `.upload_id-UUID.part-N`) and a directory target.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use object_store::PutPayload;
use object_store::multipart::MultipartStore;
use object_store::path::Path;

use super::journal::{Entry, Journal, Record};
use super::targets::Parts;
use super::*;
use crate::bindings::litegraph::backup::remote::Host;
use crate::bindings::litegraph::backup::store::Host as _;
use crate::store::StoreCtx;

const ACCESS_KEY: &str = "journal-test-key";
const SECRET_KEY: &str = "journal-test-secret";
const BUCKET: &str = "offsite";
const PREFIX: &str = "site-a";
const MIB: usize = 1 << 20;

/// A backup directory, an S3 server's root and a directory target, side by side.
struct Setup {
    _root: tempfile::TempDir,
    backups: Arc<BackupDir>,
    server_root: PathBuf,
    remote_dir: PathBuf,
    endpoint: String,
}

impl Setup {
    fn new() -> Setup {
        let root = tempfile::tempdir().expect("temporary directory");
        let backups = Arc::new(BackupDir::create(&root.path().join("backups")).expect("backups"));
        let server_root = root.path().join("s3");
        std::fs::create_dir(&server_root).expect("server root");
        let endpoint =
            litegraph_backup_tests::s3_server::spawn(&server_root, ACCESS_KEY, SECRET_KEY, BUCKET)
                .expect("the S3 server starts");
        let remote_dir = root.path().join("remote");
        std::fs::create_dir(&remote_dir).expect("remote directory");
        Setup {
            _root: root,
            backups,
            server_root,
            remote_dir,
            endpoint,
        }
    }

    fn s3(&self, name: &str) -> TargetConfig {
        TargetConfig {
            name: name.into(),
            location: Location::S3 {
                bucket: BUCKET.into(),
                prefix: PREFIX.into(),
                endpoint: Some(self.endpoint.clone()),
                region: None,
                allow_http: true,
                credentials: Some(S3Credentials {
                    access_key_id: ACCESS_KEY.into(),
                    secret_access_key: Secret::new(SECRET_KEY),
                    session_token: None,
                }),
            },
            zstd_level: None,
            recipients: vec![],
            identity_files: vec![],
        }
    }

    fn directory(&self) -> TargetConfig {
        TargetConfig {
            name: "offsite".into(),
            location: Location::Directory(self.remote_dir.clone()),
            zstd_level: None,
            recipients: vec![],
            identity_files: vec![],
        }
    }

    fn ctx(&self, targets: &Arc<Targets>) -> RemoteCtx {
        RemoteCtx::new(
            Arc::clone(targets),
            Arc::clone(&self.backups),
            Budget::default(),
            crate::monitor::Monitor::new(Arc::clone(&self.backups)),
        )
    }

    /// A backup file of `length` bytes that no two parts repeat.
    fn backup(&self, name: &str, length: usize) -> Vec<u8> {
        let bytes: Vec<u8> = (0..length)
            .map(|i| (i as u64).wrapping_mul(0x9E37_79B9).to_le_bytes()[1])
            .collect();
        std::fs::write(self.backups.path().join(name), &bytes).expect("backup written");
        bytes
    }

    /// The S3 server's files for multipart uploads begun and neither completed nor aborted.
    fn unfinished_on_server(&self) -> Vec<String> {
        names_in(&self.server_root)
            .into_iter()
            .filter(|name| name.starts_with(".upload"))
            .collect()
    }

    fn journal_entries(&self) -> Vec<String> {
        names_in(&self.backups.path().join(".lgb-uploads"))
    }

    /// An upload as a process killed mid-upload leaves it: begun, recorded, one part sent,
    /// and its journal entry no longer held (`entry` dropped) unless the caller keeps it.
    fn begin_upload(&self, targets: &Targets, target: &str, key: &str) -> Entry {
        let found = targets.find(target).expect("the target");
        let Parts::S3 { bucket, .. } = &found.parts else {
            panic!("an S3 target");
        };
        let path = found
            .parts
            .full_path(&Path::parse(key).expect("a valid key"));
        let id = targets
            .block_on(bucket.create_multipart(&path))
            .expect("a runtime")
            .expect("the upload begins");
        let entry = Journal::of(&self.backups)
            .record(Record {
                target: target.into(),
                path: path.to_string(),
                upload_id: Some(id.clone()),
            })
            .expect("recorded");
        targets
            .block_on(bucket.put_part(&path, &id, 0, PutPayload::from(vec![7_u8; 5 * MIB])))
            .expect("a runtime")
            .expect("a part is sent");
        entry
    }
}

fn names_in(dir: &FsPath) -> Vec<String> {
    let Ok(listing) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = listing
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

fn open(configs: Vec<TargetConfig>) -> Arc<Targets> {
    Arc::new(Targets::open(configs).expect("the targets open"))
}

#[test]
fn a_killed_s3_upload_is_aborted_by_the_next_put_file() {
    let setup = Setup::new();
    let targets = open(vec![setup.s3("offsite")]);
    drop(setup.begin_upload(&targets, "offsite", "data/killed.db/1"));
    assert!(
        setup
            .unfinished_on_server()
            .iter()
            .any(|n| n.starts_with(".upload_id-")),
        "the killed upload's part is on the server: {:?}",
        setup.unfinished_on_server()
    );
    assert_eq!(setup.journal_entries().len(), 1);

    setup.backup("next.db", 1000);
    setup
        .ctx(&targets)
        .put_file("offsite".into(), "data/next.db/2".into(), "next.db".into())
        .expect("the next upload succeeds");

    assert_eq!(setup.unfinished_on_server(), Vec::<String>::new());
    assert_eq!(setup.journal_entries(), Vec::<String>::new());
    let stored = setup
        .server_root
        .join(BUCKET)
        .join(PREFIX)
        .join("data/next.db/2");
    assert_eq!(std::fs::metadata(stored).expect("stored").len(), 1000);
}

#[test]
fn an_upload_whose_process_lives_is_left_alone() {
    let setup = Setup::new();
    let targets = open(vec![setup.s3("offsite")]);
    let live = setup.begin_upload(&targets, "offsite", "data/live.db/1");

    let swept = targets.sweep_abandoned_uploads(&setup.backups, "offsite");
    assert_eq!(swept.expect("swept"), 0);
    assert!(!setup.unfinished_on_server().is_empty());
    assert_eq!(setup.journal_entries().len(), 1);

    // Its process dies: now it is cleaned up.
    drop(live);
    let swept = targets.sweep_abandoned_uploads(&setup.backups, "offsite");
    assert_eq!(swept.expect("swept"), 1);
    assert_eq!(setup.unfinished_on_server(), Vec::<String>::new());
    assert_eq!(setup.journal_entries(), Vec::<String>::new());
}

#[test]
fn only_the_target_written_to_is_swept() {
    let setup = Setup::new();
    let targets = open(vec![setup.s3("offsite"), setup.s3("other")]);
    drop(setup.begin_upload(&targets, "other", "data/other.db/1"));

    setup.backup("next.db", 1000);
    setup
        .ctx(&targets)
        .put_file("offsite".into(), "data/next.db/2".into(), "next.db".into())
        .expect("uploaded");
    assert_eq!(setup.journal_entries().len(), 1, "the other target's entry");
    assert!(!setup.unfinished_on_server().is_empty());

    let swept = targets.sweep_abandoned_uploads(&setup.backups, "other");
    assert_eq!(swept.expect("swept"), 1);
    assert_eq!(setup.unfinished_on_server(), Vec::<String>::new());
}

#[test]
fn an_upload_the_server_no_longer_knows_is_kept_unless_it_says_not_found() {
    let setup = Setup::new();
    let targets = open(vec![setup.s3("offsite")]);
    let entry = setup.begin_upload(&targets, "offsite", "data/done.db/1");
    let found = targets.find("offsite").expect("the target");
    let Parts::S3 { bucket, .. } = &found.parts else {
        panic!("an S3 target");
    };
    let record = entry.record().clone();
    let path = Path::parse(&record.path).expect("a path");
    let id = record.upload_id.expect("an id");
    targets
        .block_on(bucket.abort_multipart(&path, &id))
        .expect("a runtime")
        .expect("aborted");
    // Killed after its abort, before its entry went.
    drop(entry);

    // S3 answers NoSuchUpload (404): done, the entry goes. s3s-fs answers an unknown upload
    // id with AccessDenied, which may as well be a credential problem: the entry stays for a
    // later try (and the log says so), never dropped on a doubt.
    let swept = targets.sweep_abandoned_uploads(&setup.backups, "offsite");
    assert_eq!(swept.expect("swept"), 0);
    assert_eq!(setup.journal_entries().len(), 1);
    assert_eq!(setup.unfinished_on_server(), Vec::<String>::new());
}

#[test]
fn an_upload_completed_before_its_process_died_is_dropped_from_the_journal() {
    let setup = Setup::new();
    let targets = open(vec![setup.s3("offsite")]);
    let entry = setup.begin_upload(&targets, "offsite", "data/done.db/1");
    let found = targets.find("offsite").expect("the target");
    let Parts::S3 { bucket, .. } = &found.parts else {
        panic!("an S3 target");
    };
    let record = entry.record().clone();
    let path = Path::parse(&record.path).expect("a path");
    let id = record.upload_id.expect("an id");
    let part = targets
        .block_on(bucket.put_part(&path, &id, 0, PutPayload::from(vec![1_u8; 100])))
        .expect("a runtime")
        .expect("the part is sent again");
    targets
        .block_on(bucket.complete_multipart(&path, &id, vec![part]))
        .expect("a runtime")
        .expect("completed");
    // Killed after the upload completed, before its entry went.
    drop(entry);

    let swept = targets.sweep_abandoned_uploads(&setup.backups, "offsite");
    assert_eq!(swept.expect("swept"), 1);
    assert_eq!(setup.journal_entries(), Vec::<String>::new());
    let stored = setup.server_root.join(BUCKET).join(&record.path);
    assert_eq!(std::fs::metadata(stored).expect("kept").len(), 100);
}

#[test]
fn a_multipart_put_file_to_s3_round_trips_and_leaves_no_entry() {
    let setup = Setup::new();
    let targets = open(vec![setup.s3("offsite")]);
    // Three parts and a bit: more than the two in flight.
    let source = setup.backup("big.db", 3 * upload::PART_BYTES + 12345);
    let upload = setup
        .ctx(&targets)
        .put_file("offsite".into(), "data/big.db/1".into(), "big.db".into())
        .expect("uploaded");
    assert_eq!(upload.length, source.len() as u64);

    let stored = setup
        .server_root
        .join(BUCKET)
        .join(PREFIX)
        .join("data/big.db/1");
    assert!(
        std::fs::read(stored).expect("stored") == source,
        "the object differs"
    );
    assert_eq!(setup.unfinished_on_server(), Vec::<String>::new());
    assert_eq!(setup.journal_entries(), Vec::<String>::new());
}

#[test]
fn a_killed_directory_upload_leaves_a_staging_file_the_next_put_file_removes() {
    let setup = Setup::new();
    let targets = open(vec![setup.directory()]);
    // What object_store's directory store leaves when its process dies mid-upload: the
    // object's staging file, `KEY#N`.
    let data = setup.remote_dir.join("data/killed.db");
    std::fs::create_dir_all(&data).expect("key directory");
    std::fs::write(data.join("1#1"), vec![7_u8; MIB]).expect("staging file");
    // Not staging files of that object: kept.
    std::fs::write(data.join("1#x"), b"kept").expect("a file");
    std::fs::write(data.join("2#1"), b"kept").expect("a file");
    let entry = Journal::of(&setup.backups)
        .record(Record {
            target: "offsite".into(),
            path: "data/killed.db/1".into(),
            upload_id: None,
        })
        .expect("recorded");
    drop(entry);

    setup.backup("next.db", 9 * MIB);
    setup
        .ctx(&targets)
        .put_file("offsite".into(), "data/next.db/2".into(), "next.db".into())
        .expect("uploaded");

    assert_eq!(names_in(&data), vec!["1#x", "2#1"]);
    assert_eq!(setup.journal_entries(), Vec::<String>::new());
    let stored = setup.remote_dir.join("data/next.db/2");
    assert_eq!(
        std::fs::metadata(stored).expect("stored").len(),
        9 * MIB as u64
    );
}

#[test]
fn the_guest_cannot_reach_the_journal() {
    let setup = Setup::new();
    let targets = open(vec![setup.s3("offsite")]);
    let _live = setup.begin_upload(&targets, "offsite", "data/live.db/1");
    let entry = setup.journal_entries().pop().expect("an entry");
    let mut store = StoreCtx::new(
        Arc::clone(&setup.backups),
        Budget::default(),
        crate::monitor::Monitor::new(Arc::clone(&setup.backups)),
    );

    let listed = store.list().expect("listed");
    assert!(
        !listed.iter().any(|n| n.starts_with(".lgb-uploads")),
        "{listed:?}"
    );
    for name in [".lgb-uploads".to_owned(), format!(".lgb-uploads/{entry}")] {
        assert!(store.read(name.clone()).is_err(), "read {name}");
        assert!(store.stat(name.clone()).is_err(), "stat {name}");
        assert!(store.remove(name.clone()).is_err(), "remove {name}");
        assert!(
            store.rename_noreplace(name.clone(), "x".into()).is_err(),
            "rename {name}"
        );
    }
    assert_eq!(setup.journal_entries(), vec![entry]);
}

#[test]
fn an_entry_its_process_never_finished_writing_is_removed_once_stale() {
    let setup = Setup::new();
    let targets = open(vec![setup.s3("offsite")]);
    let journal = setup.backups.path().join(".lgb-uploads");
    std::fs::create_dir(&journal).expect("journal");
    let (young, old) = (journal.join("1-0-1.upload"), journal.join("1-1-2.upload"));
    std::fs::write(&young, b"").expect("an empty entry");
    std::fs::write(&old, b"{\"target\":").expect("a torn entry");
    let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .and_then(|f| f.set_modified(long_ago))
        .expect("aged");

    let swept = targets.sweep_abandoned_uploads(&setup.backups, "offsite");
    assert_eq!(swept.expect("swept"), 0, "nothing to abort");
    assert_eq!(setup.journal_entries(), vec!["1-0-1.upload"]);
}

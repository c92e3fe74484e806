//! Shared helpers: a scratch deployment (database + backup directory), the compiled policy,
//! the CLI binary, and a picture of a directory tree to prove that nothing changed.

pub mod s3;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use litegraph_backup::snapshot::{DEFAULT_BUSY_TIMEOUT, LiveDatabase};
use litegraph_backup::store::BackupDir;
use litegraph_backup::{BackupFile, Capabilities, Limits, Policy, Runtime};
use litegraph_backup_tests::{create_litegraph_database, file_sha256};
use tempfile::TempDir;

/// The embedded policy, compiled once for the whole test binary.
pub fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY
        .get_or_init(|| Policy::embedded(Limits::default()).expect("the embedded policy compiles"))
}

/// A scratch deployment: `root/litegraph.db` and `root/backups/`, removed when dropped.
pub struct Deployment {
    pub root: TempDir,
    pub database: PathBuf,
    pub backups: PathBuf,
}

impl Deployment {
    /// A LiteGraph-like database with `nodes` nodes and an empty backup directory.
    pub fn with_nodes(nodes: u64) -> Deployment {
        let deployment = Deployment::without_database();
        create_litegraph_database(&deployment.database, nodes).expect("create the database");
        deployment
    }

    /// A backup directory and no database at all.
    pub fn without_database() -> Deployment {
        let root = tempfile::tempdir().expect("create a scratch directory");
        let database = root.path().join("litegraph.db");
        let backups = root.path().join("backups");
        std::fs::create_dir(&backups).expect("create the backup directory");
        Deployment {
            root,
            database,
            backups,
        }
    }

    /// The policy, lent this deployment's database and backup directory.
    pub fn runtime(&self) -> Runtime {
        let backups = BackupDir::open(&self.backups).expect("open the backup directory");
        let database = LiveDatabase::new(&self.database, DEFAULT_BUSY_TIMEOUT);
        Runtime::from_policy(policy(), Capabilities::new(database, backups))
    }

    pub fn backup(&self, name: &str) -> PathBuf {
        self.backups.join(name)
    }

    /// The CLI, pointed at this deployment. The compiled policy is kept in one cache that
    /// every test shares, under target/, not in the user's own cache directory.
    pub fn cli(&self) -> Command {
        let mut command = cli_command();
        command
            .arg("--database")
            .arg(&self.database)
            .arg("--backups")
            .arg(&self.backups)
            .env_remove("LITEGRAPH_DB")
            .env_remove("LITEGRAPH_BACKUPS")
            .current_dir(self.root.path());
        command
    }

    /// Runs the CLI with `args`.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cli().args(args).output().expect("run the CLI")
    }

    /// Every entry under the deployment's root, with each file's SHA-256.
    pub fn tree(&self) -> Tree {
        Tree::of(self.root.path())
    }

    /// The names of the backup directory's entries, internal ones included, but for the
    /// operation lock file that the first create or restore leaves there for good, and the
    /// host's status record (`.lgb-status*`), which every operation that ends updates.
    pub fn backup_dir_entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.backups)
            .expect("read the backup directory")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|name| name != ".lgb-operation.lock")
            .filter(|name| !name.starts_with(".lgb-status"))
            .collect();
        names.sort();
        names
    }
}

/// A picture of a directory tree: every path, and each regular file's SHA-256; but for the
/// host's status record (`.lgb-status*`), which a failed operation updates by design.
#[derive(Debug, PartialEq, Eq)]
pub struct Tree(BTreeMap<PathBuf, String>);

impl Tree {
    pub fn of(root: &Path) -> Tree {
        let mut entries = BTreeMap::new();
        let mut pending = vec![root.to_owned()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).expect("read a directory") {
                let path = entry.expect("entry").path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if name.starts_with(".lgb-status") {
                    continue;
                }
                let kind = std::fs::symlink_metadata(&path).expect("stat");
                let summary = if kind.is_dir() {
                    pending.push(path.clone());
                    "directory".to_owned()
                } else if kind.is_file() {
                    file_sha256(&path).expect("hash a file")
                } else {
                    "other".to_owned()
                };
                entries.insert(path, summary);
            }
        }
        Tree(entries)
    }
}

/// The compile cache the tests' CLI runs share: one compile of the policy for the whole
/// suite instead of one per run (runs at once are safe: wasmtime writes an entry under a
/// temporary name and renames it).
/// The CLI binary, keeping its compiled policy in the tests' shared cache under `target/`,
/// never in the user's.
pub fn cli_command() -> Command {
    let mut command = Command::new(cli_binary());
    command
        .env_remove("LITEGRAPH_NO_COMPILE_CACHE")
        .env("LITEGRAPH_COMPILE_CACHE", shared_compile_cache());
    command
}

pub fn shared_compile_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("compile-cache")
}

/// The `litegraph-backup` binary of this build. Cargo only builds a package's binaries for
/// that package's own integration tests, so this crate asks cargo for it (a no-op when it
/// is up to date), once per test process.
pub fn cli_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("tests/ sits in the workspace root");
        let mut build = Command::new(env!("CARGO"));
        build
            .args([
                "build",
                "--quiet",
                "-p",
                "litegraph-backup",
                "--bin",
                "litegraph-backup",
            ])
            .current_dir(workspace);
        if !cfg!(debug_assertions) {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "building the CLI failed");
        let test_binary = std::env::current_exe().expect("the test binary's path");
        let profile_dir = test_binary
            .parent()
            .and_then(Path::parent)
            .expect("tests run from <target>/<profile>/deps");
        let binary = profile_dir.join(format!("litegraph-backup{}", std::env::consts::EXE_SUFFIX));
        assert!(binary.is_file(), "no CLI at {}", binary.display());
        binary
    })
}

/// The text a process wrote to stdout.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The text a process wrote to stderr.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs an external checksum tool (`sha256sum`, `md5sum`, `sha1sum`) on a file: digests
/// computed by something other than our own code.
pub fn checksum_tool(tool: &str, path: &Path) -> String {
    let output = Command::new(tool)
        .arg(path)
        .output()
        .expect("run a checksum tool");
    assert!(output.status.success());
    stdout(&output)
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_uppercase()
}

/// A backup's metadata without its last-access time, which any read of the file (ours or a
/// checksum tool's) may move.
pub fn ignoring_access(backup: &BackupFile) -> BackupFile {
    BackupFile {
        last_access_utc: backup.created_utc,
        ..backup.clone()
    }
}

/// The eight non-`Data` BackupFile properties, in LiteGraph's order. The Python SDK's model
/// requires all eight in every object.
pub const BACKUP_FILE_PROPERTIES: [&str; 8] = [
    "Filename",
    "Length",
    "MD5Hash",
    "SHA1Hash",
    "SHA256Hash",
    "CreatedUtc",
    "LastUpdateUtc",
    "LastAccessUtc",
];

/// Checks one BackupFile object: the eight properties with LiteGraph's JSON types and
/// formats, nothing else but an optional `Data`; and, in `raw` (the JSON text it was parsed
/// from, whose first object it is), LiteGraph's property order with `Data` last.
pub fn assert_backup_file(object: &serde_json::Value, raw: &str) {
    let map = object.as_object().expect("an object");
    for property in BACKUP_FILE_PROPERTIES {
        assert!(
            map.contains_key(property),
            "{property} missing from {object}"
        );
    }
    for key in map.keys() {
        assert!(
            BACKUP_FILE_PROPERTIES.contains(&key.as_str()) || key == "Data",
            "unexpected {key} in {object}"
        );
    }
    let order = BACKUP_FILE_PROPERTIES
        .iter()
        .chain(map.contains_key("Data").then_some(&"Data"));
    let positions: Vec<usize> = order
        .map(|p| raw.find(&format!("\"{p}\":")).expect("present in the text"))
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "LiteGraph's property order: {raw:.300}"
    );
    assert!(map["Filename"].is_string());
    assert!(map["Length"].is_u64());
    for (key, digits) in [("MD5Hash", 32), ("SHA1Hash", 40), ("SHA256Hash", 64)] {
        let hex = map[key].as_str().expect("a string");
        assert_eq!(hex.len(), digits, "{key}");
        assert!(
            hex.chars()
                .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)),
            "{key}: {hex}"
        );
    }
    for key in ["CreatedUtc", "LastUpdateUtc", "LastAccessUtc"] {
        let date = map[key].as_str().expect("a string");
        let shape: String = date
            .chars()
            .map(|c| if c.is_ascii_digit() { 'd' } else { c })
            .collect();
        assert_eq!(shape, "dddd-dd-ddTdd:dd:dd.ddddddZ", "{key}: {date}");
    }
}

/// Decodes a BackupFile's `Data` (standard base64) and checks it against its `SHA256Hash`;
/// returns the bytes.
pub fn decoded_data(object: &serde_json::Value) -> Vec<u8> {
    use base64::Engine as _;
    use sha2::Digest as _;
    let data = base64::engine::general_purpose::STANDARD
        .decode(object["Data"].as_str().expect("a Data string"))
        .expect("standard base64");
    assert_eq!(
        litegraph_backup_tests::upper_hex(&sha2::Sha256::digest(&data)),
        object["SHA256Hash"].as_str().expect("a SHA256Hash"),
        "Data is the file the digests describe"
    );
    data
}

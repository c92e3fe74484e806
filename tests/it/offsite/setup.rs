//! A deployment with one remote target, `offsite`, on a loopback S3 server: the `--config`
//! file's `[[remote]]` table, the age keys, and the CLI run against both.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::support::s3::{S3Server, age_keygen};
use crate::support::{Deployment, stderr, stdout};

/// What the target does to a backup's bytes on the way out.
#[derive(Debug, Clone, Copy)]
pub enum Encoding {
    /// The bytes as they are: only our digests stand between a change and a pull.
    Plain,
    /// Encrypted only: no compression to shrink the upload (a slow, many-part upload).
    Age,
    /// The operator's usual choice: zstd, then age.
    ZstdAge,
}

/// The target's name in every config this fixture writes.
pub const TARGET: &str = "offsite";
/// Every object of the target sits under this prefix of the bucket.
pub const PREFIX: &str = "lg";

pub struct Offsite {
    pub deployment: Deployment,
    pub server: S3Server,
    /// Outside the deployment: the operator's keys survive the disaster drill.
    keys: TempDir,
    pub identity: PathBuf,
    pub recipient: String,
    pub config: PathBuf,
    encoding: Encoding,
}

impl Offsite {
    pub fn new(deployment: Deployment, encoding: Encoding) -> Offsite {
        let server = S3Server::start();
        let keys = tempfile::tempdir().expect("a directory for the keys");
        let (identity, recipient) = age_keygen(keys.path());
        let mut offsite = Offsite {
            deployment,
            server,
            keys,
            identity,
            recipient,
            config: PathBuf::new(),
            encoding,
        };
        let secret = offsite.server.secret_key();
        offsite.config = offsite.write_config("backup.toml", secret, &offsite.identity.clone());
        offsite
    }

    /// The CLI with this deployment's settings and `config`; nothing from the environment
    /// (no `AWS_*`, no `LITEGRAPH_*`) but what a test sets.
    pub fn cli_with(&self, config: &Path) -> Command {
        let mut command = self.deployment.cli();
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("AWS_") || name.starts_with("LITEGRAPH_") {
                command.env_remove(name.as_ref());
            }
        }
        command.arg("--config").arg(config);
        command
    }

    pub fn run_with(&self, config: &Path, args: &[&str]) -> Output {
        self.cli_with(config)
            .args(args)
            .output()
            .expect("run the CLI")
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with(&self.config, args)
    }

    /// Runs the CLI and requires success.
    pub fn ok(&self, args: &[&str]) -> Output {
        let output = self.run(args);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}\nstdout: {}\nstderr: {}",
            stdout(&output),
            stderr(&output)
        );
        output
    }

    /// Starts the CLI without waiting for it; its stderr goes to `log` (a file, not a pipe
    /// nobody reads while it runs).
    pub fn spawn(&self, args: &[&str], log: &Path) -> Child {
        let log = std::fs::File::create(log).expect("create the CLI's log");
        self.cli_with(&self.config)
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the CLI")
    }

    /// A scratch path outside the deployment, for logs and downloads.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.keys.path().join(name)
    }

    /// The key of the one data object `name`'s pushes left on the target.
    pub fn data_key(&self, name: &str) -> String {
        let prefix = format!("{PREFIX}/data/{name}/");
        let objects = self.server.objects();
        let data: Vec<&str> = objects
            .iter()
            .map(|(key, _)| key.as_str())
            .filter(|key| key.starts_with(&prefix))
            .collect();
        assert_eq!(data.len(), 1, "one data object for {name}: {objects:?}");
        data[0].to_owned()
    }

    /// The one data object and the one manifest that pushing `name` leaves on the target.
    pub fn stored_keys(&self, name: &str) -> (String, String) {
        let objects = self.server.objects();
        let keys: Vec<&str> = objects.iter().map(|(key, _)| key.as_str()).collect();
        let manifest = format!("{PREFIX}/manifests/{name}.manifest");
        let data_prefix = format!("{PREFIX}/data/{name}/");
        let data: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|key| key.starts_with(&data_prefix))
            .collect();
        assert_eq!(keys.len(), 2, "one data object and one manifest: {keys:?}");
        assert!(keys.contains(&manifest.as_str()), "{keys:?}");
        assert_eq!(data.len(), 1, "{keys:?}");
        (data[0].to_owned(), manifest)
    }

    /// The same target with a wrong secret key.
    pub fn config_with_secret(&self, secret: &str) -> PathBuf {
        self.write_config("wrong-secret.toml", secret, &self.identity)
    }

    /// The same target, decrypting with an identity that is not the recipient's.
    pub fn config_with_other_identity(&self) -> PathBuf {
        let (stranger, _) = age_keygen(self.keys.path());
        self.write_config("other-identity.toml", self.server.secret_key(), &stranger)
    }

    fn write_config(&self, file_name: &str, secret: &str, identity: &Path) -> PathBuf {
        let compression = match self.encoding {
            Encoding::Plain | Encoding::Age => "none",
            Encoding::ZstdAge => "zstd",
        };
        let mut table = format!(
            "[[remote]]\n\
             name = \"{TARGET}\"\n\
             url = \"s3://{bucket}/{PREFIX}\"\n\
             endpoint = \"{endpoint}\"\n\
             region = \"us-east-1\"\n\
             access_key_id = \"{access}\"\n\
             secret_access_key = \"{secret}\"\n\
             compression = \"{compression}\"\n",
            bucket = self.server.bucket(),
            endpoint = self.server.endpoint(),
            access = self.server.access_key(),
        );
        if !matches!(self.encoding, Encoding::Plain) {
            table.push_str(&format!(
                "age_recipients = [\"{}\"]\nage_identity_file = \"{}\"\n",
                self.recipient,
                identity.display()
            ));
        }
        let path = self.keys.path().join(file_name);
        std::fs::write(&path, table).expect("write the config file");
        // It holds a secret key: readable by its owner only, as the CLI asks.
        let owner_only = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(&path, owner_only).expect("chmod 600 the config file");
        path
    }
}

/// Fails if `path` holds SQLite's header string anywhere: a stored object must be
/// ciphertext throughout, not only at its start.
pub fn assert_no_plaintext(path: &Path) {
    const HEADER: &[u8] = b"SQLite format 3";
    let bytes = std::fs::read(path).expect("read the stored object");
    // The first byte, then the rest: fewer comparisons in the unoptimised test build.
    let found = bytes
        .iter()
        .enumerate()
        .filter(|(_, byte)| **byte == HEADER[0])
        .any(|(at, _)| bytes[at..].starts_with(HEADER));
    assert!(!found, "{} holds plaintext SQLite", path.display());
}

/// Polls `condition` until it holds or `limit` passes; returns whether it held.
pub fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    condition()
}

//! A real S3 protocol server on loopback (the `s3-test-server` binary of this crate: `s3s-fs`
//! behind `s3s`'s signature checks), and the standard `age` and `zstd` tools that read what
//! our host wrote without our code.
//!
//! What `s3s-fs` keeps under its root, for tests that look at the disk:
//! - `BUCKET/KEY`: a stored object, byte for byte (keys with `/` make subdirectories);
//! - `.bucket-B64.object-B64.internal.json` (the ETag, checksums) and `.metadata.json` (user
//!   metadata): an object's sidecars, beside the buckets at the root;
//! - `.upload-UUID.json`: a multipart upload begun and neither completed nor aborted;
//! - `.upload_id-UUID.part-N`: a part received for that upload (removed as the completed
//!   object is assembled);
//! - `.bucket-B64.object-B64.upload-UUID.metadata.json`: that upload's metadata;
//! - `.tmp.N.internal.part`: a body being received (a single PUT, a part, or the object being
//!   assembled); renamed into place when complete, removed when the server next starts.
//!
//! `s3s-fs` 0.14.1 does not implement ListMultipartUploads, so a client cannot discover the
//! parts a killed upload left behind: only the upload id it kept can abort them.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use litegraph_backup_tests::file_sha256;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::{BackoffConfig, RetryConfig};
use tempfile::TempDir;

use super::stderr;

const BUCKET: &str = "offsite";
/// Fixed, so a failure can be replayed by hand; each server has its own anyway.
const ACCESS_KEY: &str = "LGBTESTACCESSKEY0001";
const SECRET_KEY: &str = "lgb-test-secret-4f1c9e0a7b2d4c6e8f";

/// A running `s3-test-server` with one bucket, on its own scratch root; killed when dropped.
pub struct S3Server {
    scratch: TempDir,
    child: Option<(Child, ChildStdin)>,
    port: u16,
}

impl S3Server {
    /// A fresh server: an empty bucket, a port the system picked.
    pub fn start() -> S3Server {
        let scratch = tempfile::tempdir().expect("create the server's scratch directory");
        std::fs::create_dir(scratch.path().join("root")).expect("create the server's root");
        let mut server = S3Server {
            scratch,
            child: None,
            port: 0,
        };
        server.spawn(0);
        server
    }

    /// The endpoint URL (path style, plain HTTP on 127.0.0.1).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn bucket(&self) -> &'static str {
        BUCKET
    }

    pub fn access_key(&self) -> &'static str {
        ACCESS_KEY
    }

    pub fn secret_key(&self) -> &'static str {
        SECRET_KEY
    }

    /// The directory the server stores everything under.
    pub fn root(&self) -> PathBuf {
        self.scratch.path().join("root")
    }

    /// Where the server keeps the bytes of the object at `key`.
    pub fn object_path(&self, key: &str) -> PathBuf {
        self.root().join(BUCKET).join(key)
    }

    /// SIGKILL: no clean-up of any kind, as when a machine or a process dies.
    pub fn kill(&mut self) {
        if let Some((mut child, _stdin)) = self.child.take() {
            child.kill().expect("kill the S3 server");
            child.wait().expect("reap the S3 server");
        }
    }

    /// A new server process on the same root and port (what survived on its disk survives);
    /// the previous one is killed first if it still runs.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn(self.port);
    }

    /// Every stored object of the bucket, as (key, size), sorted by key.
    pub fn objects(&self) -> Vec<(String, u64)> {
        let bucket = self.root().join(BUCKET);
        let mut objects = Vec::new();
        let mut pending = vec![bucket.clone()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).expect("read the bucket") {
                let entry = entry.expect("a bucket entry");
                let kind = entry.file_type().expect("stat a bucket entry");
                if kind.is_dir() {
                    pending.push(entry.path());
                    continue;
                }
                let path = entry.path();
                let key = path.strip_prefix(&bucket).expect("under the bucket");
                let key = key
                    .to_string_lossy()
                    .replace(std::path::MAIN_SEPARATOR, "/");
                let size = entry.metadata().expect("stat an object").len();
                objects.push((key, size));
            }
        }
        objects.sort();
        objects
    }

    /// Every stored object's SHA-256 by key: equal maps, nothing stored was touched.
    pub fn stored_digests(&self) -> BTreeMap<String, String> {
        self.objects()
            .into_iter()
            .map(|(key, _)| {
                let digest = file_sha256(&self.object_path(&key)).expect("hash an object");
                (key, digest)
            })
            .collect()
    }

    /// The server's files for uploads under way: multipart uploads begun (`.upload-*`),
    /// their parts (`.upload_id-*`), and bodies being received (`.tmp.*`). Sorted.
    pub fn uploads_in_progress(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.root())
            .expect("read the server's root")
            .map(|entry| {
                let entry = entry.expect("a root entry");
                entry.file_name().to_string_lossy().into_owned()
            })
            .filter(|name| {
                // `.upload-*`, `.upload_id-*`, and an upload's `.bucket-*.upload-*` metadata.
                name.contains(".upload")
                    || (name.starts_with(".tmp.") && name.ends_with(".internal.part"))
            })
            .collect();
        names.sort();
        names
    }

    /// An `object_store` client for this server with its own credentials.
    pub fn client(&self) -> Arc<dyn ObjectStore> {
        self.client_with(ACCESS_KEY, SECRET_KEY)
    }

    /// A client with the given credentials, which fails fast (no retries): the tests look at
    /// the first answer.
    pub fn client_with(&self, access_key: &str, secret_key: &str) -> Arc<dyn ObjectStore> {
        let no_retries = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 0,
            retry_timeout: Duration::from_secs(5),
        };
        let store = AmazonS3Builder::new()
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_bucket_name(BUCKET)
            .with_access_key_id(access_key)
            .with_secret_access_key(secret_key)
            .with_retry(no_retries)
            .build()
            .expect("an S3 client for the loopback server");
        Arc::new(store)
    }

    /// The server's own log (its stderr), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.scratch.path().join("server.log")).unwrap_or_default()
    }

    /// Starts the binary on `port` (0: any) and reads the port from its first line; the
    /// bucket directory is created by the server before it listens.
    fn spawn(&mut self, port: u16) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.scratch.path().join("server.log"))
            .expect("open the server's log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_s3-test-server"))
            .arg("--root")
            .arg(self.root())
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .args(["--bucket", BUCKET, "--port", &port.to_string()])
            .arg("--stop-on-stdin-eof")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start s3-test-server");
        let stdin = child.stdin.take().expect("the server's stdin");
        let stdout = child.stdout.take().expect("the server's stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the server's first line");
        self.child = Some((child, stdin));
        let announced = line
            .trim()
            .strip_prefix("listening http://127.0.0.1:")
            .and_then(|port| port.parse().ok());
        match announced {
            Some(port) => self.port = port,
            None => panic!("s3-test-server said {line:?}; log: {}", self.log()),
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some((mut child, _stdin)) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A new age X25519 identity from `age-keygen`: the identity file (in `dir`) and its
/// recipient `age1...`.
pub fn age_keygen(dir: &Path) -> (PathBuf, String) {
    let identity = dir.join(format!("age-identity-{}.txt", unique()));
    let generated = tool("age-keygen", |c| c.arg("-o").arg(&identity));
    assert!(generated.status.success(), "{}", stderr(&generated));
    let public = tool("age-keygen", |c| c.arg("-y").arg(&identity));
    assert!(public.status.success(), "{}", stderr(&public));
    let recipient = String::from_utf8_lossy(&public.stdout).trim().to_owned();
    assert!(recipient.starts_with("age1"), "{recipient}");
    (identity, recipient)
}

/// `age -d -i IDENTITY -o OUTPUT INPUT`: the tool's whole output, success or not.
pub fn age_decrypt(identity: &Path, input: &Path, output: &Path) -> Output {
    tool("age", |c| {
        c.arg("-d")
            .arg("-i")
            .arg(identity)
            .arg("-o")
            .arg(output)
            .arg(input)
    })
}

/// `zstd -d -q -f INPUT -o OUTPUT`: the tool's whole output, success or not.
pub fn zstd_decompress(input: &Path, output: &Path) -> Output {
    tool("zstd", |c| {
        c.args(["-d", "-q", "-f"]).arg(input).arg("-o").arg(output)
    })
}

fn tool(name: &str, arguments: impl FnOnce(&mut Command) -> &mut Command) -> Output {
    install_standard_tools();
    let mut command = Command::new(name);
    arguments(&mut command);
    command
        .output()
        .unwrap_or_else(|e| panic!("run {name} (Debian packages age, zstd): {e}"))
}

/// The standard `age` and `zstd` tools, which prove our objects are standard: installed from
/// Debian's packages the first time a test needs them, so that `cargo test` is all a fresh
/// machine needs (as root, with apt; elsewhere the panic says what to install).
fn install_standard_tools() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let missing: Vec<&str> = ["age", "zstd"]
            .into_iter()
            .filter(|tool| {
                Command::new(tool)
                    .arg("--version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_err()
            })
            .collect();
        if missing.is_empty() {
            return;
        }
        let install = |update: bool| {
            let mut command = Command::new("apt-get");
            match update {
                true => command.arg("update"),
                false => command
                    .args(["install", "-y", "--no-install-recommends"])
                    .args(&missing),
            };
            command
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        };
        // The package lists of a fresh machine may be empty: update once if needed.
        let installed = install(false) || (install(true) && install(false));
        if !installed {
            panic!(
                "the offsite tests need the standard tools {missing:?} (Debian packages age, \
                 zstd) and could not install them: run `apt-get install age zstd` as root"
            );
        }
    });
}

/// A number no other call in this process returns.
fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

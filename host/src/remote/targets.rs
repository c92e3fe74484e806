//! The targets, opened and checked at start-up: one object store each, the age keys parsed,
//! and the small tokio runtime that drives object_store's async calls from the guest's
//! synchronous imports.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use super::config::{Location, S3Credentials, TargetConfig};

/// How long one request may take before it is retried, and how long retries go on.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RETRY_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_RETRIES: usize = 4;

/// One opened target.
pub(crate) struct Target {
    pub(crate) config: TargetConfig,
    pub(crate) store: Arc<dyn ObjectStore>,
    /// The same store below the object_store trait, for multipart uploads and the journal.
    pub(crate) parts: Parts,
    pub(crate) recipients: Vec<age::x25519::Recipient>,
    pub(crate) identities: Vec<Box<dyn age::Identity + Send + Sync>>,
    /// How messages name it: `remote target offsite (http://127.0.0.1:9000)`.
    pub(crate) shown: String,
}

/// What a multipart upload goes through, below the `ObjectStore` trait object: cleaning up
/// after a process killed mid-upload needs the upload's id (S3) or the store's own staging
/// files (a directory), which the trait keeps to itself.
#[derive(Clone)]
pub(crate) enum Parts {
    /// The bucket itself, and the target's prefix applied by hand: the journal records
    /// full object paths, so a prefix changed since still finds the upload.
    S3 {
        bucket: Arc<AmazonS3>,
        prefix: Path,
    },
    Directory(Arc<LocalFileSystem>),
}

impl Parts {
    /// Where `path` (relative to the target's root) is on the store below.
    pub(crate) fn full_path(&self, path: &Path) -> Path {
        match self {
            Parts::S3 { prefix, .. } => prefix.parts().chain(path.parts()).collect(),
            Parts::Directory(_) => path.clone(),
        }
    }
}

/// The targets the operator configured, opened and checked at start-up.
pub struct Targets {
    targets: Vec<Target>,
    /// Drives object_store's futures; `None` when there are no targets. Shut down in the
    /// background on drop: dropping a runtime inside another's async context would panic.
    runtime: Option<tokio::runtime::Runtime>,
}

impl fmt::Debug for Targets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.describe()).finish()
    }
}

impl Default for Targets {
    fn default() -> Targets {
        Targets::none()
    }
}

impl Drop for Targets {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Targets {
    /// No targets at all: every remote call is refused.
    pub fn none() -> Targets {
        Targets {
            targets: Vec::new(),
            runtime: None,
        }
    }

    /// Opens every target, refusing at start-up what would fail later: a duplicate name, an
    /// empty bucket, a missing directory, a recipient or identity file that does not parse.
    /// Encryption that is configured but unusable is an error here, never plaintext later.
    pub fn open(configs: Vec<TargetConfig>) -> anyhow::Result<Targets> {
        let mut names = HashSet::new();
        let mut targets = Vec::with_capacity(configs.len());
        for config in configs {
            if !names.insert(config.name.clone()) {
                bail!("remote target {:?} is configured twice", config.name);
            }
            targets.push(open_target(config)?);
        }
        let runtime = if targets.is_empty() {
            None
        } else {
            Some(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("lgb-remote")
                    .enable_all()
                    .build()
                    .context("cannot start the remote targets' I/O threads")?,
            )
        };
        Ok(Targets { targets, runtime })
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    pub fn names(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.config.name.clone()).collect()
    }

    /// One line per target, no secrets: for `config` and the logs.
    pub fn describe(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.config.describe()).collect()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Target> {
        self.targets.iter()
    }

    pub(crate) fn find(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.config.name == name)
    }

    /// Runs an object_store future to completion from a synchronous caller (a plain thread
    /// or a `spawn_blocking` one, never an async task).
    pub(crate) fn block_on<F: Future>(&self, future: F) -> Option<F::Output> {
        self.runtime
            .as_ref()
            .map(|runtime| runtime.block_on(future))
    }

    /// The runtime's handle, for tasks spawned beside a blocking call.
    pub(crate) fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.runtime.as_ref().map(tokio::runtime::Runtime::handle)
    }
}

fn open_target(config: TargetConfig) -> anyhow::Result<Target> {
    let name = &config.name;
    if name.is_empty() || name.chars().any(char::is_control) {
        bail!("remote target name {name:?}: empty or has control characters");
    }
    if let Some(level) = config.zstd_level
        && !(1..=19).contains(&level)
    {
        bail!("remote target {name}: zstd level {level} is not in 1..=19");
    }
    let recipients = config
        .recipients
        .iter()
        .map(|r| {
            if looks_like_a_secret_key(r) {
                // Never echoed: the value is a private key, pasted in the wrong place.
                bail!(
                    "remote target {name}: a recipient is an age SECRET key (AGE-SECRET-KEY-...), \
                     not a recipient: give its public key instead (`age-keygen -y KEYFILE`); \
                     the value is not shown"
                );
            }
            age::x25519::Recipient::from_str(r).map_err(|why| {
                anyhow::anyhow!("remote target {name}: recipient {r:?} is not an age X25519 recipient (age1...): {why}")
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let identities = read_identities(&config)?;
    let (store, parts, shown) = match &config.location {
        Location::Directory(path) => {
            if !path.is_dir() {
                bail!(
                    "remote target {name}: directory {} does not exist (create it first)",
                    path.display()
                );
            }
            let store = LocalFileSystem::new_with_prefix(path)
                .with_context(|| format!("remote target {name}: directory {}", path.display()))?
                .with_fsync(true);
            let store = Arc::new(store);
            let shown = format!("remote target {name} ({})", path.display());
            let parts = Parts::Directory(Arc::clone(&store));
            (store as Arc<dyn ObjectStore>, parts, shown)
        }
        Location::S3 {
            bucket,
            prefix,
            endpoint,
            region,
            allow_http,
            credentials,
        } => {
            if bucket.is_empty() {
                bail!("remote target {name}: the bucket name is empty");
            }
            let s3 = s3_store(
                name,
                bucket,
                endpoint.as_deref(),
                region.as_deref(),
                *allow_http,
                credentials.as_ref(),
            )?;
            let prefix = prefix.trim_matches('/');
            let parts = Parts::S3 {
                bucket: Arc::new(s3.clone()),
                prefix: Path::from(prefix),
            };
            let store: Arc<dyn ObjectStore> = match prefix {
                "" => Arc::new(s3),
                prefix => Arc::new(PrefixStore::new(s3, prefix)),
            };
            let place = endpoint.clone().unwrap_or_else(|| "AWS S3".to_owned());
            let shown = format!("remote target {name} ({place}, bucket {bucket})");
            (store, parts, shown)
        }
    };
    Ok(Target {
        config,
        store,
        parts,
        recipients,
        identities,
        shown,
    })
}

/// Reads the identity files; one that cannot be read or holds no identity is an error now.
fn read_identities(
    config: &TargetConfig,
) -> anyhow::Result<Vec<Box<dyn age::Identity + Send + Sync>>> {
    let mut identities = Vec::new();
    for path in &config.identity_files {
        let shown = path.display();
        let name = &config.name;
        let file = std::fs::File::open(path)
            .with_context(|| format!("remote target {name}: cannot read identity file {shown}"))?;
        let parsed = age::IdentityFile::from_buffer(std::io::BufReader::new(file))
            .map_err(|_| {
                // The parser's message may quote the file's lines: secret keys.
                anyhow::anyhow!("remote target {name}: identity file {shown} holds no age identities (age-keygen writes one)")
            })?
            .into_identities()
            .map_err(|_| {
                anyhow::anyhow!("remote target {name}: identity file {shown} has an unusable identity")
            })?;
        if parsed.is_empty() {
            bail!("remote target {name}: identity file {shown} holds no identity");
        }
        identities.extend(parsed);
    }
    Ok(identities)
}

fn s3_store(
    name: &str,
    bucket: &str,
    endpoint: Option<&str>,
    region: Option<&str>,
    allow_http: bool,
    credentials: Option<&S3Credentials>,
) -> anyhow::Result<object_store::aws::AmazonS3> {
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: MAX_RETRIES,
        retry_timeout: RETRY_TIMEOUT,
    };
    let client = ClientOptions::new()
        .with_allow_http(allow_http)
        .with_timeout(REQUEST_TIMEOUT)
        .with_connect_timeout(CONNECT_TIMEOUT);
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(region.unwrap_or("us-east-1"))
        .with_allow_http(allow_http)
        .with_retry(retry)
        .with_client_options(client);
    if let Some(endpoint) = endpoint {
        // MinIO, Garage, test servers: path-style addressing, the bucket in the path.
        builder = builder
            .with_endpoint(endpoint)
            .with_virtual_hosted_style_request(false);
    }
    builder = match credentials {
        Some(c) => {
            let builder = builder
                .with_access_key_id(&c.access_key_id)
                .with_secret_access_key(c.secret_access_key.expose());
            match &c.session_token {
                Some(token) => builder.with_token(token.expose()),
                None => builder,
            }
        }
        // Unsigned requests: without this, object_store would go looking for credentials
        // in the instance metadata service.
        None => builder.with_skip_signature(true),
    };
    builder
        .build()
        .map_err(|e| anyhow::anyhow!("remote target {name}: {e}"))
}

/// Whether `text` is an age identity (a private key) rather than a recipient.
pub(crate) fn looks_like_a_secret_key(text: &str) -> bool {
    text.trim()
        .get(..15)
        .is_some_and(|start| start.eq_ignore_ascii_case("AGE-SECRET-KEY-"))
}

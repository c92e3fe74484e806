//! Remote targets in the settings: the `[[remote]]` tables of the `--config` file, or one
//! target named `default` from `--remote` and its flags (which then replace the tables: a
//! flag wins over the file, here as everywhere). S3 credentials come from the table, else
//! from the standard `AWS_*` variables, which also fill in a region or endpoint the table
//! leaves out. Secrets go into [`Secret`]s at once and are reported as `<set>`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::layers::{Layers, Report};
use super::{ConfigError, Source};
use crate::remote::{Location, S3Credentials, Secret, TargetConfig};

/// The name of the one target `--remote` makes.
pub const FLAG_TARGET: &str = "default";
/// zstd's level when `compression = "zstd"` names none: fast, and most of the gain on
/// SQLite pages.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// The environment variables read here, and only here.
const ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
const SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
const SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
const REGIONS: [&str; 2] = ["AWS_REGION", "AWS_DEFAULT_REGION"];
const ENDPOINT: &str = "AWS_ENDPOINT_URL";

/// A `[[remote]]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRemote {
    name: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    endpoint: Option<Spanned<String>>,
    region: Option<Spanned<String>>,
    allow_http: Option<bool>,
    compression: Option<Spanned<String>>,
    zstd_level: Option<Spanned<i64>>,
    age_recipients: Option<Spanned<Vec<Spanned<String>>>>,
    age_recipients_file: Option<Spanned<String>>,
    age_identity_file: Option<Spanned<String>>,
    access_key_id: Option<Spanned<String>>,
    secret_access_key: Option<Spanned<String>>,
    session_token: Option<Spanned<String>>,
}

/// One target as the file or the flags describe it, before the environment fills it in.
#[derive(Debug, Clone)]
pub struct RemoteDraft {
    pub name: String,
    pub url: RemoteUrl,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub allow_http: Option<bool>,
    pub zstd_level: Option<i32>,
    pub recipients: Vec<String>,
    pub identity_file: Option<PathBuf>,
    /// Credentials written in the file (both keys, or neither).
    pub credentials: Option<S3Credentials>,
    pub source: Source,
}

/// Where a target's objects go, as its `url` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteUrl {
    S3 { bucket: String, prefix: String },
    Directory(PathBuf),
}

/// Reads a target's `url`: `s3://bucket/prefix`, `file:///path`, or a directory path
/// (relative to `base`).
pub fn parse_url(text: &str, base: &Path) -> Result<RemoteUrl, String> {
    if let Some(rest) = text.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err("no bucket: write s3://BUCKET or s3://BUCKET/PREFIX".to_owned());
        }
        return Ok(RemoteUrl::S3 {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        });
    }
    if let Some(path) = text.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err("a file:// URL takes an absolute path: file:///srv/offsite".to_owned());
        }
        return Ok(RemoteUrl::Directory(PathBuf::from(path)));
    }
    if text.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if let Some((scheme, _)) = text.split_once("://") {
        return Err(format!(
            "{scheme}:// is not a kind of target: write s3://BUCKET/PREFIX, file:///DIR or a \
             directory path"
        ));
    }
    Ok(RemoteUrl::Directory(base.join(text)))
}

/// A target's name: it shows in messages, keys of `config` and `--target`.
fn check_name(name: &str) -> Result<String, String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.len() > 64 || !name.chars().all(allowed) {
        return Err("write 1 to 64 letters, digits, '-', '_' or '.'".to_owned());
    }
    Ok(name.to_owned())
}

fn compression(text: &str) -> Result<bool, String> {
    match text {
        "zstd" => Ok(true),
        "none" => Ok(false),
        _ => Err("write \"zstd\" or \"none\"".to_owned()),
    }
}

fn zstd_level(level: &i64) -> Result<i32, String> {
    match i32::try_from(*level) {
        Ok(level) if (1..=19).contains(&level) => Ok(level),
        _ => Err("must be 1 to 19".to_owned()),
    }
}

/// An age recipient, checked for its form only (`Targets::open` parses it): a typo is named
/// with its line here.
pub fn parse_recipient(text: &str) -> Result<String, String> {
    let text = text.trim();
    if !text.starts_with("age1") {
        return Err(format!(
            "{text:?} is not an age X25519 recipient (age1...; see age-keygen -y)"
        ));
    }
    Ok(text.to_owned())
}

/// The recipients of an age recipients file: one a line, `#` comments and blank lines
/// skipped, as `age -R` reads it.
fn read_recipients_file(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let recipients: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(parse_recipient)
        .collect::<Result<_, _>>()
        .map_err(|why| format!("{}: {why}", path.display()))?;
    if recipients.is_empty() {
        return Err(format!("{} holds no recipient", path.display()));
    }
    Ok(recipients)
}

/// Checks the `[[remote]]` tables of the file at `path`.
pub(super) struct RemoteChecker<'a> {
    pub(super) file: &'a super::file::Checker<'a>,
}

impl RemoteChecker<'_> {
    pub(super) fn check(
        &self,
        raw: Vec<Spanned<RawRemote>>,
    ) -> Result<Vec<RemoteDraft>, ConfigError> {
        raw.into_iter().map(|table| self.table(table)).collect()
    }

    fn table(&self, table: Spanned<RawRemote>) -> Result<RemoteDraft, ConfigError> {
        let span = table.span();
        let raw = table.into_inner();
        let file = self.file;
        let missing = |key: &str| file.refuse(span.clone(), &format!("a [[remote]] needs `{key}`"));
        let name = file
            .value(raw.name, |n| check_name(n))?
            .ok_or_else(|| missing("name"))?;
        let url = file
            .value(raw.url, |u| parse_url(u, file.directory()))?
            .ok_or_else(|| missing("url"))?;
        let compress = file.value(raw.compression, |c| compression(c))?;
        let level = file.value(raw.zstd_level, zstd_level)?;
        let zstd_level = match (compress, level) {
            (Some(false), _) => None,
            (Some(true), level) => Some(level.unwrap_or(DEFAULT_ZSTD_LEVEL)),
            (None, level) => level,
        };
        let mut recipients = Vec::new();
        if let Some(listed) = raw.age_recipients {
            // An empty list reads as "encrypted" to whoever wrote it, yet would send
            // plaintext: refused, as an empty recipients file is.
            if listed.get_ref().is_empty() {
                return Err(file.refuse(
                    listed.span(),
                    "lists no recipient: name at least one age1... recipient, or remove \
                     `age_recipients` to store the copies unencrypted",
                ));
            }
            for recipient in listed.into_inner() {
                recipients.extend(file.value(Some(recipient), |r| parse_recipient(r))?);
            }
        }
        if let Some(listed) = file.value(raw.age_recipients_file, |p| {
            file.path_in(p).and_then(|p| read_recipients_file(&p))
        })? {
            recipients.extend(listed);
        }
        let identity_file = file.value(raw.age_identity_file, |p| file.path_in(p))?;
        let credentials = self.credentials(
            span.clone(),
            raw.access_key_id,
            raw.secret_access_key,
            raw.session_token,
        )?;
        Ok(RemoteDraft {
            name,
            url,
            endpoint: file.value(raw.endpoint, |e| endpoint(e))?,
            region: file.value(raw.region, |r| non_empty(r))?,
            allow_http: raw.allow_http,
            zstd_level,
            recipients,
            identity_file,
            credentials,
            source: Source::File(file.path().to_owned()),
        })
    }

    fn credentials(
        &self,
        span: std::ops::Range<usize>,
        access_key_id: Option<Spanned<String>>,
        secret_access_key: Option<Spanned<String>>,
        session_token: Option<Spanned<String>>,
    ) -> Result<Option<S3Credentials>, ConfigError> {
        let file = self.file;
        let access_key_id = file.value(access_key_id, |k| non_empty(k))?;
        let secret = file.value(secret_access_key, |k| non_empty(k))?;
        let session_token = file.value(session_token, |k| non_empty(k))?;
        match (access_key_id, secret) {
            (Some(access_key_id), Some(secret)) => Ok(Some(S3Credentials {
                access_key_id,
                secret_access_key: Secret::new(secret),
                session_token: session_token.map(Secret::new),
            })),
            (None, None) if session_token.is_none() => Ok(None),
            _ => Err(file.refuse(
                span,
                "give access_key_id and secret_access_key together (or neither, to take \
                 AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from the environment)",
            )),
        }
    }
}

fn non_empty(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        Err("must not be empty".to_owned())
    } else {
        Ok(text.trim().to_owned())
    }
}

/// An endpoint URL: `http://` or `https://`, and a host.
pub fn endpoint(text: &str) -> Result<String, String> {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .ok_or_else(|| format!("{text:?}: write http://HOST:PORT or https://HOST"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("{text:?} names no host"));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

/// Whether an endpoint is plain HTTP to this machine: the only plain HTTP allowed without
/// saying so (credentials cross nothing else).
fn loopback_http(endpoint: &str) -> bool {
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or("");
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What the process's environment holds, as far as remote targets go. A trait so that tests
/// can give one without touching the process's (setting a variable needs `unsafe`).
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process's own environment.
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|value| !value.is_empty())
    }
}

/// The targets in force, with their report: the flags' one target when `--remote` is
/// given (it replaces the file's tables), else the file's tables; each completed from the
/// environment.
pub(super) fn targets(
    layers: &Layers,
    environment: &dyn Environment,
    report: &mut Report,
) -> Result<Vec<TargetConfig>, ConfigError> {
    let drafts = match flag_target(layers)? {
        Some(draft) => vec![draft],
        None => layers
            .files
            .config
            .as_ref()
            .map(|file| file.remotes.clone())
            .unwrap_or_default(),
    };
    let mut seen = std::collections::HashSet::new();
    drafts
        .into_iter()
        .map(|draft| {
            if !seen.insert(draft.name.clone()) {
                return Err(ConfigError(format!(
                    "remote target {:?} is configured twice ({})",
                    draft.name, draft.source
                )));
            }
            complete(draft, environment, report)
        })
        .collect()
}

/// The one target of `--remote URL` and its flags, if given.
fn flag_target(layers: &Layers) -> Result<Option<RemoteDraft>, ConfigError> {
    let Some((url, source)) = layers.given::<String>("remote") else {
        return refuse_lone_flags(layers).map(|()| None);
    };
    let bad = |flag: &str, why: String| ConfigError(format!("bad {flag}: {why}"));
    let url = parse_url(&url, Path::new("")).map_err(|why| bad("--remote", why))?;
    let endpoint = layers
        .given::<String>("remote_endpoint")
        .map(|(e, _)| endpoint(&e).map_err(|why| bad("--remote-endpoint", why)))
        .transpose()?;
    let recipients = layers
        .matches
        .get_many::<String>("age_recipient")
        .into_iter()
        .flatten()
        .map(|r| parse_recipient(r).map_err(|why| bad("--age-recipient", why)))
        .collect::<Result<Vec<_>, _>>()?;
    let zstd = layers.given::<bool>("zstd").is_some_and(|(on, _)| on);
    let allow_http = layers.given::<bool>("remote_allow_http").map(|(on, _)| on);
    Ok(Some(RemoteDraft {
        name: FLAG_TARGET.to_owned(),
        url,
        endpoint,
        region: None,
        allow_http: allow_http.filter(|on| *on),
        zstd_level: zstd.then_some(DEFAULT_ZSTD_LEVEL),
        recipients,
        identity_file: layers.given::<PathBuf>("age_identity").map(|(p, _)| p),
        credentials: None,
        source,
    }))
}

/// The options that describe the `--remote` target, as clap names them.
const FLAG_TARGET_OPTIONS: [&str; 5] = [
    "remote_endpoint",
    "remote_allow_http",
    "age_recipient",
    "age_identity",
    "zstd",
];

/// Refuses an option of the `--remote` target given without `--remote`: it would apply to
/// nothing (the `[[remote]]` tables have their own keys), and an operator who set
/// LITEGRAPH_BACKUP_AGE_RECIPIENT expects encryption. Checked here rather than by clap's
/// `requires`, which refuses the environment's value even when `--remote` is a flag.
fn refuse_lone_flags(layers: &Layers) -> Result<(), ConfigError> {
    for id in FLAG_TARGET_OPTIONS {
        let Some(source) = lone_source(layers, id) else {
            continue;
        };
        let named = match source {
            Source::Env(variable) => variable,
            _ => format!("--{}", id.replace('_', "-")),
        };
        return Err(ConfigError(format!(
            "{named} applies to the --remote target; set --remote or \
             LITEGRAPH_BACKUP_REMOTE, or configure [[remote]] tables"
        )));
    }
    Ok(())
}

/// Where option `id` was given, if it was: a switch given as off (LITEGRAPH_BACKUP_ZSTD=0)
/// asks for nothing.
fn lone_source(layers: &Layers, id: &str) -> Option<Source> {
    match id {
        "remote_allow_http" | "zstd" => layers
            .given::<bool>(id)
            .filter(|(on, _)| *on)
            .map(|(_, s)| s),
        "age_recipient" => layers.given::<String>(id).map(|(_, s)| s),
        "age_identity" => layers.given::<PathBuf>(id).map(|(_, s)| s),
        _ => layers.given::<String>(id).map(|(_, s)| s),
    }
}

/// Fills in what the environment holds, decides plain HTTP, and reports every value.
fn complete(
    draft: RemoteDraft,
    environment: &dyn Environment,
    report: &mut Report,
) -> Result<TargetConfig, ConfigError> {
    let key = |what: &str| format!("remote.{}.{what}", draft.name);
    let from_env = |name: &str| {
        environment
            .var(name)
            .map(|v| (v, Source::Env(name.to_owned())))
    };
    let refuse = |why: String| {
        ConfigError(format!(
            "remote target {:?} ({}): {why}",
            draft.name, draft.source
        ))
    };
    report.note(key("url"), show_url(&draft.url), draft.source.clone());
    let location = match &draft.url {
        RemoteUrl::Directory(path) => {
            if draft.endpoint.is_some() || draft.region.is_some() || draft.credentials.is_some() {
                return Err(refuse(
                    "endpoint, region and credentials are for s3:// targets only".to_owned(),
                ));
            }
            Location::Directory(path.clone())
        }
        RemoteUrl::S3 { bucket, prefix } => {
            let endpoint = draft
                .endpoint
                .clone()
                .map(|e| (e, draft.source.clone()))
                .or_else(|| {
                    from_env(ENDPOINT).and_then(|(e, s)| endpoint(&e).ok().map(|e| (e, s)))
                });
            let region = draft
                .region
                .clone()
                .map(|r| (r, draft.source.clone()))
                .or_else(|| REGIONS.iter().find_map(|name| from_env(name)));
            let allow_http =
                allow_http(&draft, endpoint.as_ref().map(|(e, _)| e.as_str())).map_err(refuse)?;
            let credentials = match draft.credentials.clone() {
                Some(credentials) => Some((credentials, draft.source.clone())),
                None => environment_credentials(environment).map_err(refuse)?,
            };
            report_s3(report, &draft.name, &endpoint, &region, &credentials);
            // Plain HTTP to loopback is allowed without saying so: a default, not a setting,
            // and shown as what it means ("true" read as "HTTP allowed everywhere").
            let (shown, source) = match draft.allow_http {
                Some(allowed) => (allowed.to_string(), draft.source.clone()),
                None => ("loopback only".to_owned(), Source::Default),
            };
            report.note(key("allow_http"), shown, source);
            Location::S3 {
                bucket: bucket.clone(),
                prefix: prefix.clone(),
                endpoint: endpoint.map(|(e, _)| e),
                region: region.map(|(r, _)| r),
                allow_http,
                credentials: credentials.map(|(c, _)| c),
            }
        }
    };
    let compression = match draft.zstd_level {
        Some(level) => format!("zstd level {level}"),
        None => "none".to_owned(),
    };
    report.note(key("compression"), compression, draft.source.clone());
    let recipients = match draft.recipients.len() {
        0 => "(none: stored unencrypted)".to_owned(),
        _ => draft.recipients.join(", "),
    };
    report.note(key("age_recipients"), recipients, draft.source.clone());
    let identity = draft
        .identity_file
        .as_ref()
        .map_or_else(|| "(none)".to_owned(), |p| p.display().to_string());
    report.note(key("age_identity_file"), identity, draft.source.clone());
    Ok(TargetConfig {
        name: draft.name,
        location,
        zstd_level: draft.zstd_level,
        recipients: draft.recipients,
        identity_files: draft.identity_file.into_iter().collect(),
    })
}

/// Plain HTTP: allowed when asked for, or to a loopback endpoint; refused beyond this
/// machine unless asked for (the requests are signed, but the bytes and the key id travel
/// in the clear).
fn allow_http(draft: &RemoteDraft, endpoint: Option<&str>) -> Result<bool, String> {
    let plain = endpoint.is_some_and(|e| e.starts_with("http://"));
    match (draft.allow_http, plain) {
        (Some(allowed), _) if allowed || !plain => Ok(allowed),
        (None, false) => Ok(false),
        (None, true) if endpoint.is_some_and(loopback_http) => Ok(true),
        _ => Err(format!(
            "endpoint {} is plain HTTP beyond this machine: set allow_http = true (or \
             --remote-allow-http) to accept that, or use https://",
            endpoint.unwrap_or_default()
        )),
    }
}

type Sourced<T> = Option<(T, Source)>;

/// `AWS_ACCESS_KEY_ID` with `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`), or none.
fn environment_credentials(
    environment: &dyn Environment,
) -> Result<Sourced<S3Credentials>, String> {
    let id = environment.var(ACCESS_KEY_ID);
    let secret = environment.var(SECRET_ACCESS_KEY);
    match (id, secret) {
        (Some(access_key_id), Some(secret)) => Ok(Some((
            S3Credentials {
                access_key_id,
                secret_access_key: Secret::new(secret),
                session_token: environment.var(SESSION_TOKEN).map(Secret::new),
            },
            Source::Env(format!("{ACCESS_KEY_ID}, {SECRET_ACCESS_KEY}")),
        ))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(format!(
            "{ACCESS_KEY_ID} is set but {SECRET_ACCESS_KEY} is not"
        )),
        (None, Some(_)) => Err(format!(
            "{SECRET_ACCESS_KEY} is set but {ACCESS_KEY_ID} is not"
        )),
    }
}

fn report_s3(
    report: &mut Report,
    name: &str,
    endpoint: &Sourced<String>,
    region: &Sourced<String>,
    credentials: &Sourced<S3Credentials>,
) {
    let key = |what: &str| format!("remote.{name}.{what}");
    let shown = |value: &Sourced<String>, none: &str| match value {
        Some((v, source)) => (v.clone(), source.clone()),
        None => (none.to_owned(), Source::Default),
    };
    let (value, source) = shown(endpoint, "(AWS S3)");
    report.note(key("endpoint"), value, source);
    let (value, source) = shown(region, "(the client's default)");
    report.note(key("region"), value, source);
    match credentials {
        Some((c, source)) => {
            report.note(
                key("access_key_id"),
                c.access_key_id.clone(),
                source.clone(),
            );
            report.note(key("secret_access_key"), "<set>".to_owned(), source.clone());
            if c.session_token.is_some() {
                report.note(key("session_token"), "<set>".to_owned(), source.clone());
            }
        }
        None => report.note(
            key("access_key_id"),
            "(none: anonymous requests)".to_owned(),
            Source::Default,
        ),
    }
}

fn show_url(url: &RemoteUrl) -> String {
    match url {
        RemoteUrl::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
        RemoteUrl::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        RemoteUrl::Directory(path) => path.display().to_string(),
    }
}

/// The warning for a configuration file that holds a secret access key and that others on
/// the machine may read; `None` when it holds none, or only its owner can read it.
pub(super) fn readable_secret_warning(path: &Path, drafts: &[RemoteDraft]) -> Option<String> {
    use std::os::unix::fs::PermissionsExt as _;
    drafts.iter().find(|d| d.credentials.is_some())?;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "{} holds a secret access key and is readable by others on this machine (mode \
             {:o}): chmod 600 it, or take the keys from AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY",
            path.display(),
            mode & 0o777
        )
    })
}

//! What the operator configures for a remote target: plain data, handed in by the config
//! module (which alone reads files and environment variables) and checked by
//! [`super::Targets::open`] at start-up.

use std::fmt;
use std::path::PathBuf;

/// One remote target as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetConfig {
    /// The operator's label, unique among the targets: `offsite`.
    pub name: String,
    pub location: Location,
    /// `Some(level)`: compress with zstd at that level (1..=19); `None`: no compression.
    pub zstd_level: Option<i32>,
    /// age X25519 recipients (`age1...`); non-empty means every upload is encrypted.
    pub recipients: Vec<String>,
    /// age identity files, read at start-up to decrypt what is downloaded.
    pub identity_files: Vec<PathBuf>,
}

/// Where a target keeps its objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An S3-compatible bucket; objects live under `prefix` (`""` for the bucket's root).
    S3 {
        bucket: String,
        prefix: String,
        /// `http://127.0.0.1:9000` for a MinIO or test server; `None` for AWS itself.
        endpoint: Option<String>,
        region: Option<String>,
        /// Whether a plain-HTTP endpoint is accepted (never for AWS itself).
        allow_http: bool,
        /// `None`: unsigned, anonymous requests.
        credentials: Option<S3Credentials>,
    },
    /// A directory (another disk, a mounted share); it must exist.
    Directory(PathBuf),
}

/// S3 credentials, as the config module found them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

/// A value never printed: `Debug` and `Display` show `<redacted>`, so that no log line,
/// error or `config` output can carry it by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one place that signs requests with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl TargetConfig {
    /// The encodings `put-file` applies, in order (the WIT `target.encoding`).
    pub(crate) fn encoding(&self) -> Vec<String> {
        let mut encoding = Vec::new();
        if self.zstd_level.is_some() {
            encoding.push("zstd".to_owned());
        }
        if !self.recipients.is_empty() {
            encoding.push("age".to_owned());
        }
        encoding
    }

    /// One line, no secrets: for `config` and the logs.
    pub(crate) fn describe(&self) -> String {
        let location = match &self.location {
            Location::S3 {
                bucket,
                prefix,
                endpoint,
                region,
                credentials,
                ..
            } => {
                let mut shown = format!("s3://{bucket}/{prefix}");
                if let Some(endpoint) = endpoint {
                    shown.push_str(&format!(" at {endpoint}"));
                }
                if let Some(region) = region {
                    shown.push_str(&format!(" region {region}"));
                }
                match credentials {
                    Some(c) => shown.push_str(&format!(" key id {}", c.access_key_id)),
                    None => shown.push_str(" anonymous"),
                }
                shown
            }
            Location::Directory(path) => format!("directory {}", path.display()),
        };
        let compression = match self.zstd_level {
            Some(level) => format!("zstd level {level}"),
            None => "no compression".to_owned(),
        };
        let encryption = match self.recipients.len() {
            0 => "no encryption".to_owned(),
            n => format!(
                "age to {n} recipient(s), {} identity file(s)",
                self.identity_files.len()
            ),
        };
        format!("{}: {location}; {compression}; {encryption}", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let credentials = S3Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI"),
            session_token: Some(Secret::new("FwoGZXIvYXdzE")),
        };
        let shown = format!("{credentials:?} {}", credentials.secret_access_key);
        assert!(!shown.contains("wJalrXUtnFEMI") && !shown.contains("FwoGZXIvYXdzE"));
        assert!(shown.contains("<redacted>"));
    }
}

//! object_store's errors as the WIT error, in sentences that name the target (never a
//! credential: object_store's messages carry paths and status codes, not keys).

use crate::bindings::Error;

use super::config::Location;
use super::targets::Target;

/// What S3 answers for a bucket that does not exist (on any request, GET included).
const NO_SUCH_BUCKET: &str = "NoSuchBucket";

impl Target {
    /// Maps a failed request on `key` (relative to the target's prefix).
    pub(crate) fn failed(&self, action: &str, key: &str, error: object_store::Error) -> Error {
        use object_store::Error as E;
        match error {
            // A missing bucket is a 404 too: not "no such backup", a setting to fix.
            E::NotFound { source, .. } if source.to_string().contains(NO_SUCH_BUCKET) => {
                self.no_bucket()
            }
            E::NotFound { .. } => Error::NotFound,
            E::AlreadyExists { .. } | E::Precondition { .. } => Error::Exist,
            E::PermissionDenied { source, .. } | E::Unauthenticated { source, .. } => {
                self.refused(&source.to_string())
            }
            other => self.other(action, key, &other.to_string()),
        }
    }

    /// A failure that is neither of the above, from its text: S3 servers answer a bad
    /// signature or key id with a plain 403 that object_store reports as a generic error.
    fn other(&self, action: &str, key: &str, text: &str) -> Error {
        if text.contains(NO_SUCH_BUCKET) {
            return self.no_bucket();
        }
        const REFUSED: [&str; 4] = [
            "SignatureDoesNotMatch",
            "InvalidAccessKeyId",
            "AccessDenied",
            "403 Forbidden",
        ];
        if REFUSED.iter().any(|marker| text.contains(marker)) {
            return self.refused(text);
        }
        const UNREACHABLE: [&str; 5] = [
            "error sending request",
            "Connection refused",
            "timed out",
            "dns error",
            "after retries",
        ];
        if UNREACHABLE.iter().any(|marker| text.contains(marker)) {
            return Error::Io(format!("{} is unreachable: {text}", self.shown));
        }
        Error::Io(format!(
            "{} could not {action} {:?}: {text}",
            self.shown,
            self.full_key(key)
        ))
    }

    /// A refusal: of the credentials given, or of anonymous requests when none were.
    fn refused(&self, text: &str) -> Error {
        let anonymous = matches!(
            &self.config.location,
            Location::S3 {
                credentials: None,
                ..
            }
        );
        if anonymous {
            return Error::NotPermitted(format!(
                "{} refused the request, and no credentials were given (set AWS_ACCESS_KEY_ID/\
                 AWS_SECRET_ACCESS_KEY or access_key_id/secret_access_key) ({text})",
                self.shown
            ));
        }
        Error::NotPermitted(format!("{} refused the credentials ({text})", self.shown))
    }

    fn no_bucket(&self) -> Error {
        let Location::S3 {
            bucket, endpoint, ..
        } = &self.config.location
        else {
            return Error::NotPermitted(format!("{}: the bucket does not exist", self.shown));
        };
        let place = endpoint.as_deref().unwrap_or("AWS S3");
        Error::NotPermitted(format!(
            "remote target {}: bucket {bucket} does not exist on {place} (create it, or fix \
             the url)",
            self.config.name
        ))
    }

    /// `key` as the bucket knows it: under the target's prefix.
    pub(crate) fn full_key(&self, key: &str) -> String {
        match &self.config.location {
            Location::S3 { prefix, .. } if !prefix.trim_matches('/').is_empty() => {
                format!("{}/{key}", prefix.trim_matches('/'))
            }
            _ => key.to_owned(),
        }
    }
}

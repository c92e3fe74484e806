//! object_store's errors as the WIT error, in sentences that name the target (never a
//! credential: object_store's messages carry paths and status codes, not keys).

use crate::bindings::Error;

use super::targets::Target;

impl Target {
    /// Maps a failed request on `key`.
    pub(crate) fn failed(&self, action: &str, key: &str, error: object_store::Error) -> Error {
        use object_store::Error as E;
        match error {
            E::NotFound { .. } => Error::NotFound,
            E::AlreadyExists { .. } | E::Precondition { .. } => Error::Exist,
            E::PermissionDenied { source, .. } | E::Unauthenticated { source, .. } => {
                Error::NotPermitted(format!("{} refused the credentials ({source})", self.shown))
            }
            other => self.other(action, key, &other.to_string()),
        }
    }

    /// A failure that is neither of the above, from its text: S3 servers answer a bad
    /// signature or key id with a plain 403 that object_store reports as a generic error.
    fn other(&self, action: &str, key: &str, text: &str) -> Error {
        const REFUSED: [&str; 4] = [
            "SignatureDoesNotMatch",
            "InvalidAccessKeyId",
            "AccessDenied",
            "403 Forbidden",
        ];
        if REFUSED.iter().any(|marker| text.contains(marker)) {
            return Error::NotPermitted(format!("{} refused the credentials ({text})", self.shown));
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
        Error::Io(format!("{} could not {action} {key:?}: {text}", self.shown))
    }
}

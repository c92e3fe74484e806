//! Error answers in LiteGraph's shape: `{"Error","Message","StatusCode","Description"?}`.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::Error;

/// LiteGraph's error kinds (`ApiErrorEnum`) that this API can answer, plus two of our own
/// for statuses LiteGraph never sends (405, 416 and 503; its `InvalidRange` is a 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    AuthenticationFailed,
    BadRequest,
    NotFound,
    Conflict,
    InUse,
    TooLarge,
    RequestTimeout,
    InternalError,
    /// The server runs but cannot do the work until an operator acts (its live database
    /// is gone); the description says what to fix.
    ServiceUnavailable,
    MethodNotAllowed,
    RangeNotSatisfiable,
}

impl ErrorKind {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::AuthenticationFailed => StatusCode::UNAUTHORIZED,
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict | ErrorKind::InUse => StatusCode::CONFLICT,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
        }
    }

    /// LiteGraph's exact messages (two spaces in BadRequest's, as in its source).
    pub fn message(self) -> &'static str {
        match self {
            ErrorKind::AuthenticationFailed => "Your authentication material was not accepted.",
            ErrorKind::BadRequest => {
                "We were unable to discern your request.  Please check your URL, query, and request body."
            }
            ErrorKind::NotFound => "The requested resource was not found.",
            ErrorKind::Conflict => {
                "Operation failed as it would create a conflict with an existing resource."
            }
            ErrorKind::InUse => "The requested resource is in use.",
            ErrorKind::TooLarge => {
                "The size of your request exceeds the maximum allowed by this server."
            }
            ErrorKind::RequestTimeout => "The request timed out before it could be completed.",
            ErrorKind::InternalError => "An internal error has been encountered.",
            ErrorKind::ServiceUnavailable => {
                "The service cannot handle requests until the problem described is fixed."
            }
            ErrorKind::MethodNotAllowed => "The requested method is not allowed on this resource.",
            ErrorKind::RangeNotSatisfiable => "The requested range lies beyond the file.",
        }
    }

    fn name(self) -> &'static str {
        match self {
            ErrorKind::AuthenticationFailed => "AuthenticationFailed",
            ErrorKind::BadRequest => "BadRequest",
            ErrorKind::NotFound => "NotFound",
            ErrorKind::Conflict => "Conflict",
            ErrorKind::InUse => "InUse",
            ErrorKind::TooLarge => "TooLarge",
            ErrorKind::RequestTimeout => "RequestTimeout",
            ErrorKind::InternalError => "InternalError",
            ErrorKind::ServiceUnavailable => "ServiceUnavailable",
            ErrorKind::MethodNotAllowed => "MethodNotAllowed",
            ErrorKind::RangeNotSatisfiable => "RangeNotSatisfiable",
        }
    }
}

/// An error answer: LiteGraph's body, `{"Error","Message","StatusCode","Description"?}`.
#[derive(Debug)]
pub struct ApiError {
    pub(super) kind: ErrorKind,
    description: Option<String>,
}

impl ApiError {
    pub(super) fn new(kind: ErrorKind) -> ApiError {
        ApiError {
            kind,
            description: None,
        }
    }

    pub(super) fn described(kind: ErrorKind, description: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            description: Some(description.into()),
        }
    }

    /// A fault of ours: logged in full, answered without any detail.
    pub(super) fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!("internal error: {detail}");
        ApiError::new(ErrorKind::InternalError)
    }

    /// A failure the operator must fix (the backup directory moved, the live database
    /// deleted, a disk full): logged, and answered with the text, because only an admin
    /// reaches the routes that can fail this way and the text says what to do.
    fn actionable(kind: ErrorKind, text: String) -> ApiError {
        tracing::error!("{text}");
        ApiError::described(kind, text)
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidName(why) | Error::InvalidArgument(why) => {
                ApiError::described(ErrorKind::BadRequest, why)
            }
            Error::NotFound => ApiError::new(ErrorKind::NotFound),
            Error::Exist => ApiError::described(
                ErrorKind::Conflict,
                "A backup with that filename exists already; it was left untouched.",
            ),
            Error::Busy => ApiError::described(
                ErrorKind::InUse,
                "The database stayed locked for longer than the busy timeout; try again.",
            ),
            Error::Corrupt(why) => ApiError::described(ErrorKind::BadRequest, why),
            Error::NoDatabase(why) => ApiError::actionable(ErrorKind::ServiceUnavailable, why),
            Error::Io(why) => ApiError::actionable(ErrorKind::InternalError, why),
            // The host refused what was asked (the live database's own file, a backup whose
            // pages cannot be written into the live database): the text says why.
            Error::NotPermitted(why) => ApiError::described(ErrorKind::BadRequest, why),
            // The policy's own faults: nothing a caller can act on, and their text may
            // describe the host's internals.
            Error::Guest(_) => ApiError::internal(error),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(rename = "Error")]
    error: &'a str,
    #[serde(rename = "Message")]
    message: &'a str,
    #[serde(rename = "StatusCode")]
    status_code: u16,
    #[serde(rename = "Description", skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.kind.name(),
            message: self.kind.message(),
            status_code: self.kind.status().as_u16(),
            description: self.description.as_deref(),
        };
        json_response(self.kind.status(), &body)
    }
}

/// `value` as a JSON answer.
pub(super) fn json_response(status: StatusCode, value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => ApiError::internal(format!("serialize a response: {e}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_faults_carry_their_description_and_guest_faults_none() {
        let moved = "the backup directory /x/backups was moved or deleted while in use";
        let answer = ApiError::from(Error::Io(moved.into()));
        assert_eq!(answer.kind, ErrorKind::InternalError);
        assert_eq!(answer.description.as_deref(), Some(moved));

        let gone = "the live database /x/litegraph.db does not exist (deleted or moved?)";
        let answer = ApiError::from(Error::NoDatabase(gone.into()));
        assert_eq!(answer.kind.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer.description.as_deref(), Some(gone));

        let answer = ApiError::from(Error::Guest("wasm trap: unreachable at 0x1234".into()));
        assert_eq!(answer.kind, ErrorKind::InternalError);
        assert_eq!(answer.description, None);
    }
}

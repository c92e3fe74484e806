//! The handlers: each turns a request into one guest call (or a health check) and the
//! answer into LiteGraph's JSON. Reading a backup out lives in [`super::download`].

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use super::errors::{ApiError, ErrorKind, json_response};
use super::{ApiState, LogNote, MAX_BODY_BYTES, Weight};

/// 200 with an empty body, typed as LiteGraph types every answer.
fn empty_ok() -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")]).into_response()
}

/// The file name from the path, percent-decoded; undecodable is a bad request.
pub(super) fn filename(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(name)| name)
        .map_err(|e| ApiError::described(ErrorKind::BadRequest, e.body_text()))
}

/// An answer with a note for the request log (which backup a change was about).
fn noted(answer: Result<Response, ApiError>, note: String) -> Response {
    let mut response = answer.into_response();
    response.extensions_mut().insert(LogNote(note));
    response
}

/// `GET /health`: 200 `{"Status":"Healthy"}`, or 503 `{"Status":"Degraded","Problems":[..]}`
/// naming what an operator must fix: the places gone, the backups unlistable, the last
/// scheduled run failed, no backup for two of the schedule's periods, the newest backup's
/// last drill failed (`status`'s rules, [`crate::monitor::status::health`]).
pub(super) async fn health(State(state): State<ApiState>) -> Response {
    let problems = match tokio::task::spawn_blocking(move || state.problems()).await {
        Ok(problems) => problems,
        Err(e) => vec![format!("the health check failed: {e}")],
    };
    if problems.is_empty() {
        json_response(StatusCode::OK, &serde_json::json!({ "Status": "Healthy" }))
    } else {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({ "Status": "Degraded", "Problems": problems }),
        )
    }
}

pub(super) async fn list(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let backups = state.call(Weight::Light, |runtime| runtime.list()).await?;
    Ok(json_response(StatusCode::OK, &backups))
}

pub(super) async fn create(State(state): State<ApiState>, request: Request) -> Response {
    let body = match read_body(request, state.body_timeout).await {
        Ok(body) => body,
        Err(e) => return e.into_response(),
    };
    let name = match requested_filename(&body) {
        Ok(name) => name,
        Err(e) => return e.into_response(),
    };
    let requested = name.clone();
    let created = state
        .call(Weight::Heavy, move |runtime| {
            runtime.create(requested.as_deref())
        })
        .await;
    let note = match (&created, name) {
        (Ok(backup), _) => format!("backup {:?}", backup.filename),
        (Err(_), Some(name)) => format!("backup {name:?}"),
        (Err(_), None) => "backup (default name)".to_owned(),
    };
    noted(
        created.map(|backup| json_response(StatusCode::OK, &backup)),
        note,
    )
}

/// Reads a request body of at most [`MAX_BODY_BYTES`] within `timeout`.
pub(super) async fn read_body(request: Request, timeout: Duration) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::new(ErrorKind::TooLarge);
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let mut body = request.into_body();
    let collect = async {
        let mut bytes = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| ApiError::described(ErrorKind::BadRequest, e.to_string()))?;
            if let Some(data) = frame.data_ref() {
                if bytes.len() + data.len() > MAX_BODY_BYTES {
                    return Err(too_large());
                }
                bytes.extend_from_slice(data);
            }
        }
        Ok(Bytes::from(bytes))
    };
    tokio::time::timeout(timeout, collect)
        .await
        .map_err(|_| ApiError::new(ErrorKind::RequestTimeout))?
}

/// The name a create request asks for, as LiteGraph reads `BackupRequest`: no body is a
/// bad request; `{}` (or any object without a case-exact `Filename`) asks for the default
/// name; a `Filename` that is null, empty or not a string is a bad request.
fn requested_filename(body: &[u8]) -> Result<Option<String>, ApiError> {
    if body.is_empty() {
        return Err(ApiError::new(ErrorKind::BadRequest));
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::described(
            ErrorKind::BadRequest,
            format!("The request body is not valid JSON: {e}"),
        )
    })?;
    let object = value.as_object().ok_or_else(|| {
        ApiError::described(
            ErrorKind::BadRequest,
            "The request body must be a JSON object.",
        )
    })?;
    match object.get("Filename") {
        None => Ok(None),
        Some(serde_json::Value::String(name)) if !name.is_empty() => Ok(Some(name.clone())),
        Some(_) => Err(ApiError::described(
            ErrorKind::BadRequest,
            "Filename must be a non-empty string.",
        )),
    }
}

pub(super) async fn exists(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let name = filename(path)?;
    match state
        .call_named(Weight::Light, name, |runtime, name| runtime.exists(name))
        .await?
    {
        true => Ok(empty_ok()),
        false => Err(ApiError::new(ErrorKind::NotFound)),
    }
}

pub(super) async fn remove(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let name = match filename(path) {
        Ok(name) => name,
        Err(e) => return e.into_response(),
    };
    let note = format!("backup {name:?}");
    let removed = state
        .call_named(Weight::Light, name, |runtime, name| runtime.delete(name))
        .await;
    noted(removed.map(|()| empty_ok()), note)
}

/// `POST /v1.0/backups/{f}/verify[?full[=true]]`: the verdict, 200 whether or not the
/// backup passed (`Verified` says which).
pub(super) async fn verify(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let name = filename(path)?;
    let full = query_flag(uri.query(), "full")?;
    let verdict = state
        .call_named(Weight::Heavy, name, move |runtime, name| {
            runtime.verify(name, full)
        })
        .await?;
    Ok(json_response(StatusCode::OK, &verdict))
}

/// `POST /v1.0/backups/{f}/drill`: the backup restored into a scratch database and checked,
/// the live database untouched. A drill that fails is a 200 with its problems, as a
/// verification that fails is.
pub(super) async fn drill(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let name = filename(path)?;
    let drill = state
        .call_named(Weight::Heavy, name, |runtime, name| {
            runtime.drill(Some(name))
        })
        .await?;
    Ok(json_response(StatusCode::OK, &drill))
}

/// `POST /v1.0/backups/{f}/restore`: the live database gets the backup's content, after the
/// backup verified and a safety backup was taken.
pub(super) async fn restore(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let name = match filename(path) {
        Ok(name) => name,
        Err(e) => return e.into_response(),
    };
    let mut note = format!("backup {name:?}");
    let restored = state
        .call_named(Weight::Heavy, name, |runtime, name| runtime.restore(name))
        .await;
    if let Ok(restoration) = &restored {
        note = format!(
            "{note}, safety backup {:?}",
            restoration.safety_backup.filename
        );
    }
    noted(
        restored.map(|restoration| json_response(StatusCode::OK, &restoration)),
        note,
    )
}

/// A flag in the query (`full` of verify, `dryrun` of prune): absent means false; present
/// without a value (`?full`, `?full=`) means true; otherwise `true`/`false`, `1`/`0` or
/// `yes`/`no` in any case. Anything else, or the flag given twice, is a bad request rather
/// than a guess.
pub(super) fn query_flag(query: Option<&str>, flag: &str) -> Result<bool, ApiError> {
    let mut values =
        query
            .unwrap_or_default()
            .split('&')
            .filter_map(|pair| match pair.split_once('=') {
                Some((key, value)) => (key == flag).then_some(value),
                None => (pair == flag).then_some(""),
            });
    let value = values.next();
    if values.next().is_some() {
        return Err(ApiError::described(
            ErrorKind::BadRequest,
            format!("{flag} is given more than once; give it once."),
        ));
    }
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("false" | "0" | "no") => Ok(false),
        Some("" | "true" | "1" | "yes") => Ok(true),
        Some(_) => Err(ApiError::described(
            ErrorKind::BadRequest,
            format!(
                "{flag} must be true or false (or 1/0, yes/no), not {:?}",
                value.unwrap_or_default()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_bodies_read_like_litegraph() {
        let name = |body: &str| requested_filename(body.as_bytes()).map_err(|e| e.kind);
        assert_eq!(name(r#"{"Filename":"x.db"}"#), Ok(Some("x.db".into())));
        assert_eq!(
            name(r#"{"Filename":"x.db","Other":1}"#),
            Ok(Some("x.db".into()))
        );
        assert_eq!(name("{}"), Ok(None));
        assert_eq!(
            name(r#"{"filename":"x.db"}"#),
            Ok(None),
            "names are case-sensitive"
        );
        for bad in [
            "",
            "{",
            "[]",
            "\"x\"",
            r#"{"Filename":null}"#,
            r#"{"Filename":""}"#,
            r#"{"Filename":7}"#,
        ] {
            assert_eq!(name(bad), Err(ErrorKind::BadRequest), "{bad:?}");
        }
    }

    // Before, `?full` without a value was refused and `full=yes` was a 400 while `full=1`
    // was accepted; a repeated `full` silently took the first.
    #[test]
    fn verify_full_flag_reads_every_spelling_and_refuses_the_rest() {
        let full = |query: Option<&str>| query_flag(query, "full").map_err(|e| e.kind);
        for (query, expected) in [
            (None, false),
            (Some(""), false),
            (Some("other=1"), false),
            (Some("full"), true),
            (Some("full="), true),
            (Some("full=true"), true),
            (Some("full=TRUE"), true),
            (Some("full=1"), true),
            (Some("full=Yes"), true),
            (Some("full=false"), false),
            (Some("full=0"), false),
            (Some("full=NO"), false),
            (Some("x=1&full&y=2"), true),
            (Some("fuller=true"), false),
        ] {
            assert_eq!(full(query), Ok(expected), "{query:?}");
        }
        for refused in [
            "full=2",
            "full=on",
            "full=tru",
            "full=true&full=true",
            "full&full=0",
        ] {
            assert_eq!(full(Some(refused)), Err(ErrorKind::BadRequest), "{refused}");
        }
    }
}

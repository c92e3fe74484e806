//! The HTTP API, wire-compatible with LiteGraph's `v1.0/backups` routes: the same paths,
//! status codes, `BackupFile` JSON and error bodies, so LiteGraph's SDKs, dashboard and
//! documented curl lines work unchanged. Each request is one guest call, run on a blocking
//! thread (the guest and SQLite are synchronous); this module only carries it in and out.
//!
//! [`router`] is public so that another axum server can mount the API.

use std::fmt::Write as _;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, head, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use serde::Serialize;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;

use crate::{BackupFile, Error, Runtime};

/// The largest request body accepted (a create request is a few dozen bytes).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Bytes of backup read per chunk when streaming; a multiple of 3, so that each chunk's
/// base64 has no padding and chunks concatenate into one valid encoding.
const STREAM_CHUNK_BYTES: usize = 3 * 64 * 1024;

/// How long a client may take to send its request headers, and then its body.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the API's handlers share.
#[derive(Clone)]
pub struct ApiState {
    runtime: Arc<Runtime>,
    admin_token: Arc<str>,
    body_timeout: Duration,
}

impl ApiState {
    /// The API over `runtime`, for callers presenting `admin_token` (which must not be
    /// empty: an empty token would let anyone in).
    pub fn new(runtime: Runtime, admin_token: &str) -> anyhow::Result<ApiState> {
        anyhow::ensure!(!admin_token.is_empty(), "the admin token must not be empty");
        Ok(ApiState {
            runtime: Arc::new(runtime),
            admin_token: admin_token.into(),
            body_timeout: DEFAULT_REQUEST_TIMEOUT,
        })
    }

    /// How long a request body may take to arrive.
    pub fn with_body_timeout(mut self, timeout: Duration) -> ApiState {
        self.body_timeout = timeout;
        self
    }

    /// Runs one guest call about the backup named in the path; a missing backup gets
    /// LiteGraph's description.
    async fn call_named<R: Send + 'static>(
        &self,
        path: Result<Path<String>, PathRejection>,
        call: impl FnOnce(&Runtime, &str) -> Result<R, Error> + Send + 'static,
    ) -> Result<R, ApiError> {
        let name = filename(path)?;
        let description = format!("Unable to find backup with filename {name}");
        self.call(move |runtime| call(runtime, &name))
            .await
            .map_err(|error| match error.kind {
                ErrorKind::NotFound => ApiError::described(ErrorKind::NotFound, description),
                _ => error,
            })
    }

    /// Runs one guest call on a blocking thread, keeping the async workers free.
    async fn call<R: Send + 'static>(
        &self,
        call: impl FnOnce(&Runtime) -> Result<R, Error> + Send + 'static,
    ) -> Result<R, ApiError> {
        let runtime = Arc::clone(&self.runtime);
        tokio::task::spawn_blocking(move || call(&runtime))
            .await
            .map_err(|e| ApiError::internal(format!("guest call panicked: {e}")))?
            .map_err(ApiError::from)
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Anyone,
    Admin,
}

/// Every route of the API: the router is built from this table and nothing else, and the
/// OpenAPI document served at `/openapi.json` is tested against it.
pub fn routes() -> Vec<(Method, &'static str, Access, MethodRouter<ApiState>)> {
    use Access::{Admin, Anyone};
    vec![
        (Method::GET, "/health", Anyone, get(health)),
        (Method::GET, "/openapi.json", Anyone, get(openapi)),
        (Method::GET, "/v1.0/backups", Admin, get(list)),
        (Method::POST, "/v1.0/backups", Admin, post(create)),
        (Method::GET, "/v1.0/backups/{filename}", Admin, get(read)),
        (
            Method::HEAD,
            "/v1.0/backups/{filename}",
            Admin,
            head(exists),
        ),
        (
            Method::DELETE,
            "/v1.0/backups/{filename}",
            Admin,
            delete(remove),
        ),
        (
            Method::GET,
            "/v1.0/backups/{filename}/download",
            Admin,
            get(download),
        ),
        (
            Method::POST,
            "/v1.0/backups/{filename}/verify",
            Admin,
            post(verify),
        ),
        (
            Method::POST,
            "/v1.0/backups/{filename}/restore",
            Admin,
            post(restore),
        ),
    ]
}

/// The API's routes ([`routes`]); the admin ones require the admin token.
pub fn router(state: ApiState) -> Router {
    let (mut public, mut admin) = (Router::new(), Router::new());
    for (_, path, access, handler) in routes() {
        match access {
            Access::Anyone => public = public.route(path, handler),
            Access::Admin => admin = admin.route(path, handler),
        }
    }
    let admin = admin.route_layer(middleware::from_fn_with_state(state.clone(), require_admin));
    public
        .merge(admin)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// The OpenAPI 3 description of [`routes`].
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}

/// Serves `app` on `listener` until `shutdown` completes, then lets requests in flight
/// finish (a backup being made is completed, never cut off half-written). Clients get
/// `header_timeout` to send their request headers.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_timeout: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;

    let graceful = GracefulShutdown::new();
    let service = TowerToHyperService::new(app);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(e) => {
                    // Out of descriptors and the like: keep serving the connections we have.
                    tracing::warn!("accept failed: {e}");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Responses go out in a few writes (head, then body chunks): without NODELAY, Nagle
        // holds the last one for the client's delayed ACK, some 40 ms per request.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY on a connection from {peer}: {e}");
        }
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(TokioIo::new(stream), service.clone());
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("connection from {peer} ended: {e}");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: waiting for requests in flight");
    graceful.shutdown().await;
    Ok(())
}

/// LiteGraph's error kinds (`ApiErrorEnum`) that this API can answer, plus two of our own
/// for statuses LiteGraph never sends (405 and 416; its `InvalidRange` is a 400).
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
            ErrorKind::MethodNotAllowed => "MethodNotAllowed",
            ErrorKind::RangeNotSatisfiable => "RangeNotSatisfiable",
        }
    }
}

/// An error answer: LiteGraph's body, `{"Error","Message","StatusCode","Description"?}`.
#[derive(Debug)]
pub struct ApiError {
    kind: ErrorKind,
    description: Option<String>,
}

impl ApiError {
    fn new(kind: ErrorKind) -> ApiError {
        ApiError {
            kind,
            description: None,
        }
    }

    fn described(kind: ErrorKind, description: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            description: Some(description.into()),
        }
    }

    /// A fault of ours: logged in full, answered without any detail.
    fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!("internal error: {detail}");
        ApiError::new(ErrorKind::InternalError)
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidName(why) => ApiError::described(ErrorKind::BadRequest, why),
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
            Error::Guest(_) | Error::NotPermitted(_) | Error::NoDatabase(_) | Error::Io(_) => {
                ApiError::internal(error)
            }
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

fn json_response(status: StatusCode, value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => ApiError::internal(format!("serialize a response: {e}")).into_response(),
    }
}

/// 200 with an empty body, typed as LiteGraph types every answer.
fn empty_ok() -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")]).into_response()
}

/// The file name from the path, percent-decoded; undecodable is a bad request.
fn filename(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(name)| name)
        .map_err(|e| ApiError::described(ErrorKind::BadRequest, e.body_text()))
}

async fn health() -> Response {
    json_response(StatusCode::OK, &serde_json::json!({ "Status": "Healthy" }))
}

async fn list(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let backups = state.call(|runtime| runtime.list()).await?;
    Ok(json_response(StatusCode::OK, &backups))
}

async fn create(State(state): State<ApiState>, request: Request) -> Result<Response, ApiError> {
    let body = read_body(request, state.body_timeout).await?;
    let name = requested_filename(&body)?;
    let backup = state
        .call(move |runtime| runtime.create(name.as_deref()))
        .await?;
    Ok(json_response(StatusCode::OK, &backup))
}

/// Reads a request body of at most [`MAX_BODY_BYTES`] within `timeout`.
async fn read_body(request: Request, timeout: Duration) -> Result<Bytes, ApiError> {
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

async fn exists(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    match state
        .call_named(path, |runtime, name| runtime.exists(name))
        .await?
    {
        true => Ok(empty_ok()),
        false => Err(ApiError::new(ErrorKind::NotFound)),
    }
}

async fn remove(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    state
        .call_named(path, |runtime, name| runtime.delete(name))
        .await?;
    Ok(empty_ok())
}

/// `POST /v1.0/backups/{f}/verify[?full=true]`: the verdict, 200 whether or not the backup
/// passed (`Verified` says which).
async fn verify(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let full = full_check(&uri)?;
    let verdict = state
        .call_named(path, move |runtime, name| runtime.verify(name, full))
        .await?;
    Ok(json_response(StatusCode::OK, &verdict))
}

/// `POST /v1.0/backups/{f}/restore`: the live database gets the backup's content, after the
/// backup verified and a safety backup was taken.
async fn restore(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let restoration = state
        .call_named(path, |runtime, name| runtime.restore(name))
        .await?;
    Ok(json_response(StatusCode::OK, &restoration))
}

/// The `full` query parameter: `true`/`1` or `false`/`0`, absent meaning false.
fn full_check(uri: &Uri) -> Result<bool, ApiError> {
    let value = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("full="));
    match value {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(other) => Err(ApiError::described(
            ErrorKind::BadRequest,
            format!("full must be true or false, not {other:?}"),
        )),
    }
}

/// The guest's view of a backup, the file opened for reading (right after the guest's
/// answer, on the same blocking thread, through the backup directory) and its length.
async fn open_backup(
    state: &ApiState,
    path: Result<Path<String>, PathRejection>,
) -> Result<(BackupFile, std::fs::File, u64), ApiError> {
    state
        .call_named(path, |runtime, name| {
            let backup = runtime.read(name)?;
            let file = runtime.capabilities().backups.open_for_reading(name)?;
            let length = file
                .metadata()
                .map_err(|e| Error::Io(format!("stat {name}: {e}")))?
                .len();
            Ok((backup, file, length))
        })
        .await
}

/// `GET /v1.0/backups/{f}`: the BackupFile with `Data`, the whole file in base64, streamed
/// so the server's memory stays flat whatever the backup's size.
async fn read(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let (backup, file, length) = open_backup(&state, path).await?;
    let mut head =
        serde_json::to_vec(&backup).map_err(|e| ApiError::internal(format!("serialize: {e}")))?;
    head.pop(); // the closing brace: `Data` goes last, as LiteGraph orders it
    head.extend_from_slice(b",\"Data\":\"");
    let tail: &[u8] = b"\"}";
    let encoded = length.div_ceil(3) * 4;
    let content_length = head.len() as u64 + encoded + tail.len() as u64;
    let chunks = file_chunks(file, 0, length, |chunk| Bytes::from(BASE64.encode(chunk)));
    let stream = futures_util::stream::once(async move { Ok(Bytes::from(head)) })
        .chain(chunks)
        .chain(futures_util::stream::once(async move {
            Ok(Bytes::from_static(tail))
        }));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, content_length)
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::internal(format!("build a response: {e}")))
}

/// `GET /v1.0/backups/{f}/download`: the raw file, for `curl -o` and large backups, with a
/// single `Range` honoured (`bytes=a-b`, `bytes=a-`, `bytes=-n`); several ranges get the
/// whole file.
async fn download(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (backup, file, length) = open_backup(&state, path).await?;
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, end) = match byte_range(range, length) {
        RangeRequest::Whole => (StatusCode::OK, 0, length),
        RangeRequest::Part(start, end) => (StatusCode::PARTIAL_CONTENT, start, end),
        RangeRequest::Unsatisfiable => {
            let mut response = ApiError::described(
                ErrorKind::RangeNotSatisfiable,
                format!("The backup is {length} bytes long."),
            )
            .into_response();
            response.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{length}")).expect("ASCII"),
            );
            return Ok(response);
        }
    };
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, end - start)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, format!("\"{}\"", backup.sha256_hash))
        .header(
            header::CONTENT_DISPOSITION,
            content_disposition(&backup.filename),
        );
    if status == StatusCode::PARTIAL_CONTENT {
        response = response.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{length}", end - 1),
        );
    }
    let chunks = file_chunks(file, start, end, Bytes::copy_from_slice);
    response
        .body(Body::from_stream(chunks))
        .map_err(|e| ApiError::internal(format!("build a response: {e}")))
}

/// What a `Range` header asks of a file of some length (RFC 9110, section 14).
#[derive(Debug, PartialEq, Eq)]
enum RangeRequest {
    /// The whole file: no range, several ranges, or a header that does not parse (which
    /// RFC 9110 says to ignore).
    Whole,
    /// Bytes `start..end` (end exclusive).
    Part(u64, u64),
    /// A well-formed range that lies beyond the file: 416.
    Unsatisfiable,
}

fn byte_range(header: Option<&str>, length: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeRequest::Whole;
    };
    let number = |text: &str| -> Option<u64> {
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse().ok())
            .flatten()
    };
    let (start, end) = match (number(first.trim()), number(last.trim())) {
        (None, Some(suffix)) if first.trim().is_empty() => {
            if suffix == 0 {
                return RangeRequest::Unsatisfiable;
            }
            (length.saturating_sub(suffix), length)
        }
        (Some(start), None) if last.trim().is_empty() => (start, length),
        (Some(start), Some(last)) if last >= start => (start, last.saturating_add(1).min(length)),
        _ => return RangeRequest::Whole,
    };
    if start < end {
        RangeRequest::Part(start, end)
    } else {
        RangeRequest::Unsatisfiable
    }
}

/// `attachment; filename="..."`, with anything not plain ASCII escaped RFC 5987-style.
fn content_disposition(name: &str) -> HeaderValue {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ');
    let value = if plain {
        format!("attachment; filename=\"{name}\"")
    } else {
        let mut encoded = String::new();
        for byte in name.bytes() {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                encoded.push(char::from(byte));
            } else {
                let _ = write!(encoded, "%{byte:02X}");
            }
        }
        format!("attachment; filename*=UTF-8''{encoded}")
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// Streams bytes `start..end` of `file` in bounded chunks, each transformed by `encode`,
/// reading on blocking threads; a short file ends the stream with an error rather than
/// sending fewer bytes than the `Content-Length` promised.
fn file_chunks(
    file: std::fs::File,
    start: u64,
    end: u64,
    encode: fn(&[u8]) -> Bytes,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> {
    futures_util::stream::try_unfold(
        (Some(file), start, true),
        move |(file, position, first)| async move {
            let Some(mut file) = file else {
                return Ok(None);
            };
            if position >= end {
                return Ok(None);
            }
            let want = (end - position).min(STREAM_CHUNK_BYTES as u64) as usize;
            let (file, chunk) = tokio::task::spawn_blocking(move || {
                if first {
                    file.seek(SeekFrom::Start(position))?;
                }
                let mut chunk = vec![0; want];
                file.read_exact(&mut chunk)?;
                Ok::<_, std::io::Error>((file, chunk))
            })
            .await
            .map_err(std::io::Error::other)??;
            let next = position + want as u64;
            Ok(Some((encode(&chunk), (Some(file), next, false))))
        },
    )
}

/// Admits only the admin token: `Authorization: Bearer <token>`, scheme in any case,
/// compared in constant time. Anything else is LiteGraph's 401 `AuthenticationFailed`.
async fn require_admin(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_at_checked(7)?;
            scheme.eq_ignore_ascii_case("bearer ").then_some(token)
        });
    let admitted = presented
        .is_some_and(|token| bool::from(token.as_bytes().ct_eq(state.admin_token.as_bytes())));
    if admitted {
        next.run(request).await
    } else {
        ApiError::new(ErrorKind::AuthenticationFailed).into_response()
    }
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorKind::NotFound)
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(ErrorKind::MethodNotAllowed)
}

/// One log line per request: method, path (never the query, which may carry credentials),
/// status and time. HEAD answers lose their body here, as HTTP wants and LiteGraph does.
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    tracing::info!(
        "{method} {path} {} {:.1}ms",
        response.status().as_u16(),
        started.elapsed().as_secs_f64() * 1e3
    );
    if method == Method::HEAD {
        *response.body_mut() = Body::empty();
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        use RangeRequest::{Part, Unsatisfiable, Whole};
        let range = |header: &str| byte_range(Some(header), 100);
        assert_eq!(byte_range(None, 100), Whole);
        assert_eq!(range("bytes=0-9"), Part(0, 10));
        assert_eq!(range("bytes=90-"), Part(90, 100));
        assert_eq!(range("bytes=-10"), Part(90, 100));
        assert_eq!(range("bytes=-200"), Part(0, 100));
        assert_eq!(range("bytes=50-500"), Part(50, 100));
        assert_eq!(range("bytes=100-"), Unsatisfiable);
        assert_eq!(range("bytes=-0"), Unsatisfiable);
        for ignored in [
            "bytes=0-1,5-6",
            "bytes=9-3",
            "items=0-1",
            "bytes=x-1",
            "bytes=-",
            "bytes=+1-2",
            "junk",
        ] {
            assert_eq!(range(ignored), Whole, "{ignored}");
        }
    }

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

    #[test]
    fn content_disposition_is_always_a_valid_header() {
        assert_eq!(content_disposition("x.db"), "attachment; filename=\"x.db\"");
        assert_eq!(
            content_disposition("日本.db"),
            "attachment; filename*=UTF-8''%E6%97%A5%E6%9C%AC.db"
        );
        assert_eq!(
            content_disposition("a\"b.db"),
            "attachment; filename*=UTF-8''a%22b.db"
        );
    }
}

//! The HTTP API, wire-compatible with LiteGraph's `v1.0/backups` routes: the same paths,
//! status codes, `BackupFile` JSON and error bodies, so LiteGraph's SDKs, dashboard and
//! documented curl lines work unchanged. Each request is one guest call, run on a blocking
//! thread (the guest and SQLite are synchronous); this module only carries it in and out.
//!
//! [`router`] is public so that another axum server can mount the API; [`serve`] is the
//! accept loop `litegraph-backup serve` runs it in.

mod download;
mod errors;
mod metrics;
mod routes;
mod schedule;
mod server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, head, post};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

pub use errors::{ApiError, ErrorKind};
pub use schedule::RetentionJson;
pub use server::{DEFAULT_MAX_CONNECTIONS, ServeOptions, serve};

use crate::daemon::SharedStatus;
use crate::monitor::status::health;
use crate::{Error, Runtime};

/// The largest request body accepted (a create request is a few dozen bytes).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How long a client may take to send its request headers, and then its body.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the API's handlers share.
#[derive(Clone)]
pub struct ApiState {
    runtime: Arc<Runtime>,
    admin_token: AdminToken,
    body_timeout: Duration,
    /// Places for heavy operations (create, verify, restore, drill, prune): taken before a
    /// blocking thread or a guest instance, so that queued heavy work holds neither and
    /// light requests (list, read, exists, delete, download) never wait behind it.
    heavy: Arc<Semaphore>,
    /// The backup schedule and the configured retention rules.
    schedule: SharedStatus,
}

/// What a guest call costs, and so which queue it waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Weight {
    /// Metadata and single files: milliseconds.
    Light,
    /// Reads or writes a whole database: seconds or minutes.
    Heavy,
}

impl ApiState {
    /// The API over `runtime`, for callers presenting `admin_token` (which must not be
    /// empty: an empty token would let anyone in).
    pub fn new(runtime: Runtime, admin_token: &str) -> anyhow::Result<ApiState> {
        anyhow::ensure!(!admin_token.is_empty(), "the admin token must not be empty");
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Ok(ApiState {
            runtime: Arc::new(runtime),
            admin_token: AdminToken::new(admin_token),
            body_timeout: DEFAULT_REQUEST_TIMEOUT,
            heavy: Arc::new(Semaphore::new(cores.max(2))),
            schedule: SharedStatus::default(),
        })
    }

    /// The schedule (and retention rules) that `GET /v1.0/backup-schedule` shows and that
    /// a prune without rules of its own applies; without it, no schedule and no rule.
    pub fn with_schedule(mut self, schedule: SharedStatus) -> ApiState {
        self.schedule = schedule;
        self
    }

    /// How long a request body may take to arrive.
    pub fn with_body_timeout(mut self, timeout: Duration) -> ApiState {
        self.body_timeout = timeout;
        self
    }

    /// How many heavy operations (create, verify, restore, drill, prune) may run at once; more wait
    /// their turn without holding a thread (at least one).
    pub fn with_heavy_operations(mut self, at_once: usize) -> ApiState {
        self.heavy = Arc::new(Semaphore::new(at_once.max(1)));
        self
    }

    /// What an operator must fix for the service to work, for `/health`; empty when
    /// healthy. The rules are `status`'s ([`health`]); the schedule is this server's.
    fn problems(&self) -> Vec<String> {
        let schedule = self.schedule.get();
        let last_run = schedule.last_run.map(|run| health::LastRun {
            ended: run.ended,
            error: run.error,
        });
        let (evidence, _) = health::gather(&self.runtime, schedule.schedule, last_run);
        health::problems(&evidence)
    }

    /// Runs one guest call about the backup `name`; a missing backup gets LiteGraph's
    /// description.
    async fn call_named<R: Send + 'static>(
        &self,
        weight: Weight,
        name: String,
        call: impl FnOnce(&Runtime, &str) -> Result<R, Error> + Send + 'static,
    ) -> Result<R, ApiError> {
        let description = format!("Unable to find backup with filename {name}");
        self.call(weight, move |runtime| call(runtime, &name))
            .await
            .map_err(|error| match error.kind {
                ErrorKind::NotFound => ApiError::described(ErrorKind::NotFound, description),
                _ => error,
            })
    }

    /// Runs one guest call on a blocking thread, keeping the async workers free; a heavy
    /// one first waits for its turn here, and keeps it until the call ends even if the
    /// client has gone.
    async fn call<R: Send + 'static>(
        &self,
        weight: Weight,
        call: impl FnOnce(&Runtime) -> Result<R, Error> + Send + 'static,
    ) -> Result<R, ApiError> {
        let turn = match weight {
            Weight::Light => None,
            Weight::Heavy => Some(
                Arc::clone(&self.heavy)
                    .acquire_owned()
                    .await
                    .expect("the heavy-operation semaphore is never closed"),
            ),
        };
        let runtime = Arc::clone(&self.runtime);
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            call(&runtime)
        })
        .await
        .map_err(|e| ApiError::internal(format!("guest call panicked: {e}")))?
        .map_err(ApiError::from)
    }
}

/// The admin token, kept as its SHA-256: a presented token is hashed and the two digests
/// compared in constant time, so the time taken says nothing of either token's content or
/// length (comparing the tokens themselves returned early on a length mismatch).
#[derive(Clone)]
struct AdminToken([u8; 32]);

impl AdminToken {
    fn new(token: &str) -> AdminToken {
        AdminToken(Sha256::digest(token.as_bytes()).into())
    }

    fn admits(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        bool::from(presented.ct_eq(&self.0))
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
        (Method::GET, "/health", Anyone, get(routes::health)),
        (Method::GET, "/metrics", Admin, get(metrics::scrape)),
        (Method::GET, "/openapi.json", Anyone, get(openapi)),
        (Method::GET, "/v1.0/backups", Admin, get(routes::list)),
        (Method::POST, "/v1.0/backups", Admin, post(routes::create)),
        (
            Method::GET,
            "/v1.0/backups/{filename}",
            Admin,
            get(download::read),
        ),
        (
            Method::HEAD,
            "/v1.0/backups/{filename}",
            Admin,
            head(routes::exists),
        ),
        (
            Method::DELETE,
            "/v1.0/backups/{filename}",
            Admin,
            delete(routes::remove),
        ),
        (
            Method::GET,
            "/v1.0/backups/{filename}/download",
            Admin,
            get(download::download),
        ),
        (
            Method::POST,
            "/v1.0/backups/{filename}/verify",
            Admin,
            post(routes::verify),
        ),
        (
            Method::POST,
            "/v1.0/backups/{filename}/drill",
            Admin,
            post(routes::drill),
        ),
        (
            Method::POST,
            "/v1.0/backups/{filename}/restore",
            Admin,
            post(routes::restore),
        ),
        // Not under /v1.0/backups/{filename}: a backup may be called `prune` or `schedule`.
        (
            Method::GET,
            "/v1.0/backup-schedule",
            Admin,
            get(schedule::schedule),
        ),
        (
            Method::POST,
            "/v1.0/backup-retention/prune",
            Admin,
            post(schedule::prune),
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
    if presented.is_some_and(|token| state.admin_token.admits(token)) {
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

/// What a handler adds to its request's log line (the backups a change was about).
#[derive(Debug, Clone)]
struct LogNote(String);

/// One log line per request: client, method, path (never the query, which may carry
/// credentials), status, time, and the handler's note. HEAD answers lose their body here,
/// as HTTP wants and LiteGraph does.
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "-".to_owned(), |ConnectInfo(peer)| peer.to_string());
    let mut response = next.run(request).await;
    let note = response
        .extensions_mut()
        .remove::<LogNote>()
        .map(|LogNote(note)| format!(" ({note})"))
        .unwrap_or_default();
    tracing::info!(
        "{client} {method} {path} {} {:.1}ms{note}",
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

    // Before, tokens were compared byte by byte after an early return on a length mismatch,
    // so the time taken told an attacker the token's length.
    #[test]
    fn only_the_admin_token_is_admitted_whatever_the_length_presented() {
        let token = AdminToken::new("litegraphadmin");
        assert!(token.admits("litegraphadmin"));
        for refused in [
            "",
            "l",
            "litegraphadmi",
            "litegraphadmin ",
            "litegraphadminX",
            "LITEGRAPHADMIN",
            &"litegraphadmin".repeat(100),
        ] {
            assert!(!token.admits(refused), "{refused:?}");
        }
    }
}

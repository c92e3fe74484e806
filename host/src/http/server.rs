//! The accept loop. It must keep serving under hostile load: out of descriptors it backs off
//! instead of spinning (as hyper's and tokio's servers do), it logs a burst of the same
//! failure once rather than once per failure, and it serves a bounded number of
//! connections. When every place is taken, a client that has sent nothing for the longest
//! time gives its place to the newcomer (the way a proxy sheds idle connections under
//! overload); connections with a request in progress are never cut off.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Display;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

/// The most connections served at once unless told otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// The first pause after a failed accept, doubled on each failure in a row up to
/// [`LONGEST_ACCEPT_PAUSE`] (hyper-util's and axum's servers pause 1 s).
const FIRST_ACCEPT_PAUSE: Duration = Duration::from_millis(10);
const LONGEST_ACCEPT_PAUSE: Duration = Duration::from_secs(1);

/// A repeating warning is logged at most this often, with a count of what it left out.
const WARN_EVERY: Duration = Duration::from_secs(5);

/// How [`serve`] treats its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOptions {
    /// How long a client may take to send its request headers.
    pub header_timeout: Duration,
    /// The most connections served at once; further clients wait in the kernel's backlog,
    /// or take the place of the connection idle the longest. Lowered to three quarters of
    /// the descriptor limit, so that files can still be opened with every place taken.
    pub max_connections: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_timeout: super::DEFAULT_REQUEST_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// A header timeout alone, with the default connection cap.
impl From<Duration> for ServeOptions {
    fn from(header_timeout: Duration) -> Self {
        ServeOptions {
            header_timeout,
            ..ServeOptions::default()
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets requests in flight
/// finish (a backup being made is completed, never cut off half-written). Each request
/// carries its client's address as axum's `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: impl Into<ServeOptions>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let options = options.into();
    let places = Arc::new(Semaphore::new(connection_capacity(options.max_connections)));
    let open = Arc::new(OpenConnections::default());
    let graceful = GracefulShutdown::new();
    let mut accepting = Accepting::new();
    let mut shedding = Throttled::new("every connection place is taken; closing idle clients");
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => {
                    accepting.succeeded();
                    connection
                }
                Err(e) => {
                    let pause = accepting.failed(&e, &open);
                    tokio::select! {
                        () = tokio::time::sleep(pause) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        };
        let place = tokio::select! {
            place = open.make_room(&places, &mut shedding) => place,
            () = &mut shutdown => break,
        };
        spawn_connection(stream, peer, place, &app, &open, &graceful, options);
    }
    drop(listener);
    tracing::info!("shutting down: waiting for requests in flight");
    graceful.shutdown().await;
    Ok(())
}

/// Serves one connection on a task of its own, until it ends or is closed to make room.
fn spawn_connection(
    stream: TcpStream,
    peer: SocketAddr,
    place: OwnedSemaphorePermit,
    app: &Router,
    open: &Arc<OpenConnections>,
    graceful: &GracefulShutdown,
    options: ServeOptions,
) {
    // Responses go out in a few writes (head, then body chunks): without NODELAY, Nagle
    // holds the last one for the client's delayed ACK, some 40 ms per request.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!("TCP_NODELAY on a connection from {peer}: {e}");
    }
    let registered = open.register(peer);
    let activity = Arc::clone(&registered.activity);
    let service = connection_service(app.clone(), peer, Arc::clone(&activity));
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .serve_connection(TokioIo::new(stream), service);
    let connection = graceful.watch(connection);
    tokio::spawn(async move {
        let _place = place;
        let _registered = registered;
        tokio::pin!(connection);
        loop {
            tokio::select! {
                outcome = &mut connection => {
                    if let Err(e) = outcome {
                        tracing::debug!("connection from {peer} ended: {e}");
                    }
                    break;
                }
                () = activity.evict.notified() => if activity.is_idle() {
                    tracing::debug!("closed the idle connection from {peer} to make room");
                    break;
                },
            }
        }
    });
}

/// The app as one connection's service: each request gets the client's address, and the
/// connection counts as busy from its request's arrival until its response's last byte.
fn connection_service(
    app: Router,
    peer: SocketAddr,
    activity: Arc<Activity>,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = axum::response::Response,
    Error = Infallible,
    Future = impl Future<Output = Result<axum::response::Response, Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let busy = activity.begin();
        let app = app.clone();
        async move {
            let response = app.oneshot(request).await?;
            Ok(response.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    let _busy_until_dropped = &busy;
                    frame
                }))
            }))
        }
    })
}

/// `max_connections`, lowered to three quarters of the descriptor limit: with every
/// connection place taken, SQLite and the backups still need descriptors.
fn connection_capacity(max_connections: usize) -> usize {
    let wanted = max_connections.max(1);
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let Some(room) = limit.map(|limit| usize::try_from(limit / 4 * 3).unwrap_or(usize::MAX)) else {
        return wanted;
    };
    if room < wanted {
        tracing::info!(
            "the descriptor limit is {}: serving at most {} connections at once",
            limit.unwrap_or_default(),
            room.max(1)
        );
    }
    wanted.min(room).max(1)
}

/// Accept failures: how long to pause after one, and the log of a burst of them.
struct Accepting {
    pause: Duration,
    warnings: Throttled,
}

impl Accepting {
    fn new() -> Accepting {
        Accepting {
            pause: FIRST_ACCEPT_PAUSE,
            warnings: Throttled::new("accept failed"),
        }
    }

    fn succeeded(&mut self) {
        self.pause = FIRST_ACCEPT_PAUSE;
        self.warnings.quiet();
    }

    /// How long to wait before accepting again after `error`: nothing when only that one
    /// client is gone, a pause growing to a second when the process is short of something.
    fn failed(&mut self, error: &std::io::Error, open: &OpenConnections) -> Duration {
        if is_one_client_gone(error) {
            tracing::debug!("accept failed: {error}");
            return Duration::ZERO;
        }
        if is_out_of_resources(error) {
            // An idle connection's descriptor is better spent on a client with a request.
            open.evict_longest_idle();
        }
        self.warnings.occurred(error);
        let pause = self.pause;
        self.pause = (self.pause * 2).min(LONGEST_ACCEPT_PAUSE);
        pause
    }
}

/// The failures that concern one client only (it left before it was accepted).
fn is_one_client_gone(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset, Interrupted};
    matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted
    ) || error.raw_os_error() == Some(libc::EPROTO)
}

/// The failures that say the process or system is short of descriptors or memory.
fn is_out_of_resources(error: &std::io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// A warning that may repeat thousands of times a second: logged once, then at most once
/// per [`WARN_EVERY`] with the count of occurrences it left out.
struct Throttled {
    what: &'static str,
    last_line: Option<Instant>,
    left_out: u64,
}

impl Throttled {
    fn new(what: &'static str) -> Throttled {
        Throttled {
            what,
            last_line: None,
            left_out: 0,
        }
    }

    /// Whether an occurrence now gets a line of its own.
    fn occurred(&mut self, detail: impl Display) -> bool {
        let now = Instant::now();
        if self
            .last_line
            .is_some_and(|at| now.duration_since(at) < WARN_EVERY)
        {
            self.left_out += 1;
            return false;
        }
        match self.left_out {
            0 => tracing::warn!("{}: {detail}", self.what),
            n => tracing::warn!(
                "{}: {detail} ({n} more times since the last report)",
                self.what
            ),
        }
        self.last_line = Some(now);
        self.left_out = 0;
        true
    }

    /// The burst is over: report what was left out, if the last line is old enough.
    fn quiet(&mut self) {
        let Some(at) = self.last_line else { return };
        if self.left_out > 0 && at.elapsed() >= WARN_EVERY {
            tracing::warn!(
                "{}: {} more times in the last {} s",
                self.what,
                self.left_out,
                at.elapsed().as_secs()
            );
            self.left_out = 0;
            self.last_line = Some(Instant::now());
        }
    }
}

/// The connections being served, so that an idle one can be closed to make room.
#[derive(Default)]
struct OpenConnections {
    by_id: Mutex<HashMap<u64, (SocketAddr, Arc<Activity>)>>,
    next_id: AtomicU64,
    /// Woken when a connection finishes its request: it may now give its place up.
    became_idle: Arc<Notify>,
}

impl OpenConnections {
    fn register(self: &Arc<Self>, peer: SocketAddr) -> Registered {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity {
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            evict: Notify::new(),
            became_idle: Arc::clone(&self.became_idle),
        });
        self.connections().insert(id, (peer, Arc::clone(&activity)));
        Registered {
            id,
            activity,
            open: Arc::clone(self),
        }
    }

    fn connections(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (SocketAddr, Arc<Activity>)>> {
        self.by_id.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks the connection idle the longest to close; returns its client, if there was one.
    fn evict_longest_idle(&self) -> Option<SocketAddr> {
        let connections = self.connections();
        let (peer, activity) = connections
            .values()
            .filter(|(_, activity)| activity.is_idle())
            .min_by_key(|(_, activity)| activity.idle_since())?;
        activity.evict.notify_one();
        Some(*peer)
    }

    /// A place for a new connection: a free one, or the place of the connection idle the
    /// longest; with every connection busy, waits for one to finish.
    async fn make_room(
        &self,
        places: &Arc<Semaphore>,
        shedding: &mut Throttled,
    ) -> OwnedSemaphorePermit {
        loop {
            if let Ok(place) = Arc::clone(places).try_acquire_owned() {
                return place;
            }
            let became_idle = self.became_idle.notified();
            tokio::pin!(became_idle);
            became_idle.as_mut().enable();
            if let Some(peer) = self.evict_longest_idle() {
                shedding.occurred(format_args!("closed the one from {peer}"));
            }
            tokio::select! {
                place = Arc::clone(places).acquire_owned() => {
                    return place.expect("the connection semaphore is never closed");
                }
                () = became_idle => {}
            }
        }
    }
}

/// A connection's entry in [`OpenConnections`], removed when the connection ends.
struct Registered {
    id: u64,
    activity: Arc<Activity>,
    open: Arc<OpenConnections>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.open.connections().remove(&self.id);
    }
}

/// Whether a connection is in the middle of a request, and since when it has not been.
struct Activity {
    in_flight: AtomicUsize,
    idle_since: Mutex<Instant>,
    evict: Notify,
    became_idle: Arc<Notify>,
}

impl Activity {
    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0
    }

    fn idle_since(&self) -> Instant {
        *self
            .idle_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Busy(Arc::clone(self))
    }
}

/// A request in progress on a connection, from its head to its response's last byte.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            *self
                .0
                .idle_since
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Instant::now();
            self.0.became_idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os_error(code: i32) -> std::io::Error {
        std::io::Error::from_raw_os_error(code)
    }

    // Before, every failed accept was retried at once: out of descriptors, the loop spun
    // (3.37 million warnings in 4 s).
    #[test]
    fn accept_failures_back_off_and_reset_after_a_success() {
        let open = OpenConnections::default();
        let mut accepting = Accepting::new();
        let pauses: Vec<_> = (0..9)
            .map(|_| accepting.failed(&os_error(libc::EMFILE), &open).as_millis())
            .collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        accepting.succeeded();
        assert_eq!(
            accepting.failed(&os_error(libc::ENFILE), &open),
            FIRST_ACCEPT_PAUSE
        );
        assert_eq!(
            accepting.failed(&os_error(libc::ECONNABORTED), &open),
            Duration::ZERO,
            "a client that left costs no pause"
        );
    }

    #[test]
    fn a_burst_of_warnings_gets_one_line() {
        let mut warnings = Throttled::new("accept failed");
        let lines = (0..10_000)
            .filter(|_| warnings.occurred("Too many open files"))
            .count();
        assert_eq!(lines, 1);
        assert_eq!(warnings.left_out, 9_999);
    }

    #[test]
    fn the_connection_idle_longest_is_the_one_evicted() {
        let open = Arc::new(OpenConnections::default());
        let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let first = open.register(addr(1));
        let second = open.register(addr(2));
        let busy = first.activity.begin();
        assert_eq!(
            open.evict_longest_idle(),
            Some(addr(2)),
            "the busy one stays"
        );
        drop(busy);
        assert_eq!(
            open.evict_longest_idle(),
            Some(addr(2)),
            "idle since it connected, before the first finished its request"
        );
        drop(second);
        assert_eq!(open.evict_longest_idle(), Some(addr(1)));
        drop(first);
        assert_eq!(open.evict_longest_idle(), None);
    }
}

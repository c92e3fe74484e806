//! `serve`: the HTTP API, and the schedule beside it, until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::Path;

use super::commands::{open_targets, policy};
use super::{Exit, Failure};
use crate::config::{Config, ServeConfig};
use crate::store::BackupDir;
use crate::{Capabilities, Runtime};

/// Runs the HTTP API until SIGINT or SIGTERM, then lets requests in flight finish.
///
/// Nothing is created before the address is bound: a server that cannot start leaves no
/// empty database or backup directory behind.
pub fn serve(config: &Config, serve: &ServeConfig) -> anyhow::Result<()> {
    let database = config.live_database();
    let create_database = database_to_create(config, serve)?;
    let policy = policy(config)?;
    let targets = open_targets(config)?;
    let listener = std::net::TcpListener::bind(&serve.listen)
        .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
        .map_err(|e| {
            Failure::error(
                Exit::Failed,
                format!("cannot listen on {}: {e}", serve.listen),
            )
        })?;
    let bound = listener.local_addr()?;
    let metrics_listener = serve
        .metrics_listen
        .as_deref()
        .map(|addr| bind_metrics(addr, bound))
        .transpose()?;
    if serve.default_token_exposed(bound) {
        tracing::warn!(
            "LISTENING ON {bound}, BEYOND THIS MACHINE, WITH THE DEFAULT ADMIN TOKEN: anyone who \
             has read LiteGraph's documentation can read, delete and restore backups. Give \
             --admin-token (or LITEGRAPH_ADMIN_TOKEN), or listen on 127.0.0.1 behind a proxy."
        );
    }
    if create_database {
        database.create_if_missing().map_err(|e| {
            Failure::error(
                Exit::Failed,
                format!(
                    "cannot create the database {}: {e:#}",
                    database.path().display()
                ),
            )
        })?;
        tracing::warn!(
            "created a NEW EMPTY database in WAL mode at {}",
            database.path().display()
        );
    }
    let backups = create_backup_dir(&config.backups.path)?;
    let swept = backups.sweep_stale_temporaries()?;
    if swept > 0 {
        tracing::info!("removed {swept} temporary files left by an interrupted run");
    }
    for target in targets.describe() {
        tracing::info!("remote target {target}");
    }
    let capabilities = Capabilities::new(database, backups).with_remotes(targets);
    let runtime = Runtime::from_policy(&policy, capabilities);
    runtime.capabilities().monitor.remember_past_runs();
    crate::daemon::check_targets_in_background(&runtime);
    let status = crate::daemon::SharedStatus::new(serve.schedule.as_ref(), serve.retention.clone())
        .with_remotes(runtime.capabilities().remotes.names());
    let state = crate::http::ApiState::new(runtime.clone(), &serve.admin_token)?
        .with_body_timeout(serve.request_timeout)
        .with_schedule(status.clone());
    let app = crate::http::router(state.clone());
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            tracing::info!(
                "listening on http://{bound} (database {}, backups in {})",
                config.database.path.display(),
                config.backups.path.display()
            );
            let (stopping, stopped) = tokio::sync::watch::channel(false);
            let metrics = match metrics_listener {
                Some((listener, addr)) => {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    tracing::info!("serving metrics on http://{addr}/metrics (no token)");
                    Some(tokio::spawn(crate::http::serve(
                        listener,
                        metrics_only(state.clone()),
                        METRICS_SERVE_OPTIONS,
                        stop_signal(stopped),
                    )))
                }
                None => None,
            };
            // Polled once, so that the signal handlers are in place before the schedule's
            // first run starts: a SIGTERM during that run must let it finish.
            let mut shutdown = Box::pin(shutdown_signal());
            tokio::select! {
                biased;
                () = &mut shutdown => return Ok(()),
                () = std::future::ready(()) => {}
            }
            let daemon =
                crate::daemon::Daemon::start_configured(runtime, serve.daemon_settings(), status)?;
            let stop = daemon.as_ref().map(crate::daemon::Daemon::stopper);
            let shutdown = async move {
                shutdown.await;
                // No run starts after the signal; one in progress finishes below.
                if let Some(stop) = stop {
                    stop.stop();
                }
                let _ = stopping.send(true);
            };
            let served = crate::http::serve(listener, app, serve.serve_options(), shutdown).await;
            if let Some(daemon) = daemon {
                tokio::task::spawn_blocking(move || daemon.finish()).await?;
            }
            if let Some(metrics) = metrics {
                metrics.await??;
            }
            served?;
            tracing::info!("stopped");
            Ok(())
        })
}

/// The metrics listener serves a scraper or two, not the public: a few connections.
const METRICS_SERVE_OPTIONS: crate::http::ServeOptions = crate::http::ServeOptions {
    header_timeout: crate::http::DEFAULT_REQUEST_TIMEOUT,
    max_connections: 16,
};

/// Binds `--metrics-listen`'s address, before anything runs: a server that cannot serve
/// its metrics does not start (the operator asked for them; the alerts rely on them).
fn bind_metrics(
    addr: &str,
    api: SocketAddr,
) -> anyhow::Result<(std::net::TcpListener, SocketAddr)> {
    let bound = std::net::TcpListener::bind(addr)
        .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
        .and_then(|listener| listener.local_addr().map(|bound| (listener, bound)));
    let (listener, bound) = match bound {
        Ok(bound) => bound,
        // The API's own address: a setting refused as given, not a failure of the machine.
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && same_port(addr, api) => {
            return Err(Failure::error(
                Exit::Refused,
                format!(
                    "--metrics-listen {addr} is the API's own address (--listen {api}): give \
                     another port, or scrape /metrics on the API with the admin token"
                ),
            ));
        }
        Err(e) => {
            return Err(Failure::error(
                Exit::Failed,
                format!("cannot listen on {addr} for --metrics-listen: {e}"),
            ));
        }
    };
    if !bound.ip().is_loopback() {
        tracing::warn!(
            "/metrics is served on {bound}, beyond this machine, without a token: anyone who \
             can reach it sees the backups' count, size, age and outcomes"
        );
    }
    Ok((listener, bound))
}

/// Whether `addr` names `api`'s port (the address the API is listening on).
fn same_port(addr: &str, api: SocketAddr) -> bool {
    addr.rsplit_once(':')
        .and_then(|(_, port)| port.parse::<u16>().ok())
        .is_some_and(|port| port == api.port())
}

/// `GET /metrics` alone, without the admin token: the API's own route (from its route
/// table), any other path 404, and no request log line (a scrape every few seconds).
fn metrics_only(state: crate::http::ApiState) -> axum::Router {
    let scrape = crate::http::routes()
        .into_iter()
        .find_map(|(_, path, _, handler)| (path == "/metrics").then_some(handler))
        .expect("the route table has /metrics");
    axum::Router::new()
        .route("/metrics", scrape)
        .fallback(|| async { crate::http::ApiError::from(crate::Error::NotFound) })
        .with_state(state)
}

/// Completes once `stopped` says so (or its sender is gone).
async fn stop_signal(mut stopped: tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stopped| *stopped).await;
}

/// Whether `serve` is to create the database: only when it is missing and is the default
/// one (LiteGraph's first start) or `--create-database` was given. A named database that is
/// missing is most likely a typo, and backing up a new empty database would hide it.
fn database_to_create(config: &Config, serve: &ServeConfig) -> anyhow::Result<bool> {
    let path = &config.database.path;
    if path.exists() {
        return Ok(false);
    }
    if config.database.named && !serve.create_database {
        return Err(Failure::error(
            Exit::NotFound,
            format!(
                "no database at {} (give --create-database to start with an empty one)",
                path.display()
            ),
        ));
    }
    Ok(true)
}

fn create_backup_dir(path: &Path) -> anyhow::Result<BackupDir> {
    BackupDir::create(path).map_err(|e| {
        Failure::error(
            Exit::Failed,
            format!("cannot create backup directory {}: {e}", path.display()),
        )
    })
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(terminate) => terminate,
        Err(e) => {
            tracing::warn!("cannot watch SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = terminate.recv() => tracing::info!("SIGTERM received"),
    }
}

//! `GET /metrics`: the operations' metrics and the backup directory's gauges, in the
//! OpenMetrics text format that Prometheus scrapes (see [`crate::monitor::metrics`]).

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{ApiError, ApiState};
use crate::monitor::metrics::{CONTENT_TYPE, Inventory, Listing};

pub(super) async fn scrape(State(state): State<ApiState>) -> Response {
    // A light call, as `ApiState::call` runs it (a blocking thread, no queue), but without
    // its conversion to an API error, which logs an ERROR: a scrape comes every few
    // seconds, and `scrape_listing_ok 0` (and /health) say it already.
    //
    // The last success and failure times also take what other processes recorded in the
    // status record (a `create` run by cron beside an API-only server): an alert on the
    // time since the last successful backup must see every backup, not only this
    // process's.
    let runtime = Arc::clone(&state.runtime);
    let listed = move || {
        runtime.capabilities().monitor.remember_past_runs();
        runtime.list()
    };
    let listing = match tokio::task::spawn_blocking(listed).await {
        Ok(Ok(backups)) => Some(Listing::of(&backups)),
        Ok(Err(e)) => {
            tracing::debug!("metrics without the backups: cannot list them: {e}");
            None
        }
        Err(e) => {
            tracing::warn!("metrics without the backups: the listing panicked: {e}");
            None
        }
    };
    let inventory = Inventory {
        listing,
        next_run: state.schedule.get().next_run,
        now: SystemTime::now(),
    };
    match state
        .runtime
        .capabilities()
        .monitor
        .metrics()
        .encode(&inventory)
    {
        Ok(text) => (StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(e) => ApiError::internal(format!("cannot encode the metrics: {e}")).into_response(),
    }
}

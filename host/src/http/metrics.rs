//! `GET /metrics`: the operations' metrics in Prometheus' text format.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::ApiState;

pub(super) async fn scrape(State(_state): State<ApiState>) -> Response {
    (StatusCode::NOT_IMPLEMENTED, "not built yet").into_response()
}

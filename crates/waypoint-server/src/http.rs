//! Plain HTTP routes: the status page, health and metrics.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use crate::AppState;

/// The minimal live page: connection state and per-stream counts.
pub async fn index() -> Html<&'static str> {
    Html(include_str!("../static/index.html"))
}

/// `GET /v2/health/live`: the process is up.
pub async fn live() -> StatusCode {
    StatusCode::OK
}

/// `GET /v2/health/ready`: the scene has produced its first frame.
pub async fn ready(State(state): State<AppState>) -> StatusCode {
    if state.scene.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// `GET /metrics` in the Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut body = state.metrics.render(state.hub.queued_frame_bytes());
    body.push_str(&state.online.render());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

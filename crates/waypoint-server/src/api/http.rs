//! Plain HTTP routes: the status page, health and metrics.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use crate::state::AppState;

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

fn find_asset(path: &str) -> Option<&'static (&'static str, &'static [u8], &'static str)> {
    ASSETS.iter().find(|(p, _, _)| *p == path)
}

/// The dashboard (the embedded build of `web/`), or the status page when the build is absent.
pub async fn index() -> Response {
    match find_asset("index.html") {
        Some((_, bytes, ty)) => {
            ([(header::CONTENT_TYPE, *ty), (header::CACHE_CONTROL, "no-cache")], *bytes).into_response()
        }
        None => status_page().await.into_response(),
    }
}

/// The minimal live page: connection state and per-stream counts.
pub async fn status_page() -> Html<&'static str> {
    Html(include_str!("../../static/index.html"))
}

/// A file of the dashboard's build under `/assets/`; names carry a content hash, so they may
/// be cached for good.
pub async fn asset(Path(path): Path<String>) -> Response {
    match find_asset(&format!("assets/{path}")) {
        Some((_, bytes, ty)) => {
            ([(header::CONTENT_TYPE, *ty), (header::CACHE_CONTROL, "public, max-age=31536000, immutable")], *bytes)
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

/// `GET /v2/health/live`: the process is up.
pub async fn live() -> StatusCode {
    StatusCode::OK
}

/// `GET /v2/health/ready`: the scene has produced its first frame.
pub async fn ready(State(state): State<AppState>) -> StatusCode {
    // A cluster's replica serves inference whether or not it leads (or reaches Redis).
    if state.scene.is_ready() || state.cluster.is_some() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// `GET /lcjs/lcjs.js`: the operator's copy of LightningChart JS (`--lcjs-module`), 404 without
/// one. Read on each request (the browser caches it for an hour), so replacing the file needs no
/// restart.
pub async fn lcjs_module(State(state): State<AppState>) -> Response {
    let Some(path) = state.config.lcjs_module.clone() else {
        return (StatusCode::NOT_FOUND, "no LightningChart JS bundle configured (--lcjs-module)").into_response();
    };
    match tokio::task::spawn_blocking(move || std::fs::read(&path).map_err(|e| (path, e))).await {
        Ok(Ok(bytes)) => ([(header::CONTENT_TYPE, "text/javascript"), (header::CACHE_CONTROL, "max-age=3600")], bytes)
            .into_response(),
        Ok(Err((path, e))) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the LightningChart JS bundle");
            (StatusCode::NOT_FOUND, "the LightningChart JS bundle cannot be read").into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// `GET /metrics` in the Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut body = state.metrics.render(state.hub.queued_frame_bytes());
    body.push_str(&state.online.render());
    body.push_str(&state.router.render_metrics(&state.registry));
    let running = state.scene.is_leading() && state.scene.state().is_some_and(|s| s.running);
    body.push_str(&format!(
        "# HELP waypoint_scene_running 1 on the replica that runs the scene while it is not paused.\n# TYPE waypoint_scene_running gauge\nwaypoint_scene_running {}\n",
        u8::from(running)
    ));
    if let Some(cache) = state.registry.cache() {
        let (bytes, entries) = cache.usage();
        body.push_str(&format!(
            "# HELP waypoint_cache_bytes Bytes held by the in-process response cache.\n# TYPE waypoint_cache_bytes gauge\nwaypoint_cache_bytes {bytes}\n# HELP waypoint_cache_entries Answers held by the in-process response cache.\n# TYPE waypoint_cache_entries gauge\nwaypoint_cache_entries {entries}\n"
        ));
    }
    // A cluster's Redis is up when its calls and its subscriber are; a cache-only Redis when the
    // last call succeeded.
    let redis_up = match (&state.cluster, state.registry.cache().and_then(|c| c.redis())) {
        (Some(c), _) => Some(c.redis_up()),
        (None, Some(tier)) => Some(tier.is_up()),
        (None, None) => None,
    };
    if let Some(up) = redis_up {
        body.push_str(&format!(
            "# HELP waypoint_redis_up Whether Redis answers.\n# TYPE waypoint_redis_up gauge\nwaypoint_redis_up {}\n",
            u8::from(up)
        ));
    }
    if let Some(c) = &state.cluster {
        body.push_str(&c.render_metrics());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

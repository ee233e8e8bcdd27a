//! The doors into the server: the Open Inference Protocol under `/v2` ([`oip`], its body codec
//! [`oip_codec`]), the control API under `/api/v1` ([`control`]), the WebSocket at `/ws` ([`ws`],
//! its inference messages [`ws_infer`]), the page, health and metrics ([`http`]), and the one HTTP
//! error boundary ([`error`]), and who may call what, how often ([`guard`]). Handlers parse and answer; the work is done by the serving path,
//! the lifecycle and the live stack.

pub mod control;
pub mod error;
pub mod guard;
pub mod http;
pub mod oip;
pub mod oip_codec;
pub mod ws;
pub mod ws_infer;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use tower_http::compression::CompressionLayer;
use tower_http::decompression::RequestDecompressionLayer;

use crate::state::AppState;

/// The router.
pub fn app(state: AppState) -> Router {
    let v2 = oip::routes()
        .layer(CompressionLayer::new())
        .layer(RequestDecompressionLayer::new())
        .layer(DefaultBodyLimit::max(state.config.max_request_bytes));
    let api = control::routes().layer(DefaultBodyLimit::max(1 << 20));
    Router::new()
        .merge(v2)
        .merge(api)
        .merge(
            Router::new()
                .route("/", get(http::index))
                .route("/assets/{*path}", get(http::asset))
                .layer(CompressionLayer::new()),
        )
        .route("/status", get(http::status_page))
        .route("/lcjs/lcjs.js", get(http::lcjs_module))
        .route("/ws", get(ws::ws_handler))
        .route("/v2/health/live", get(http::live))
        .route("/v2/health/ready", get(http::ready))
        .route("/metrics", get(http::metrics))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard::check))
        .with_state(state)
}

//! `waypoint-server`: the network face of Waypoint.
//!
//! [`AppState::new`] builds the runtime objects from a [`ServerConfig`]: the scene thread
//! ([`scene_runner`]), the fan-out hub with a bounded send queue per client ([`hub`]) and the
//! metrics ([`metrics`]). [`app`] is the axum router (`/ws` in [`ws`], health, metrics and the
//! status page in [`http`]); [`run`] serves it on a listener until a shutdown future resolves.
//! The binary is a thin wrapper around these; tests bind port 0 and drive the real server.

pub mod config;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod scene_runner;
pub mod ws;

use std::future::Future;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

pub use config::ServerConfig;
use hub::Hub;
use metrics::Metrics;
use scene_runner::SceneRunner;

/// Errors starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Shared state of every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<ServerConfig>,
    pub hub: Arc<Hub>,
    pub scene: Arc<SceneRunner>,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// Builds the hub and metrics and starts the scene thread.
    pub fn new(config: ServerConfig) -> Result<Self, ServerError> {
        let metrics = Arc::new(Metrics::default());
        let hub = Arc::new(Hub::new(metrics.clone()));
        let scene = Arc::new(SceneRunner::spawn(&config, hub.clone(), metrics.clone())?);
        Ok(Self { config: Arc::new(config), hub, scene, metrics })
    }
}

/// The router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", get(http::index))
        .route("/ws", get(ws::ws_handler))
        .route("/v2/health/live", get(http::live))
        .route("/v2/health/ready", get(http::ready))
        .route("/metrics", get(http::metrics))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then closes every WebSocket and stops the scene thread.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let hub = state.hub.clone();
    let scene = state.scene.clone();
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: closing websockets");
            hub.close_all();
        })
        .await?;
    scene.shutdown();
    Ok(())
}

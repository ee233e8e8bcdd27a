//! `waypoint-server`: the network face of Waypoint.
//!
//! [`AppState::new`] builds the runtime objects from a [`ServerConfig`]: the scene thread
//! ([`scene_runner`]), the fan-out hub with a bounded send queue per client ([`hub`]) and the
//! metrics ([`metrics`]). [`app`] is the axum router (`/ws` in [`ws`], health, metrics and the
//! status page in [`http`]); [`run`] serves it on a listener until a shutdown future resolves.
//! The binary is a thin wrapper around these; tests bind port 0 and drive the real server.

pub mod config;
pub mod control;
pub mod engine;
pub mod error;
pub mod http;
pub mod hub;
pub mod inference;
pub mod learner;
pub mod metrics;
pub mod oip;
pub mod oip_codec;
pub mod online;
pub mod onnx;
pub mod perception;
pub mod predictor;
pub mod registry;
pub mod repository;
pub mod routing;
pub mod scene_runner;
pub mod ws;
pub mod ws_infer;

use std::future::Future;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tower_http::compression::CompressionLayer;
use tower_http::decompression::RequestDecompressionLayer;

pub use config::ServerConfig;
use hub::Hub;
use metrics::Metrics;
use registry::Registry;
use repository::Repository;
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
    pub registry: Arc<Registry>,
    pub online: Arc<online::OnlineEval>,
    pub router: Arc<routing::Router>,
    /// The continuous learner (absent without a runtime for live predictions).
    pub learner: Option<Arc<learner::Learner>>,
}

impl AppState {
    /// Builds the hub, metrics and registry, loads every model of the repository (a model that
    /// fails to load is logged and listed as unavailable) and starts the scene thread.
    pub fn new(config: ServerConfig) -> Result<Self, ServerError> {
        let metrics = Arc::new(Metrics::default());
        let hub = Arc::new(Hub::new(metrics.clone()));
        let registry = Arc::new(Registry::new(Repository::new(&config.model_repository), metrics.clone()));
        match registry.repository().models() {
            Ok(models) => {
                for m in models {
                    let _ = registry.load(&m);
                }
            }
            Err(e) => tracing::warn!(error = %e, "no model repository; serving no models"),
        }
        // Live predictions need a runtime to run requests on; without one (a caller outside
        // tokio) the scene streams without them.
        let online = Arc::new(online::OnlineEval::default());
        let router = Arc::new(routing::Router::default());
        let handle = tokio::runtime::Handle::try_current().ok();
        let predictor = handle
            .clone()
            .map(|h| predictor::Predictor::new(registry.clone(), router.clone(), hub.clone(), online.clone(), h));
        let learner = predictor.as_ref().map(|p| {
            Arc::new(learner::Learner::new(
                config.learner.clone(),
                registry.clone(),
                router.clone(),
                online.clone(),
                p.observed(),
            ))
        });
        let perception =
            handle.as_ref().map(|h| perception::Perception::start(registry.clone(), hub.clone(), online.clone(), h));
        let scene =
            Arc::new(SceneRunner::spawn(&config, hub.clone(), metrics.clone(), online.clone(), predictor, perception)?);
        Ok(Self { config: Arc::new(config), hub, scene, metrics, registry, online, router, learner })
    }
}

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
    {
        // The canary controller.
        let (router, registry, online) = (state.router.clone(), state.registry.clone(), state.online.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_millis(500));
            loop {
                every.tick().await;
                router.tick(&registry, &online);
            }
        });
    }
    if let (Some(learner), Some(secs)) = (state.learner.clone(), state.config.learner.every_secs.filter(|s| *s > 0)) {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(secs));
            every.tick().await;
            loop {
                every.tick().await;
                if let Err(e) = learner.start_round(learner::RoundRequest::default()) {
                    tracing::info!(reason = %e, "scheduled training round skipped");
                }
            }
        });
    }
    if let Some(secs) = state.config.repository_poll_secs.filter(|s| *s > 0) {
        let registry = state.registry.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(secs));
            loop {
                every.tick().await;
                let r = registry.clone();
                let _ = tokio::task::spawn_blocking(move || r.poll()).await;
            }
        });
    }
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

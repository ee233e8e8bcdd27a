//! Serving the app on a listener, with the background loops of a running server: the canary
//! controller, the scheduled learning rounds and the model repository's poll.

use std::future::Future;

use tokio::net::TcpListener;

use crate::api::app;
use crate::config::ServerError;
use crate::lifecycle::learner;
use crate::state::AppState;

/// Serves until `shutdown` resolves, then closes every WebSocket and stops the scene thread.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let hub = state.hub.clone();
    let scene = state.scene.clone();
    if let Some(cluster) = &state.cluster {
        cluster.start(listener.local_addr()?);
    }
    let recorder = state.recorder.clone();
    if let (Some(r), Some(addr)) = (&recorder, state.config.foxglove_addr) {
        let port = r.start_bridge(addr).await.map_err(ServerError::Config)?;
        tracing::info!(port, "Foxglove bridge listening; open ws://{}:{port} in the Foxglove app", addr.ip());
    }
    {
        // The canary controller (on the replica that runs the scene: its evidence is there).
        let (router, registry, online) = (state.router.clone(), state.registry.clone(), state.online.clone());
        let scene = scene.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_millis(500));
            loop {
                every.tick().await;
                if scene.is_leading() {
                    router.tick(&registry, &online);
                }
            }
        });
    }
    let learners: Vec<_> = [state.learner.clone(), state.road_learner.clone()].into_iter().flatten().collect();
    for (learner, secs) in
        learners.into_iter().filter_map(|l| Some((l, state.config.learner.every_secs.filter(|s| *s > 0)?)))
    {
        let scene = scene.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(secs));
            every.tick().await;
            loop {
                every.tick().await;
                if !scene.is_leading() {
                    continue;
                }
                if let Err(e) = learner.start_round(learner::RoundRequest::default()) {
                    tracing::info!(model = learner.model(), reason = %e, "scheduled training round skipped");
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
    // The peer's address reaches the handlers (rate limits key on it).
    axum::serve(listener, app(state).into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: closing websockets");
            hub.close_all();
        })
        .await?;
    scene.shutdown();
    if let Some(r) = recorder {
        // The file's summary and index are written here.
        r.close();
        if let Some(p) = r.path() {
            tracing::info!(path = %p.display(), "recording written");
        }
    }
    Ok(())
}

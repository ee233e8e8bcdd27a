//! The shared state every handler holds, and how it is built from a [`ServerConfig`]: the
//! metrics, the hub, the registry with every model of the repository loaded, the lifecycle
//! (online evaluation, routing, learner) and the live stack on the scene thread.

use std::sync::Arc;

use crate::config::{ServerConfig, ServerError};
use crate::lifecycle::{learner, online, routing};
use crate::live::hub::Hub;
use crate::live::scene_runner::SceneRunner;
use crate::live::{perception, predictor};
use crate::metrics::Metrics;
use crate::serving::registry::Registry;
use crate::serving::repository::Repository;

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
    /// The continuous learner of the people's model (absent without a runtime for live
    /// predictions).
    pub learner: Option<Arc<learner::Learner>>,
    /// The continuous learner of the road model's correction (absent likewise).
    pub road_learner: Option<Arc<learner::Learner>>,
    /// Membership of a cluster (with `--redis`).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Tokens and rate limits.
    pub access: Arc<crate::access::Access>,
    /// The MCAP recording and the Foxglove bridge (with `--record` or `--foxglove-addr`).
    pub recorder: Option<Arc<crate::record::Recorder>>,
    /// Every sweep's tracks and truth (with `log_sweeps`).
    pub sweep_log: Option<Arc<crate::live::sweep_log::SweepLog>>,
}

impl AppState {
    /// The continuous learner of `model`, if it has one here.
    pub fn learner_for(&self, model: &str) -> Option<&Arc<learner::Learner>> {
        [&self.learner, &self.road_learner].into_iter().flatten().find(|l| l.model() == model)
    }

    /// Builds the hub, metrics and registry, loads every model of the repository (a model that
    /// fails to load is logged and listed as unavailable) and starts the scene thread.
    pub fn new(config: ServerConfig) -> Result<Self, ServerError> {
        let metrics = Arc::new(Metrics::default());
        let hub = Arc::new(Hub::new(metrics.clone()));
        let redis = match &config.redis_url {
            Some(url) => {
                Some(crate::serving::cache::RedisTier::new(url, config.cache_ttl_secs).map_err(ServerError::Config)?)
            }
            None => None,
        };
        let registry = Arc::new(
            Registry::new(Repository::new(&config.model_repository), metrics.clone())
                .with_cache(config.cache_bytes, redis),
        );
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
        if config.replay.is_some() && config.redis_url.is_some() {
            return Err(ServerError::Config(
                "a replay plays on one replica: --replay and --redis exclude each other".into(),
            ));
        }
        let recorder = if config.record.is_some() || config.foxglove_addr.is_some() {
            let r = crate::record::Recorder::new(&config.record.clone().unwrap_or_default())
                .map_err(ServerError::Config)?;
            let tap = r.clone();
            hub.add_tap(Box::new(move |item| tap.item(item)));
            let observer = r.clone();
            router.observe_decisions(Box::new(move |d| observer.decision(d)));
            Some(r)
        } else {
            None
        };
        let handle = tokio::runtime::Handle::try_current().ok();
        let ctx = handle.map(|handle| crate::live::Context {
            registry: registry.clone(),
            router: router.clone(),
            hub: hub.clone(),
            online: online.clone(),
            handle,
        });
        // The track-fed predictor runs on the perception thread and feeds the learner; the
        // truth-fed one runs on the scene thread and is only scored.
        let truth_predictor = ctx.clone().map(|c| predictor::Predictor::new(c, online::Feed::Truth));
        let track_predictor = ctx.clone().map(|c| predictor::Predictor::new(c, online::Feed::Tracks));
        let learner_of = |task: learner::Task| {
            Arc::new(learner::Learner::new(
                config.learner.clone(),
                registry.clone(),
                router.clone(),
                online.clone(),
                task,
            ))
        };
        let learner = track_predictor.as_ref().map(|p| learner_of(learner::Task::People(p.observed())));
        let road_learner = track_predictor.as_ref().map(|p| learner_of(learner::Task::Road(p.observed_road())));
        let sweep_log = config.log_sweeps.then(Arc::<crate::live::sweep_log::SweepLog>::default);
        let perception = match (ctx.clone(), track_predictor) {
            (Some(c), Some(p)) => Some(
                perception::Perception::start(c, p, metrics.clone(), config.unpaced, sweep_log.clone())
                    .map_err(|e| ServerError::Config(format!("cannot start the perception thread: {e}")))?,
            ),
            _ => None,
        };
        let scene = Arc::new(SceneRunner::spawn(
            &config,
            hub.clone(),
            metrics.clone(),
            online.clone(),
            truth_predictor,
            perception,
            ctx,
            recorder.clone(),
        )?);
        let cluster = match &config.redis_url {
            Some(url) => Some(
                crate::cluster::Cluster::new(
                    &crate::cluster::ClusterConfig {
                        url: url.clone(),
                        replica_id: config.replica_id.clone(),
                        lease: std::time::Duration::from_millis(config.lease_ms),
                    },
                    crate::cluster::Parts {
                        hub: hub.clone(),
                        scene: scene.clone(),
                        router: router.clone(),
                        registry: registry.clone(),
                        online: online.clone(),
                    },
                )
                .map_err(ServerError::Config)?,
            ),
            None => None,
        };
        let access = Arc::new(crate::access::Access {
            tokens: crate::access::Tokens { api: config.api_token.clone(), infer: config.infer_token.clone() },
            scene_commands: crate::access::RateLimiter::new(config.scene_commands_per_sec),
        });
        Ok(Self {
            config: Arc::new(config),
            hub,
            scene,
            metrics,
            registry,
            online,
            router,
            learner,
            road_learner,
            cluster,
            access,
            recorder,
            sweep_log,
        })
    }
}

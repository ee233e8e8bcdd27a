//! The live stack: the scene thread and its command channel ([`scene_runner`]), the fan-out hub
//! with a bounded send queue per client ([`hub`]), and the AV stack on its own thread
//! ([`perception`]): each sweep through the served `detection` version, the tracker, each track
//! through the served `fusion` version with its radar returns ([`fusion`]), and the tracks'
//! futures through the served trajectory version ([`predictor`]); on the scene thread, every
//! tick's sensor output through the served `sensor_health` version ([`health`]) — every call
//! through routing and the engine, like any client's.

use std::sync::Arc;

pub mod fusion;
pub mod health;
pub mod hub;
pub mod perception;
pub mod predictor;
pub mod scene_runner;
pub mod sweep_log;

/// What the live stack calls the serving core through.
#[derive(Debug, Clone)]
pub struct Context {
    pub registry: Arc<crate::serving::registry::Registry>,
    pub router: Arc<crate::lifecycle::routing::Router>,
    pub hub: Arc<hub::Hub>,
    pub online: Arc<crate::lifecycle::online::OnlineEval>,
    /// The runtime the engine's replies arrive on.
    pub handle: tokio::runtime::Handle,
}

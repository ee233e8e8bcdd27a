//! `waypoint-server`: the network face of Waypoint, in five rooms whose imports run one way
//! (`api` → `cluster` → `live` → `lifecycle` → `serving` → `waypoint-models`):
//!
//! - [`api`] — the doors: OIP v2 routes and codec, the control API, the WebSocket and its
//!   inference messages, the page, health and metrics, the HTTP error boundary; [`api::app`] is
//!   the axum router.
//! - [`cluster`] — replicas sharing one scene, one control plane and one cache through Redis:
//!   the leader's lease, the relay of its stream items and of the followers' commands, the
//!   control plane's fields.
//! - [`live`] — the live stack: the scene thread ([`live::scene_runner`]), the fan-out hub with a
//!   bounded send queue per client ([`live::hub`]), perception and prediction through the engine.
//! - [`lifecycle`] — what decides which version answers and judges it: routing policies and the
//!   canary controller, the online evaluation against the scene's truth, the continuous learner.
//! - [`serving`] — the model repository on disk, the registry of loaded versions, the engines
//!   (bounded queue, batching worker threads), the inference path and its errors, ONNX Runtime.
//!
//! [`state::AppState::new`] builds all of it from a [`ServerConfig`]; [`run`] serves the router
//! on a listener until a shutdown future resolves. [`metrics`] is shared by every room. The
//! binary is a thin wrapper around these; tests bind port 0 and drive the real server.

pub mod access;
pub mod api;
pub mod cluster;
pub mod config;
pub mod lifecycle;
pub mod live;
pub mod metrics;
pub mod record;
pub mod server;
pub mod serving;
pub mod state;

pub use api::app;
pub use config::{ServerConfig, ServerError};
pub use server::run;
pub use state::AppState;

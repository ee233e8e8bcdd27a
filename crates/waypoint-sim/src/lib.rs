//! `waypoint-sim`: a deterministic traffic scene seen by five sensors.
//!
//! A [`Scene`] holds a four-way signalised intersection ([`map`]), agents that drive, ride and
//! walk ([`agent`]), an ego vehicle carrying a lidar, a radar, a camera, an IMU and a GPS
//! ([`sensors`]), and faults that can be scheduled or injected live ([`fault`]). Each
//! [`Scene::tick`] advances time by a fixed step and returns a [`Frame`]: the sensor data
//! delivered during the tick and the ground truth at its end. Recorded data can be read and
//! replayed through [`replay`].
//!
//! This crate is plain synchronous Rust: no async runtime, no I/O beyond the replay readers.
//! Every random draw comes from a [`rng::SimRng`] seeded from the scene's seed, so the same seed
//! gives the same frames, byte for byte.

pub mod agent;
pub mod fault;
pub mod frame;
pub mod geometry;
pub mod map;
pub mod replay;
pub mod rng;
pub mod scene;
pub mod sensors;

pub use agent::{AgentKind, Fleet};
pub use fault::{FaultKind, FaultRecord, FaultSpec, Sensor};
pub use frame::Frame;
pub use scene::{Scene, SceneConfig};

/// Errors of the simulator and its readers.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("line {line}: {message}")]
    Parse { line: usize, message: String },
    #[error("no agent with id {0}")]
    UnknownAgent(u32),
    #[error("the scene is full ({0} agents)")]
    Full(usize),
    #[error("no free place to put a new agent")]
    NoRoom,
    #[error("invalid fault: {0}")]
    InvalidFault(String),
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
}

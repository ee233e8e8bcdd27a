//! Native model implementations the server can instantiate by backend name.
//!
//! Built-in backends are listed in [`BUILTIN`]; a program embedding Waypoint adds its own with
//! [`register`] before the server loads its repository.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use crate::model::Model;
use crate::trajectory::ConstantVelocity;
use crate::ModelError;

/// Builds one model instance from its version directory.
pub type Factory = Arc<dyn Fn(&Path) -> Result<Box<dyn Model>, ModelError> + Send + Sync>;

/// Backend names built in (`platform = "waypoint"`, `backend = ...` in `config.toml`).
pub const BUILTIN: [&str; 7] = [
    "constant_velocity",
    "lane_following",
    "ukf_fusion",
    "trajectory_tcn",
    "lidar_detection",
    "anomaly_detector",
    "sensor_health",
];

/// Built-in backends that keep state between requests (per sequence): their requests must reach
/// one instance, in order, unbatched.
pub const STATEFUL: [&str; 1] = ["sensor_health"];

static REGISTERED: RwLock<BTreeMap<String, Factory>> = RwLock::new(BTreeMap::new());

/// Registers (or replaces) a backend under `name`.
pub fn register(name: &str, factory: Factory) {
    REGISTERED.write().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), factory);
}

/// Creates one instance of a native model from its version directory.
pub fn instantiate(backend: &str, version_dir: &Path) -> Result<Box<dyn Model>, ModelError> {
    match backend {
        "constant_velocity" => Ok(Box::new(ConstantVelocity)),
        "lane_following" => Ok(Box::new(crate::trajectory::road_model::RoadModel::load(version_dir)?)),
        "trajectory_tcn" => Ok(Box::new(crate::trajectory::model::TrajectoryModel::load(version_dir)?)),
        "lidar_detection" => Ok(Box::new(crate::detection::model::DetectionModel::load(version_dir)?)),
        "ukf_fusion" => Ok(Box::new(crate::fusion::model::FusionModel::load(version_dir)?)),
        "anomaly_detector" => Ok(Box::new(crate::anomaly::model::AnomalyModel::default())),
        "sensor_health" => Ok(Box::new(crate::anomaly::health_model::SensorHealthModel::default())),
        other => {
            let factory = REGISTERED.read().unwrap_or_else(|p| p.into_inner()).get(other).cloned();
            match factory {
                Some(f) => f(version_dir),
                None => Err(ModelError::Load(format!("unknown native backend {other:?}; built in: {BUILTIN:?}"))),
            }
        }
    }
}

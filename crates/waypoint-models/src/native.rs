//! Native model implementations the server can instantiate by backend name.

use std::path::Path;

use crate::model::Model;
use crate::trajectory::ConstantVelocity;
use crate::ModelError;

/// Backend names accepted in a model's `config.toml` (`platform = "waypoint"`).
pub const BACKENDS: [&str; 1] = ["constant_velocity"];

/// Creates one instance of a native model from its version directory.
pub fn instantiate(backend: &str, _version_dir: &Path) -> Result<Box<dyn Model>, ModelError> {
    match backend {
        "constant_velocity" => Ok(Box::new(ConstantVelocity)),
        other => Err(ModelError::Load(format!("unknown native backend {other:?}; known: {BACKENDS:?}"))),
    }
}
